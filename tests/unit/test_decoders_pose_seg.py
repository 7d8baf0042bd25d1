"""tasks/pose.py and tasks/segmentation.py: planted people decode to the right keypoints and
grouping; the segmentation mask equals torch's argmax + F.interpolate; end-to-end runs (slow)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from synthetic import SKELETON, export_session, render_people

from edgebench_runtime.tasks import Pipeline
from edgebench_runtime.tasks.pose import cubic_resize_matrix

POSE_DECODER = {
    "name": "openpose_paf",
    "stride": 8,
    "upsample_ratio": 4,
    "heatmap_threshold": 0.1,
    "paf_min_score": 0.05,
    "min_keypoints": 3,
}
POSE_PRE = {
    "resize": "letterbox",
    "pad_value": 0,
    "pad_align": "center",
    "color": "BGR",
    "scale": 1.0,
    "mean": [128.0] * 3,
    "std": [256.0] * 3,
}
def manifest(decoder, height, width, preprocess, outputs, labels=None):
    return {
        "inputs": [{"name": "images", "shape": [1, 3, height, width], "dtype": "float32"}],
        "outputs": [{"name": name} for name in outputs],
        "input": {"height": height, "width": width, "layout": "NCHW"},
        "preprocess": preprocess,
        "decoder": decoder,
        "labels": labels or [],
    }


def geometry(pipeline, orig_h, orig_w):
    geo = pipeline.preprocessor.geometry_for(orig_h, orig_w)
    geo["original"] = (orig_h, orig_w)
    return geo


def test_planted_people_decode_to_their_keypoints_and_grouping():
    people = [SKELETON + np.array((x, y), np.float32) for x, y in ((50, 60), (128, 90), (206, 70))]
    people[2] = people[2].copy()
    people[2][[9, 10, 12, 13]] = np.nan  # knees and ankles out of view: reported missing
    heat, pafs = render_people(people)
    pipeline = Pipeline(manifest(POSE_DECODER, 256, 256, POSE_PRE, ("heatmaps", "pafs")))
    # A 128 x 256 photo: letterboxed into 256 x 256 at scale 1 with 64 rows of padding on top.
    geo = geometry(pipeline, 128, 256)
    assert geo["scale"] == (1.0, 1.0) and geo["offset"] == (64.0, 0.0)
    result = pipeline.postprocess([pafs, heat], geo)  # output order does not matter
    found = result["people"]
    assert found.dtype == np.float32 and found.shape == (3, 18, 3)
    assert result["scores"].shape == (3,) and np.all(np.diff(result["scores"]) <= 0)
    found = found[np.argsort(found[:, 0, 0])]  # left to right by the nose
    for planted, person in zip(people, found):  # noqa: B905
        present = ~np.isnan(planted[:, 0])
        expected = planted[present] - (0, 64)
        assert np.abs(person[present, :2] - expected).max() <= 2.0
        assert np.all(person[present, 2] > 0.5)
        np.testing.assert_array_equal(person[~present], np.tile([-1, -1, 0], ((~present).sum(), 1)))
    assert pipeline.brief(result) == "3 people"


def test_pose_without_people_and_stride_32():
    pipeline = Pipeline(manifest(dict(POSE_DECODER, stride=32), 256, 256, POSE_PRE, ("heatmaps", "pafs")))
    heat, pafs = np.zeros((1, 19, 8, 8), np.float32), np.zeros((1, 38, 8, 8), np.float32)
    result = pipeline.postprocess([heat, pafs], geometry(pipeline, 256, 256))
    assert result["people"].shape == (0, 18, 3)
    # One person at stride 32: a larger skeleton so that its keypoints are cells apart.
    person = SKELETON * 2.0 + (128, 40)  # no keypoint in a border cell (bicubic edge effects)
    person[[14, 15, 16, 17]] = np.nan
    heat, pafs = render_people([person], stride=32, sigma=0.6)
    result = pipeline.postprocess([heat, pafs], geometry(pipeline, 256, 256))
    assert result["people"].shape == (1, 18, 3)
    present = ~np.isnan(person[:, 0])
    assert np.abs(result["people"][0, present, :2] - person[present]).max() <= 32 * 3 / 8


def test_numpy_upsampling_path_decodes_the_same(monkeypatch):
    from edgebench_runtime.tasks import pose

    people = [SKELETON + np.array((x, y), np.float32) for x, y in ((60, 60), (180, 80))]
    heat, pafs = render_people(people)
    pipeline = Pipeline(manifest(POSE_DECODER, 256, 256, POSE_PRE, ("heatmaps", "pafs")))
    geo = geometry(pipeline, 256, 256)
    with_cv2 = pipeline.postprocess([heat, pafs], geo)
    monkeypatch.setattr(pose, "cv2", None)
    without = pipeline.postprocess([heat, pafs], geo)
    np.testing.assert_allclose(without["people"], with_cv2["people"], atol=1e-3)


def test_cubic_resize_matrix_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    image = np.random.default_rng(0).random((9, 13)).astype(np.float32)
    expected = cv2.resize(image, (52, 36), interpolation=cv2.INTER_CUBIC)
    got = cubic_resize_matrix(9, 36) @ image @ cubic_resize_matrix(13, 52).T
    np.testing.assert_allclose(got, expected, atol=1e-4)


# ---- segmentation ------------------------------------------------------------------------------

SEG_LABELS = [f"s{i}" for i in range(21)]


def torch_reference(logits, geo):
    """Crop the image's part of the network input, F.interpolate (nearest-exact) to the original
    size, argmax: the mask a torch user would compute."""
    (new_h, new_w), (top, left) = geo["resized"], (int(geo["offset"][0]), int(geo["offset"][1]))
    crop = torch.from_numpy(logits)[:, :, top : top + new_h, left : left + new_w]
    resized = F.interpolate(crop, size=geo["original"], mode="nearest-exact")
    return resized.argmax(1)[0].numpy()


@pytest.mark.parametrize(
    "preprocess,orig_hw",
    [
        ({"resize": "stretch"}, (50, 90)),
        ({"resize": "stretch"}, (300, 200)),
        ({"resize": "letterbox", "pad_value": 0}, (37, 101)),
        ({"resize": "letterbox", "pad_align": "topleft"}, (80, 40)),
    ],
)
def test_segmentation_matches_torch_argmax_and_interpolate(preprocess, orig_hw):
    pipeline = Pipeline(manifest({"name": "seg_argmax"}, 64, 64, preprocess, ("out",), SEG_LABELS))
    logits = np.random.default_rng(orig_hw[0]).normal(size=(1, 21, 64, 64)).astype(np.float32)
    logits[:, 0] += 1.0  # background most common
    geo = geometry(pipeline, *orig_hw)
    result = pipeline.postprocess([logits], geo)
    expected = torch_reference(logits, geo)
    assert result["mask"].shape == orig_hw and result["mask"].dtype == np.uint8
    np.testing.assert_array_equal(result["mask"], expected)
    np.testing.assert_array_equal(result["histogram"], np.bincount(expected.ravel(), minlength=21))
    assert result["histogram"].sum() == orig_hw[0] * orig_hw[1]
    assert result["labels"] == [SEG_LABELS[c] for c in result["classes"]]
    assert pipeline.brief(result) == f"{len(result['classes'])} classes"


def test_segmentation_argmax_ties_take_the_first_class():
    pipeline = Pipeline(manifest({"name": "seg_argmax"}, 4, 4, {"resize": "stretch"}, ("out",), SEG_LABELS))
    logits = np.zeros((1, 21, 4, 4), np.float32)
    logits[0, 5, 0, 0] = logits[0, 7, 0, 0] = 1.0
    result = pipeline.postprocess([logits], geometry(pipeline, 4, 4))
    assert result["mask"][0, 0] == 5 and result["mask"][1, 1] == 0
    assert result["classes"].tolist() == [0, 5] and result["histogram"][5] == 1


# ---- end to end (slow) -------------------------------------------------------------------------


@pytest.mark.slow
def test_end_to_end_lraspp(tmp_path):
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    class Out(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)["out"]

    torch.manual_seed(0)
    session = export_session(
        Out(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)),
        (128, 128),
        tmp_path / "lraspp.onnx",
        ["out"],
    )
    pre = {
        "resize": "stretch",
        "scale": 1 / 255.0,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    pipeline = Pipeline(manifest({"name": "seg_argmax"}, 128, 128, pre, ("out",), SEG_LABELS))
    image = np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    feeds, geo = pipeline.preprocess(image)
    outputs = session.run(None, feeds)
    assert outputs[0].shape == (1, 21, 128, 128)
    result = pipeline.postprocess(outputs, geo)
    np.testing.assert_array_equal(result["mask"], torch_reference(outputs[0], geo))


@pytest.mark.slow
def test_end_to_end_lightweight_openpose(tmp_path):
    from edgebench.builders.openpose import lightweight_openpose

    torch.manual_seed(0)
    session = export_session(lightweight_openpose(), (256, 256), tmp_path / "pose.onnx", ["heatmaps", "pafs"])
    pipeline = Pipeline(manifest(POSE_DECODER, 256, 256, POSE_PRE, ("heatmaps", "pafs")))
    feeds, geo = pipeline.preprocess(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8))
    outputs = session.run(None, feeds)
    assert [o.shape for o in outputs] == [(1, 19, 32, 32), (1, 38, 32, 32)]
    result = pipeline.postprocess(outputs, geo)
    people = result["people"]
    assert people.dtype == np.float32 and people.ndim == 3 and people.shape[1:] == (18, 3)
    present = people[..., 2] > 0
    assert np.all(people[present, 0] >= -8) and np.all(people[present, 0] <= 308)
    # Planted people in the real output layout decode the same as in the synthetic test.
    heat, pafs = render_people([SKELETON + np.array((128, 60), np.float32)])
    planted = pipeline.postprocess([heat, pafs], geo)
    assert planted["people"].shape == (1, 18, 3)
