"""Telemetry: small collectors sampled by a thread into telemetry.csv.

Each collector is a generator function ``collector(state)`` yielding ``(column, value)`` pairs; it
yields nothing when its source is absent (a CPU-only x86 box has no Jetson rails, a Pi has no
RAPL). A collector that raises is disabled for the rest of the run and the error recorded; none can
stop the run. ``state`` carries the sysfs/procfs root (tests point it at a fake tree), the pid whose
RSS is sampled and per-collector memory (e.g. the previous RAPL reading).

Columns (present where the source is): ``schema_version, time, elapsed_s, segment`` then
``temp_<zone>_c`` (every thermal zone, named by its type), ``cpu<N>_mhz``, ``devfreq_<dev>_mhz``
(GPU/EMC clocks, e.g. Jetson ``57000000.gpu``), ``gpu_load_pct`` (Jetson), ``cpu_util_pct``,
``mem_used_mb``, ``mem_available_mb``, ``rss_mb``/``rss_peak_mb`` (the benchmark process),
``pi_throttled`` (``vcgencmd get_throttled`` as an integer), ``pi_throttled_now``,
``pi_throttled_since_boot`` (0/1), ``power_<rail>_mw`` (Jetson INA3221), ``power_rapl_<domain>_mw``
(x86 RAPL, from energy counter deltas), ``power_total_mw`` (the input rail, or the RAPL packages'
sum), ``throttle_count`` (x86 core+package thermal throttle events, cumulative).

The summary of a finished run's telemetry.csv is in ``telemetry_summary.py``.

Python 3.6 compatible.
"""

import glob
import os
import re
import subprocess
import threading
import time
from typing import Any, Callable, List, Optional, Sequence, Set, Tuple

from .telemetry_summary import PI_NOW_MASK, PI_SINCE_BOOT_MASK, summarize_telemetry

# summarize_telemetry is re-exported: callers read the telemetry from one module.
__all__ = ["COLLECTORS", "Sampler", "TelemetryState", "sample_once", "summarize_telemetry"]

SCHEMA_VERSION = 1


class TelemetryState(object):
    def __init__(self, root: str = "/", pid: Optional[int] = None) -> None:
        self.root = root
        self.pid = pid
        self.memory = {}

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *[p.lstrip("/") for p in parts])


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


def _read_or_none(path):
    try:
        return _read(path)
    except (IOError, OSError):
        return None


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "_", str(text).strip().lower()).strip("_") or "x"


def thermal_zones(state):
    seen = {}
    for zone in sorted(glob.glob(state.path("sys/class/thermal/thermal_zone*")), key=_natural):
        raw = _read_or_none(os.path.join(zone, "temp"))
        if raw is None or not raw.lstrip("-").isdigit():
            continue
        name = _slug(_read_or_none(os.path.join(zone, "type")) or os.path.basename(zone))
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = "%s_%d" % (name, seen[name])
        yield "temp_%s_c" % name, int(raw) / 1000.0


