"""Straightforward per-cell / per-pixel Python-loop post-processing, in the style of the 2023 thesis
scripts: the baseline that bench_postprocess.py compares edgebench's vectorised decoders against.

Each function decodes the same tensors as the matching edgebench decoder (same formulas and
thresholds, boxes in network pixels, greedy NMS written as a double loop), so that the comparison
is of the implementation style only.
"""

import math

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def nms_loop(detections, iou_threshold, max_detections=300):
    """detections: list of [x1, y1, x2, y2, score, class]."""
    detections = sorted(detections, key=lambda d: -d[4])
    kept = []
    for det in detections:
        if all(k[5] != det[5] or _iou(k, det) <= iou_threshold for k in kept):
            kept.append(det)
            if len(kept) == max_detections:
                break
    return kept


def yolox_loop(output, input_size, strides=(8, 16, 32), score_threshold=0.25, iou_threshold=0.45):
    rows = output[0].tolist()
    detections = []
    index = 0
    for stride in strides:
        for gy in range(input_size // stride):
            for gx in range(input_size // stride):
                row = rows[index]
                index += 1
                best, best_class = 0.0, -1
                for c in range(len(row) - 5):
                    score = row[4] * row[5 + c]
                    if score > best:
                        best, best_class = score, c
                if best > score_threshold:
                    cx, cy = (row[0] + gx) * stride, (row[1] + gy) * stride
                    w, h = math.exp(row[2]) * stride, math.exp(row[3]) * stride
                    detections.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, best, best_class])
    return nms_loop(detections, iou_threshold)


def yolov5_loop(maps, anchors, strides=(8, 16, 32), score_threshold=0.25, iou_threshold=0.45):
    detections = []
    for level, output in enumerate(maps):
        _, channels, height, width = output.shape
        na = len(anchors[level]) // 2
        no = channels // na
        grid = output[0].tolist()
        stride = strides[level]
        for a in range(na):
            aw, ah = anchors[level][2 * a], anchors[level][2 * a + 1]
            for gy in range(height):
                for gx in range(width):
                    obj = _sigmoid(grid[a * no + 4][gy][gx])
                    if obj <= score_threshold:
                        continue
                    best, best_class = 0.0, -1
                    for c in range(no - 5):
                        score = obj * _sigmoid(grid[a * no + 5 + c][gy][gx])
                        if score > best:
                            best, best_class = score, c
                    if best <= score_threshold:
                        continue
                    tx, ty, tw, th = (_sigmoid(grid[a * no + k][gy][gx]) for k in range(4))
                    cx, cy = (2 * tx - 0.5 + gx) * stride, (2 * ty - 0.5 + gy) * stride
                    w, h = (2 * tw) ** 2 * aw, (2 * th) ** 2 * ah
                    detections.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, best, best_class])
    return nms_loop(detections, iou_threshold)


def tiny_yolov2_loop(output, anchors, stride=32, score_threshold=0.25, iou_threshold=0.45, classes=20):
    grid = output[0].tolist()
    height, width = output.shape[2:]
    na = len(anchors) // 2
    no = 5 + classes
    detections = []
    for gy in range(height):
        for gx in range(width):
            for a in range(na):
                obj = _sigmoid(grid[a * no + 4][gy][gx])
                logits = [grid[a * no + 5 + c][gy][gx] for c in range(classes)]
                top = max(logits)
                exps = [math.exp(v - top) for v in logits]
                total = sum(exps)
                best, best_class = 0.0, -1
                for c in range(classes):
                    score = obj * exps[c] / total
                    if score > best:
                        best, best_class = score, c
                if best <= score_threshold:
                    continue
                cx = (_sigmoid(grid[a * no][gy][gx]) + gx) * stride
                cy = (_sigmoid(grid[a * no + 1][gy][gx]) + gy) * stride
                w = math.exp(grid[a * no + 2][gy][gx]) * anchors[2 * a] * stride
                h = math.exp(grid[a * no + 3][gy][gx]) * anchors[2 * a + 1] * stride
                detections.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, best, best_class])
    return nms_loop(detections, iou_threshold)


