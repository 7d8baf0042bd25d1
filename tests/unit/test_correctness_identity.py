"""The correctness check never cries wolf: every registered decoder's result, compared with itself,
agrees 1.0 - over raw outputs hypothesis draws to hold degenerate (zero-area), duplicate and tied
boxes, NaN, empty results, keypoints and masks - and the stored reference of every converted
catalog model passes against itself. A decoder added without a case here fails
``test_every_registered_decoder_has_a_case``."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebench_runtime.correctness import check, compare_task, tolerance_for
from edgebench_runtime.tasks import Pipeline, known_decoders

LABELS80 = [f"c{i}" for i in range(80)]


def _manifest(decoder, height, width, outputs, preprocess=None, labels=LABELS80, **extra):
    data = {
        "inputs": [{"name": "images", "shape": [1, 3, height, width], "dtype": "float32"}],
        "outputs": [{"name": name} for name in outputs],
        "input": {"height": height, "width": width, "layout": "NCHW"},
        "preprocess": preprocess or {"resize": "stretch", "scale": 1 / 255.0},
        "decoder": decoder,
        "labels": labels,
    }
    data.update(extra)
    return data


_DETECTION = {"score_threshold": 0.25, "iou_threshold": 0.45, "max_detections": 300}
YOLOV5_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]

#: decoder name -> list of (manifest, output shapes, integer outputs {index: upper bound})
CASES = {
    "imagenet_topk": [
        (_manifest({"name": "imagenet_topk", "top_k": 5}, 32, 32, ["logits"], labels=[]), [(1, 1000)], {})
    ],
    "ssd": [
        (
            _manifest(
                dict(
                    _DETECTION,
                    name="ssd",
                    aspect_ratios=[[2, 3]] * 6,
                    min_ratio=0.2,
                    max_ratio=0.95,
                    box_coder_weights=[10.0, 10.0, 5.0, 5.0],
                    score_threshold=0.001,
                    top_k_candidates=300,
                ),
                320,
                320,
                ["bbox_regression", "cls_logits"],
                labels=["__background__"] + [f"k{i}" for i in range(1, 91)],
            ),
            [(1, 3234, 4), (1, 3234, 91)],
            {},
        )
    ],
    "yolov5": [
        (
            _manifest(
                dict(_DETECTION, name="yolov5", strides=[8, 16, 32], anchors=YOLOV5_ANCHORS), 128, 128, ["o"]
            ),
            [(1, 255, 16, 16), (1, 255, 8, 8), (1, 255, 4, 4)],
            {},
        )
    ],
    "tiny_yolov2": [
        (
            _manifest(
                dict(
                    _DETECTION,
                    name="tiny_yolov2",
                    anchors=[1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52],
                    stride=32,
                ),
                416,
                416,
                ["grid"],
                labels=[f"v{i}" for i in range(20)],
            ),
            [(1, 125, 13, 13)],
            {},
        )
    ],
    "tiny_yolov3": [
        (
            _manifest(
                dict(
                    _DETECTION,
                    name="tiny_yolov3",
                    strides=[32, 16],
                    anchors=[[81, 82, 135, 169, 344, 319], [10, 14, 23, 27, 37, 58]],
                ),
                416,
                416,
                ["output0", "output1"],
            ),
            [(1, 255, 13, 13), (1, 255, 26, 26)],
            {},
        ),
        (
            _manifest(
                dict(
                    _DETECTION,
                    name="tiny_yolov3",
                    strides=[32, 16],
                    anchors=[[81, 82, 135, 169, 344, 319], [10, 14, 23, 27, 37, 58]],
                ),
                416,
                416,
                ["boxes", "scores", "indices"],
                preprocess={"resize": "letterbox", "pad_value": 128, "scale": 1 / 255.0},
                nms_in_graph=True,
            ),
            [(1, 40, 4), (1, 80, 40), (1, 12, 3)],
            {2: (1, 80, 40)},
        ),
    ],
    "yolox": [
        (
            _manifest(
                dict(_DETECTION, name="yolox", strides=[8, 16, 32]),
                128,
                128,
                ["output"],
                preprocess={"resize": "letterbox", "pad_value": 114, "pad_align": "topleft", "color": "BGR"},
            ),
            [(1, 336, 85)],
            {},
        )
    ],
    "yolov8": [
        (
            _manifest(
                dict(_DETECTION, name="yolov8"),
                128,
                128,
                ["output0"],
                preprocess={"resize": "letterbox", "pad_value": 114, "scale": 1 / 255.0},
            ),
            [(1, 84, 336)],
            {},
        ),
        # Two classes, channels last (some exports transpose the head).
        (
            _manifest(dict(_DETECTION, name="yolov8"), 64, 64, ["output0"], labels=["person", "fall"]),
            [(1, 336, 6)],
            {},
        ),
    ],
    "end2end": [
        (_manifest(dict(_DETECTION, name="end2end"), 128, 128, ["output0"]), [(1, 300, 6)], {}),
        (
            _manifest(
                dict(_DETECTION, name="end2end", box_format="cxcywh", normalized=True), 64, 64, ["output0"]
            ),
            [(1, 50, 6)],
            {},
        ),
    ],
    "seg_argmax": [
        (
            _manifest({"name": "seg_argmax"}, 32, 32, ["out"], labels=[f"s{i}" for i in range(21)]),
            [(1, 21, 32, 32)],
            {},
        )
    ],
    "openpose_paf": [
        (
            _manifest(
                {
                    "name": "openpose_paf",
                    "stride": 8,
                    "upsample_ratio": 4,
                    "heatmap_threshold": 0.1,
                    "paf_min_score": 0.05,
                    "min_keypoints": 3,
                },
                64,
                64,
                ["heatmaps", "pafs"],
                labels=[],
            ),
            [(1, 19, 8, 8), (1, 38, 8, 8)],
            {},
        )
    ],
    # The raw decoder gives no result: the check compares raw outputs only (test_correctness.py).
    "raw": [],
}

# Values that make decoders emit degenerate results: 0 and -30 give zero-area boxes (exp(-30) ~ 0)
# and ties; +8 a confident score; NaN and infinity what a broken provider returns.
PALETTE = [0.0, 0.0, -30.0, -30.0, 8.0, 1.0, -1.0, 0.5, float("nan"), float("inf"), -float("inf")]


def _outputs(shapes, integer, pattern, seed, noise, fraction):
    """Raw outputs: normal noise with ``fraction`` of the values replaced by the tiled ``pattern``
    (so that equal values, duplicate boxes and tied scores are common)."""
    rng = np.random.default_rng(seed)
    outputs = []
    for index, shape in enumerate(shapes):
        size = int(np.prod(shape))
        if index in integer:
            bounds = integer[index]
            columns = [rng.integers(0, bound, size // len(bounds)) for bound in bounds]
            outputs.append(np.stack(columns, -1).reshape(shape).astype(np.int32))
            continue
        values = rng.normal(0.0, noise, size).astype(np.float32)
        tiled = np.resize(np.asarray(pattern, np.float32), size)
        replace = rng.random(size) < fraction
        values[replace] = tiled[replace]
        outputs.append(values.reshape(shape))
    return outputs


def _geometry(pipeline, height, width):
    geo = pipeline.preprocessor.geometry_for(height, width)
    geo["original"] = (height, width)
    return geo


def test_every_registered_decoder_has_a_case():
    missing = sorted(set(known_decoders()) - set(CASES))
    assert not missing, f"decoders without an identity case in {__file__}: {missing}"


@pytest.mark.parametrize(
    ("name", "case"),
    [(name, case) for name, cases in sorted(CASES.items()) for case in range(len(cases))],
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pattern=st.lists(st.sampled_from(PALETTE), min_size=1, max_size=12),
    seed=st.integers(0, 2**32 - 1),
    noise=st.sampled_from([0.0, 0.01, 1.0, 4.0]),
    fraction=st.sampled_from([0.0, 0.5, 0.95, 1.0]),
    original=st.sampled_from([(128, 128), (97, 301), (480, 640), (1, 1)]),
)
def test_a_decoder_result_compared_with_itself_agrees_fully(
    name, case, pattern, seed, noise, fraction, original
):
    manifest, shapes, integer = CASES[name][case]
    pipeline = Pipeline(manifest)
    outputs = _outputs(shapes, integer, pattern, seed, noise, fraction)
    geo = _geometry(pipeline, *original)
    with np.errstate(all="ignore"):
        result = pipeline.postprocess(outputs, geo)
        again = pipeline.postprocess([np.array(o, copy=True) for o in outputs], geo)
    for provider in ("cpu", "tensorrt-int8"):
        compared = compare_task(result, again, tolerance_for(provider))
        assert compared is not None
        agreement, threshold, detail = compared
        assert agreement == 1.0, detail
        assert agreement >= threshold


# --- the degenerate results themselves ------------------------------------------------------------


def _boxes(rows):
    return {"boxes": np.asarray(rows, np.float32).reshape(-1, 6), "labels": []}


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([0.0, 5.0, 5.0, 10.0, 100.0, float("nan")]),
            st.sampled_from([0.0, 5.0, 10.0, float("nan")]),
            st.sampled_from([0.0, 5.0, 5.5, 10.0]),
            st.sampled_from([0.0, 5.0, 10.0, 10.4]),
            st.sampled_from([0.3, 0.3, 0.9, float("nan")]),
            st.sampled_from([0.0, 1.0, 1.0]),
        ),
        max_size=40,
    ),
    shuffle=st.randoms(use_true_random=False),
)
def test_boxes_compared_with_themselves_in_any_order_agree(rows, shuffle):
    # Zero-area, duplicate, near-duplicate (within box_px of each other), tied and NaN boxes.
    other = list(rows)
    shuffle.shuffle(other)
    assert compare_task(_boxes(rows), _boxes(other), tolerance_for("cpu"))[0] == 1.0


@settings(max_examples=200, deadline=None)
@given(
    people=st.lists(
        st.lists(
            st.sampled_from([(-1.0, -1.0), (10.0, 10.0), (10.0, 11.5), (12.0, 10.0), (50.0, 60.0)]),
            min_size=4,
            max_size=4,
        ),
        max_size=8,
    ),
    shuffle=st.randoms(use_true_random=False),
)
def test_people_compared_with_themselves_in_any_order_agree(people, shuffle):
    def result(items):
        array = np.full((len(items), 4, 3), -1.0, np.float32)
        for index, points in enumerate(items):
            array[index, :, :2] = points
            array[index, :, 2] = 0.9
        return {"people": array, "scores": np.ones(len(items), np.float32)}

    other = list(people)
    shuffle.shuffle(other)
    assert compare_task(result(people), result(other), tolerance_for("cpu"))[0] == 1.0


def test_the_reported_false_failure_zero_area_boxes_by_the_hundred():
    # 73 identical zero-area boxes among 300 (yolox_nano, random init): agreement was 0.243.
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.uniform(0, 200, (227, 2)), rng.uniform(200, 400, (227, 2))], 1)
    zero = np.repeat(rng.uniform(0, 400, (73, 2)), 2, axis=1)[:, [0, 1, 0, 1]]
    boxes = np.concatenate([real, zero])
    rows = np.concatenate([boxes, rng.uniform(0.25, 1, (300, 1)), rng.integers(0, 80, (300, 1))], 1)
    assert compare_task(_boxes(rows), _boxes(rows.copy()), tolerance_for("cpu"))[0] == 1.0


# --- every converted catalog model's stored reference ----------------------------------------------

REPO = Path(__file__).resolve().parents[2]
ARTIFACT_ROOTS = [REPO / "artifacts", REPO / ".pytest_artifacts"]


def _stored_artifacts():
    found = {}
    for root in ARTIFACT_ROOTS:
        for manifest in sorted(root.glob("*/manifest.json")) if root.is_dir() else []:
            if manifest.parent.name != "images":  # the default photos, not a model
                found.setdefault(manifest.parent.name, manifest.parent)
    return sorted(found.items())


class _Replay:
    """A backend that returns the stored reference outputs: the provider is ONNX Runtime CPU itself."""

    provider = "cpu"

    def __init__(self, artifact, manifest):
        self.stored = np.load(artifact / "reference.npz")
        block = manifest["reference_outputs"]
        self.names = list(block["outputs"])
        self.output_names = self.names
        self.input_names = [item["name"] for item in manifest["inputs"]]
        self.calls = 0

    def infer(self, feeds):
        index = self.calls
        self.calls += 1
        return [self.stored[f"output_{index}_{j}"] for j in range(len(self.names))]


@pytest.mark.parametrize(
    ("name", "artifact"),
    _stored_artifacts()
    or [
        pytest.param(
            None, None, marks=pytest.mark.skip(reason="no converted artifacts here (edgebench convert)")
        )
    ],
)
def test_stored_reference_passes_against_itself(name, artifact):
    manifest = json.loads((artifact / "manifest.json").read_text())
    if "reference_outputs" not in manifest:
        pytest.skip(f"{name} was converted before reference outputs existed")
    backend = _Replay(artifact, manifest)
    verdict = check(backend, manifest, artifact, "cpu", images_dir=artifact.parent / "images")
    assert verdict["status"] == "passed", verdict["reason"]
    if verdict["level"] == "task":
        assert verdict["task_agreement"] == 1.0
    assert verdict["max_abs"] == 0.0
    # The device decodes the photos itself: its tensor is within a fraction of the input's spread.
    if verdict["input_relative_mean"] is not None:
        assert verdict["input_relative_mean"] < verdict["tolerance"]["input_relative_mean"]
    assert not math.isnan(verdict["max_abs"])
