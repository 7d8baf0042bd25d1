"""Detection decoders: ``ssd``, ``yolov5``, ``yolox``, ``tiny_yolov2``, ``tiny_yolov3`` (``yolov8`` and
``end2end`` are in ``anchor_free.py``).

Every decoder returns ``{"boxes": float32 (N, 6), "labels": [N names]}``: rows ``x1, y1, x2, y2,
score, class`` in original-image pixels (the pre-processing geometry inverted, clipped to the
image), decreasing score, after class-aware NMS (``nms.batched_nms``), at most ``max_detections``.

Common decoder parameters (manifest ``decoder`` block): ``score_threshold`` (0.25; a candidate
needs a score strictly above it), ``iou_threshold`` (0.45), ``max_detections`` (300),
``max_candidates`` (30000: the best-scoring candidates that enter NMS), ``multi_label`` (false:
one class per box, its best; true: every class above the threshold), ``nms`` (``auto`` |
``numpy`` | ``opencv``).

The YOLO decoders threshold the objectness first (a box's score is objectness x class score, so a
box whose objectness is not above the threshold cannot pass) and apply sigmoid, exp and softmax
only to the surviving cells. Grids and anchors are computed once per input size and cached.

Python 3.6 compatible.
"""

import math
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy as np

from .base import register_decoder, softmax
from .detection_base import DetectionDecoder, clamped_exp, empty_result, logit, sigmoid
from .nms import clip_boxes, cxcywh_to_xyxy, topk_indices

__all__ = ["SSDDecoder", "TinyYolov2Decoder", "TinyYolov3Decoder", "Yolov5Decoder", "YoloxDecoder"]

# ---- SSD ----------------------------------------------------------------------------------------


def ssd_default_boxes(
    grid_sizes, image_size, aspect_ratios, min_ratio=0.15, max_ratio=0.9, scales=None, steps=None, clip=True
):
    """torchvision's DefaultBoxGenerator anchors, (A, 4) x1, y1, x2, y2 in network pixels, float32,
    in the head's order (level, row, column, box)."""
    levels = len(aspect_ratios)
    if scales is None:
        if levels > 1:
            span = max_ratio - min_ratio
            scales = [min_ratio + span * k / (levels - 1.0) for k in range(levels)] + [1.0]
        else:
            scales = [min_ratio, max_ratio]
    height, width = image_size
    parts = []
    for k, (f_h, f_w) in enumerate(grid_sizes):
        s_k = scales[k]
        s_prime = math.sqrt(scales[k] * scales[k + 1])
        pairs = [[s_k, s_k], [s_prime, s_prime]]
        for ratio in aspect_ratios[k]:
            root = math.sqrt(ratio)
            pairs.extend([[s_k * root, s_k / root], [s_k / root, s_k * root]])
        pairs = np.asarray(pairs, dtype=np.float32)
        if clip:
            pairs = np.clip(pairs, 0.0, 1.0)
        x_f, y_f = (width / float(steps[k]), height / float(steps[k])) if steps else (f_w, f_h)
        shift_x = ((np.arange(f_w, dtype=np.float32) + np.float32(0.5)) / np.float32(x_f)).astype(np.float32)
        shift_y = ((np.arange(f_h, dtype=np.float32) + np.float32(0.5)) / np.float32(y_f)).astype(np.float32)
        sy, sx = np.meshgrid(shift_y, shift_x, indexing="ij")
        centres = np.repeat(np.stack([sx.ravel(), sy.ravel()], axis=1), len(pairs), axis=0)
        wh = np.tile(pairs, (f_h * f_w, 1))
        parts.append(np.concatenate([centres, wh], axis=1))
    boxes = np.concatenate(parts, axis=0).astype(np.float32)
    size = np.array([width, height], dtype=np.float32)
    half = np.float32(0.5) * boxes[:, 2:]
    return np.concatenate([(boxes[:, :2] - half) * size, (boxes[:, :2] + half) * size], axis=1)


