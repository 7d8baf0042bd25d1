"""tasks/detection.py: SSD against torchvision's own post-processing, planted predictions for each
YOLO decoder, the ONNX-zoo tiny-YOLOv3 form, and end-to-end runs of exported models (slow)."""

import math

import numpy as np
import pytest
import torch
import torchvision
from synthetic import export_session

from edgebench_runtime.imaging import Preprocessor
from edgebench_runtime.tasks import Pipeline

LABELS80 = [f"c{i}" for i in range(80)]


def manifest(decoder, height, width, preprocess=None, outputs=("output",), labels=LABELS80, **extra):
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


def geometry(pipeline, orig_h, orig_w):
    geo = pipeline.preprocessor.geometry_for(orig_h, orig_w)
    geo["original"] = (orig_h, orig_w)
    return geo


def logit(p):
    return math.log(p / (1 - p))


def sort_rows(boxes):
    return boxes[np.lexsort(boxes.T[::-1])]


# ---- SSD vs torchvision --------------------------------------------------------------------------

SSD_DECODER = {
    "name": "ssd",
    "aspect_ratios": [[2, 3]] * 6,
    "min_ratio": 0.2,
    "max_ratio": 0.95,
    "box_coder_weights": [10.0, 10.0, 5.0, 5.0],
    "score_threshold": 0.001,
    "iou_threshold": 0.55,
    "top_k_candidates": 300,
    "max_detections": 300,
}


@pytest.fixture(scope="module")
def ssdlite():
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()


def torchvision_ssd(model, regression, logits, orig_hw):
    """SSD.postprocess_detections + the transform's rescaling, on the same raw outputs."""
    from torchvision.models.detection.image_list import ImageList

    features = [torch.zeros(1, 8, s, s) for s in (20, 10, 5, 3, 2, 1)]
    anchors = model.anchor_generator(ImageList(torch.zeros(1, 3, 320, 320), [(320, 320)]), features)
    with torch.no_grad():
        heads = {"bbox_regression": torch.from_numpy(regression), "cls_logits": torch.from_numpy(logits)}
        detections = model.postprocess_detections(heads, anchors, [(320, 320)])
        detections = model.transform.postprocess(detections, [(320, 320)], [orig_hw])[0]
    return np.concatenate(
        [
            detections["boxes"].numpy(),
            detections["scores"].numpy()[:, None],
            detections["labels"].numpy()[:, None].astype(np.float32),
        ],
        1,
    )


@pytest.mark.parametrize("orig_hw", [(480, 640), (333, 250)])
def test_ssd_matches_torchvision_postprocess(ssdlite, orig_hw):
    rng = np.random.default_rng(sum(orig_hw))
    anchors = 3234
    regression = rng.normal(0, 1.5, (1, anchors, 4)).astype(np.float32)
    logits = rng.normal(0, 1, (1, anchors, 91)).astype(np.float32)
    logits[..., 0] += 5  # mostly background, like a trained model
    hot = rng.integers(0, anchors, 80)
    logits[0, hot, rng.integers(1, 91, 80)] += 10
    labels = ["__background__"] + [f"k{i}" for i in range(1, 91)]
    pipeline = Pipeline(
        manifest(SSD_DECODER, 320, 320, outputs=("bbox_regression", "cls_logits"), labels=labels)
    )
    expected = torchvision_ssd(ssdlite, regression, logits, orig_hw)
    result = pipeline.postprocess([regression, logits], geometry(pipeline, *orig_hw))
    got = result["boxes"]
    assert got.dtype == np.float32 and got.shape == expected.shape and got.shape[0] == 300
    got_sorted, expected_sorted = sort_rows(got), sort_rows(expected)
    assert np.abs(got_sorted[:, :4] - expected_sorted[:, :4]).max() <= 1e-3
    np.testing.assert_allclose(got_sorted[:, 4], expected_sorted[:, 4], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got_sorted[:, 5], expected_sorted[:, 5])
    assert np.all(np.diff(got[:, 4]) <= 0)
    assert result["labels"] == [labels[int(c)] for c in got[:, 5]]
    assert pipeline.brief(result) == "300 boxes"


