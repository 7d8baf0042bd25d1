"""tasks/anchor_free.py: ``yolov8`` ([1, 4+C, N]) and ``end2end`` ([1, K, 6]) with planted
predictions, their NMS properties, and a tiny torch model of the Ultralytics head layout (box
distribution + DFL + dist2bbox inside the graph) exported and decoded against torchvision."""

import numpy as np
import pytest
import torch
import torchvision
from synthetic import export_session
from tiny_models import TinyV8

from edgebench_runtime.tasks import Pipeline, check_decoder_params

LABELS = [f"c{i}" for i in range(80)]
LETTERBOX = {"resize": "letterbox", "pad_value": 114, "pad_align": "center", "scale": 1 / 255.0}


def manifest(decoder, height, width, labels=LABELS, preprocess=None):
    return {
        "inputs": [{"name": "images", "shape": [1, 3, height, width], "dtype": "float32"}],
        "outputs": [{"name": "output0"}],
        "input": {"height": height, "width": width, "layout": "NCHW"},
        "preprocess": preprocess or dict(LETTERBOX),
        "decoder": decoder,
        "labels": labels,
    }


def geometry(pipeline, orig_h, orig_w):
    geo = pipeline.preprocessor.geometry_for(orig_h, orig_w)
    geo["original"] = (orig_h, orig_w)
    return geo


