"""The real benchmark.yml over real SSH against three simulated hosts (one Pi, two Jetsons)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("simfleet")]

MODEL = "mobilenet_v3_small"


def plan(artifacts_dir: Path, results_dir: Path, run_id: str, **overrides) -> str:
    values = {
        "edgebench_models": [MODEL],
        "edgebench_modes": ["warm"],
        "edgebench_image_count": 6,
        # Exact row counts: no extension to the validity minimums (issue 11).
        "edgebench_max_images": "{{ edgebench_image_count }}",
        "edgebench_warmup_count": 1,
        "edgebench_poll_interval_s": 0.5,
        "edgebench_artifacts_dir": str(artifacts_dir),
        "edgebench_results_dir": str(results_dir),
        "run_id": run_id,
        **overrides,
    }
    return json.dumps(values)


def playbook(fleet, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **fleet.env(), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(fleet.inventory_path), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def must(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        pytest.fail(
            f"ansible-playbook failed ({result.returncode}):\n"
            f"{result.stdout[-5000:]}\n{result.stderr[-2000:]}"
        )
    return result


def summary(results: Path, host: str, provider: str, mode: str = "warm") -> dict:
    return json.loads((results / host / MODEL / f"{provider}-{mode}" / "summary.json").read_text())


def test_fleet_benchmark_collects_every_host(sim_fleet, artifacts_dir, tmp_path):
    results = tmp_path / "results"
    must(playbook(sim_fleet, "benchmark.yml", "-e", plan(artifacts_dir, results, "fleet-1")))
    run_dir = results / "fleet-1"
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) == [
        "nano-sim", "report", "rpi4-sim", "summary.csv", "xavier-sim"]  # fmt: skip
    assert (run_dir / "report" / "report.html").exists()
    for host in ("rpi4-sim", "nano-sim", "xavier-sim"):
        cpu = summary(run_dir, host, "cpu")
        assert cpu["status"] == "complete" and cpu["images"]["measured"] == 6
        assert json.loads((run_dir / host / "env.json").read_text())["hostname"] == host
    # The Pi is asked for the CPU only; Jetsons also for CUDA and TensorRT, which these hosts lack.
    assert not (run_dir / "rpi4-sim" / MODEL / "cuda-warm").exists()
    for host in ("nano-sim", "xavier-sim"):
        for provider in ("cuda", "tensorrt-fp32", "tensorrt-fp16"):
            skipped = summary(run_dir, host, provider)
            assert skipped["status"] == "skipped" and skipped["reason"], (host, provider)

    # A second deploy with nothing changed moves nothing.
    again = must(
        playbook(
            sim_fleet, "benchmark.yml", "--tags", "deploy", "-e", plan(artifacts_dir, results, "fleet-1")
        )
    )
    recap = again.stdout.split("PLAY RECAP")[1]
    for host in ("rpi4-sim", "nano-sim", "xavier-sim"):
        assert f"{host}" in recap
    assert recap.count("changed=0") == 3, recap


def test_reboot_per_application_goes_through_the_real_reboot_module(sim_fleet, artifacts_dir, tmp_path):
    results = tmp_path / "results"
    boot_ids = {host.name: host.boot_id for host in sim_fleet}
    result = must(playbook(
        sim_fleet, "benchmark.yml", "-l", "rpi4-sim,nano-sim",
        "-e", plan(artifacts_dir, results, "fleet-reboot", edgebench_reboot_policy="per_application",
                   edgebench_modes=["warm", "cold"], edgebench_providers=["cpu"]),
    ))  # fmt: skip
    assert "Reboot the device before this unit of work" in result.stdout
    for name in ("rpi4-sim", "nano-sim"):
        assert sim_fleet[name].boot_id != boot_ids[name], f"{name} was not rebooted"
        for mode in ("warm", "cold"):
            assert summary(results / "fleet-reboot", name, "cpu", mode)["status"] == "complete"
    assert sim_fleet["xavier-sim"].boot_id == boot_ids["xavier-sim"]
