"""Shared fixtures. Real models are converted once into `.pytest_artifacts/` (git-ignored) and
reused across test sessions and xdist workers: the converter's own cache makes reruns free."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

# Tests never reach for official weights: CI machines are offline.
os.environ.setdefault("EDGEBENCH_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_ARTIFACTS = REPO / ".pytest_artifacts"
# The classifiers the runtime tests run; small and quick to export.
RUNTIME_MODELS = ("mobilenet_v3_small", "shufflenet_v2_x0_5")


def convert_shared(names) -> Path:
    """Convert catalog models into the shared test artifacts directory, once, under a lock."""
    from edgebench.catalog import load_catalog
    from edgebench.convert import convert

    SHARED_ARTIFACTS.mkdir(exist_ok=True)
    catalog = load_catalog()
    with open(SHARED_ARTIFACTS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = convert(
            catalog.resolve(models=list(names)), SHARED_ARTIFACTS, catalog_dir=catalog.path.parent
        )
    failed = [result.message for result in results if result.status == "failed"]
    if failed:
        raise RuntimeError("test artifacts failed to convert: " + "; ".join(failed))
    return SHARED_ARTIFACTS


@pytest.fixture(scope="session")
def convert_models():
    """`convert_shared(names)` for tests that need other catalog models (a fixture: test modules
    cannot import `conftest` by name, which tests/fleet/conftest.py shadows in a full run)."""
    return convert_shared


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Artifacts of RUNTIME_MODELS plus the default image set (`images/`)."""
    return convert_shared(RUNTIME_MODELS)