def _natural(text):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def cpu_clocks(state):
    found = False
    for path in sorted(
        glob.glob(state.path("sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")), key=_natural
    ):
        raw = _read_or_none(path)
        if raw and raw.isdigit():
            found = True
            cpu = path.split("/cpufreq/")[0].rsplit("cpu", 1)[1]
            yield "cpu%s_mhz" % cpu, int(raw) / 1000.0
    if not found:  # VMs and some ARM kernels without cpufreq: /proc/cpuinfo when it has MHz lines
        text = _read_or_none(state.path("proc/cpuinfo")) or ""
        for index, value in enumerate(re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", text, re.M)):
            yield "cpu%d_mhz" % index, float(value)


def devfreq_clocks(state):
    for path in sorted(glob.glob(state.path("sys/class/devfreq/*/cur_freq"))):
        raw = _read_or_none(path)
        if raw and raw.isdigit():
            yield "devfreq_%s_mhz" % _slug(os.path.basename(os.path.dirname(path))), int(raw) / 1e6
    for path in glob.glob(state.path("sys/devices/gpu.0/load")) + glob.glob(
        state.path("sys/devices/platform/gpu.0/load")
    ):
        raw = _read_or_none(path)
        if raw and raw.isdigit():
            yield "gpu_load_pct", int(raw) / 10.0
            break


def cpu_utilisation(state):
    line = (_read_or_none(state.path("proc/stat")) or "").split("\n", 1)[0]
    if not line.startswith("cpu "):
        return
    values = [int(v) for v in line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    previous = state.memory.get("cpu_stat")
    state.memory["cpu_stat"] = (idle, total)
    if previous and total > previous[1]:
        busy = 1.0 - (idle - previous[0]) / float(total - previous[1])
        yield "cpu_util_pct", round(100.0 * busy, 2)


def memory(state):
    text = _read_or_none(state.path("proc/meminfo"))
    if not text:
        return
    info = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            info[parts[0].rstrip(":")] = int(parts[1])
    if "MemTotal" in info and "MemAvailable" in info:
        yield "mem_used_mb", (info["MemTotal"] - info["MemAvailable"]) / 1024.0
        yield "mem_available_mb", info["MemAvailable"] / 1024.0


def process_rss(state):
    if not state.pid:
        return
    text = _read_or_none(state.path("proc/%d/status" % state.pid))
    if not text:
        return
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            yield "rss_mb", int(line.split()[1]) / 1024.0
        elif line.startswith("VmHWM:"):
            yield "rss_peak_mb", int(line.split()[1]) / 1024.0


def pi_throttled(state):
    raw = None
    sysfs = state.path("sys/devices/platform/soc/soc:firmware/get_throttled")
    if os.path.exists(sysfs):
        raw = _read_or_none(sysfs)
        value = int(raw, 16) if raw else None
    elif state.root == "/" and state.memory.get("vcgencmd", True):
        value = _vcgencmd_throttled()
        if value is None:
            state.memory["vcgencmd"] = False  # absent: do not fork every second
    else:
        value = None
    if value is None:
        return
    yield "pi_throttled", value
    yield "pi_throttled_now", int(bool(value & PI_NOW_MASK))
    yield "pi_throttled_since_boot", int(bool(value & PI_SINCE_BOOT_MASK))


def _vcgencmd_throttled():
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), "/opt/vc/bin", "/usr/bin"]:
        exe = os.path.join(directory, "vcgencmd")
        if os.access(exe, os.X_OK):
            break
    else:
        return None
    try:
        output = subprocess.check_output([exe, "get_throttled"], stderr=subprocess.DEVNULL, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"throttled=(0x[0-9a-fA-F]+)", output.decode("ascii", "replace"))
    return int(match.group(1), 16) if match else None


def _is_input_rail(name):
    upper = name.upper()
    return upper.endswith("_IN") or upper in ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0") or "5V_IN" in upper


def jetson_rails(state):
    rails = []
    # JetPack 4 (ina3221x driver, iio): rail_name_N + in_power{N}_input in mW.
    for device in glob.glob(state.path("sys/bus/i2c/drivers/ina3221x/*/iio:device*")):
        for name_path in glob.glob(os.path.join(device, "rail_name_*")):
            channel = name_path.rsplit("_", 1)[1]
            name = _read_or_none(name_path)
            raw = _read_or_none(os.path.join(device, "in_power%s_input" % channel))
            if name and raw and raw.isdigit():
                rails.append((name, float(raw)))
    # JetPack 5/6 (ina3221 hwmon): in{N}_label, in{N}_input mV, curr{N}_input mA.
    for hwmon in glob.glob(state.path("sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*")):
        for label_path in glob.glob(os.path.join(hwmon, "in*_label")):
            channel = os.path.basename(label_path)[2:].split("_", 1)[0]
            name = _read_or_none(label_path)
            millivolts = _read_or_none(os.path.join(hwmon, "in%s_input" % channel))
            milliamps = _read_or_none(os.path.join(hwmon, "curr%s_input" % channel))
            if name and millivolts and milliamps and millivolts.isdigit() and milliamps.isdigit():
                rails.append((name, int(millivolts) * int(milliamps) / 1000.0))
    total = None
    for name, milliwatts in rails:
        yield "power_%s_mw" % _slug(name), milliwatts
        if _is_input_rail(name):
            total = milliwatts if total is None else total + milliwatts
    if rails:
        yield "power_total_mw", total if total is not None else sum(mw for _n, mw in rails)


def rapl(state):
    now = time.time()
    readings = {}
    for zone in sorted(glob.glob(state.path("sys/class/powercap/intel-rapl:[0-9]*"))):
        raw = _read_or_none(os.path.join(zone, "energy_uj"))
        if not raw or not raw.isdigit():
            continue
        top = os.path.basename(zone).count(":") == 1
        name = _slug(_read_or_none(os.path.join(zone, "name")) or os.path.basename(zone))
        limit = _read_or_none(os.path.join(zone, "max_energy_range_uj"))
        readings[os.path.basename(zone)] = (
            name,
            int(raw),
            int(limit) if limit and limit.isdigit() else None,
            top,
        )
    previous = state.memory.get("rapl")
    state.memory["rapl"] = (now, readings)
    if not previous or now <= previous[0]:
        return
    seconds = now - previous[0]
    total = None
    for key, (name, energy, limit, top) in sorted(readings.items()):
        if key not in previous[1]:
            continue
        delta = energy - previous[1][key][1]
        if delta < 0 and limit:
            delta += limit
        milliwatts = delta / seconds / 1000.0
        yield "power_rapl_%s_mw" % (name if top else key.replace(":", "_") + "_" + name), milliwatts
        if top:
            total = milliwatts if total is None else total + milliwatts
    if total is not None:
        yield "power_total_mw", total