def cells(height, width, strides=(8, 16, 32)):
    return sum((height // s) * (width // s) for s in strides)


def yolov8_output(n, classes=80, low=0.001):
    out = np.zeros((1, 4 + classes, n), np.float32)
    out[0, 4:] = low
    out[0, 0:2] = 10.0
    out[0, 2:4] = 4.0
    return out


def plant(out, cell, box, cls, score):
    out[0, :4, cell] = box
    out[0, 4 + cls, cell] = score


def test_yolov8_planted_predictions_in_original_pixels():
    pipeline = Pipeline(manifest({"name": "yolov8"}, 320, 320))
    out = yolov8_output(cells(320, 320))
    plant(out, 100, [160, 120, 40, 60], 17, 0.9)  # kept
    plant(out, 101, [162, 121, 40, 60], 17, 0.8)  # IoU ~0.9 with the first, same class: suppressed
    plant(out, 102, [162, 121, 40, 60], 3, 0.7)  # same place, another class: kept
    plant(out, 2000, [50, 200, 20, 20], 5, 0.26)  # just above the threshold: kept
    plant(out, 2001, [250, 250, 20, 20], 5, 0.25)  # at the threshold: dropped (strictly above)
    geo = geometry(pipeline, 160, 320)  # ratio 1, 80 rows of padding above
    result = pipeline.postprocess([out], geo)
    expected = np.array(
        [
            [140, 90 - 80, 180, 150 - 80, 0.9, 17],
            [142, 91 - 80, 182, 151 - 80, 0.7, 3],
            [40, 190 - 80, 60, 210 - 80, 0.26, 5],
        ],
        np.float32,
    )
    np.testing.assert_allclose(result["boxes"], expected, rtol=1e-6, atol=1e-4)
    assert result["labels"] == ["c17", "c3", "c5"]
    assert pipeline.brief(result) == "3 boxes"


def test_yolov8_transposed_output_gives_the_same_result():
    pipeline = Pipeline(manifest({"name": "yolov8"}, 256, 256))
    out = yolov8_output(cells(256, 256))
    plant(out, 7, [100, 100, 50, 50], 1, 0.8)
    plant(out, 8, [180, 60, 30, 40], 2, 0.6)
    geo = geometry(pipeline, 256, 256)
    straight = pipeline.postprocess([out], geo)
    transposed = pipeline.postprocess([np.ascontiguousarray(out.transpose(0, 2, 1))], geo)
    np.testing.assert_array_equal(straight["boxes"], transposed["boxes"])
    assert straight["boxes"].shape == (2, 6)


def test_yolov8_class_count_from_labels_ignores_extra_channels():
    """A segmentation export has 32 mask coefficients after the classes: with two labels only the
    two class channels are scored, however large the coefficients are."""
    out = np.zeros((1, 4 + 2 + 32, 84), np.float32)
    out[0, 4 + 2 :] = 5.0  # mask coefficients, not scores
    out[0, :4, 3] = [20, 20, 10, 10]
    out[0, 5, 3] = 0.9
    pipeline = Pipeline(manifest({"name": "yolov8"}, 64, 64, labels=["Normal", "Fall"]))
    result = pipeline.postprocess([out], geometry(pipeline, 64, 64))
    assert result["labels"] == ["Fall"]
    with pytest.raises(ValueError, match=r"80 classes .labels. do not fit an output of 38 channels"):
        Pipeline(manifest({"name": "yolov8"}, 64, 64)).postprocess([out], geometry(pipeline, 64, 64))
    explicit = Pipeline(manifest({"name": "yolov8", "num_classes": 2}, 64, 64, labels=[]))
    assert explicit.postprocess([out], geometry(explicit, 64, 64))["labels"] == ["1"]


def test_yolov8_multi_label_max_detections_and_empty():
    pipeline = Pipeline(manifest({"name": "yolov8", "multi_label": True, "max_detections": 2}, 64, 64))
    out = yolov8_output(84)
    geo = geometry(pipeline, 64, 64)
    assert pipeline.postprocess([out], geo)["boxes"].shape == (0, 6)
    plant(out, 0, [32, 32, 16, 16], 1, 0.9)
    out[0, 4 + 2, 0] = 0.5
    out[0, 4 + 3, 0] = 0.4
    result = pipeline.postprocess([out], geo)
    assert result["boxes"][:, 5].tolist() == [1, 2]  # three classes above 0.25, two kept
    np.testing.assert_allclose(result["boxes"][:, 4], [0.9, 0.5])


def test_yolov8_nms_properties_on_random_outputs():
    """On dense random predictions: scores decrease, every box scores above the threshold, no two
    kept boxes of one class overlap by more than the IoU threshold, and the kept set equals
    torchvision.ops.batched_nms on the same candidates."""
    rng = np.random.default_rng(3)
    n = cells(320, 320)
    out = np.zeros((1, 84, n), np.float32)
    centres = rng.uniform(40, 280, (6, 2))
    which = rng.integers(0, 6, n)
    out[0, 0:2] = (centres[which] + rng.normal(0, 8, (n, 2))).T
    out[0, 2:4] = rng.uniform(20, 90, (2, n))
    out[0, 4:] = rng.uniform(0, 0.2, (80, n))
    hot = rng.choice(n, 400, replace=False)
    out[0, 4 + rng.integers(0, 3, 400), hot] = rng.uniform(0.3, 0.95, 400)
    decoder = {"name": "yolov8", "iou_threshold": 0.5}
    pipeline = Pipeline(manifest(decoder, 320, 320, preprocess={"resize": "stretch", "scale": 1 / 255.0}))
    result = pipeline.postprocess([out], geometry(pipeline, 320, 320))
    boxes = result["boxes"]
    assert boxes.shape[0] > 10
    assert np.all(np.diff(boxes[:, 4]) <= 0) and np.all(boxes[:, 4] > 0.25)
    for cls in np.unique(boxes[:, 5]):
        same = torch.from_numpy(boxes[boxes[:, 5] == cls, :4])
        iou = torchvision.ops.box_iou(same, same).fill_diagonal_(0)
        assert float(iou.max()) <= 0.5
    scores = out[0, 4:].max(0)
    keep = scores > 0.25
    xywh = torch.from_numpy(out[0, :4][:, keep].T.copy())
    xyxy = torchvision.ops.box_convert(xywh, "cxcywh", "xyxy")
    classes = torch.from_numpy(out[0, 4:][:, keep].argmax(0))
    kept = torchvision.ops.batched_nms(xyxy, torch.from_numpy(scores[keep]), classes, 0.5)
    expected = torch.cat([xyxy[kept].clamp(0, 320), torch.from_numpy(scores[keep])[kept, None]], 1)
    np.testing.assert_allclose(boxes[:, :5], expected.numpy(), atol=1e-4)


def test_yolov8_defaults_to_ultralytics_iou():
    pipeline = Pipeline(manifest({"name": "yolov8"}, 64, 64))
    assert pipeline.decoder.iou_threshold == 0.7 and pipeline.decoder.score_threshold == 0.25


# ---- end2end -------------------------------------------------------------------------------------


def test_end2end_planted_rows():
    pipeline = Pipeline(manifest({"name": "end2end"}, 320, 320))
    rows = np.zeros((1, 300, 6), np.float32)  # padding rows: score 0
    rows[0, 5] = [100, 120, 140, 200, 0.5, 2]
    rows[0, 9] = [10, 90, 50, 100, 0.9, 7]
    rows[0, 11] = [10, 90, 50, 100, 0.2, 7]  # below 0.25
    geo = geometry(pipeline, 160, 320)
    result = pipeline.postprocess([rows], geo)
    expected = np.array([[10, 10, 50, 20, 0.9, 7], [100, 40, 140, 120, 0.5, 2]], np.float32)
    np.testing.assert_allclose(result["boxes"], expected, atol=1e-4)
    assert result["labels"] == ["c7", "c2"]


def test_end2end_cxcywh_normalised_and_limits():
    decoder = {"name": "end2end", "box_format": "cxcywh", "normalized": True, "max_detections": 1}
    pipeline = Pipeline(manifest(decoder, 200, 400, preprocess={"resize": "stretch"}))
    rows = np.zeros((1, 10, 6), np.float32)
    rows[0, 0] = [0.5, 0.5, 0.25, 0.5, 0.6, 1]
    rows[0, 1] = [0.1, 0.1, 0.1, 0.1, 0.4, 1]
    result = pipeline.postprocess([rows], geometry(pipeline, 200, 400))
    np.testing.assert_allclose(result["boxes"], [[150, 50, 250, 150, 0.6, 1]], atol=1e-4)
    with pytest.raises(ValueError, match=r"end2end expects one \(1, K, 6\) output.*\(1, 84, 5\)"):
        pipeline.postprocess([np.zeros((1, 84, 5), np.float32)], None)


def test_parameters_are_declared():
    assert check_decoder_params("yolov8", {"score_threshold": 0.3, "num_classes": 2}) == []
    problems = check_decoder_params("yolov8", {"score_treshold": 0.3, "iou_threshold": "high"})
    assert problems[0] == "parameter 'iou_threshold' must be a number, not 'high'"
    assert problems[1].startswith(
        "unknown parameter 'score_treshold' for decoder yolov8 (did you mean 'score_threshold'?); it takes: "
    )
    assert check_decoder_params("end2end", {"box_format": "xywh"}) == [
        "parameter 'box_format' must be one of xyxy, cxcywh, not 'xywh'"
    ]
    assert check_decoder_params("yolov5", {})[0].startswith("decoder yolov5 needs parameter 'anchors'")
    assert "did you mean 'softmax'" in check_decoder_params("imagenet_topk", {"sofmax": False})[0]


# ---- a tiny torch model of the Ultralytics head layout (slow) ------------------------------------


@pytest.mark.slow
def test_tiny_yolov8_layout_exported_and_decoded(tmp_path):
    torch.manual_seed(0)
    model = TinyV8()
    for conv in model.cls:
        torch.nn.init.normal_(conv.weight, std=0.6)
    session = export_session(model, (128, 160), tmp_path / "v8.onnx", ["output0"])
    labels = ["a", "b", "c"]
    pipeline = Pipeline(manifest({"name": "yolov8", "score_threshold": 0.5}, 128, 160, labels=labels))
    image = np.random.default_rng(0).integers(0, 256, (240, 200, 3), dtype=np.uint8)
    feeds, geo = pipeline.preprocess(image)
    output = session.run(None, feeds)[0]
    assert output.shape == (1, 7, cells(128, 160))
    result = pipeline.postprocess([output], geo)
    # The same decode with torch ops: threshold on the best class, batched_nms, geometry undone.
    pred = torch.from_numpy(output[0])
    score, cls = pred[4:].max(0)
    keep = score > 0.5
    xyxy = torchvision.ops.box_convert(pred[:4, keep].T, "cxcywh", "xyxy")
    kept = torchvision.ops.batched_nms(xyxy, score[keep], cls[keep], 0.7)
    boxes = xyxy[kept].clone()
    (sy, sx), (oy, ox) = geo["scale"], geo["offset"]
    boxes[:, 0::2] = ((boxes[:, 0::2] - ox) / sx).clamp(0, 200)
    boxes[:, 1::2] = ((boxes[:, 1::2] - oy) / sy).clamp(0, 240)
    assert result["boxes"].shape[0] == kept.shape[0] > 0
    np.testing.assert_allclose(result["boxes"][:, :4], boxes.numpy(), atol=1e-3)
    np.testing.assert_allclose(result["boxes"][:, 4], score[keep][kept].numpy(), rtol=1e-6)
    assert result["labels"] == [labels[int(c)] for c in cls[keep][kept]]
