"""Fleet orchestration cost on the simulated fleet (real playbooks over real SSH), side by side:

- the same plan on three hosts vs one host alone (goal: wall time <= 1.3x);
- a second deploy to three hosts with nothing changed (goal: <= 15 s, changed=0).

Needs root, sshd and sudo (as the fleet tests do). Provisioning is done first and not timed.
Usage: .venv/bin/python benchmarks/bench_fleet.py [--count 50] [--model mobilenet_v3_small]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fleet"))

import simfleet  # noqa: E402 - lives beside the fleet tests, found through the path above


def playbook(fleet, plan: dict, *args: str) -> tuple[float, str]:
    env = {**os.environ, **fleet.env(), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(fleet.inventory_path),
               "benchmark.yml", "-e", json.dumps(plan), *args]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"ansible-playbook failed:\n{result.stdout[-3000:]}\n{result.stderr[-1000:]}")
    return elapsed, result.stdout


def changed_counts(stdout: str) -> list[int]:
    return [int(n) for n in re.findall(r"changed=(\d+)", stdout.split("PLAY RECAP")[-1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--model", default="mobilenet_v3_small")
    args = parser.parse_args()
    reason = simfleet.check_requirements()
    if reason:
        sys.exit(f"simulated fleet unavailable: {reason}")

    from edgebench.catalog import load_catalog
    from edgebench.convert import convert

    artifacts = REPO / ".pytest_artifacts"
    catalog = load_catalog()
    convert(catalog.resolve(models=[args.model]), artifacts, catalog_dir=catalog.path.parent)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as scratch:
        plan = {
            "edgebench_models": [args.model],
            "edgebench_image_count": args.count,
            "edgebench_warmup_count": 5,
            "edgebench_threads": 1,
            "edgebench_poll_interval_s": 0.5,
            "edgebench_artifacts_dir": str(artifacts),
            "edgebench_results_dir": f"{scratch}/results",
        }
        timings = {}
        for size in (1, 3):
            specs = [(f"bench{index}", "rpis") for index in range(size)]
            with simfleet.SimFleet(specs) as fleet:
                playbook(fleet, {**plan, "run_id": f"setup{size}"}, "--tags", "provision,deploy")
                timings[size], _ = playbook(
                    fleet, {**plan, "run_id": f"measure{size}"}, "--tags", "run,collect"
                )
                if size == 3:
                    redeploy, stdout = playbook(fleet, {**plan, "run_id": "redeploy"}, "--tags", "deploy")
                    changed = changed_counts(stdout)
    print(f"plan: {args.model}, {args.count} images, 1 thread per host, run + collect phases")
    print(f"one host     : {timings[1]:6.1f} s")
    print(f"three hosts  : {timings[3]:6.1f} s   ratio {timings[3] / timings[1]:.2f}x (goal <= 1.3x)")
    print(f"second deploy: {redeploy:6.1f} s   changed per host {changed} (goal <= 15 s, changed=0)")
    print(f"cpu cores    : {os.cpu_count()} (three hosts share them: their inference competes for CPU)")


if __name__ == "__main__":
    main()
