"""tasks/nms.py: class-aware NMS against torchvision.ops.batched_nms, numpy path vs OpenCV path."""

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgebench_runtime.tasks import nms as N

needs_cv2 = pytest.mark.skipif(not N.HAVE_CV2_NMS, reason="cv2.dnn.NMSBoxesBatched not available")


@st.composite
def box_sets(draw, max_boxes=80):
    """Random box sets: non-negative corners (torchvision's coordinate-offset trick assumes them),
    clustered so that boxes overlap, some of zero width or height, some exact duplicates, some on
    an integer lattice; distinct scores (tie order is unspecified in torchvision). Hypothesis picks
    the structure and the seed; numpy draws the values (fast)."""
    n = draw(st.integers(1, max_boxes))
    seed = draw(st.integers(0, 2**32 - 1))
    clusters = draw(st.integers(1, 8))
    lattice = draw(st.booleans())
    zero_fraction = draw(st.sampled_from([0.0, 0.1, 0.5]))
    duplicates = draw(st.integers(0, 5))
    num_classes = draw(st.integers(1, 5))
    threshold = draw(st.sampled_from([0.0, 0.3, 0.45, 0.5, 0.7, 0.9]))
    rng = np.random.default_rng(seed)
    centres = rng.uniform(60, 400, (clusters, 2))
    cxy = centres[rng.integers(0, clusters, n)] + rng.normal(0, 15, (n, 2))
    wh = rng.uniform(0, 110, (n, 2))
    wh[rng.random((n, 2)) < zero_fraction / 2] = 0
    boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], 1).clip(0, None)
    if lattice:
        boxes = np.round(boxes)
    for _ in range(min(duplicates, n - 1)):
        i, j = rng.integers(0, n, 2)
        boxes[i] = boxes[j]
    scores = (rng.permutation(n) + 1).astype(np.float32) / np.float32(n)
    classes = rng.integers(0, num_classes, n).astype(np.int64)
    return boxes.astype(np.float32), scores, classes, threshold


def pairwise_iou64(boxes):
    b = boxes.astype(np.float64)
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area[:, None] + area[None, :] - inter)


def no_ties(boxes, threshold):
    """Exclude IoUs within float rounding of the threshold: there float32 (torchvision, numpy) and
    double (OpenCV) arithmetic may legitimately round to different sides."""
    iou = pairwise_iou64(boxes)
    close = np.abs(iou - threshold) < 1e-5
    close &= iou != 0  # disjoint boxes: exactly 0 in every arithmetic
    return not np.any(close)


def reference(boxes, scores, classes, threshold):
    return torchvision.ops.batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), threshold
    ).numpy()


@settings(max_examples=200, deadline=None)
@given(box_sets())
def test_numpy_nms_matches_torchvision(case):
    boxes, scores, classes, threshold = case
    assume(no_ties(boxes, threshold))
    expected = reference(boxes, scores, classes, threshold)
    got = N.batched_nms(boxes, scores, classes, threshold, use_cv2=False)
    assert got.tolist() == expected.tolist()
    limited = N.batched_nms(boxes, scores, classes, threshold, max_output=3, use_cv2=False)
    assert limited.tolist() == expected[:3].tolist()


@needs_cv2
@settings(max_examples=200, deadline=None)
@given(box_sets())
def test_opencv_path_is_identical_to_numpy_path(case):
    boxes, scores, classes, threshold = case
    assume(no_ties(boxes, threshold))
    numpy_keep = N.batched_nms(boxes, scores, classes, threshold, use_cv2=False)
    cv2_keep = N.batched_nms(boxes, scores, classes, threshold, use_cv2=True)
    assert cv2_keep.tolist() == numpy_keep.tolist()
    assert (
        N.batched_nms(boxes, scores, classes, threshold, 5, use_cv2=True).tolist() == numpy_keep[:5].tolist()
    )


@pytest.mark.parametrize("use_cv2", [False, pytest.param(True, marks=needs_cv2)])
def test_large_dense_set_matches_torchvision(use_cv2):
    """Thousands of clustered candidates over many classes (torchvision's per-class path)."""
    rng = np.random.default_rng(3)
    n = 3000
    centres = rng.uniform(0, 600, (80, 2))
    which = rng.integers(0, 80, n)
    cxy = centres[which] + rng.normal(0, 6, (n, 2))
    wh = rng.uniform(20, 120, (n, 2))
    boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], 1).astype(np.float32)
    scores = (rng.permutation(n) / n).astype(np.float32)
    classes = which % 20
    expected = reference(boxes, scores, classes, 0.5)
    got = N.batched_nms(boxes, scores, classes, 0.5, max_output=300, use_cv2=use_cv2)
    assert got.tolist() == expected[:300].tolist()


@pytest.mark.parametrize("use_cv2", [False, pytest.param(True, marks=needs_cv2)])
def test_negative_coordinates_and_edge_cases(use_cv2):
    boxes = np.array([[-50, -50, 10, 10], [-48, -49, 10, 10], [-50, -50, 10, 10], [5, 5, 5, 9]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 1, 1])
    # Same boxes in different classes never suppress each other; zero-area boxes are kept.
    assert N.batched_nms(boxes, scores, classes, 0.5, use_cv2=use_cv2).tolist() == [0, 2, 3]
    assert N.batched_nms(boxes[:0], scores[:0], classes[:0], 0.5, use_cv2=use_cv2).shape == (0,)
    assert N.nms(boxes, scores, 0.5, use_cv2=use_cv2).tolist() == [0, 3]


def test_topk_indices_orders_by_score_then_index():
    scores = np.array([0.1, 0.5, 0.5, 0.9, 0.5, 0.2], np.float32)
    assert N.topk_indices(scores, 3).tolist() == [3, 1, 2]
    assert N.topk_indices(scores, 10).tolist() == [3, 1, 2, 4, 5, 0]
    assert N.topk_indices(scores, 0).tolist() == []


def test_boxes_to_original_inverts_the_geometry_and_clips():
    geometry = {"scale": (0.5, 0.25), "offset": (10.0, 0.0), "original": (100, 200)}
    boxes = np.array([[10, 20, 30, 40, 0.9, 1], [-8, 0, 60, 90, 0.5, 2]], np.float32)
    out = N.boxes_to_original(boxes.copy(), geometry)
    np.testing.assert_allclose(out[0, :4], [40, 20, 120, 60])
    np.testing.assert_allclose(out[1, :4], [0, 0, 200, 100])  # clipped
    np.testing.assert_array_equal(out[:, 4:], boxes[:, 4:])
    np.testing.assert_allclose(
        N.cxcywh_to_xyxy(np.array([5.0]), np.array([6.0]), np.array([2.0]), np.array([4.0])), [[4, 4, 6, 8]]
    )