def x86_throttle(state):
    total = 0
    found = False
    for path in glob.glob(state.path("sys/devices/system/cpu/cpu[0-9]*/thermal_throttle/*_throttle_count")):
        raw = _read_or_none(path)
        if raw and raw.isdigit():
            total += int(raw)
            found = True
    if found:
        yield "throttle_count", total


COLLECTORS = (
    thermal_zones,
    cpu_clocks,
    devfreq_clocks,
    cpu_utilisation,
    memory,
    process_rss,
    pi_throttled,
    jetson_rails,
    rapl,
    x86_throttle,
)


def sample_once(
    state: TelemetryState,
    collectors: Sequence[Callable[..., Any]] = COLLECTORS,
    errors: Optional[List[str]] = None,
    disabled: Optional[Set[str]] = None,
) -> List[Tuple[str, Any]]:
    """One sample as an ordered list of (column, value). Collector failures go to ``errors``."""
    values = []
    for collector in collectors:
        if disabled is not None and collector.__name__ in disabled:
            continue
        try:
            values.extend(collector(state))
        except Exception as exc:  # a collector must never stop the run
            if errors is not None:
                errors.append("%s: %s" % (collector.__name__, exc))
            if disabled is not None:
                disabled.add(collector.__name__)
    return values


class Sampler(object):
    """A daemon thread writing one telemetry.csv row every ``interval`` seconds.

    The header is fixed by the first sample; later values for new columns are dropped and missing
    ones left empty. Appends to an existing file with the same header (a resumed run); otherwise
    the old file is kept as ``telemetry.<n>.csv``.
    """

    def __init__(
        self,
        path: str,
        interval: float = 1.0,
        pid: Optional[int] = None,
        root: str = "/",
        segment: int = 0,
        collectors: Sequence[Any] = COLLECTORS,
    ) -> None:
        self.path = path
        self.interval = float(interval)
        self.state = TelemetryState(root=root, pid=pid)
        self.segment = segment
        self.collectors = collectors
        self.errors = []
        self.disabled = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = None
        self._handle = None
        self._columns = None
        self._start = None

    def start(self) -> "Sampler":
        self._start = time.time()
        self._open(self._sample())
        self._thread = threading.Thread(target=self._loop, name="edgebench-telemetry")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _sample(self):
        return sample_once(self.state, self.collectors, self.errors, self.disabled)

    def _open(self, first):
        columns = ["schema_version", "time", "elapsed_s", "segment"] + [name for name, _v in first]
        seen = set()
        self._columns = [c for c in columns if not (c in seen or seen.add(c))]
        header = ",".join(self._columns) + "\n"
        if os.path.exists(self.path) and os.path.getsize(self.path):
            with open(self.path) as handle:
                old = handle.readline()
            if old != header:
                index = 1
                while os.path.exists("%s.%d.csv" % (self.path[:-4], index)):
                    index += 1
                os.rename(self.path, "%s.%d.csv" % (self.path[:-4], index))
        new = not os.path.exists(self.path)
        self._handle = open(self.path, "a")  # noqa: SIM115 - open for the sampler's lifetime
        if new:
            self._handle.write(header)
        self._write(first)

    def _write(self, values):
        now = time.time()
        row = dict(values)
        row.update(
            {
                "schema_version": SCHEMA_VERSION,
                "time": "%.3f" % now,
                "elapsed_s": "%.3f" % (now - self._start),
                "segment": self.segment,
            }
        )
        self._handle.write(",".join(_fmt(row.get(c)) for c in self._columns) + "\n")
        self._handle.flush()
        self.samples += 1

    def _loop(self):
        next_at = time.time() + self.interval
        while not self._stop.wait(max(0.0, next_at - time.time())):
            next_at += self.interval
            try:
                self._write(self._sample())
            except (IOError, OSError) as exc:  # full disk: stop sampling, keep the run
                self.errors.append("telemetry.csv: %s" % exc)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._handle is not None:
            try:
                self._write(self._sample())
                self._handle.close()
            except (IOError, OSError) as exc:
                self.errors.append("telemetry.csv: %s" % exc)
            self._handle = None


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "%.3f" % value
    return str(value)
