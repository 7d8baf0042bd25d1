"""Time to build the report of a fleet run: 3 hosts × 26 models × 2 modes (issue 7's closing figure).

The run is synthetic but schema-valid (``tests/synthetic_results.py``: timings.csv rows in the
runtime's column order, summary statistics from the runtime's own ``summarize_rows``, env.json
shaped like the probe's, telemetry with temperature and a throttle event): three hosts (two
Raspberry Pi 4 units and one Raspberry Pi 5), the thesis profile's models (26), warm and cold,
CPU, ``--count`` images each. A second, earlier run of the same fleet gives the "changes since the
previous run" section something to compare. Reports the wall time of ``build_report`` (median of
``--repeat``), split into loading + tables, figures and HTML, and the output's size.

Run: .venv/bin/python benchmarks/bench_report.py [--count 100] [--repeat 3] [--no-timelines]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The synthetic result trees are a test fixture (tests/synthetic_results.py), not part of the package.
sys.path.insert(0, str(REPO / "tests"))

from synthetic_results import synthetic_env, synthetic_run  # noqa: E402

from edgebench.catalog import load_catalog  # noqa: E402
from edgebench.report import build_report  # noqa: E402


def fleet_run(root: Path, run_id: str, count: int, start: float, seed: int) -> Path:
    catalog = load_catalog()
    names = catalog.profiles["thesis"][:26]
    models = {n: 8.0 + 45.0 * float(catalog.get(n).reference.get("gflops") or 1.0) for n in names}
    tasks = {n: catalog.get(n).task for n in names}
    hosts = {
        "rpi4-a": synthetic_env("rpi4-a", "Raspberry Pi 4 Model B Rev 1.4"),
        "rpi4-b": {**synthetic_env("rpi4-b", "Raspberry Pi 4 Model B Rev 1.5"), "_speed": 1.04},
        "rpi5-a": {**synthetic_env("rpi5-a", "Raspberry Pi 5 Model B Rev 1.0"), "_speed": 0.45},
    }
    return synthetic_run(
        root / run_id, hosts, models, modes=("warm", "cold"), count=count, start=start, seed=seed, tasks=tasks
    )


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="images per model × mode (default 100)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-timelines", action="store_true", help="leave out the per-image timelines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        t0 = time.perf_counter()
        fleet_run(root, "20250101T000000Z", args.count, 1_735_689_600.0, 1)
        run = fleet_run(root, "20250108T000000Z", args.count, 1_736_294_400.0, 2)
        print(
            f"synthetic tree: 2 runs × 3 hosts × 26 models × 2 modes, {args.count} images each "
            f"({time.perf_counter() - t0:.1f} s to write)"
        )
        times, cpu = [], []
        for k in range(args.repeat):
            out = Path(tmp) / f"report{k}"
            c0 = _cpu_seconds()
            t0 = time.perf_counter()
            html = build_report([run], out_dir=out, timelines=not args.no_timelines)
            times.append(time.perf_counter() - t0)
            cpu.append(_cpu_seconds() - c0)
        load = f"{os.getloadavg()[0]:.1f}"
        print(
            f"CPU time (this process + figure workers): median {statistics.median(cpu):.1f} s; "
            f"{os.cpu_count()} CPUs, load average {load} at the end"
        )
        figures = list((out / "figures").glob("*.png"))
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(
            f"build_report: median {statistics.median(times):.2f} s over {args.repeat} "
            f"(min {min(times):.2f}, max {max(times):.2f})"
        )
        print(
            f"output: {html.name}, {len(figures)} PNGs, {len(list((out / 'tables').glob('*.csv')))} CSVs, "
            f"{size / 1e6:.1f} MB in all"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
