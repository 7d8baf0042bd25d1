"""Memory does not grow with the number of images: peak RSS after 5000 images vs after 500.

Runs ``edgebench-runtime run`` twice on mobilenet_v3_small (random init, from ``edgebench convert``)
over the default photos, cycled, and compares the child's peak RSS (``getrusage`` ru_maxrss, reported as
``peak_rss_mb`` in summary.json) and the largest RSS the telemetry sampler saw.

Target (issue 3): peak RSS after 5000 images within 10 % of the peak after 500.

Run: .venv/bin/python benchmarks/bench_runtime_rss.py [--small 500 --large 5000]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _artifacts import REPO, converted


def run(artifacts, output, count):
    command = [
        sys.executable,
        "-m",
        "edgebench_runtime",
        "run",
        "--artifacts",
        str(artifacts),
        "--output",
        str(output),
        "--models",
        "mobilenet_v3_small",
        "--count",
        str(count),
        "--warmup",
        "10",
        "--threads",
        "1",
        "--progress",
        "never",
        "--quiet",
    ]
    subprocess.run(command, check=True, cwd=str(REPO))
    return json.loads((output / "mobilenet_v3_small" / "cpu-warm" / "summary.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        artifacts = converted("mobilenet_v3_small")
        small = run(artifacts, root / "small", args.small)
        large = run(artifacts, root / "large", args.large)
    print("peak RSS of the benchmark child, mobilenet_v3_small, CPU, 1 thread")
    print("{:<8} {:>14} {:>20} {:>10}".format("images", "peak RSS MiB", "max sampled RSS MiB", "status"))
    for count, data in ((args.small, small), (args.large, large)):
        print(
            "{:<8d} {:14.1f} {:>20} {:>10}".format(
                count, data["peak_rss_mb"], data["telemetry"]["rss_max_sampled_mb"], data["status"]
            )
        )
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    print(
        "ratio {}/{}: {:.3f} (target within 10 %): {}".format(
            args.large, args.small, ratio, "PASS" if abs(ratio - 1) <= 0.10 else "FAIL"
        )
    )


if __name__ == "__main__":
    main()
