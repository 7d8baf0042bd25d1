"""The on-device correctness check: does this provider compute what ONNX Runtime CPU computed on the
controller?

At conversion time the controller stores, in the artifact, ``reference.npz`` (the pre-processed
input tensor and ONNX Runtime CPU's raw outputs for a few of the default images) and a
``reference_outputs`` block in the manifest (which images, their sizes, tolerances). Before the
timed loop, ``check`` feeds every stored input through the provider's backend and compares

* the raw outputs: max abs diff, passing when ``diff <= atol + rtol * max|reference|`` per output;
* the task results: the pipeline's own decoder (``Pipeline.postprocess``) applied to the reference
  outputs and to the provider's outputs, compared by what the result holds: classification top-1
  (a swap within ``top1_tie`` of probability counts as agreement), detection boxes (same class and
  IoU >= ``iou``, or every corner within ``box_px`` original pixels - zero-area boxes, which
  random-init detectors emit by the hundred, have no IoU; 1 - the fraction of boxes left
  unmatched that no score tie explains >= ``box_agreement``: within ``score_tie``, NMS order, tied
  class scores and the max_detections cut pick among equals arbitrarily), pose keypoints (within
  ``keypoint_px`` original-image pixels; fraction >= ``keypoint_agreement``), segmentation masks
  (pixel agreement >= ``mask_agreement``). A decoder that is missing here or returns nothing
  (``raw``) leaves the raw comparison alone, and the verdict says so.

Identity: any decoder's result compared with itself agrees 1.0 (degenerate, duplicate and tied
boxes, NaN coordinates, empty results): matching is greedy by similarity with ties broken by
distance, so every result pairs with itself or an exact duplicate (tests/unit/test_correctness_identity.py
holds every registered decoder to it).

The stored input tensor is fed, not the device's own decode of the image: JPEG decoders and
resizers (cv2 vs Pillow) differ by a few grey levels, which would blur what the check is for (the
provider's arithmetic). When the image itself is available (``ARTIFACTS/images``) it still goes
through the device's decode + pre-processing and is compared with the stored tensor in the
model's own units (``compare_input``): the mean absolute difference over the reference tensor's
spread fails the check beyond ``input_relative_mean`` (0.1), so a 0-255 model and a normalised one
are judged alike. Resamplers differ by about 0.01 of the spread on average (single pixels by far
more: Pillow antialiases when it shrinks, cv2 does not), while a swapped colour order, a wrong
mean/std or a wrong scale moves the whole tensor; the message names which it looks like.

The verdict (``summary.json`` ``correctness``): ``status`` passed | failed | not checked | error,
``passed`` (true / false / null), ``max_abs``, ``task_agreement`` (the worst image's), ``level``
(task | raw), ``tolerance``, ``reason`` and per-image details. A failing provider is still timed.

Python 3.6 compatible.
"""

import os
import time
from typing import Any, Dict, Optional

import numpy as np

from .comparison import compare_task

# compare_task is re-exported: the check's callers and tests read the comparisons from here.
__all__ = [
    "DEFAULT_TOLERANCES",
    "REFERENCE_BLOCK",
    "check",
    "compare_input",
    "compare_task",
    "not_checked",
    "tolerance_for",
]

REFERENCE_BLOCK = "reference_outputs"

_TASK = {
    "top1_tie": 1e-3,
    "score_tie": 1e-3,
    "iou": 0.9,
    "box_agreement": 0.95,
    "keypoint_px": 2.0,
    "keypoint_agreement": 0.95,
    "mask_agreement": 0.99,
    "box_px": 1.0,
    "input_relative_mean": 0.1,
}

#: Tolerance fields of earlier runtimes that artifacts still carry in their stored tolerances but
#: nothing reads any more (``input_atol`` was in normalised units, wrong for 0-255 models).
_RETIRED = ("input_atol",)


def _tol(atol, rtol, **task):
    out = dict(_TASK)
    out.update({"atol": atol, "rtol": rtol})
    out.update(task)
    return out


#: Per provider (``family`` or ``family-precision``); the manifest's block may override any field.
#: ``atol``/``rtol`` None: raw differences are recorded but not judged (int8).
#: CUDA and TensorRT fp32 are both float32 on the GPU, with its own kernels and reduction order.
_GPU_FP32 = _tol(
    1e-2,
    1e-2,
    top1_tie=5e-3,
    score_tie=5e-3,
    box_agreement=0.9,
    keypoint_agreement=0.9,
    mask_agreement=0.98,
)
DEFAULT_TOLERANCES = {
    "cpu": _tol(1e-3, 1e-3),
    "cuda": _GPU_FP32,
    "tensorrt-fp32": _GPU_FP32,
    "tensorrt-fp16": _tol(
        1e-1,
        5e-2,
        top1_tie=2e-2,
        score_tie=2e-2,
        box_agreement=0.8,
        box_px=4.0,
        keypoint_px=4.0,
        keypoint_agreement=0.8,
        mask_agreement=0.97,
    ),
    "tensorrt-int8": _tol(
        None,
        None,
        top1_tie=5e-2,
        score_tie=5e-2,
        box_agreement=0.6,
        box_px=8.0,
        keypoint_px=8.0,
        keypoint_agreement=0.6,
        mask_agreement=0.9,
    ),
}


