"""Batched class-aware non-maximum suppression and the box helpers the detection decoders share.

``batched_nms`` has torchvision's semantics (``torchvision.ops.batched_nms``): boxes are
``(x1, y1, x2, y2)``; within one class a box is dropped when its IoU with a higher-scoring kept box
is strictly greater than the threshold; boxes of different classes never suppress each other; the
kept indices come back in decreasing score order (ties: lower index first). A box of zero area
neither suppresses nor is suppressed (torchvision's 0/0 IoU is NaN, never above the threshold).

Two paths give identical results:

- numpy: the greedy loop runs over kept boxes only, all classes at once: each step keeps the best
  remaining box of every class and suppresses, in one vectorised float32 IoU (the arithmetic of
  torchvision's CPU kernel), the remaining boxes of each class against it. The loop stops as soon
  as ``max_output`` kept boxes outrank every box still in play.
- OpenCV (``cv2.dnn.NMSBoxesBatched``), used when cv2 is importable and has it, for up to
  ``CV2_MAX_CANDIDATES`` candidates (``use_cv2`` forces either path). OpenCV's class
  offset trick assumes non-negative coordinates and it treats two zero-area boxes as identical,
  so the boxes are shifted to non-negative coordinates first and zero-area boxes are merged back
  in afterwards, which gives the semantics above.

The two paths (and torchvision) can differ only when an IoU equals the threshold to within float32
rounding: OpenCV computes IoU in double precision.

Python 3.6 compatible.
"""

from typing import Any, Dict, Optional

import numpy as np

try:  # OpenCV is optional on devices.
    import cv2

    HAVE_CV2_NMS = hasattr(cv2, "dnn") and hasattr(cv2.dnn, "NMSBoxesBatched")
except ImportError:  # pragma: no cover - depends on the device
    cv2 = None
    HAVE_CV2_NMS = False

# Above this many candidates the automatic choice is the numpy path (see batched_nms).
CV2_MAX_CANDIDATES = 1024

__all__ = [
    "CV2_MAX_CANDIDATES",
    "HAVE_CV2_NMS",
    "batched_nms",
    "boxes_to_original",
    "clip_boxes",
    "cxcywh_to_xyxy",
    "nms",
    "topk_indices",
    "xyxy_to_xywh",
]