def _ssd_grid_sizes(num_anchors, image_size, per_location):
    """Feature-map sizes from the anchor count: the first level at stride 8, 16 or 32 of the input,
    each further level a stride-2 3x3 convolution with padding 1 (ceil(n / 2)), as in SSDlite."""
    height, width = image_size
    for first in (16, 8, 32, 4, 64):
        sizes = []
        h, w = -(-height // first), -(-width // first)
        for _ in per_location:
            sizes.append((h, w))
            h, w = (h + 1) // 2, (w + 1) // 2
        if sum(k * fh * fw for k, (fh, fw) in zip(per_location, sizes)) == num_anchors:  # noqa: B905 - 3.6
            return sizes
    raise ValueError(
        "cannot derive the SSD feature-map sizes for %d anchors at input %dx%d; give decoder.feature_maps"
        % (num_anchors, height, width)
    )


@register_decoder("ssd")
class SSDDecoder(DetectionDecoder):
    """torchvision SSD/SSDlite post-processing (``SSD.postprocess_detections``) on the raw head
    outputs ``bbox_regression (1, A, 4)`` and ``cls_logits (1, A, C)``: DefaultBoxGenerator anchors,
    BoxCoder decoding, clip to the input, softmax, per-class score threshold and top-k, class-aware
    NMS, ``max_detections`` per image. Class 0 is the background."""

    parameters: ClassVar[dict] = dict(
        DetectionDecoder.parameters,
        top_k_candidates="int",
        aspect_ratios="list",
        min_ratio="number",
        max_ratio="number",
        scales="list",
        steps="list",
        clip="bool",
        feature_maps="list",
        box_coder_weights="list",
    )

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        DetectionDecoder.__init__(self, manifest, params)
        p = self.params
        self.score_threshold = float(p.get("score_threshold", 0.01))
        self.iou_threshold = float(p.get("iou_threshold", 0.45))
        self.max_detections = int(p.get("max_detections", 200))
        self.top_k_candidates = int(p.get("top_k_candidates", 400))
        self.aspect_ratios = p.get("aspect_ratios") or [[2, 3]] * 6
        self.min_ratio = float(p.get("min_ratio", 0.2))
        self.max_ratio = float(p.get("max_ratio", 0.95))
        self.scales = p.get("scales")
        self.steps = p.get("steps")
        self.clip = bool(p.get("clip", True))
        self.feature_maps = p.get("feature_maps")
        weights = p.get("box_coder_weights", [10.0, 10.0, 5.0, 5.0])
        self.weights = [np.float32(w) for w in weights]
        self.xform_clip = np.float32(math.log(1000.0 / 16))
        self._anchors = {}

    def anchors(self, num_anchors: int, image_size: Tuple[int, int]) -> np.ndarray:
        key = (num_anchors, image_size)
        if key not in self._anchors:
            per_location = [2 + 2 * len(r) for r in self.aspect_ratios]
            if self.feature_maps:
                sizes = [tuple(s) if isinstance(s, (list, tuple)) else (s, s) for s in self.feature_maps]
            else:
                sizes = _ssd_grid_sizes(num_anchors, image_size, per_location)
            boxes = ssd_default_boxes(
                sizes,
                image_size,
                self.aspect_ratios,
                self.min_ratio,
                self.max_ratio,
                self.scales,
                self.steps,
                self.clip,
            )
            if boxes.shape[0] != num_anchors:
                raise ValueError(
                    "SSD anchors: %d generated, the model has %d" % (boxes.shape[0], num_anchors)
                )
            widths = boxes[:, 2] - boxes[:, 0]
            heights = boxes[:, 3] - boxes[:, 1]
            half = np.float32(0.5)
            centres = np.stack([boxes[:, 0] + half * widths, boxes[:, 1] + half * heights], 1)
            self._anchors[key] = (centres, np.stack([widths, heights], 1))
        return self._anchors[key]

    def _split(self, outputs):
        names = self.output_names
        if "bbox_regression" in names and "cls_logits" in names and len(outputs) == len(names):
            return outputs[names.index("bbox_regression")], outputs[names.index("cls_logits")]
        first, second = outputs[0], outputs[1]
        return (first, second) if first.shape[-1] == 4 else (second, first)

    def decode_boxes(self, regression: np.ndarray, image_size: Tuple[int, int]) -> np.ndarray:
        """BoxCoder.decode_single against the default boxes: (A, 4) corners in network pixels."""
        centres, sizes = self.anchors(regression.shape[0], image_size)
        wx, wy, ww, wh = self.weights
        ctr = regression[:, :2] / np.array([wx, wy], dtype=np.float32)
        ctr *= sizes
        ctr += centres
        dwh = np.minimum(regression[:, 2:] / np.array([ww, wh], dtype=np.float32), self.xform_clip)
        size = np.exp(dwh) * sizes
        half = np.float32(0.5) * size
        return np.concatenate([ctr - half, ctr + half], axis=1)

    def __call__(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Dict[str, Any]:
        regression, logits = self._split(outputs)
        regression = np.asarray(regression, dtype=np.float32).reshape(-1, 4)
        logits = np.asarray(logits, dtype=np.float32).reshape(regression.shape[0], -1)
        image_size = self.net_hw or tuple(int(v) for v in geometry["resized"])
        boxes = self.decode_boxes(regression, image_size)
        clip_boxes(boxes, float(image_size[0]), float(image_size[1]))
        scores = softmax(logits, axis=1)[:, 1:]
        anchors, classes = np.nonzero(scores > np.float32(self.score_threshold))
        values = scores[anchors, classes]
        counts = np.bincount(classes, minlength=scores.shape[1])
        if counts.max(initial=0) > self.top_k_candidates:
            # Per class, only the top_k_candidates best enter NMS.
            keep = np.ones(values.shape[0], dtype=bool)
            for cls in np.flatnonzero(counts > self.top_k_candidates):
                members = np.flatnonzero(classes == cls)
                best = topk_indices(values[members], self.top_k_candidates)
                keep[members] = False
                keep[members[best]] = True
            anchors, classes, values = anchors[keep], classes[keep], values[keep]
        return self._finish(boxes[anchors], values, classes + 1, geometry)


# ---- YOLO family -------------------------------------------------------------------------------


class _GridDecoder(DetectionDecoder):
    """Anchor-based YOLO heads: one raw map ``(1, A * (5 + C), H, W)`` per level, channels per
    anchor ``[tx, ty, tw, th, obj, classes...]``. Subclasses define the box and class transforms."""

    default_strides = (32,)
    parameters: ClassVar[dict] = dict(DetectionDecoder.parameters, strides="list", anchors="list")

    def __init__(self, manifest, params=None):
        DetectionDecoder.__init__(self, manifest, params)
        self.strides = [int(s) for s in self.params.get("strides", self.default_strides)]
        self.anchor_sets = self._anchor_sets()
        self._levels = {}

    def _anchor_sets(self):
        anchors = self.params.get("anchors")
        if not anchors:
            raise ValueError("%s needs decoder.anchors (one list of w, h pixel pairs per level)" % self.name)
        return [np.asarray(a, dtype=np.float32).reshape(-1, 2) for a in anchors]

    def _level(self, index, shape):
        """(stride, anchors (A, 2) pixels, grid x, grid y) for a map of the given (H, W); cached."""
        key = (index, shape)
        if key not in self._levels:
            h, w = shape
            stride = None
            if self.net_hw is not None:
                stride = self.net_hw[0] // h
            if stride in self.strides:
                level = self.strides.index(stride)
            else:
                level = index
                stride = self.strides[level]
            cells = np.arange(h * w)
            self._levels[key] = (
                np.float32(stride),
                self.anchor_sets[level],
                (cells % w).astype(np.float32),
                (cells // w).astype(np.float32),
            )
        return self._levels[key]

    def class_scores(self, raw_classes):
        return sigmoid(raw_classes)

    def box_xy_wh(self, raw, gx, gy, stride, anchors):
        raise NotImplementedError

    def __call__(self, outputs, geometry):
        all_boxes, all_obj, all_cls = [], [], []
        threshold = logit(self.score_threshold)
        for index, output in enumerate(outputs):
            _, channels, h, w = output.shape
            stride, anchors, grid_x, grid_y = self._level(index, (h, w))
            na = anchors.shape[0]
            maps = output.reshape(na, channels // na, h * w)
            anchor, cell = np.nonzero(maps[:, 4, :] > threshold)
            if anchor.shape[0] == 0:
                continue
            raw = maps[anchor, :, cell].astype(np.float32, copy=False)  # (k, 5 + C)
            all_boxes.append(self.box_xy_wh(raw, grid_x[cell], grid_y[cell], stride, anchors[anchor]))
            all_obj.append(sigmoid(raw[:, 4]))
            all_cls.append(raw[:, 5:])
        if not all_boxes:
            return empty_result()
        boxes = np.concatenate(all_boxes)
        class_scores = self.class_scores(np.concatenate(all_cls))
        rows, classes, scores = self._select(class_scores, np.concatenate(all_obj))
        return self._finish(boxes[rows], scores, classes, geometry)


@register_decoder("yolov5")
class Yolov5Decoder(_GridDecoder):
    """Ultralytics YOLOv5 v6 Detect: xy = (2 sigmoid - 0.5 + grid) * stride, wh = (2 sigmoid)^2 * anchor,
    score = sigmoid(obj) * sigmoid(class). Three levels (n/s) or four (n6/s6)."""

    default_strides = (8, 16, 32)
    required: ClassVar[dict] = {"anchors": "one list of w, h pixel pairs per level, as in the model's yaml"}

    def box_xy_wh(
        self, raw: np.ndarray, gx: np.ndarray, gy: np.ndarray, stride: float, anchors: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray]:
        s = sigmoid(raw[:, :4])
        cx = (np.float32(2.0) * s[:, 0] - np.float32(0.5) + gx) * stride
        cy = (np.float32(2.0) * s[:, 1] - np.float32(0.5) + gy) * stride
        wh = np.square(np.float32(2.0) * s[:, 2:4]) * anchors
        return cxcywh_to_xyxy(cx, cy, wh[:, 0], wh[:, 1])


@register_decoder("tiny_yolov2")
class TinyYolov2Decoder(_GridDecoder):
    """Darknet region layer (YOLOv2): xy = (sigmoid + grid) * stride, wh = exp * anchor (grid cells)
    * stride, score = sigmoid(obj) * softmax(classes)."""

    parameters: ClassVar[dict] = dict(_GridDecoder.parameters, stride="int")

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        params = dict(params or {})
        params.setdefault("strides", [int(params.get("stride", 32))])
        params.setdefault("anchors", [1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52])
        _GridDecoder.__init__(self, manifest, params)

    def _anchor_sets(self):
        # Anchors are in grid cells: scale to pixels once.
        anchors = np.asarray(self.params["anchors"], dtype=np.float32).reshape(-1, 2)
        return [anchors * np.float32(self.strides[0])]

    def class_scores(self, raw_classes: np.ndarray) -> np.ndarray:
        return softmax(raw_classes, axis=1)

    def box_xy_wh(
        self, raw: np.ndarray, gx: np.ndarray, gy: np.ndarray, stride: float, anchors: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray]:
        s = sigmoid(raw[:, :2])
        wh = clamped_exp(raw[:, 2:4]) * anchors
        return cxcywh_to_xyxy((s[:, 0] + gx) * stride, (s[:, 1] + gy) * stride, wh[:, 0], wh[:, 1])


@register_decoder("tiny_yolov3")
class TinyYolov3Decoder(_GridDecoder):
    """Darknet yolo layer (YOLOv3): xy = (sigmoid + grid) * stride, wh = exp * anchor (pixels),
    score = sigmoid(obj) * sigmoid(class); levels at strides 32 and 16.

    With the manifest's ``nms_in_graph: true`` this is the ONNX-model-zoo form instead: a second
    input ``image_shape`` (original height, width) fed here, and outputs boxes ``(1, N, 4)`` as
    y1, x1, y2, x2 in original pixels, scores ``(1, C, N)`` and the selected ``(batch, class, box)``
    indices; the decoder only gathers them."""

    default_strides = (32, 16)

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        params = dict(params or {})
        params.setdefault("anchors", [[81, 82, 135, 169, 344, 319], [10, 14, 23, 27, 37, 58]])
        _GridDecoder.__init__(self, manifest, params)
        self.nms_in_graph = bool(manifest.get("nms_in_graph", False))

    def feeds(
        self, tensor: np.ndarray, geometry: Dict[str, Any], input_names: List[str]
    ) -> Dict[str, np.ndarray]:
        feeds = {input_names[0]: tensor}
        if self.nms_in_graph and len(input_names) > 1:
            feeds[input_names[1]] = np.array([geometry["original"]], dtype=np.float32)
        return feeds

    def box_xy_wh(
        self, raw: np.ndarray, gx: np.ndarray, gy: np.ndarray, stride: float, anchors: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray]:
        s = sigmoid(raw[:, :2])
        wh = clamped_exp(raw[:, 2:4]) * anchors
        return cxcywh_to_xyxy((s[:, 0] + gx) * stride, (s[:, 1] + gy) * stride, wh[:, 0], wh[:, 1])

    def __call__(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Dict[str, Any]:
        if not self.nms_in_graph:
            return _GridDecoder.__call__(self, outputs, geometry)
        indices, floats = None, []
        for output in outputs:
            output = np.asarray(output)
            if output.dtype.kind in "iu" and indices is None:
                indices = output.reshape(-1, 3).astype(np.int64)
            else:
                floats.append(output)
        if indices is None or len(floats) != 2:
            raise ValueError("tiny_yolov3 (nms_in_graph) expects boxes, scores and integer indices outputs")
        first, second = floats  # boxes (1, N, 4) and scores (1, C, N), in either order
        if not (first.shape[-1] == 4 and first.shape[-2] == second.shape[-1]):
            first, second = second, first
        boxes = first.reshape(-1, 4).astype(np.float32)
        scores = second.reshape(second.shape[-2], second.shape[-1]).astype(np.float32)
        indices = indices[indices[:, 0] == 0]
        if indices.shape[0] == 0:
            return empty_result()
        classes, which = indices[:, 1], indices[:, 2]
        values = scores[classes, which]
        order = np.lexsort((np.arange(values.shape[0]), -values))[: self.max_detections]
        classes, which, values = classes[order], which[order], values[order]
        out = np.empty((order.shape[0], 6), dtype=np.float32)
        out[:, [1, 0, 3, 2]] = boxes[which]  # y1, x1, y2, x2 -> x1, y1, x2, y2
        out[:, 4] = values
        out[:, 5] = classes
        original = geometry.get("original") if geometry else None
        if original is not None:
            clip_boxes(out, float(original[0]), float(original[1]))
        return {"boxes": out, "labels": self._names(classes)}


@register_decoder("yolox")
class YoloxDecoder(DetectionDecoder):
    """Megvii YOLOX (decode_in_inference=False export): one ``(1, N, 5 + C)`` tensor, per cell
    ``[reg x, y, w, h (raw), obj, classes]`` with obj and classes after sigmoid, cells row-major,
    strides 8, 16, 32 in order. xy = (reg + grid) * stride, wh = exp(reg) * stride,
    score = obj * class."""

    parameters: ClassVar[dict] = dict(DetectionDecoder.parameters, strides="list")

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        DetectionDecoder.__init__(self, manifest, params)
        self.strides = [int(s) for s in self.params.get("strides", (8, 16, 32))]
        self._grids = {}

    def grid(self, num_cells: int) -> Any:
        """(grid (N, 2) float32, stride (N, 1) float32) for the input size; cached."""
        if num_cells not in self._grids:
            if self.net_hw is not None:
                sizes = [(self.net_hw[0] // s, self.net_hw[1] // s) for s in self.strides]
            else:  # square input assumed when the manifest gives no size
                side = int(math.sqrt(num_cells / sum(1.0 / (s * s) for s in self.strides)) + 0.5)
                sizes = [(side // s, side // s) for s in self.strides]
            grids, strides = [], []
            for (h, w), stride in zip(sizes, self.strides):  # noqa: B905 - Python 3.6
                ys, xs = np.meshgrid(
                    np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij"
                )
                grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
                strides.append(np.full((h * w, 1), stride, dtype=np.float32))
            grid, stride = np.concatenate(grids), np.concatenate(strides)
            if grid.shape[0] != num_cells:
                raise ValueError(
                    "yolox: %d cells in the output, %d expected for input %s and strides %s"
                    % (num_cells, grid.shape[0], self.net_hw, self.strides)
                )
            self._grids[num_cells] = (grid, stride)
        return self._grids[num_cells]

    def __call__(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Dict[str, Any]:
        out = outputs[0]
        out = out.reshape(-1, out.shape[-1])
        grid, stride = self.grid(out.shape[0])
        cells = np.flatnonzero(out[:, 4] > np.float32(self.score_threshold))
        if cells.shape[0] == 0:
            return empty_result()
        raw = out[cells].astype(np.float32, copy=False)
        rows, classes, scores = self._select(raw[:, 5:], raw[:, 4])
        cells, raw = cells[rows], raw[rows]
        s = stride[cells]
        xy = (raw[:, :2] + grid[cells]) * s
        wh = clamped_exp(raw[:, 2:4]) * s
        boxes = cxcywh_to_xyxy(xy[:, 0], xy[:, 1], wh[:, 0], wh[:, 1])
        return self._finish(boxes, scores, classes, geometry)