def openpose_loop(
    heatmaps,
    pafs,
    limbs,
    paf_channels,
    ratio=4,
    threshold=0.1,
    radius=6.0,
    points=10,
    paf_min=0.05,
    success=0.8,
):
    """Per-pixel peak search and per-pair limb scoring; returns the candidate connections per limb
    (the grouping that follows is the same small greedy loop in both implementations)."""
    import cv2

    up = cv2.resize(
        heatmaps[0, :18].transpose(1, 2, 0), None, fx=ratio, fy=ratio, interpolation=cv2.INTER_CUBIC
    ).transpose(2, 0, 1)
    peaks = []
    for k in range(18):
        plane = up[k].tolist()
        height, width = len(plane), len(plane[0])
        found = []
        for y in range(height):
            for x in range(width):
                v = plane[y][x]
                if v <= threshold:
                    continue
                if (x > 0 and plane[y][x - 1] >= v) or (x + 1 < width and plane[y][x + 1] > v):
                    continue
                if (y > 0 and plane[y - 1][x] >= v) or (y + 1 < height and plane[y + 1][x] > v):
                    continue
                found.append((x, y, v))
        found.sort(key=lambda p: -p[2])
        kept = []
        for p in found:
            if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 > radius**2 for q in kept):
                kept.append(p)
        peaks.append([((x + 0.5) / ratio - 0.5, (y + 0.5) / ratio - 0.5, v) for x, y, v in kept])
    field = pafs[0].tolist()
    h, w = len(field[0]), len(field[0][0])
    connections = []
    for (a, b), (cx, cy) in zip(limbs, paf_channels):  # noqa: B905
        for pa in peaks[a]:
            for pb in peaks[b]:
                dx, dy = pb[0] - pa[0], pb[1] - pa[1]
                norm = math.hypot(dx, dy)
                if norm < 1e-6:
                    continue
                passed, total = 0, 0.0
                for i in range(points):
                    t = i / (points - 1.0)
                    sx = min(max(round(pa[0] + dx * t), 0), w - 1)
                    sy = min(max(round(pa[1] + dy * t), 0), h - 1)
                    dot = (field[cx][sy][sx] * dx + field[cy][sy][sx] * dy) / norm
                    if dot > paf_min:
                        passed += 1
                        total += dot
                if passed > success * points and total > 0:
                    connections.append((a, b, pa, pb, total / passed))
    return peaks, connections


def seg_argmax_loop(logits, orig_h, orig_w):
    """Per-pixel argmax, then a per-pixel nearest resize to the original size."""
    classes, height, width = logits.shape[1:]
    planes = logits[0].tolist()
    mask = [[0] * width for _ in range(height)]
    for y in range(height):
        for x in range(width):
            best, best_class = planes[0][y][x], 0
            for c in range(1, classes):
                v = planes[c][y][x]
                if v > best:
                    best, best_class = v, c
            mask[y][x] = best_class
    out = np.zeros((orig_h, orig_w), np.uint8)
    for y in range(orig_h):
        sy = min(int((y + 0.5) * height / orig_h), height - 1)
        row = mask[sy]
        for x in range(orig_w):
            out[y, x] = row[min(int((x + 0.5) * width / orig_w), width - 1)]
    return out


def yolov8_loop(output, score_threshold=0.25, iou_threshold=0.7):
    """Ultralytics detect head (1, 4 + C, N): per cell the best class, boxes already in pixels."""
    rows = output[0].T.tolist()
    detections = []
    for row in rows:
        best, best_class = 0.0, -1
        for c, score in enumerate(row[4:]):
            if score > best:
                best, best_class = score, c
        if best > score_threshold:
            cx, cy, w, h = row[:4]
            detections.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, best, best_class])
    return nms_loop(detections, iou_threshold)


def yolov8_numpy_cv2(output, score_threshold=0.25, iou_threshold=0.7):
    """What a YOLOv8 ONNX example script does by hand: transpose, max over classes, threshold,
    corners, OpenCV's batched NMS."""
    import cv2

    pred = np.squeeze(output).T
    scores = pred[:, 4:].max(axis=1)
    keep = scores > score_threshold
    pred, scores = pred[keep], scores[keep]
    classes = pred[:, 4:].argmax(axis=1)
    xywh = pred[:, :4].copy()
    xywh[:, :2] -= xywh[:, 2:] / 2
    picked = np.asarray(
        cv2.dnn.NMSBoxesBatched(xywh, scores, classes.astype(np.int32), score_threshold, iou_threshold)
    ).reshape(-1)
    boxes = xywh[picked]
    boxes[:, 2:] += boxes[:, :2]
    return np.concatenate([boxes, scores[picked, None], classes[picked, None]], axis=1).tolist()


def end2end_loop(output, score_threshold=0.25):
    """[1, K, 6] rows x1, y1, x2, y2, score, class: keep those above the threshold, by score."""
    kept = [row[:6] for row in output[0].tolist() if row[4] > score_threshold]
    return sorted(kept, key=lambda row: -row[4])