def cxcywh_to_xyxy(cx: np.ndarray, cy: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Centre/size columns to an (N, 4) float32 array of corners."""
    out = np.empty((np.shape(cx)[0], 4), dtype=np.float32)
    half_w = np.float32(0.5) * w
    half_h = np.float32(0.5) * h
    out[:, 0] = cx - half_w
    out[:, 1] = cy - half_h
    out[:, 2] = cx + half_w
    out[:, 3] = cy + half_h
    return out


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """Corners to (x, y, width, height), float64 (exact for float32 input)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    out = boxes.copy()
    out[:, 2:] -= boxes[:, :2]
    return out


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, in decreasing score order (ties: lower index first)."""
    scores = np.asarray(scores)
    n = scores.shape[0]
    if k is None or k >= n:
        return np.argsort(-scores, kind="stable")
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    # argpartition does not break ties by index: redo the boundary value exactly.
    kth = scores[part].min()
    above = np.flatnonzero(scores > kth)
    equal = np.flatnonzero(scores == kth)[: k - above.shape[0]]
    part = np.concatenate([above, equal])
    return part[np.lexsort((part, -scores[part]))]


def clip_boxes(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    """Clamp x to [0, width] and y to [0, height] in place (torchvision's clip_boxes_to_image)."""
    boxes[:, 0] = np.clip(boxes[:, 0], 0.0, width)
    boxes[:, 2] = np.clip(boxes[:, 2], 0.0, width)
    boxes[:, 1] = np.clip(boxes[:, 1], 0.0, height)
    boxes[:, 3] = np.clip(boxes[:, 3], 0.0, height)
    return boxes


def boxes_to_original(boxes: np.ndarray, geometry: Dict[str, Any], clip: bool = True) -> np.ndarray:
    """Network-pixel corners to original-image pixels, inverting ``net = orig * scale + offset``
    per axis (y, x); clipped to the original image. Works in place on a float32 (N, >=4) array."""
    if not geometry:
        return boxes
    scale_y, scale_x = geometry.get("scale", (1.0, 1.0))
    off_y, off_x = geometry.get("offset", (0.0, 0.0))
    boxes[:, 0:4:2] -= np.float32(off_x)
    boxes[:, 0:4:2] /= np.float32(scale_x)
    boxes[:, 1:4:2] -= np.float32(off_y)
    boxes[:, 1:4:2] /= np.float32(scale_y)
    original = geometry.get("original")
    if clip and original is not None:
        clip_boxes(boxes, float(original[0]), float(original[1]))
    return boxes


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    max_output: Optional[int] = None,
    use_cv2: Optional[bool] = None,
) -> np.ndarray:
    """Single-class NMS (``torchvision.ops.nms`` semantics)."""
    classes = np.zeros(np.shape(scores)[0], dtype=np.int32)
    return batched_nms(boxes, scores, classes, iou_threshold, max_output, use_cv2)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_threshold: float,
    max_output: Optional[int] = None,
    use_cv2: Optional[bool] = None,
) -> np.ndarray:
    """Class-aware NMS. Returns int64 indices into ``boxes``, decreasing score, at most
    ``max_output`` of them. ``use_cv2=None`` uses OpenCV when it is available."""
    n = int(np.shape(scores)[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if max_output is not None and max_output <= 0:
        return np.zeros(0, dtype=np.int64)
    if use_cv2 is None:
        # OpenCV's loop compares every candidate with every kept box (no early stop at
        # max_output): faster for the few hundred candidates of a YOLO frame, slower for thousands.
        use_cv2 = HAVE_CV2_NMS and n <= CV2_MAX_CANDIDATES
    if use_cv2 and HAVE_CV2_NMS:
        return _batched_nms_cv2(boxes, scores, classes, iou_threshold, max_output)
    return _batched_nms_numpy(boxes, scores, classes, iou_threshold, max_output)


def _batched_nms_numpy(boxes, scores, classes, iou_threshold, max_output):
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    classes = np.asarray(classes).astype(np.int64, copy=False)
    n = scores.shape[0]
    limit = n if max_output is None else min(int(max_output), n)
    threshold = np.float32(iou_threshold)
    # Group by class; inside a class by decreasing score, ties by index: each class's best remaining
    # box is always kept, so every step keeps the head of every class at once and suppresses, in
    # one vectorised IoU, the remaining boxes of each class against their own head.
    order = np.lexsort((np.arange(n), -scores, classes))
    cls = classes[order]
    coords = boxes[order]
    area = (coords[:, 2] - coords[:, 0]) * (coords[:, 3] - coords[:, 1])
    sorted_scores = scores[order]
    rem = np.arange(n)
    kept = []
    kept_count = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        while rem.shape[0]:
            rc = cls[rem]
            first = np.empty(rem.shape[0], dtype=bool)
            first[0] = True
            np.not_equal(rc[1:], rc[:-1], out=first[1:])
            heads = rem[first]
            kept.append(heads)
            kept_count += heads.shape[0]
            if heads.shape[0] == rem.shape[0]:
                break
            head = heads[np.cumsum(first, dtype=np.intp) - 1]
            box = coords[rem]
            hbox = coords[head]
            wh = np.minimum(box[:, 2:], hbox[:, 2:])
            wh -= np.maximum(box[:, :2], hbox[:, :2])
            np.maximum(wh, 0.0, out=wh)
            inter = wh[:, 0] * wh[:, 1]
            iou = inter / (area[head] + area[rem] - inter)
            drop = iou > threshold
            drop |= first
            rem = rem[~drop]
            if kept_count >= limit and rem.shape[0]:
                # Stop once `limit` kept boxes outrank every box still in play.
                best_left = sorted_scores[rem].max()
                if np.count_nonzero(sorted_scores[np.concatenate(kept)] > best_left) >= limit:
                    break
    kept = np.concatenate(kept)
    kept = order[kept]
    kept = kept[np.lexsort((kept, -scores[kept]))]
    return kept[:limit].astype(np.int64, copy=False)


def _batched_nms_cv2(boxes, scores, classes, iou_threshold, max_output):
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    classes = np.asarray(classes).astype(np.int32, copy=False)
    xywh = xyxy_to_xywh(boxes)
    degenerate = (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)
    regular = np.flatnonzero(~degenerate)
    kept = np.zeros(0, dtype=np.int64)
    if regular.shape[0]:
        rects = xywh[regular]
        low = rects[:, :2].min()
        if low < 0:  # OpenCV's per-class offsets assume non-negative coordinates.
            rects[:, :2] -= low
        picked = cv2.dnn.NMSBoxesBatched(
            rects, scores[regular], classes[regular], -np.inf, float(iou_threshold)
        )
        kept = regular[np.asarray(picked, dtype=np.int64).reshape(-1)]
    if degenerate.any():
        kept = np.concatenate([kept, np.flatnonzero(degenerate)])
        kept = kept[np.lexsort((kept, -scores[kept]))]
    # Otherwise OpenCV's order is already decreasing score, ties by index (a stable sort).
    if max_output is not None:
        kept = kept[: int(max_output)]
    return kept.astype(np.int64, copy=False)
