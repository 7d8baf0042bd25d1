"""Cost of issue 11's statistics at fleet scale: 3 hosts × 26 models × 2 modes × 5000 images.

Measured side by side in one run, on one synthetic, schema-valid tree (``bench_report.fleet_run``):

* the runtime's summary statistics per result (``summarize_rows`` + ``validity``: nearest-rank
  percentiles, LoadGen's early-stopping estimate, MAD/IQR dispersion) against the statistics
  before the issue (numpy's interpolated percentiles, mean, std), over the same rows;
* the comparison of two runs (``compare_runs``: 2000-resample bootstrap interval of the median
  ratio per result, from the stored timings) against reading the same two runs' tables alone
  (``load_results``), which any comparison needs;
* ``build_report`` of the run with its "changes since the previous run" (bootstrap included).

Run: .venv/bin/python benchmarks/bench_statistics.py [--count 5000] [--repeat 3] [--no-timelines]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_report import fleet_run  # noqa: E402

from edgebench.report import build_report  # noqa: E402
from edgebench.report.history import compare_runs  # noqa: E402
from edgebench.report.load import load_results  # noqa: E402
from edgebench_runtime.results import PHASES, read_timings, summarize_rows, validity  # noqa: E402


def _legacy_summary(rows, cold):
    """The statistics as they were before issue 11: interpolated percentiles, mean, std, CoV."""
    total = rows["pre_ms"] + rows["infer_ms"] + rows["post_ms"]
    out = {}
    for name, values in [
        *((p, rows[p]) for p in PHASES),
        ("total_ms", total),
        ("e2e_ms", total + rows["decode_ms"]),
    ]:
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        out[name] = (values.mean(), values.std(ddof=1), values.min(), values.max(), p50, p90, p99)
    if cold:
        keep = np.ones(rows["segment"].size, dtype=bool)
        keep[0] = False
        for p in PHASES:
            np.percentile(rows[p][keep], [50, 90, 99])
    return out


def _median_time(function, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="images per model × mode (default 5000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-timelines", action="store_true", help="leave the per-image timelines out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        t0 = time.perf_counter()
        before = fleet_run(root, "20250101T000000Z", args.count, 1_735_689_600.0, 1)
        run = fleet_run(root, "20250108T000000Z", args.count, 1_736_294_400.0, 2)
        paths = sorted(run.glob("*/*/*/timings.csv"))
        print(
            f"synthetic tree: 2 runs × 3 hosts × 26 models × 2 modes = {len(paths)} results per run, "
            f"{args.count} images each ({time.perf_counter() - t0:.1f} s to write)"
        )
        tables = [(read_timings(str(p)), p.parent.name.endswith("cold")) for p in paths]

        def new_statistics():
            for rows, cold in tables:
                summary = summarize_rows(rows, cold=cold)
                summary.update({"status": "complete", "images": {"measured": int(rows["index"].size)}})
                validity(summary)

        def old_statistics():
            for rows, cold in tables:
                _legacy_summary(rows, cold)

        new = _median_time(new_statistics, args.repeat)
        old = _median_time(old_statistics, args.repeat)
        print(
            f"summary statistics of {len(tables)} results: issue 11 {new:.2f} s, before {old:.2f} s "
            f"(ratio {new / old:.2f}; {new / len(tables) * 1000:.1f} ms per result)"
        )

        compare = _median_time(lambda: compare_runs(before, run), args.repeat)
        reading = _median_time(lambda: load_results([before, run]), args.repeat)
        print(
            f"compare_runs (bootstrap of {len(paths)} pairs, 2000 resamples each): {compare:.2f} s; "
            f"reading the two runs alone {reading:.2f} s (ratio {compare / reading:.2f})"
        )

        times = []
        for k in range(args.repeat):
            out = Path(tmp) / f"report{k}"
            t0 = time.perf_counter()
            build_report([run], out_dir=out, history_dir=root, timelines=not args.no_timelines)
            times.append(time.perf_counter() - t0)
        print(
            f"build_report with changes since the previous run: median {statistics.median(times):.2f} s over "
            f"{args.repeat} (min {min(times):.2f}, max {max(times):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
