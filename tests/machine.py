"""What this machine has, for the tests whose expectation depends on it: a test that asserts TensorRT
is absent (skipped with the reason, the engines command refused) holds only where it is absent.
Importable as ``machine`` (tests/ is on sys.path under pytest)."""

from __future__ import annotations

import importlib.util

import pytest

__all__ = ["TENSORRT_IMPORTABLE", "without_tensorrt"]

#: find_spec, not an import: importing TensorRT loads CUDA libraries and takes seconds.
TENSORRT_IMPORTABLE = importlib.util.find_spec("tensorrt") is not None

#: For a test that asserts TensorRT is absent (tests/gpu/ covers a machine that has it).
without_tensorrt = pytest.mark.skipif(
    TENSORRT_IMPORTABLE,
    reason="TensorRT is importable on this machine; this test asserts its absence (tests/gpu/ covers it)",
)
