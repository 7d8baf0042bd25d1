"""Artifacts for the runtime benchmarks, made by edgebench's own converter (export, parity check,
manifest, default photos), cached in the repository's ``artifacts/`` as ``make bench`` leaves it."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Benchmarks never reach for official weights: random init is what the tests measure too.
os.environ.setdefault("EDGEBENCH_OFFLINE", "1")
ARTIFACTS = Path(os.environ.get("EDGEBENCH_BENCH_ARTIFACTS", REPO / "artifacts"))


def converted(*names):
    """Convert catalog models (a cache hit when up to date); returns the artifacts directory."""
    from edgebench.catalog import load_catalog
    from edgebench.convert import convert

    catalog = load_catalog()
    results = convert(catalog.resolve(models=list(names)), ARTIFACTS, catalog_dir=catalog.path.parent)
    failed = [result.message for result in results if result.status == "failed"]
    if failed:
        raise SystemExit("conversion failed: " + "; ".join(failed))
    return ARTIFACTS
