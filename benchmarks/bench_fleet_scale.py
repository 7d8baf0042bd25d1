"""How the cost of one controller grows with the fleet: benchmark.yml on N = 1, 4, 8, 16 simulated
hosts (real playbooks, real SSH, real ONNX Runtime), side by side.

For each N: a fresh fleet, a first run (provisions every host) and then a steady-state rerun with a
new run id, which is what a scheduled rerun costs (provision and deploy with nothing to change, run,
collect, report). Prints the wall time and the time of each phase (play) for each N, the tasks that
cost the most at the largest N, and last the ratio of the steady-state rerun at the largest N to one
host (goal on a 2-core machine: <= 2.0).

The model is a few convolutions exported at opset 13 and registered through a scratch catalog as a
local ONNX file, with 4 images, so that the device-side work is small and what grows with N is the
orchestration. Needs root, sshd and sudo (as the fleet tests do); not part of the test suite.
Usage: .venv/bin/python benchmarks/bench_fleet_scale.py [--sizes 1,4,8,16] [--images 4] [--forks N]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fleet"))

import simfleet  # noqa: E402 - lives beside the fleet tests, found through the path above

MODEL = "scale_tiny_cnn"


def build_tiny_model(scratch: Path) -> Path:
    """Export a few-convolution classifier at opset 13 and write a catalog that registers it."""
    import torch

    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).eval()
    model_path = scratch / f"{MODEL}.onnx"
    torch.onnx.export(
        network, (torch.rand(1, 3, 32, 32),), str(model_path), opset_version=13, dynamo=False,
        input_names=["input"], output_names=["logits"],
    )  # fmt: skip
    shipped = yaml.safe_load((REPO / "models" / "catalog.yml").read_text())
    catalog = {
        "schema_version": shipped["schema_version"],
        "preprocess_presets": shipped["preprocess_presets"],
        "profiles": {"scale": [MODEL]},
        "models": [
            {
                "name": MODEL,
                "task": "classification",
                "source": {"onnx": model_path.name},
                "input": {"height": 32, "width": 32},
                "preprocess": {"preset": "imagenet", "resize_size": 36},
                "decoder": {"name": "imagenet_topk", "top_k": 5},
                "labels": "none",
            }
        ],
    }
    catalog_path = scratch / "catalog.yml"
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return catalog_path


def convert_tiny_model(catalog_path: Path, artifacts: Path) -> None:
    from edgebench.catalog import load_catalog
    from edgebench.convert import convert

    catalog = load_catalog(catalog_path)
    results = convert(catalog.resolve(models=[MODEL]), artifacts, catalog_dir=catalog.path.parent)
    failed = [result.message for result in results if result.status == "failed"]
    if failed:
        sys.exit(f"the tiny model did not convert: {'; '.join(failed)}")


class Timing:
    """Wall time of one playbook run, per play (phase) and per task summed over hosts."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.phases: dict[str, float] = {}
        self.tasks: collections.Counter[str] = collections.Counter()
        self.task_wall: dict[str, float] = {}
        self._play_started: tuple[str, float] | None = None
        self._task_started: tuple[str, float] | None = None
        self.changed = 0
        self.failures: list[str] = []
        # Task results that executed (not skipped): module runs, a load-independent count.
        self.executed = 0
        self.load = os.getloadavg()[0]

    def _close_task(self, now: float) -> None:
        if self._task_started:
            name, started = self._task_started
            self.task_wall[name] = self.task_wall.get(name, 0.0) + now - started
            self._task_started = None

    def _close_play(self, now: float) -> None:
        self._close_task(now)
        if self._play_started:
            name, started = self._play_started
            self.phases[name] = self.phases.get(name, 0.0) + now - started
            self._play_started = None

    def event(self, event: dict) -> bool:
        now = time.perf_counter()
        kind = event.get("event")
        data = event.get("event_data", {})
        if kind == "playbook_on_play_start":
            self._close_play(now)
            self._play_started = (PHASE_OF_PLAY.get(data.get("play", ""), data.get("play", "?")), now)
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self._close_task(now)
            self._task_started = (f"{data.get('role', '')}: {data.get('task', '')}", now)
        elif kind == "playbook_on_stats":
            self._close_play(now)
            self.changed = sum((data.get("changed") or {}).values())
        if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            message = (data.get("res") or {}).get("msg", "")
            self.failures.append(f"{data.get('host')}: {data.get('task')}: {str(message)[:300]}")
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            self.executed += 1
        if kind in ("runner_on_ok", "runner_on_failed") and data.get("duration") is not None:
            self.tasks[f"{data.get('role', '')}: {data.get('task', '')}"] += float(data["duration"])
        return True


