"""Parity checks: an exported ONNX model against its reference on random inputs and real photos.

The photos go through the device runtime's own preprocessing, so the tensors checked here are the
tensors a device will feed the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgebench.catalog import ModelEntry
from edgebench_runtime.imaging import Preprocessor, decode_image

__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "Reference", "compare_outputs", "onnx_runner", "parity"]

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3
RANDOM_CASES = 2

Reference = Callable[[np.ndarray], list[np.ndarray]]


def onnx_runner(path: Path) -> Reference:
    """A function feeding one tensor to the model's single input with ONNX Runtime on the CPU."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return lambda tensor: session.run(None, {input_name: tensor})


def compare_outputs(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]
) -> tuple[float, float, float]:
    """(max abs diff, max abs diff / max |reference|, max |reference|) over all outputs."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference outputs but {len(candidate)} candidate outputs")
    max_abs = max_rel = scale = 0.0
    for ref, out in zip(reference, candidate, strict=True):
        ref = np.asarray(ref, dtype=np.float64)
        out = np.asarray(out, dtype=np.float64)
        if ref.shape != out.shape:
            raise ValueError(f"output shapes differ: {ref.shape} vs {out.shape}")
        if not np.all(np.isfinite(out)):
            return float("inf"), float("inf"), float(np.abs(ref).max(initial=0.0))
        diff = float(np.abs(ref - out).max(initial=0.0))
        ref_scale = float(np.abs(ref).max(initial=0.0))
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / ref_scale if ref_scale > 0 else diff)
        scale = max(scale, ref_scale)
    return max_abs, max_rel, scale


def _photo_tensors(entry: ModelEntry, images: Sequence[Path]) -> list[np.ndarray]:
    preprocess = Preprocessor(
        entry.preprocess, entry.input["height"], entry.input["width"], entry.input["layout"]
    )
    return [preprocess(decode_image(path))[0] for path in images]


def _random_tensors(entry: ModelEntry) -> list[np.ndarray]:
    from edgebench.sources import random_input_batch

    return [random_input_batch(entry, 1, 1000 + case).numpy() for case in range(RANDOM_CASES)]


def parity(
    entry: ModelEntry,
    reference: Reference,
    candidate: Reference,
    images: Sequence[Path],
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> dict:
    """Compare ``candidate`` with ``reference`` on random inputs and photos.

    A case passes when its max abs diff is within ``atol + rtol * max|reference|``; classifiers must
    also agree on the top-1 class of every photo.
    """
    result: dict = {"atol": atol, "rtol": rtol}
    passed = True
    for kind, tensors in (("random", _random_tensors(entry)), ("images", _photo_tensors(entry, images))):
        worst_abs = worst_rel = 0.0
        top1_agree = 0
        for tensor in tensors:
            ref = reference(tensor)
            out = candidate(tensor)
            max_abs, max_rel, scale = compare_outputs(ref, out)
            worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
            passed &= max_abs <= atol + rtol * scale
            if entry.task == "classification":
                top1_agree += int(np.argmax(ref[0]) == np.argmax(out[0]))
        summary = {"max_abs": worst_abs, "max_rel": worst_rel, "cases": len(tensors)}
        if entry.task == "classification" and tensors:
            summary["top1_agree"] = top1_agree / len(tensors)
            passed &= top1_agree == len(tensors)
        result[kind] = summary
    result["passed"] = bool(passed)
    return result
