"""Devices as they really are, with the default group settings: an arm64 Raspberry Pi (a Debian
arm64 userland under qemu-user), a JetPack-4-like Jetson (Ansible on CPython 3.8, the runtime on
3.6) and a JetPack-5-like one (3.8 for both, cgroup files and kernel log hidden from its user).
No Jetson here has CUDA: cpu must be measured, cuda and tensorrt skipped with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import simfleet

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("simfleet")]

MODEL = "mobilenet_v3_small"
BIG = "alexnet"  # about 470 MB resident in ONNX Runtime: does not fit under MEMORY_CAP_MB
MEMORY_CAP_MB = 300
MACHINE_BOOT_ID = Path(simfleet.BOOT_ID_PATH).read_text().strip()
JETPACK4 = ("3.8.18", "3.6.15", "2.7.18")  # Ansible's, the runtime's, and one too old for it
JETPACK5 = ("3.8.18",)


def _interpreter(version: str) -> str:
    return f"{simfleet.pyenv_prefix(version)}/bin/python{'.'.join(version.split('.')[:2])}"



@pytest.fixture(scope="module")
def sim_fleet_specs():
    try:
        rootfs = str(simfleet.build_rootfs("arm64"))
        jetpack4 = {"ansible_python_interpreter": _interpreter("3.8.18"),
                    "edgebench_runtime_python": _interpreter("3.6.15"), "jetsons_jetpack": "4.6"}
        jetpack5 = {"ansible_python_interpreter": _interpreter("3.8.18"),
                    "edgebench_runtime_python": _interpreter("3.8.18"), "jetsons_jetpack": "5.1"}
    except simfleet.SimFleetUnavailable as exc:
        if os.environ.get("CI") or os.environ.get("EDGEBENCH_REQUIRE_SIMFLEET") == "1":
            pytest.fail(f"device platforms required here but unavailable: {exc}", pytrace=False)
        pytest.skip(f"device platforms unavailable: {exc}")
    return [
        simfleet.HostSpec("pi-arm64", ("rpis",), "Raspberry Pi 4 (arm64, emulated)", rootfs=rootfs),
        simfleet.HostSpec("nano-jp4", ("jetsons",), "Jetson Nano (JetPack 4)", pythons=JETPACK4,
                          host_vars=jetpack4),
        # Uncapped while pip installs; the out-of-memory test lowers the cap.
        simfleet.HostSpec("xavier-jp5", ("jetsons",), "Jetson Xavier (JetPack 5)", pythons=JETPACK5,
                          host_vars=jetpack5, hide_cgroups=True, memory_limit_mb=8192),
    ]


def plan(artifacts: Path, results: Path, run_id: str, **overrides) -> str:
    # The default device requirements of every group: nothing here is overridden for the Jetsons.
    values = {
        "edgebench_models": [MODEL],
        "edgebench_modes": ["warm"],
        "edgebench_image_count": 3,
        "edgebench_max_images": 3,  # exact row counts: no extension to the validity minimums
        "edgebench_warmup_count": 1,
        "edgebench_threads": 1,
        "edgebench_poll_interval_s": 0.5,
        "edgebench_artifacts_dir": str(artifacts),
        "edgebench_results_dir": str(results),
        "run_id": run_id,
        **overrides,
    }
    return json.dumps(values)


def playbook(fleet, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    env = {**os.environ, **fleet.env(), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(fleet.inventory_path), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def must(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        pytest.fail(f"ansible-playbook failed ({result.returncode}):\n{result.stdout[-6000:]}\n"
                    f"{result.stderr[-2000:]}")
    return result


def summary(run_dir: Path, host: str, provider: str, model: str = MODEL) -> dict:
    return json.loads((run_dir / host / model / f"{provider}-warm" / "summary.json").read_text())


@pytest.fixture(scope="module")
def default_run(sim_fleet, artifacts_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("platform-results")
    result = must(playbook(sim_fleet, "benchmark.yml", "-e", plan(artifacts_dir, results, "platforms")))
    return result, results / "platforms"


def test_every_device_kind_measures_its_cpu_with_the_default_settings(default_run):
    _, run_dir = default_run
    for host in ("pi-arm64", "nano-jp4", "xavier-jp5"):
        cpu = summary(run_dir, host, "cpu")
        assert cpu["status"] == "complete" and cpu["images"]["measured"] == 3, (host, cpu.get("reason"))
    pi = json.loads((run_dir / "pi-arm64" / "env.json").read_text())
    assert pi["arch"] == "aarch64" and pi["python"]["version"].startswith("3.11")
    assert pi["packages"]["onnxruntime"] and pi["packages"]["numpy"]


def test_each_device_got_the_wheels_of_its_own_interpreter(default_run):
    _, run_dir = default_run
    nano = json.loads((run_dir / "nano-jp4" / "env.json").read_text())
    assert nano["python"]["version"] == "3.6.15" and nano["arch"] == "x86_64"
    # The newest releases with wheels for CPython 3.6, as pip resolved them for that interpreter.
    assert nano["packages"]["numpy"] == "1.19.5" and nano["packages"]["onnxruntime"] == "1.10.0"
    assert nano["packages"]["pip"] == "21.3.1"
    xavier = json.loads((run_dir / "xavier-jp5" / "env.json").read_text())
    assert xavier["python"]["version"] == "3.8.18"
    assert xavier["packages"]["onnxruntime"].startswith("1.19.") and xavier["packages"]["numpy"] == "1.24.4"


def test_jetsons_without_cuda_skip_cuda_and_tensorrt_with_what_to_supply(default_run):
    _, run_dir = default_run
    for host in ("nano-jp4", "xavier-jp5"):
        cuda = summary(run_dir, host, "cuda")
        assert cuda["status"] == "skipped"
        assert "CUDAExecutionProvider" in cuda["reason"] and "jetsons_onnxruntime_gpu_wheel" in cuda["reason"]
        for provider in ("tensorrt-fp32", "tensorrt-fp16"):
            skipped = summary(run_dir, host, provider)
            assert skipped["status"] == "skipped", (host, provider)
            assert "pycuda: not built: no CUDA toolkit on the device" in skipped["reason"], skipped["reason"]
            assert "tensorrt Python bindings not importable" in skipped["reason"]


def test_the_pi_is_a_real_arm64_userland_where_become_is_root_and_power_stays_inside(sim_fleet):
    pi = sim_fleet["pi-arm64"]
    assert pi.ssh("uname -m").stdout.strip() == "aarch64"
    assert pi.ssh("sudo -n id -u").stdout.strip() == "0"  # become is real root on this machine
    for command in ("reboot", "shutdown -r now"):
        previous = pi.boot_id
        pi.ssh(f"sudo -n {command}", check=False)
        pi.wait_for_boot(previous, timeout=60)
        assert Path(simfleet.BOOT_ID_PATH).read_text().strip() == MACHINE_BOOT_ID
        assert pi.ssh("cat /proc/sys/kernel/random/boot_id").stdout.strip() == pi.boot_id != MACHINE_BOOT_ID


def test_a_runtime_python_older_than_3_6_is_refused_before_the_device_is_touched(
    sim_fleet, artifacts_dir, tmp_path
):
    result = playbook(sim_fleet, "benchmark.yml", "-l", "nano-jp4", "-e",
                      plan(artifacts_dir, tmp_path / "results", "too-old",
                           edgebench_runtime_python=_interpreter("2.7.18")))
    assert result.returncode != 0
    flat = " ".join(result.stdout.split())
    assert "nano-jp4: edgebench_runtime_python" in flat
    assert "is Python 2.7; edgebench_runtime needs 3.6" in flat
    assert "Set edgebench_runtime_python" in flat
    assert "TASK [provision" not in result.stdout  # the device was never provisioned


def test_an_oom_kill_is_recorded_as_oom_where_the_device_hides_its_cgroups(
    sim_fleet, convert_models, tmp_path
):
    artifacts = convert_models([MODEL, BIG])
    xavier = sim_fleet["xavier-jp5"]
    assert xavier.ssh("ls /sys/fs/cgroup | wc -l").stdout.strip() == "0"
    xavier.set_memory_limit(MEMORY_CAP_MB)
    results = tmp_path / "results"
    must(playbook(sim_fleet, "benchmark.yml", "-l", "xavier-jp5", "-e",
                  plan(artifacts, results, "hidden-oom", edgebench_models=[BIG, MODEL],
                       edgebench_providers=["cpu"])))
    big = summary(results / "hidden-oom", "xavier-jp5", "cpu", BIG)
    assert big["status"] == "oom", big
    # Killed by the kernel: with the cgroup files and kernel log hidden, its counter is the evidence.
    assert "SIGKILL" in big["reason"] and "/proc/vmstat oom_kill" in big["reason"], big["reason"]
    assert summary(results / "hidden-oom", "xavier-jp5", "cpu")["status"] == "complete"


def test_a_failed_pycuda_build_skips_tensorrt_with_its_last_lines_and_keeps_the_cpu(
    sim_fleet, artifacts_dir, tmp_path
):
    # A CUDA toolkit that has nvcc but no headers: pip really builds pycuda 2022.1 for Python 3.6,
    # and the build fails, as a broken JetPack install would.
    nano = sim_fleet["nano-jp4"]
    nano.ssh("mkdir -p ~/broken-cuda/bin"
             " && printf '#!/bin/sh\\necho nvcc: release 10.2\\n' > ~/broken-cuda/bin/nvcc"
             " && chmod +x ~/broken-cuda/bin/nvcc")
    results = tmp_path / "results"
    broken = {"edgebench_cuda_home": f"{nano.home}/broken-cuda"}
    must(playbook(sim_fleet, "benchmark.yml", "-l", "nano-jp4", "-e",
                  plan(artifacts_dir, results, "broken-cuda", **broken)))
    notes = json.loads(nano.path("edgebench", "venv", "edgebench-provision.json").read_text())
    pycuda = notes["optional"]["pycuda"]
    assert pycuda["installed"] is False and "its build against" in pycuda["reason"], pycuda
    assert "broken-cuda failed (rc 1)" in pycuda["reason"], pycuda["reason"]
    # The compiler's own words: the toolkit has no headers (the build tools themselves installed).
    assert "cuda.h" in pycuda["reason"], pycuda["reason"]
    run_dir = results / "broken-cuda"
    assert summary(run_dir, "nano-jp4", "cpu")["status"] == "complete"
    tensorrt = summary(run_dir, "nano-jp4", "tensorrt-fp32")
    assert tensorrt["status"] == "skipped" and "provisioning: pycuda: its build against" in tensorrt["reason"]