PHASES = ("validate", "provision", "deploy", "engines", "run", "collect", "report")
PHASE_OF_PLAY = {
    "Validate the run plan and the inventory before any device is touched": "validate",
    "Provision the edgebench runtime on every device": "provision",
    "Deploy the chosen artifacts and images to every device": "deploy",
    "Build TensorRT engines on devices that run TensorRT": "engines",
    "Run the benchmark on every device": "run",
    "Collect every device's results onto the controller": "collect",
    "Turn the collected results into the run's report": "report",
}


def playbook(fleet, plan: dict, scratch: Path, forks: int | None) -> Timing:
    import ansible_runner

    timing = Timing()
    private = Path(tempfile.mkdtemp(prefix="runner-", dir=scratch))
    envvars = {**fleet.env(), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    if forks:
        envvars["ANSIBLE_FORKS"] = str(forks)
    started = time.perf_counter()
    result = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook="benchmark.yml",
        inventory=str(fleet.inventory_path), envvars=envvars, extravars=plan, quiet=True,
        event_handler=timing.event,
    )  # fmt: skip
    timing.wall = time.perf_counter() - started
    if result.rc != 0:
        failures = "\n".join(timing.failures[:20]) or "(no failed task reported)"
        sys.exit(f"benchmark.yml failed on {len(fleet.hosts)} hosts (rc {result.rc}):\n{failures}")
    shutil.rmtree(private, ignore_errors=True)
    return timing


def phase_line(label: str, timing: Timing, size: int) -> str:
    cells = "".join(f"{timing.phases.get(phase, 0.0):9.1f}" for phase in PHASES)
    tail = f"{timing.executed / size:10.1f}{timing.changed:9d}{timing.load:7.1f}"
    return f"{label:<14}{timing.wall:8.1f}{cells}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8,16", help="fleet sizes, comma-separated")
    parser.add_argument("--images", type=int, default=4, help="measured images per host")
    parser.add_argument("--forks", type=int, default=None, help="override ansible.cfg's forks")
    parser.add_argument("--top", type=int, default=12, help="costliest tasks to list at the largest N")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    reason = simfleet.check_requirements()
    if reason:
        sys.exit(f"simulated fleet unavailable: {reason}")

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch_name:
        scratch = Path(scratch_name)
        artifacts = scratch / "artifacts"
        catalog = build_tiny_model(scratch)
        convert_tiny_model(catalog, artifacts)
        plan = {
            "edgebench_models": [MODEL],
            "edgebench_catalog": str(catalog),
            "edgebench_image_count": args.images,
            "edgebench_warmup_count": 1,
            "edgebench_threads": 1,
            "edgebench_poll_interval_s": 0.5,
            "edgebench_artifacts_dir": str(artifacts),
            "edgebench_results_dir": str(scratch / "results"),
            "edgebench_device_requirements": ["numpy", "onnxruntime", "Pillow"],
        }
        measured: dict[int, tuple[Timing, Timing]] = {}
        for size in sizes:
            specs = [(f"scale{index:02d}", "rpis") for index in range(size)]
            with simfleet.SimFleet(specs) as fleet:
                first = playbook(fleet, {**plan, "run_id": f"first-{size}"}, scratch, args.forks)
                rerun = playbook(fleet, {**plan, "run_id": f"rerun-{size}"}, scratch, args.forks)
            measured[size] = (first, rerun)
            print(f"N={size:<3} first {first.wall:6.1f} s   rerun {rerun.wall:6.1f} s", flush=True)

    largest, smallest = max(sizes), min(sizes)
    forks = args.forks or "ansible.cfg"
    print()
    print(f"plan: {MODEL} (opset 13, 32x32), {args.images} images, 1 thread per host; forks: {forks};")
    print(f"cpu cores: {os.cpu_count()}, shared by the controller and every simulated host")
    print("runs/host: task results that executed (not skipped) per host; load: 1-min load average at start")
    header = f"{'seconds':<14}{'wall':>8}" + "".join(f"{phase:>9}" for phase in PHASES)
    print(header + f"{'runs/host':>10}{'changed':>9}{'load':>7}")
    for size in sizes:
        first, rerun = measured[size]
        print(phase_line(f"N={size} first", first, size))
        print(phase_line(f"N={size} rerun", rerun, size))
    rerun = measured[largest][1]
    print()
    print(f"costliest tasks of the N={largest} rerun (wall seconds of the task; host-seconds summed):")
    for name, wall in sorted(rerun.task_wall.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {wall:6.1f} s  {rerun.tasks.get(name, 0.0):7.1f} host-s  {name}")
    print(json.dumps({str(size): {"first": measured[size][0].wall, "rerun": measured[size][1].wall}
                      for size in sizes}))  # fmt: skip
    ratio = measured[largest][1].wall / measured[smallest][1].wall
    print(f"steady-state rerun, {largest} hosts / {smallest} host: {ratio:.2f}x (goal <= 2.0)")


if __name__ == "__main__":
    main()