def tolerance_for(provider: str, block: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The tolerances for ``provider``: the runtime's defaults, overridden by the manifest's."""
    text = str(provider).lower()
    family = text.split("-", 1)[0]
    if family == "tensorrt" and "-" not in text:
        text = "tensorrt-fp32"
    chosen = dict(
        DEFAULT_TOLERANCES.get(text) or DEFAULT_TOLERANCES.get(family) or DEFAULT_TOLERANCES["cuda"]
    )
    stored = (block or {}).get("tolerances") or {}
    for key in (family, text):
        chosen.update(stored.get(key) or {})
    for key in _RETIRED:
        chosen.pop(key, None)
    return chosen


def not_checked(reason: str, **extra: Any) -> Dict[str, Any]:
    verdict = {
        "status": "not checked",
        "passed": None,
        "max_abs": None,
        "task_agreement": None,
        "level": None,
        "tolerance": None,
        "reason": reason,
    }
    verdict.update(extra)
    return verdict


# --- the input check ---------------------------------------------------------------------------


def compare_input(device: np.ndarray, reference: np.ndarray, layout: str = "NCHW") -> Dict[str, Any]:
    """How far the device's pre-processed tensor is from the stored one, in the model's own units.

    ``relative_mean`` is the mean absolute difference over the reference tensor's spread (its
    standard deviation; its range, then 1, for a flat image), so a model fed 0-255 pixels and one
    fed normalised values are judged alike: cv2 and Pillow resamplers differ by about one grey level
    on average (~0.01 of a photo's spread), a swapped colour order, a wrong mean/std or scale by a
    large fraction of it. ``likely`` names the error the difference looks like."""
    device = np.asarray(device, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    deviation = np.abs(device - reference)
    spread = float(reference.std()) if reference.size else 0.0
    if not spread > 0:
        spread = float(reference.max() - reference.min()) if reference.size else 0.0
    if not spread > 0:
        spread = 1.0
    mean_abs = float(deviation.mean()) if deviation.size else 0.0
    out = {
        "max_abs": float(deviation.max()) if deviation.size else 0.0,
        "mean_abs": mean_abs,
        "spread": spread,
        "relative_mean": mean_abs / spread,
        "likely": _likely_input_error(device, reference, layout, mean_abs, spread),
    }
    return out


def _likely_input_error(device, reference, layout, mean_abs, spread):
    """A hint for the message: colour order, scale, or mean/std."""
    axis = 1 if layout == "NCHW" else reference.ndim - 1
    if reference.ndim == 4 and reference.shape[axis] == 3:
        swapped = np.flip(reference, axis=axis)
        if float(np.abs(device - swapped).mean()) < 0.5 * mean_abs:
            return "the colour order is swapped (RGB vs BGR)"
    device_spread = float(device.std()) if device.size else 0.0
    if device_spread > 0 and spread > 0 and not 0.8 <= device_spread / spread <= 1.25:
        return "the scale differs (the device's values spread %.3g times as wide)" % (device_spread / spread)
    if abs(float(device.mean()) - float(reference.mean())) > 0.5 * mean_abs:
        return "the mean or std normalisation differs (the values are shifted by %.3g of the spread)" % (
            (float(device.mean()) - float(reference.mean())) / spread
        )
    return "a different resize or crop?"


# --- the check ---------------------------------------------------------------------------------


def _raw_compare(reference, outputs, tol):
    """``(max_abs, worst excess over the allowance, scale, problem)`` over every output."""
    if len(reference) != len(outputs):
        return (
            None,
            None,
            None,
            "%d reference outputs but the provider gave %d" % (len(reference), len(outputs)),
        )
    max_abs = 0.0
    excess = -float("inf")
    scale_all = 0.0
    for index, (ref, out) in enumerate(zip(reference, outputs)):  # noqa: B905 - Python 3.6
        ref = np.asarray(ref, dtype=np.float64)
        out = np.asarray(out, dtype=np.float64)
        if ref.size != out.size:
            return (
                None,
                None,
                None,
                "output %d has shape %s, the reference %s" % (index, out.shape, ref.shape),
            )
        out = out.reshape(ref.shape)
        if not np.all(np.isfinite(out)):
            return float("inf"), float("inf"), None, "output %d holds NaN or infinity" % index
        diff = float(np.abs(ref - out).max()) if ref.size else 0.0
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        max_abs = max(max_abs, diff)
        scale_all = max(scale_all, scale)
        if tol.get("atol") is not None:
            excess = max(excess, diff - (tol["atol"] + (tol.get("rtol") or 0.0) * scale))
    return max_abs, excess, scale_all, None


def _decoder_cut(pipeline):
    """The decoder's score threshold and max_detections, where it has them (detection)."""
    decoder = pipeline.decoder
    return {
        "score_threshold": getattr(decoder, "score_threshold", None),
        "max_detections": getattr(decoder, "max_detections", None),
    }


def _order_outputs(outputs, backend_names, reference_names):
    """The provider's outputs in the reference's order (matched by name when both have names)."""
    outputs = list(outputs)
    if backend_names and reference_names and sorted(backend_names) == sorted(reference_names):
        position = dict((name, i) for i, name in enumerate(backend_names))
        return [outputs[position[name]] for name in reference_names]
    return outputs


def _geometry(preprocessor, image_info, images_dir, decode, use_cv2):
    """(geometry, device tensor or None, note): decode + pre-process the image when present."""
    name = image_info.get("name")
    path = os.path.join(images_dir, name) if images_dir and name else None
    if path and os.path.isfile(path):
        try:
            image = decode(path) if use_cv2 is None else decode(path, use_cv2)
            tensor, geometry = preprocessor(image)
            return geometry, tensor, None
        except Exception as exc:  # a bad file must not stop the check
            note = "image %s could not be decoded here (%s)" % (name, exc)
    else:
        note = "image %s not found in %s" % (name, images_dir)
    height, width = int(image_info["height"]), int(image_info["width"])
    geometry = preprocessor.geometry_for(height, width)
    geometry["original"] = (height, width)
    return geometry, None, note


def check(
    backend: Any,
    manifest: Dict[str, Any],
    artifact_dir: str,
    provider: Optional[str] = None,
    pipeline: Any = None,
    images_dir: Optional[str] = None,
    use_cv2: Optional[bool] = None,
) -> Dict[str, Any]:
    """Run the stored reference inputs through ``backend`` (already loaded) and return the verdict.

    ``pipeline`` is the run's ``tasks.Pipeline``; when None one is built from the manifest, and when
    the manifest's decoder is not registered here the check falls back to raw outputs only.
    ``images_dir`` holds the reference images (default: ``ARTIFACTS/images`` next to the artifact).
    """
    started = time.time()
    provider = provider or getattr(backend, "provider", "cpu")
    block = manifest.get(REFERENCE_BLOCK)
    if not block:
        return not_checked(
            "the artifact has no reference outputs (converted before edgebench stored them); "
            "reconvert it (`edgebench convert --force`) to enable the check"
        )
    path = os.path.join(str(artifact_dir), block.get("file", "reference.npz"))
    if not os.path.isfile(path):
        return not_checked("reference file %s is missing" % path)
    tol = tolerance_for(provider, block)
    from .imaging import Preprocessor, decode_image
    from .tasks import Pipeline, UnknownDecoder

    notes = []
    if pipeline is None:
        try:
            pipeline = Pipeline(manifest, input_names=backend.input_names or None, use_cv2=use_cv2)
        except UnknownDecoder as exc:
            notes.append("raw outputs only: %s" % exc.args[0])
    if pipeline is not None:
        preprocessor = pipeline.preprocessor
    else:
        spec = manifest.get("input") or {}
        preprocessor = Preprocessor(
            manifest.get("preprocess") or {},
            spec.get("height"),
            spec.get("width"),
            spec.get("layout", "NCHW"),
            use_cv2,
        )
    if images_dir is None:
        images_dir = os.path.join(os.path.dirname(os.path.abspath(str(artifact_dir))), "images")
    reference_names = list(block.get("outputs") or [item["name"] for item in manifest.get("outputs", [])])
    input_names = list(backend.input_names or [item["name"] for item in manifest.get("inputs", [])])
    per_image = []
    worst_abs = 0.0
    worst_excess = -float("inf")
    worst_agreement = None
    input_max_abs = None
    input_mean_abs = None
    input_check = None
    level = "task" if pipeline is not None else "raw"
    failures = []
    with np.load(path) as stored:
        for index, info in enumerate(block.get("images") or []):
            item = {"image": info.get("name")}
            tensor = stored["input_%d" % index]
            reference = [stored["output_%d_%d" % (index, j)] for j in range(len(reference_names))]
            geometry, device_tensor, note = _geometry(preprocessor, info, images_dir, decode_image, use_cv2)
            if note:
                notes.append(note)
            if device_tensor is not None and device_tensor.shape == tensor.shape:
                compared_input = compare_input(device_tensor, tensor, preprocessor.layout)
                item["input"] = compared_input
                if input_check is None or compared_input["relative_mean"] > input_check["relative_mean"]:
                    input_check = dict(compared_input, image=info.get("name"))
                diff, mean = compared_input["max_abs"], compared_input["mean_abs"]
                input_max_abs = diff if input_max_abs is None else max(input_max_abs, diff)
                input_mean_abs = mean if input_mean_abs is None else max(input_mean_abs, mean)
            if pipeline is not None:
                feeds = pipeline.decoder.feeds(tensor, geometry, input_names)
            else:
                feeds = {input_names[0]: tensor}
            outputs = [np.array(out, copy=True) for out in backend.infer(feeds)]
            outputs = _order_outputs(outputs, list(backend.output_names or []), reference_names)
            max_abs, excess, scale, problem = _raw_compare(reference, outputs, tol)
            item.update({"max_abs": max_abs, "scale": scale})
            if problem:
                failures.append("%s: %s" % (info.get("name"), problem))
                item["problem"] = problem
                per_image.append(item)
                worst_abs = float("inf") if max_abs is None else max(worst_abs, max_abs)
                continue
            worst_abs = max(worst_abs, max_abs)
            worst_excess = max(worst_excess, excess)
            if tol.get("atol") is not None and excess > 0:
                failures.append(
                    "%s: max abs diff %.3g exceeds %.3g + %.3g x %.3g"
                    % (info.get("name"), max_abs, tol["atol"], tol.get("rtol") or 0.0, scale)
                )
            if pipeline is not None and level == "task":
                compared = compare_task(
                    pipeline.postprocess(reference, geometry),
                    pipeline.postprocess(outputs, geometry),
                    dict(tol, decoder_cut=_decoder_cut(pipeline)),
                )
                if compared is None:
                    level = "raw"
                    notes.append(
                        "raw outputs only: decoder %s gives no result to compare" % pipeline.decoder_name
                    )
                else:
                    agreement, threshold, detail = compared
                    item["task_agreement"] = agreement
                    item["task"] = detail
                    worst_agreement = (
                        agreement if worst_agreement is None else min(worst_agreement, agreement)
                    )
                    if agreement < threshold:
                        failures.append(
                            "%s: %s agreement %.3f below %.3f"
                            % (info.get("name"), detail["kind"], agreement, threshold)
                        )
            per_image.append(item)
    if not per_image:
        return not_checked("the reference block lists no images", tolerance=tol)
    limit = tol.get("input_relative_mean")
    if input_check is not None and limit is not None and input_check["relative_mean"] > limit:
        failures.append(
            "%s: the device's pre-processing differs from the controller's by %.3g of the input's spread "
            "on average (> %.3g; %.3g in the model's units, spread %.3g): %s"
            % (
                input_check["image"],
                input_check["relative_mean"],
                limit,
                input_check["mean_abs"],
                input_check["spread"],
                input_check["likely"],
            )
        )
    if level == "raw":
        worst_agreement = None
        for item in per_image:
            item.pop("task_agreement", None)
            item.pop("task", None)
        failures = [text for text in failures if " agreement " not in text]
    passed = not failures
    reason = "; ".join(failures[:5]) if failures else None
    if notes:
        unique = []
        for note in notes:
            if note not in unique:
                unique.append(note)
        notes = unique
    return {
        "status": "passed" if passed else "failed",
        "passed": passed,
        "max_abs": worst_abs,
        "task_agreement": worst_agreement,
        "level": level,
        "tolerance": tol,
        "reason": reason,
        "notes": notes[:10],
        "input_max_abs": input_max_abs,
        "input_mean_abs": input_mean_abs,
        "input_relative_mean": input_check["relative_mean"] if input_check else None,
        "images": per_image,
        "reference": {
            "file": block.get("file", "reference.npz"),
            "producer": block.get("producer"),
        },
        "check_s": round(time.time() - started, 3),
    }


def safe_check(
    backend: Any,
    manifest: Dict[str, Any],
    artifact_dir: str,
    provider: Optional[str] = None,
    pipeline: Any = None,
    images_dir: Optional[str] = None,
    use_cv2: Optional[bool] = None,
) -> Dict[str, Any]:
    """``check`` that turns an unexpected error into an ``error`` verdict (the run goes on; a
    MemoryError still propagates so the run is classified oom)."""
    try:
        return check(backend, manifest, artifact_dir, provider, pipeline, images_dir, use_cv2)
    except MemoryError:
        raise
    except Exception as exc:
        verdict = not_checked("the check itself failed: %s: %s" % (type(exc).__name__, exc))
        verdict["status"] = "error"
        return verdict
