"""What the detection decoders share: the thresholds, the candidate selection, class-aware NMS and
the mapping back to original-image pixels (``DetectionDecoder``), the numerically guarded sigmoid,
logit and exp, and the network input size. The decoders per family are in ``detection.py`` and
``anchor_free.py``; this module registers none.

Python 3.6 compatible.
"""

import math
from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from .base import Decoder
from .nms import batched_nms, boxes_to_original, topk_indices

__all__ = ["EXP_CLAMP", "DetectionDecoder", "clamped_exp", "empty_result", "logit", "network_size", "sigmoid"]

# exp() arguments are clamped here so that nonsense regressions give huge, not infinite, boxes.
EXP_CLAMP = 20.0


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function in float32, without overflow warnings."""
    out = np.negative(x, dtype=np.float32)
    with np.errstate(over="ignore"):  # exp(large) = inf gives sigmoid 0, as it should
        np.exp(out, out=out)
    out += np.float32(1.0)
    np.reciprocal(out, out=out)
    return out


def logit(p: float) -> float:
    """The inverse of the sigmoid: a score threshold in the raw outputs' units."""
    p = min(max(float(p), 1e-12), 1.0 - 1e-7)
    return math.log(p / (1.0 - p))


def clamped_exp(x: np.ndarray) -> np.ndarray:
    return np.exp(np.minimum(x, np.float32(EXP_CLAMP)))


def empty_result() -> Dict[str, Any]:
    """A detection result without boxes."""
    return {"boxes": np.zeros((0, 6), dtype=np.float32), "labels": []}


class DetectionDecoder(Decoder):
    """Thresholds, NMS and the mapping to original pixels shared by the detection decoders."""

    parameters: ClassVar[dict] = {
        "score_threshold": "number",
        "iou_threshold": "number",
        "max_detections": "int",
        "max_candidates": "int",
        "multi_label": "bool",
        "nms": ("auto", "numpy", "opencv"),
    }

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        Decoder.__init__(self, manifest, params)
        self.score_threshold = float(self.params.get("score_threshold", 0.25))
        self.iou_threshold = float(self.params.get("iou_threshold", 0.45))
        self.max_detections = int(self.params.get("max_detections", 300))
        self.max_candidates = int(self.params.get("max_candidates", 30000))
        self.multi_label = bool(self.params.get("multi_label", False))
        backend = self.params.get("nms", "auto")
        if backend not in ("auto", "numpy", "opencv"):
            raise ValueError("nms must be auto, numpy or opencv, not %r" % backend)
        self.use_cv2 = {"auto": None, "numpy": False, "opencv": True}[backend]
        self._label_array = np.array(list(self.labels) or [""], dtype=object)
        self.net_hw = network_size(manifest)

    def _select(self, class_scores, objectness=None):
        """Candidate (row, class, score) from per-row class scores (times objectness)."""
        if objectness is not None:
            class_scores = class_scores * objectness[:, None]
        if self.multi_label:
            rows, classes = np.nonzero(class_scores > np.float32(self.score_threshold))
            scores = class_scores[rows, classes]
        else:
            classes = class_scores.argmax(axis=1)
            rows = np.arange(class_scores.shape[0])
            scores = class_scores[rows, classes]
            mask = scores > np.float32(self.score_threshold)
            rows, classes, scores = rows[mask], classes[mask], scores[mask]
        if scores.shape[0] > self.max_candidates:
            top = topk_indices(scores, self.max_candidates)
            rows, classes, scores = rows[top], classes[top], scores[top]
        return rows, classes, scores

    def _finish(self, boxes, scores, classes, geometry):
        """NMS on network-pixel boxes, then the result in original pixels."""
        if scores.shape[0] == 0:
            return empty_result()
        keep = batched_nms(boxes, scores, classes, self.iou_threshold, self.max_detections, self.use_cv2)
        out = np.empty((keep.shape[0], 6), dtype=np.float32)
        out[:, :4] = boxes[keep]
        out[:, 4] = scores[keep]
        out[:, 5] = classes[keep]
        boxes_to_original(out, geometry)
        return {"boxes": out, "labels": self._names(classes[keep])}

    def _names(self, classes):
        classes = np.asarray(classes, dtype=np.int64)
        if not len(self.labels):
            return [str(int(c)) for c in classes]
        inside = (classes >= 0) & (classes < len(self.labels))
        if inside.all():
            return self._label_array[classes].tolist()
        names = [str(int(c)) for c in classes]
        for i in np.flatnonzero(inside).tolist():
            names[i] = self.labels[int(classes[i])]
        return names

    def brief(self, result: Dict[str, Any]) -> str:
        return "%d boxes" % len(result["boxes"])


def network_size(manifest: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    """The network input's (height, width) from the manifest, or None where it is dynamic."""
    spec = manifest.get("input") or {}
    height, width = spec.get("height"), spec.get("width")
    if height is None or width is None:
        inputs = manifest.get("inputs") or []
        if inputs and len(inputs[0].get("shape") or []) == 4:
            shape = inputs[0]["shape"]
            layout = spec.get("layout", "NCHW")
            height, width = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    if isinstance(height, int) and isinstance(width, int):
        return height, width
    return None
