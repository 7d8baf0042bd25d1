"""Detectors of today: ``yolov8`` (the Ultralytics anchor-free detect head) and ``end2end`` (models
that give their final detections, ``[1, K, 6]``).

``yolov8``: one output ``(1, 4 + C, N)`` (Ultralytics' export: YOLOv8, YOLO11 and later share the
head), or its transpose ``(1, N, 4 + C)``: per cell ``cx, cy, w, h`` already decoded to network
pixels (distribution focal loss and strides are inside the graph), then ``C`` class scores after
sigmoid; no objectness. The orientation is read from the shape: the smaller of the two last
dimensions holds the channels (``N`` is thousands, ``4 + C`` at most a few hundred). The class
count is ``num_classes`` when given, else the number of labels, else every channel after the four
box ones; channels after the classes (segmentation mask coefficients, pose keypoints) are
ignored. Scores above ``score_threshold`` (strictly), class-aware NMS at ``iou_threshold`` (0.7,
Ultralytics' default), at most ``max_detections``.

``end2end``: one output ``(1, K, 6 + extra)``: rows ``x1, y1, x2, y2, score, class`` in network
pixels, as NMS-free models (YOLOv10, ``end2end`` exports of YOLO26) and exports with NMS in the
graph give them. Rows at or below ``score_threshold`` (padding rows have score 0) are dropped,
the rest reported in decreasing score in original pixels; no NMS (the model did it).
``box_format: cxcywh`` reads centre/size boxes; ``normalized: true`` boxes in 0..1 of the input.

Python 3.6 compatible.
"""

from typing import Any, ClassVar, Dict, List, Optional

import numpy as np

from .base import register_decoder
from .detection_base import DetectionDecoder, empty_result
from .nms import boxes_to_original, cxcywh_to_xyxy, topk_indices

__all__ = ["End2EndDecoder", "Yolov8Decoder"]


@register_decoder("yolov8")
class Yolov8Decoder(DetectionDecoder):
    parameters: ClassVar[dict] = dict(DetectionDecoder.parameters, num_classes="int")

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        params = dict(params or {})
        params.setdefault("iou_threshold", 0.7)
        DetectionDecoder.__init__(self, manifest, params)
        self.num_classes = self.params.get("num_classes")

    def channels_first(self, output: np.ndarray) -> np.ndarray:
        """The ``(4 + C, N)`` view of the output, whichever orientation the export chose."""
        output = np.asarray(output)
        if output.ndim == 3:
            if output.shape[0] != 1:
                raise ValueError(
                    "yolov8: batch %d output %s; edgebench runs batch 1" % (output.shape[0], output.shape)
                )
            output = output[0]
        if output.ndim != 2:
            raise ValueError(
                "yolov8 expects one (1, 4 + classes, cells) output, got shape %s" % (output.shape,)
            )
        return output if output.shape[0] <= output.shape[1] else output.T

    def classes_in(self, channels: int) -> int:
        count = self.num_classes
        if count is None:
            count = len(self.labels) if len(self.labels) else channels - 4
        if count < 1 or count > channels - 4:
            raise ValueError(
                "yolov8: %d classes (%s) do not fit an output of %d channels (4 box + classes)"
                % (count, "num_classes" if self.num_classes is not None else "labels", channels)
            )
        return int(count)

    def __call__(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Dict[str, Any]:
        pred = self.channels_first(outputs[0])
        scores_by_class = pred[4 : 4 + self.classes_in(pred.shape[0])]  # (C, N), a view
        threshold = np.float32(self.score_threshold)
        if self.multi_label:
            classes, cells = np.nonzero(scores_by_class > threshold)
            scores = scores_by_class[classes, cells]
        else:
            best = scores_by_class.max(axis=0)
            cells = np.flatnonzero(best > threshold)
            scores = best[cells]
            classes = scores_by_class[:, cells].argmax(axis=0)
        if cells.shape[0] == 0:
            return empty_result()
        if cells.shape[0] > self.max_candidates:
            top = topk_indices(scores, self.max_candidates)
            cells, classes, scores = cells[top], classes[top], scores[top]
        box = pred[:4, cells].astype(np.float32, copy=False)
        boxes = cxcywh_to_xyxy(box[0], box[1], box[2], box[3])
        return self._finish(boxes, scores.astype(np.float32, copy=False), classes, geometry)


@register_decoder("end2end")
class End2EndDecoder(DetectionDecoder):
    parameters: ClassVar[dict] = {
        "score_threshold": "number",
        "max_detections": "int",
        "box_format": ("xyxy", "cxcywh"),
        "normalized": "bool",
    }

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        DetectionDecoder.__init__(self, manifest, params)
        self.box_format = self.params.get("box_format", "xyxy")
        if self.box_format not in ("xyxy", "cxcywh"):
            raise ValueError("end2end: box_format must be xyxy or cxcywh, not %r" % (self.box_format,))
        self.normalized = bool(self.params.get("normalized", False))

    def __call__(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Dict[str, Any]:
        rows = np.asarray(outputs[0])
        if rows.ndim == 3 and rows.shape[0] == 1:
            rows = rows[0]
        if rows.ndim != 2 or rows.shape[1] < 6:
            raise ValueError(
                "end2end expects one (1, K, 6) output (x1, y1, x2, y2, score, class), got shape %s"
                % (np.shape(outputs[0]),)
            )
        keep = np.flatnonzero(rows[:, 4] > np.float32(self.score_threshold))
        if keep.shape[0] == 0:
            return empty_result()
        keep = keep[topk_indices(rows[keep, 4], self.max_detections)]
        out = np.empty((keep.shape[0], 6), dtype=np.float32)
        picked = rows[keep].astype(np.float32, copy=False)
        if self.box_format == "cxcywh":
            out[:, :4] = cxcywh_to_xyxy(picked[:, 0], picked[:, 1], picked[:, 2], picked[:, 3])
        else:
            out[:, :4] = picked[:, :4]
        if self.normalized:
            if self.net_hw is None:
                raise ValueError("end2end: normalized boxes need the input size in the manifest")
            out[:, 0:4:2] *= np.float32(self.net_hw[1])
            out[:, 1:4:2] *= np.float32(self.net_hw[0])
        out[:, 4] = picked[:, 4]
        out[:, 5] = np.rint(picked[:, 5])
        boxes_to_original(out, geometry)
        return {"boxes": out, "labels": self._names(out[:, 5])}