def test_ssd_anchors_equal_torchvision_default_boxes(ssdlite):
    from torchvision.models.detection.image_list import ImageList

    from edgebench_runtime.tasks.detection import SSDDecoder

    features = [torch.zeros(1, 8, s, s) for s in (20, 10, 5, 3, 2, 1)]
    expected = ssdlite.anchor_generator(ImageList(torch.zeros(1, 3, 320, 320), [(320, 320)]), features)[0]
    decoder = SSDDecoder(manifest(SSD_DECODER, 320, 320), SSD_DECODER)
    centres, sizes = decoder.anchors(3234, (320, 320))
    got = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)


# ---- YOLOX ---------------------------------------------------------------------------------------

YOLOX_DECODER = {
    "name": "yolox",
    "strides": [8, 16, 32],
    "score_threshold": 0.25,
    "iou_threshold": 0.45,
    "max_detections": 300,
}
YOLOX_PRE = {"resize": "letterbox", "pad_value": 114, "pad_align": "topleft", "color": "BGR", "scale": 1.0}


def test_yolox_planted_predictions():
    pipeline = Pipeline(manifest(YOLOX_DECODER, 256, 320, YOLOX_PRE))
    cells = [(256 // s) * (320 // s) for s in (8, 16, 32)]
    out = np.zeros((1, sum(cells), 85), np.float32)
    out[0, :, 4] = 0.01
    out[0, :, 5:] = 0.02

    def plant(level, row, col, reg, obj, cls, conf):
        stride = (8, 16, 32)[level]
        index = sum(cells[:level]) + row * (320 // stride) + col
        out[0, index, :4] = reg
        out[0, index, 4] = obj
        out[0, index, 5 + cls] = conf

    plant(1, 5, 7, [0.25, 0.5, math.log(2), math.log(3)], 0.9, 17, 0.8)  # -> score 0.72
    plant(1, 5, 8, [-0.7, 0.5, math.log(2), math.log(3)], 0.8, 17, 0.8)  # overlaps, same class: suppressed
    plant(1, 5, 8, [-0.7, 0.5, math.log(2), math.log(3)], 0.8, 17, 0.8)
    plant(0, 2, 3, [0.0, 0.0, math.log(4), math.log(2)], 0.7, 3, 0.6)  # -> score 0.42
    plant(2, 1, 1, [0.5, 0.5, 0.0, 0.0], 0.6, 5, 0.3)  # score 0.18: below threshold
    geo = geometry(pipeline, 200, 400)  # ratio 0.8: resized 160 x 320, top-left
    result = pipeline.postprocess([out], geo)
    boxes = result["boxes"]
    ratio = 0.8
    first = np.array(
        [
            (7.25 * 16 - 16) / ratio,
            (5.5 * 16 - 24) / ratio,
            (7.25 * 16 + 16) / ratio,
            (5.5 * 16 + 24) / ratio,
            0.72,
            17,
        ]
    )
    second = np.array(
        [(3 * 8 - 16) / ratio, (2 * 8 - 8) / ratio, (3 * 8 + 16) / ratio, (2 * 8 + 8) / ratio, 0.42, 3]
    )
    np.testing.assert_allclose(boxes, np.stack([first, second]), rtol=1e-5, atol=1e-4)
    assert result["labels"] == ["c17", "c3"]


def test_yolox_multi_label_and_empty():
    decoder = dict(YOLOX_DECODER, multi_label=True)
    pipeline = Pipeline(manifest(decoder, 64, 64, YOLOX_PRE))
    out = np.zeros((1, 64 + 16 + 4, 85), np.float32)
    geo = geometry(pipeline, 64, 64)
    assert pipeline.postprocess([out], geo)["boxes"].shape == (0, 6)
    out[0, 0, :] = 0
    out[0, 0, 4] = 1.0
    out[0, 0, [5 + 1, 5 + 2]] = [0.9, 0.5]
    result = pipeline.postprocess([out], geo)
    assert result["boxes"][:, 5].tolist() == [1, 2]
    np.testing.assert_allclose(result["boxes"][0, :4], [0, 0, 4, 4])  # (0.5 * 8) - 4, clipped at 0


# ---- YOLOv5 --------------------------------------------------------------------------------------

YOLOV5_DECODER = {
    "name": "yolov5",
    "strides": [8, 16, 32],
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    "score_threshold": 0.25,
    "iou_threshold": 0.45,
    "max_detections": 300,
}


def yolov5_maps(size, nc=80):
    return [np.full((1, 3 * (5 + nc), size // s, size // s), -10.0, np.float32) for s in (8, 16, 32)]


def test_yolov5_planted_predictions():
    pre = {"resize": "letterbox", "pad_value": 114, "pad_align": "center", "scale": 1 / 255.0}
    pipeline = Pipeline(manifest(YOLOV5_DECODER, 320, 320, pre))
    maps = yolov5_maps(320)
    level, anchor, row, col = 1, 1, 3, 4  # stride 16, anchor (62, 45)
    base = anchor * 85
    maps[level][0, base : base + 5, row, col] = [logit(0.6), logit(0.25), logit(0.5), logit(0.75), logit(0.9)]
    maps[level][0, base + 5 + 2, row, col] = logit(0.9)
    # Same cell, another anchor, other class: kept (class-aware NMS).
    base = 0
    maps[level][0, base : base + 5, row, col] = [0.0, 0.0, 0.0, 0.0, logit(0.7)]
    maps[level][0, base + 5 + 9, row, col] = logit(0.5)
    # Objectness high, class low: score 0.9 * 0.2 = 0.18, dropped.
    maps[2][0, 4, 0, 0] = logit(0.9)
    maps[2][0, 5, 0, 0] = logit(0.2)
    geo = geometry(pipeline, 160, 320)  # ratio 1, padded 80 rows top
    result = pipeline.postprocess(maps, geo)
    cx, cy = (2 * 0.6 - 0.5 + 4) * 16, (2 * 0.25 - 0.5 + 3) * 16
    w, h = 62.0, (2 * 0.75) ** 2 * 45
    cx2, cy2 = (1.0 - 0.5 + 4) * 16, (1.0 - 0.5 + 3) * 16
    expected = np.array(
        [
            [cx - w / 2, cy - h / 2 - 80, cx + w / 2, cy + h / 2 - 80, 0.81, 2],
            [cx2 - 15, cy2 - 30.5 - 80, cx2 + 15, cy2 + 30.5 - 80, 0.35, 9],
        ]
    )
    expected[:, [0, 2]] = expected[:, [0, 2]].clip(0, 320)
    expected[:, [1, 3]] = expected[:, [1, 3]].clip(0, 160)
    np.testing.assert_allclose(result["boxes"], expected, rtol=1e-5, atol=1e-3)


def test_yolov5_p6_four_levels():
    decoder = {
        "name": "yolov5",
        "strides": [8, 16, 32, 64],
        "anchors": [
            [19, 27, 44, 40, 38, 94],
            [96, 68, 86, 152, 180, 137],
            [140, 301, 303, 264, 238, 542],
            [436, 615, 739, 380, 925, 792],
        ],
    }
    pipeline = Pipeline(manifest(decoder, 256, 256))
    maps = [np.full((1, 255, 256 // s, 256 // s), -10.0, np.float32) for s in (8, 16, 32, 64)]
    maps[3][0, 85 * 2 : 85 * 2 + 5, 1, 2] = [0, 0, 0, 0, 5.0]
    maps[3][0, 85 * 2 + 5, 1, 2] = 5.0
    result = pipeline.postprocess(maps, geometry(pipeline, 256, 256))
    cx, cy = 2.5 * 64, 1.5 * 64
    assert result["boxes"].shape == (1, 6)
    expected = np.clip([cx - 462.5, cy - 396, cx + 462.5, cy + 396], 0, 256)  # anchor (925, 792)
    np.testing.assert_allclose(result["boxes"][0, :4], expected, atol=1e-3)
    np.testing.assert_allclose(result["boxes"][0, 4], 1 / (1 + math.exp(-5)) ** 2, rtol=1e-5)


# ---- tiny-YOLOv2 / v3 ----------------------------------------------------------------------------

TINY2_DECODER = {
    "name": "tiny_yolov2",
    "anchors": [1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52],
    "stride": 32,
    "score_threshold": 0.25,
    "iou_threshold": 0.45,
    "max_detections": 300,
}


def test_tiny_yolov2_planted_predictions():
    pipeline = Pipeline(manifest(TINY2_DECODER, 416, 416, labels=[f"v{i}" for i in range(20)]))
    out = np.zeros((1, 125, 13, 13), np.float32)
    out[0, 4::25] = -10  # objectness of every anchor
    anchor, row, col = 3, 6, 2
    base = anchor * 25
    out[0, base : base + 5, row, col] = [0.0, logit(0.2), math.log(0.5), 0.0, logit(0.8)]
    out[0, base + 5 + 11, row, col] = 5.0
    geo = geometry(pipeline, 208, 832)  # stretch: x / 2, y * 2
    result = pipeline.postprocess([out], geo)
    p = math.exp(5) / (math.exp(5) + 19)
    cx, cy = (0.5 + col) * 32, (0.2 + row) * 32
    w, h = 0.5 * 9.42 * 32, 5.11 * 32
    expected = [(cx - w / 2) * 2, (cy - h / 2) / 2, (cx + w / 2) * 2, (cy + h / 2) / 2, 0.8 * p, 11]
    np.testing.assert_allclose(result["boxes"], [expected], rtol=1e-5, atol=1e-3)
    assert result["labels"] == ["v11"]


TINY3_DECODER = {
    "name": "tiny_yolov3",
    "strides": [32, 16],
    "anchors": [[81, 82, 135, 169, 344, 319], [10, 14, 23, 27, 37, 58]],
    "score_threshold": 0.25,
    "iou_threshold": 0.45,
    "max_detections": 300,
}


def test_tiny_yolov3_planted_predictions_own_export():
    pipeline = Pipeline(manifest(TINY3_DECODER, 416, 416, outputs=("output0", "output1")))
    maps = [np.full((1, 255, 13, 13), -10.0, np.float32), np.full((1, 255, 26, 26), -10.0, np.float32)]
    base = 2 * 85  # stride 16 map, anchor (37, 58)
    maps[1][0, base : base + 5, 10, 20] = [logit(0.3), logit(0.7), math.log(2.0), 0.0, logit(0.95)]
    maps[1][0, base + 5 + 40, 10, 20] = logit(0.6)
    base = 0  # stride 32 map, anchor (81, 82)
    maps[0][0, base : base + 5, 4, 4] = [0.0, 0.0, 0.0, 0.0, logit(0.9)]
    maps[0][0, base + 5 + 0, 4, 4] = logit(0.9)
    result = pipeline.postprocess(maps, geometry(pipeline, 416, 416))
    cx, cy, w, h = (0.3 + 20) * 16, (0.7 + 10) * 16, 74.0, 58.0
    expected = [
        [4.5 * 32 - 40.5, 4.5 * 32 - 41, 4.5 * 32 + 40.5, 4.5 * 32 + 41, 0.81, 0],
        [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 0.57, 40],
    ]
    np.testing.assert_allclose(result["boxes"], expected, rtol=1e-5, atol=1e-3)


def test_tiny_yolov3_onnx_zoo_form_with_nms_in_graph():
    data = manifest(
        TINY3_DECODER,
        416,
        416,
        outputs=("boxes", "scores", "indices"),
        nms_in_graph=True,
        preprocess={"resize": "letterbox", "pad_value": 128, "scale": 1 / 255.0},
    )
    data["inputs"].append({"name": "image_shape", "shape": [1, 2], "dtype": "float32"})
    pipeline = Pipeline(data)
    image = np.zeros((300, 500, 3), np.uint8)
    feeds, geo = pipeline.preprocess(image)
    assert feeds["image_shape"].dtype == np.float32 and feeds["image_shape"].tolist() == [[300, 500]]
    assert feeds["images"].shape == (1, 3, 416, 416)
    boxes = np.array([[[10, 20, 110, 220], [50, 60, 70, 80], [-5, 400, 290, 520]]], np.float32)  # y1 x1 y2 x2
    scores = np.zeros((1, 80, 3), np.float32)
    scores[0, 7, 0], scores[0, 2, 1], scores[0, 7, 2] = 0.6, 0.9, 0.4
    indices = np.array([[[0, 7, 0], [0, 2, 1], [0, 7, 2]]], np.int32)
    result = pipeline.postprocess([boxes, scores, indices], geo)
    np.testing.assert_allclose(
        result["boxes"],
        [[60, 50, 80, 70, 0.9, 2], [20, 10, 220, 110, 0.6, 7], [400, 0, 500, 290, 0.4, 7]],
        rtol=1e-6,
    )
    assert result["labels"] == ["c2", "c7", "c7"]
    empty = pipeline.postprocess([boxes, scores, np.zeros((1, 0, 3), np.int32)], geo)
    assert empty["boxes"].shape == (0, 6)


def test_grids_are_cached_per_input_size():
    pipeline = Pipeline(manifest(YOLOX_DECODER, 64, 64, YOLOX_PRE))
    out = np.zeros((1, 84, 85), np.float32)
    geo = geometry(pipeline, 64, 64)
    pipeline.postprocess([out], geo)
    grid = pipeline.decoder.grid(84)
    pipeline.postprocess([out], geo)
    assert pipeline.decoder.grid(84)[0] is grid[0]


# ---- end to end on exported models (slow) ---------------------------------------------------------


@torch.no_grad()
def calibrate(module, size, scale):
    """Random-init BatchNorm statistics make activations vanish: recalibrate them on random images
    (as the converter does for random-init models)."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    module.train()
    module(torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0)) * scale)
    module.eval()
    return module


def photo(h, w, seed=0):
    """Noise images: the statistics the random-init models were calibrated on (see calibrate), so
    that their scores spread instead of saturating."""
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def spread_predictions(modules, std=0.05):
    """Random-init heads start at their prior (every cell the same score): spread their weights so
    that scores differ from cell to cell, as a trained model's do."""
    for module in modules:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=std)


def threshold_for(conf, count=150):
    """A score threshold that lets about ``count`` candidates through, midway between two scores."""
    values = np.sort(np.asarray(conf, dtype=np.float64).ravel())[::-1]
    return float((values[count] + values[count + 1]) / 2)


def reference_detections(boxes_net, scores, classes, geo, iou, max_det):
    """torchvision batched_nms + the geometry inverted with torch ops."""
    keep = torchvision.ops.batched_nms(boxes_net, scores, classes, iou)[:max_det]
    boxes = boxes_net[keep].clone()
    sy, sx = geo["scale"]
    oy, ox = geo["offset"]
    boxes[:, 0::2] = ((boxes[:, 0::2] - ox) / sx).clamp(0, geo["original"][1])
    boxes[:, 1::2] = ((boxes[:, 1::2] - oy) / sy).clamp(0, geo["original"][0])
    return torch.cat([boxes, scores[keep, None], classes[keep, None].float()], 1).numpy()


def assert_same_detections(got, expected, atol=1e-3):
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.shape[0] > 0
    np.testing.assert_allclose(sort_rows(got), sort_rows(expected), rtol=1e-4, atol=atol)


@pytest.mark.slow
def test_end_to_end_yolox_nano(tmp_path):
    from edgebench.builders.yolox import yolox_nano

    torch.manual_seed(0)
    model = calibrate(yolox_nano(), (256, 256), 255.0)
    spread_predictions([*model.head.cls_preds, *model.head.obj_preds])
    session = export_session(model, (256, 256), tmp_path / "yolox.onnx", ["output"])
    pipeline = Pipeline(manifest(YOLOX_DECODER, 256, 256, YOLOX_PRE))
    feeds, geo = pipeline.preprocess(photo(300, 400))
    outputs = session.run(None, feeds)
    assert outputs[0].shape == (1, 1344, 85)
    # Independent decode in torch of the same raw output.
    out = torch.from_numpy(outputs[0][0])
    grids, strides = [], []
    for s in (8, 16, 32):
        yy, xx = torch.meshgrid(torch.arange(256 // s), torch.arange(256 // s), indexing="ij")
        grids.append(torch.stack([xx, yy], -1).reshape(-1, 2))
        strides.append(torch.full((grids[-1].shape[0], 1), float(s)))
    grid, stride = torch.cat(grids).float(), torch.cat(strides)
    xy, wh = (out[:, :2] + grid) * stride, torch.exp(out[:, 2:4]) * stride
    conf, cls = (out[:, 5:] * out[:, 4:5]).max(1)
    threshold = threshold_for(conf)
    mask = conf > threshold
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1)[mask]
    expected = reference_detections(boxes, conf[mask], cls[mask], geo, 0.45, 50)
    decoder = dict(YOLOX_DECODER, score_threshold=threshold, max_detections=50)
    result = Pipeline(manifest(decoder, 256, 256, YOLOX_PRE)).postprocess(outputs, geo)
    assert_same_detections(result["boxes"], expected)


@pytest.mark.slow
def test_end_to_end_yolov5n(tmp_path):
    from edgebench.builders.yolov5 import yolov5n

    torch.manual_seed(0)
    model = calibrate(yolov5n(), (256, 256), 1.0)
    names = ("output0", "output1", "output2")
    session = export_session(model, (256, 256), tmp_path / "yolov5n.onnx", names)
    pre = {"resize": "letterbox", "pad_value": 114, "scale": 1 / 255.0}
    feeds, geo = Pipeline(manifest(YOLOV5_DECODER, 256, 256, pre, outputs=names)).preprocess(photo(240, 320))
    outputs = session.run(None, feeds)
    assert [o.shape for o in outputs] == [(1, 255, 32, 32), (1, 255, 16, 16), (1, 255, 8, 8)]
    anchors = torch.tensor(YOLOV5_DECODER["anchors"], dtype=torch.float32).view(3, 3, 2)
    decoded = []
    for level, raw in enumerate(outputs):
        _, _, h, w = raw.shape
        p = torch.from_numpy(raw).view(3, 85, h, w).permute(0, 2, 3, 1).sigmoid()  # (a, y, x, 85)
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grid = torch.stack([xx, yy], -1).float()
        s = 256 // h
        xy = (p[..., :2] * 2 - 0.5 + grid) * s
        wh = (p[..., 2:4] * 2) ** 2 * anchors[level].view(3, 1, 1, 2)
        decoded.append(torch.cat([xy, wh, p[..., 4:]], -1).reshape(-1, 85))
    pred = torch.cat(decoded)
    conf, cls = (pred[:, 5:] * pred[:, 4:5]).max(1)
    threshold = threshold_for(conf)
    mask = conf > threshold
    boxes = torch.cat([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], 1)[mask]
    expected = reference_detections(boxes, conf[mask], cls[mask], geo, 0.45, 50)
    decoder = dict(YOLOV5_DECODER, score_threshold=threshold, max_detections=50)
    result = Pipeline(manifest(decoder, 256, 256, pre, outputs=names)).postprocess(outputs, geo)
    assert_same_detections(result["boxes"], expected)


@pytest.mark.slow
def test_end_to_end_ssdlite(tmp_path, ssdlite):
    class Head(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.backbone, self.head = model.backbone, model.head

        def forward(self, images):
            out = self.head(list(self.backbone(images).values()))
            return out["bbox_regression"], out["cls_logits"]

    torch.manual_seed(0)
    calibrate(ssdlite.backbone, (320, 320), 1.0)
    spread_predictions(ssdlite.head.classification_head.modules())
    outputs = ["bbox_regression", "cls_logits"]
    session = export_session(Head(ssdlite), (320, 320), tmp_path / "ssd.onnx", outputs)
    pre = {"resize": "stretch", "scale": 1 / 255.0, "mean": [0.5] * 3, "std": [0.5] * 3}
    names = ("bbox_regression", "cls_logits")
    feeds, geo = Pipeline(manifest(SSD_DECODER, 320, 320, pre, outputs=names)).preprocess(photo(240, 300))
    outputs = session.run(None, feeds)
    assert outputs[0].shape == (1, 3234, 4) and outputs[1].shape == (1, 3234, 91)
    threshold = threshold_for(torch.from_numpy(outputs[1][0]).softmax(-1)[:, 1:], 400)
    decoder = dict(SSD_DECODER, score_threshold=threshold, max_detections=100)
    pipeline = Pipeline(
        manifest(decoder, 320, 320, pre, outputs=names, labels=["bg"] + [f"k{i}" for i in range(90)])
    )
    result = pipeline.postprocess(outputs, geo)
    ssdlite.score_thresh, ssdlite.detections_per_img = threshold, 100
    expected = torchvision_ssd(ssdlite, outputs[0], outputs[1], (240, 300))
    assert_same_detections(result["boxes"], expected)


@pytest.mark.slow
def test_end_to_end_tiny_yolov2(tmp_path):
    from edgebench.builders.tiny_yolo import tiny_yolov2

    torch.manual_seed(0)
    session = export_session(
        calibrate(tiny_yolov2(), (416, 416), 1.0), (416, 416), tmp_path / "tiny2.onnx", ["output"]
    )
    feeds, geo = Pipeline(manifest(TINY2_DECODER, 416, 416)).preprocess(photo(300, 400))
    outputs = session.run(None, feeds)
    assert outputs[0].shape == (1, 125, 13, 13)
    raw = torch.from_numpy(outputs[0]).view(5, 25, 13, 13).permute(0, 2, 3, 1)
    yy, xx = torch.meshgrid(torch.arange(13), torch.arange(13), indexing="ij")
    anchors = torch.tensor(TINY2_DECODER["anchors"]).view(5, 1, 1, 2)
    cx = (raw[..., 0].sigmoid() + xx) * 32
    cy = (raw[..., 1].sigmoid() + yy) * 32
    wh = torch.exp(raw[..., 2:4]) * anchors * 32
    conf, cls = (raw[..., 5:].softmax(-1) * raw[..., 4:5].sigmoid()).max(-1)
    boxes = torch.stack(
        [cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1
    )
    threshold = threshold_for(conf)
    mask = conf > threshold
    expected = reference_detections(boxes[mask], conf[mask], cls[mask], geo, 0.45, 50)
    decoder = dict(TINY2_DECODER, score_threshold=threshold, max_detections=50)
    pipeline = Pipeline(manifest(decoder, 416, 416, labels=[f"v{i}" for i in range(20)]))
    result = pipeline.postprocess(outputs, geo)
    assert_same_detections(result["boxes"], expected)


def test_preprocessor_geometry_convention():
    """The decoders invert exactly what the Preprocessor reports."""
    pre = Preprocessor(YOLOX_PRE, 256, 320)
    geo = pre.geometry_for(200, 400)
    assert geo["scale"] == (0.8, 0.8) and geo["offset"] == (0.0, 0.0)
