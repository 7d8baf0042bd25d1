"""telemetry.py collectors on fake sysfs/procfs trees (Pi, Jetson JetPack 4 and 5, x86 RAPL)."""

import os
import time

import pytest

from edgebench_runtime import telemetry
from edgebench_runtime.telemetry import Sampler, TelemetryState, sample_once, summarize_telemetry


def put(root, path, text):
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)


@pytest.fixture
def pi(tmp_path):
    put(tmp_path, "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    put(tmp_path, "sys/class/thermal/thermal_zone0/temp", "48312\n")
    put(tmp_path, "sys/class/thermal/thermal_zone1/type", "cpu-thermal\n")
    put(tmp_path, "sys/class/thermal/thermal_zone1/temp", "50000\n")
    for cpu in range(4):
        put(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq", "1500000\n")
    put(tmp_path, "proc/meminfo", "MemTotal:  4000000 kB\nMemFree: 1 kB\nMemAvailable:  3000000 kB\n")
    put(tmp_path, "proc/stat", "cpu  100 0 100 800 0 0 0 0 0 0\n")
    put(tmp_path, "proc/42/status", "Name: python\nVmHWM:   204800 kB\nVmRSS:   102400 kB\n")
    put(tmp_path, "sys/devices/platform/soc/soc:firmware/get_throttled", "50005\n")
    return tmp_path


def test_pi_collectors(pi):
    state = TelemetryState(root=str(pi), pid=42)
    values = dict(sample_once(state))
    assert values["temp_cpu_thermal_c"] == pytest.approx(48.312)
    assert values["temp_cpu_thermal_2_c"] == 50.0  # duplicate zone types stay apart
    assert values["cpu3_mhz"] == 1500.0
    assert values["mem_used_mb"] == pytest.approx(1000000 / 1024.0)
    assert values["rss_mb"] == 100.0 and values["rss_peak_mb"] == 200.0
    assert values["pi_throttled"] == 0x50005
    assert values["pi_throttled_now"] == 1 and values["pi_throttled_since_boot"] == 1
    assert "power_total_mw" not in values and "cpu_util_pct" not in values  # first /proc/stat sample
    put(pi, "proc/stat", "cpu  200 0 100 900 0 0 0 0 0 0\n")
    assert dict(sample_once(state))["cpu_util_pct"] == 50.0


def test_jetson_jetpack4_iio_rails(tmp_path):
    device = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/"
    for channel, (name, mw) in enumerate([("POM_5V_IN", 3200), ("POM_5V_GPU", 800), ("POM_5V_CPU", 1200)]):
        put(tmp_path, device + f"rail_name_{channel}", name)
        put(tmp_path, device + f"in_power{channel}_input", str(mw))
    put(tmp_path, "sys/class/devfreq/57000000.gpu/cur_freq", "921600000")
    put(tmp_path, "sys/devices/gpu.0/load", "455")
    values = dict(sample_once(TelemetryState(root=str(tmp_path))))
    assert values["power_pom_5v_gpu_mw"] == 800.0
    assert values["power_total_mw"] == 3200.0  # the input rail, not the sum
    assert values["devfreq_57000000_gpu_mhz"] == pytest.approx(921.6)
    assert values["gpu_load_pct"] == 45.5


def test_jetson_jetpack5_hwmon_rails(tmp_path):
    hwmon = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/"
    put(tmp_path, hwmon + "in1_label", "VDD_IN")
    put(tmp_path, hwmon + "in1_input", "5000")
    put(tmp_path, hwmon + "curr1_input", "1000")
    put(tmp_path, hwmon + "in2_label", "VDD_CPU_GPU_CV")
    put(tmp_path, hwmon + "in2_input", "5000")
    put(tmp_path, hwmon + "curr2_input", "200")
    values = dict(sample_once(TelemetryState(root=str(tmp_path))))
    assert values["power_vdd_in_mw"] == 5000.0
    assert values["power_vdd_cpu_gpu_cv_mw"] == 1000.0
    assert values["power_total_mw"] == 5000.0


def test_rapl_power_from_energy_deltas_with_wraparound(tmp_path, monkeypatch):
    zone = "sys/class/powercap/intel-rapl:0/"
    put(tmp_path, zone + "name", "package-0")
    put(tmp_path, zone + "energy_uj", "999000000")
    put(tmp_path, zone + "max_energy_range_uj", "1000000000")
    state = TelemetryState(root=str(tmp_path))
    clock = iter([100.0, 102.0])
    monkeypatch.setattr(time, "time", lambda: next(clock))
    assert "power_total_mw" not in dict(telemetry.rapl(state))
    put(tmp_path, zone + "energy_uj", "9000000")  # wrapped: +10 J in 2 s = 5 W
    values = dict(telemetry.rapl(state))
    assert values["power_rapl_package_0_mw"] == pytest.approx(5000.0)
    assert values["power_total_mw"] == pytest.approx(5000.0)


def test_absent_sources_yield_nothing_and_broken_collectors_are_disabled(tmp_path):
    state = TelemetryState(root=str(tmp_path / "empty"), pid=1)

    def broken(state):
        raise RuntimeError("sensor exploded")
        yield  # pragma: no cover

    errors, disabled = [], set()
    assert sample_once(state, (*telemetry.COLLECTORS, broken), errors, disabled) == []
    assert errors == ["broken: sensor exploded"] and disabled == {"broken"}
    assert sample_once(state, (broken,), errors, disabled) == []
    assert len(errors) == 1


def test_sampler_writes_rows_and_summary(pi, tmp_path):
    path = tmp_path / "telemetry.csv"
    sampler = Sampler(str(path), interval=0.05, pid=42, root=str(pi)).start()
    time.sleep(0.3)
    sampler.stop()
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["schema_version", "time", "elapsed_s", "segment"]
    assert "temp_cpu_thermal_c" in header and "pi_throttled" in header
    assert len(lines) - 1 == sampler.samples >= 4
    assert all(line.startswith("1,") for line in lines[1:])
    summary = summarize_telemetry(str(path))
    assert summary["samples"] == sampler.samples
    assert summary["max_temp_c"] == 50.0
    assert summary["throttling"]["seen"] is True
    assert summary["energy"]["mj_per_image"] is None and summary["energy"]["reason"]
    # A resumed run with a different column set keeps the old file aside.
    os.remove(str(pi / "sys/devices/platform/soc/soc:firmware/get_throttled"))
    Sampler(str(path), interval=10, pid=42, root=str(pi), segment=1).start().stop()
    assert (tmp_path / "telemetry.1.csv").exists()


def test_energy_per_image_from_power_samples(tmp_path):
    path = tmp_path / "telemetry.csv"
    rows = ["schema_version,time,elapsed_s,segment,power_total_mw,throttle_count"]
    for i in range(11):
        rows.append(f"1,{1000.0 + i:.3f},{i:.3f},0,2000.000,{5 if i < 5 else 7}")
    path.write_text("\n".join(rows) + "\n")
    summary = summarize_telemetry(str(path), windows=[(1000.0, 1010.0, 100)])
    assert summary["energy"]["mean_power_w"] == pytest.approx(2.0)
    assert summary["energy"]["mj_per_image"] == pytest.approx(200.0)  # 2 W * 10 s / 100 images
    assert summary["throttling"] == {"seen": True, "evidence": ["2 x86 thermal throttle events"]}
