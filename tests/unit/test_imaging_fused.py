"""imaging.Preprocessor's fused pass against the step-by-step pipeline (pad canvas, channel flip,
float conversion, multiply, add, transpose) on every catalog preset, both layouts, both paths."""

import numpy as np
import pytest

from edgebench.catalog import load_catalog
from edgebench_runtime.imaging import HAVE_CV2, Preprocessor

PRESETS = load_catalog().entries
# One entry per preset, at its catalog input size.
BY_PRESET = {}
for _entry in PRESETS.values():
    BY_PRESET.setdefault(
        (_entry.preprocess["resize"], _entry.preprocess["color"], tuple(_entry.preprocess["mean"]),
         _entry.preprocess.get("pad_align"), _entry.preprocess["interpolation"]),
        _entry,
    )  # fmt: skip


def stepwise(pre, image):
    """The multi-pass computation the fused one replaces: same resize, then each step on its own."""
    geometry = pre.geometry_for(*image.shape[:2])
    new_h, new_w = geometry["resized"]
    resized = pre_resize(pre, image, new_w, new_h)
    if pre.mode == "shorter":
        top, left = int(-geometry["offset"][0]), int(-geometry["offset"][1])
        canvas = resized[top : top + pre.height, left : left + pre.width]
    elif pre.mode == "letterbox":
        top, left = int(geometry["offset"][0]), int(geometry["offset"][1])
        canvas = np.full((pre.height, pre.width, 3), pre.pad_value, dtype=np.uint8)
        canvas[top : top + new_h, left : left + new_w] = resized
    else:
        canvas = resized
    if pre.bgr:
        canvas = canvas[:, :, ::-1]
    tensor = canvas.astype(np.float32)
    tensor *= pre._mul
    tensor += pre._add
    if pre.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[None])


def pre_resize(pre, image, width, height):
    from edgebench_runtime.imaging import _resize

    return _resize(image, width, height, pre.interpolation, pre.use_cv2)


@pytest.mark.parametrize("use_cv2", [False, True] if HAVE_CV2 else [False])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("key", sorted(BY_PRESET, key=str))
def test_fused_pass_equals_the_stepwise_pipeline(key, layout, use_cv2):
    entry = BY_PRESET[key]
    pre = Preprocessor(entry.preprocess, entry.input["height"], entry.input["width"], layout, use_cv2)
    rng = np.random.default_rng(len(str(key)))
    for shape in ((480, 640), (333, 250), (entry.input["height"], entry.input["width"])):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        got, geometry = pre(image)
        expected = stepwise(pre, image)
        assert got.shape == expected.shape and got.dtype == np.float32 and got.flags.c_contiguous
        if use_cv2 and layout == "NCHW":
            # OpenCV's addWeighted rounds x * mul + add once, numpy twice: a float32 ulp apart.
            np.testing.assert_allclose(got, expected, rtol=0, atol=4e-7 * max(1.0, np.abs(expected).max()))
        else:
            np.testing.assert_array_equal(got, expected)
        assert geometry["original"] == shape


def test_letterbox_padding_is_the_normalised_pad_value_on_every_side():
    spec = {"resize": "letterbox", "pad_value": 114, "pad_align": "center", "scale": 0.5,
            "mean": [10.0, 20.0, 30.0], "std": [1.0, 2.0, 4.0]}  # fmt: skip
    pre = Preprocessor(spec, 64, 64)
    tensor, geometry = pre(np.zeros((20, 40, 3), np.uint8))  # resized 32 x 64, 16 rows above and below
    assert geometry["offset"] == (16.0, 0.0)
    for c, value in enumerate([(57 - 10) / 1.0, (57 - 20) / 2.0, (57 - 30) / 4.0]):
        assert np.all(tensor[0, c, :16] == np.float32(value)) and np.all(
            tensor[0, c, 48:] == np.float32(value)
        )
        assert np.all(tensor[0, c, 16:48] == np.float32(-spec["mean"][c] / spec["std"][c]))
