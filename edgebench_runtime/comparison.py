"""How far a provider's decoded task result agrees with the reference's, per task kind:
classification top-1 (a swap within ``top1_tie`` counts), detection boxes (class and IoU, or every
corner within ``box_px``; unmatched boxes that a score tie explains do not count), pose keypoints
(within ``keypoint_px``), segmentation masks (pixel agreement). Matching is greedy by similarity
with ties broken by distance, so any result compared with itself agrees 1.0.

The comparisons of the correctness check (``correctness.py``, which drives them and says why).

Python 3.6 compatible.
"""

from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ["compare_task"]


def _iou_matrix(a, b):
    """IoU of every box of ``a`` (N, 4+) with every box of ``b`` (M, 4+), x1 y1 x2 y2 (0 where the
    union is empty: two zero-area boxes share no area, which is why ``_box_similarity`` exists)."""
    a = np.asarray(a, dtype=np.float64)[:, :4]
    b = np.asarray(b, dtype=np.float64)[:, :4]
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _pairwise_abs(a, b):
    """|a_i - b_j| per coordinate, (N, M, K); two NaNs are equal (0), and so are two equal
    infinities (whose difference is NaN); a NaN against a number is infinitely far. A result
    compared with itself must agree even where the decoder emitted NaN or infinity."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a[:, None] - b[None, :])
        diff = np.where(a[:, None] == b[None, :], 0.0, diff)
    nan_a = np.isnan(a)[:, None]
    nan_b = np.isnan(b)[None, :]
    diff = np.where(nan_a & nan_b, 0.0, diff)
    return np.where(nan_a ^ nan_b, np.inf, diff)


def _box_similarity(a, b, box_px):
    """``(similarity, corner distance)`` of every box pair: 1.0 where every corner lies within
    ``box_px`` original pixels (identical, zero-area and tiny boxes, whose IoU is 0 or fragile),
    else the IoU; the distance (sum of the corner differences) breaks ties between candidates."""
    corners = _pairwise_abs(np.asarray(a)[:, :4], np.asarray(b)[:, :4])
    close = corners.max(axis=-1) <= box_px
    similarity = np.where(close, 1.0, _iou_matrix(a, b))
    return similarity, corners.sum(axis=-1)


def _greedy_match(order, allowed, similarity, costs):
    """Match each row (in ``order``) with the untaken column of highest ``similarity`` among the
    ``allowed`` ones, the lowest ``costs`` (in turn) breaking ties. A result matched with itself
    pairs every row with itself or with an exact duplicate, so identity always agrees in full."""
    taken = np.zeros(similarity.shape[1], dtype=bool)
    pairs = []
    for i in order:  # not the hot path: a few hundred results, untimed
        candidates = np.flatnonzero(allowed[i] & ~taken)
        if not candidates.size:
            continue
        best = similarity[i, candidates]
        candidates = candidates[best == best.max()]
        for cost in costs:
            row = cost[i, candidates]
            candidates = candidates[row == row.min()]
        j = int(candidates[0])
        taken[j] = True
        pairs.append((int(i), j))
    return pairs


def _compare_classification(ref, out, tol):
    ref_classes = [int(c) for c in np.asarray(ref["classes"]).reshape(-1)]
    out_classes = [int(c) for c in np.asarray(out["classes"]).reshape(-1)]
    ref_scores = [float(s) for s in np.asarray(ref["scores"]).reshape(-1)]
    if not ref_classes or not out_classes:
        return 1.0 if ref_classes == out_classes else 0.0, {"top1": None}
    detail = {"top1_reference": ref_classes[0], "top1": out_classes[0]}
    if ref_classes[0] == out_classes[0]:
        return 1.0, detail
    if out_classes[0] in ref_classes:
        gap = ref_scores[0] - ref_scores[ref_classes.index(out_classes[0])]
        detail["reference_gap"] = gap
        if gap <= tol["top1_tie"]:
            detail["tie"] = True
            return 1.0, detail
    return 0.0, detail


def _compare_detection(ref, out, tol):
    ref_boxes = np.asarray(ref["boxes"], dtype=np.float64).reshape(-1, 6)
    out_boxes = np.asarray(out["boxes"], dtype=np.float64).reshape(-1, 6)
    n, m = len(ref_boxes), len(out_boxes)
    detail = {"boxes_reference": n, "boxes": m}
    if n == 0 and m == 0:
        return 1.0, detail
    if n == 0 or m == 0:
        return 0.0, detail
    similarity, distance = _box_similarity(ref_boxes, out_boxes, tol.get("box_px", 1.0))
    same_class = _pairwise_abs(ref_boxes[:, 5:6], out_boxes[:, 5:6])[..., 0] == 0
    with np.errstate(invalid="ignore"):
        allowed = same_class & (similarity >= tol["iou"])
    scores = ref_boxes[:, 4]
    order = np.argsort(-np.where(np.isnan(scores), -np.inf, scores), kind="stable")
    pairs = _greedy_match(order, allowed, similarity, (distance,))
    worst = min([float(similarity[i, j]) for i, j in pairs] or [1.0])
    # Boxes left over on either side count against agreement unless a tie explains them: scores
    # within ``score_tie`` decide NMS order and the max_detections cut arbitrarily (random-init
    # detectors saturate thousands of scores at 1.0), so a tiny difference keeps another box.
    tie = tol.get("score_tie", 1e-3)
    ref_left = np.setdiff1d(np.arange(n), [i for i, _j in pairs])
    out_left = np.setdiff1d(np.arange(m), [j for _i, j in pairs])
    box_px = tol.get("box_px", 1.0)
    cut = tol.get("decoder_cut")
    unexplained_ref = _unexplained(ref_boxes[ref_left], out_boxes, tie, box_px, ref_boxes, cut)
    unexplained_out = _unexplained(out_boxes[out_left], ref_boxes, tie, box_px, out_boxes, cut)
    detail.update(
        {
            "matched": len(pairs),
            "tied": int(len(ref_left) - unexplained_ref + len(out_left) - unexplained_out),
            "min_matched_iou": worst if pairs else None,
        }
    )
    return 1.0 - max(unexplained_ref, unexplained_out) / float(max(n, m)), detail


def _unexplained(left, other, tie, box_px, own, cut=None):
    """How many of the unmatched boxes ``left`` (from the result ``own``) no score tie explains.
    A box is explained when its score is within ``tie`` of the decoder's ``score_threshold`` or,
    when the other result is full (``max_detections``), of its lowest score: the cut fell among
    tied scores (``cut`` holds those two decoder settings; without them no cut explains). Or when
    its own result holds other boxes of a tied score and the other result a box overlapping it (or
    within ``box_px``) with a score within ``tie``: NMS kept another of the tied boxes, or tied
    class scores gave it another class. A box of a score no other box shares is never explained,
    so a shifted or relabelled box fails."""
    if not len(left):
        return 0
    if not len(other):
        return len(left)
    cut = cut or {}
    with np.errstate(invalid="ignore"):
        finite = other[:, 4][np.isfinite(other[:, 4])]
        lowest = -np.inf
        if cut.get("max_detections") and len(other) >= cut["max_detections"] and finite.size:
            lowest = float(finite.min())
        if cut.get("score_threshold") is not None:
            lowest = max(lowest, float(cut["score_threshold"]))
        similarity, _distance = _box_similarity(left, other, box_px)
        close_score = np.abs(left[:, 4][:, None] - other[:, 4][None, :]) <= tie
        shared = (np.abs(left[:, 4][:, None] - own[:, 4][None, :]) <= tie).sum(axis=1) >= 2
        tied = shared & ((similarity > 0) & close_score).any(axis=1)
        explained = tied | (left[:, 4] <= lowest + tie)
    return int((~explained).sum())


def _people_array(people):
    people = np.asarray(people, dtype=np.float64)
    if not people.size:
        return np.zeros((0, 1, 3))
    return people.reshape((-1, *people.shape[-2:]))


def _compare_pose(ref, out, tol):
    ref_people = _people_array(ref["people"])
    out_people = _people_array(out["people"])
    ref_visible = ref_people[..., 0] >= 0
    out_visible = out_people[..., 0] >= 0
    total = max(int(ref_visible.sum()), int(out_visible.sum()))
    detail = {"people_reference": len(ref_people), "people": len(out_people)}
    if total == 0:
        return 1.0, detail
    if len(ref_people) == 0 or len(out_people) == 0 or ref_people.shape[1:] != out_people.shape[1:]:
        return 0.0, detail
    axes = _pairwise_abs(ref_people[..., :2], out_people[..., :2])
    distance = np.sqrt((axes**2).sum(-1))
    both = ref_visible[:, None, :] & out_visible[None, :, :]
    close = both & (distance <= tol["keypoint_px"])
    counts = close.sum(-1)
    # Ties between candidates: fewest keypoints visible in one person only, then nearest.
    mismatch = (ref_visible[:, None, :] != out_visible[None, :, :]).sum(-1)
    nearness = np.where(close, distance, 0.0).sum(-1)
    pairs = _greedy_match(range(len(ref_people)), counts > 0, counts, (mismatch, nearness))
    good = sum(int(counts[i, j]) for i, j in pairs)
    worst = max([float(distance[i, j][close[i, j]].max()) for i, j in pairs] or [0.0])
    detail.update({"keypoints_agreeing": good, "keypoints": total, "max_matched_distance_px": worst})
    return good / float(total), detail


def _compare_segmentation(ref, out, tol):
    ref_mask = np.asarray(ref["mask"])
    out_mask = np.asarray(out["mask"])
    if ref_mask.shape != out_mask.shape:
        return 0.0, {"shape_reference": list(ref_mask.shape), "shape": list(out_mask.shape)}
    agreement = float(np.mean(ref_mask == out_mask)) if ref_mask.size else 1.0
    return agreement, {"pixels": int(ref_mask.size)}


#: result key that identifies the kind -> (comparison, tolerance field of the agreement threshold)
_COMPARATORS = (
    ("boxes", _compare_detection, "box_agreement"),
    ("people", _compare_pose, "keypoint_agreement"),
    ("mask", _compare_segmentation, "mask_agreement"),
    ("classes", _compare_classification, None),
)


def compare_task(ref: Any, out: Any, tol: Dict[str, Any]) -> Optional[Tuple[float, float, Dict[str, Any]]]:
    """``(agreement, threshold, detail)`` for two decoder results, or None when the results are of
    no kind this module compares (e.g. the ``raw`` decoder's None)."""
    if not isinstance(ref, dict) or not isinstance(out, dict):
        return None
    for key, function, field in _COMPARATORS:
        if key in ref and key in out:
            agreement, detail = function(ref, out, tol)
            detail["kind"] = key
            return agreement, (tol[field] if field else 1.0), detail
    return None
