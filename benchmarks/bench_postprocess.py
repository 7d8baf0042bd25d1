"""Post-processing: edgebench's vectorised decoders vs straightforward Python-loop decoders.

Side by side in one run, 1 thread (numpy/BLAS and OpenCV), on synthetic raw outputs with a
realistic score distribution (a few objects with clusters of confident cells, every other cell
low, as a trained detector gives):

- YOLOX decode + NMS, 640 input: (1, 8400, 85).            Goal: p50 <= 2 ms, >= 50x the loop.
- YOLOv5 decode + NMS, 640 input: 3 maps, 25200 cells.     Goal: p50 <= 4 ms, >= 50x the loop.
- tiny-YOLOv2 decode + NMS, 416 input: (1, 125, 13, 13).   Goal: p50 <= 1 ms.
- YOLOv8 (Ultralytics anchor-free head) 640: (1, 84, 8400). Goal: p50 <= 2 ms, >= 50x the loop,
  and no slower than the hand-written numpy + cv2.dnn.NMSBoxesBatched code of YOLOv8 examples.
- end2end (YOLOv10-style NMS-free) 640: (1, 300, 6).        Goal: p50 <= 0.2 ms.
- OpenPose (Lightweight, 256 input, 3 people): peaks, limbs, grouping.
- LRASPP at 520: argmax + resize to a 480 x 640 original.

The loop baselines live in ``_loop_baselines.py`` (the thesis's style); they decode the same
tensors with the same formulas and thresholds, and the script checks that they find the same boxes.

Run: .venv/bin/python benchmarks/bench_postprocess.py [--n 300] [--loop-n 3]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _loop_baselines as loops  # noqa: E402
from synthetic import SKELETON, render_people  # noqa: E402

from edgebench_runtime.tasks import Pipeline  # noqa: E402
from edgebench_runtime.tasks.pose import LIMBS, PAF_CHANNELS  # noqa: E402

try:
    import cv2

    cv2.setNumThreads(1)
except ImportError:  # pragma: no cover
    cv2 = None

YOLOV5_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
TINY2_ANCHORS = [1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52]


def manifest(decoder, size, outputs, labels):
    return {
        "inputs": [{"name": "images", "shape": [1, 3, size, size], "dtype": "float32"}],
        "outputs": [{"name": name} for name in outputs],
        "input": {"height": size, "width": size, "layout": "NCHW"},
        "preprocess": {"resize": "stretch"},
        "decoder": decoder,
        "labels": labels,
    }


def geometry(size, orig_h, orig_w):
    return {
        "scale": (size / float(orig_h), size / float(orig_w)),
        "offset": (0.0, 0.0),
        "original": (orig_h, orig_w),
        "resized": (size, size),
    }


def objects(rng, count, size):
    """(cx, cy, w, h, class) of the planted objects, in network pixels."""
    out = []
    for _ in range(count):
        w, h = rng.uniform(30, 260), rng.uniform(30, 300)
        out.append(
            (rng.uniform(w / 2, size - w / 2), rng.uniform(h / 2, size - h / 2), w, h, int(rng.integers(80)))
        )
    return out


def logit(p):
    return np.log(p / (1 - p))


def yolox_output(rng, size=640, strides=(8, 16, 32), count=8):
    rows = []
    planted = objects(rng, count, size)
    for stride in strides:
        n = size // stride
        gy, gx = np.mgrid[0:n, 0:n].astype(np.float32)
        level = np.zeros((n, n, 85), np.float32)
        level[..., 0:2] = rng.normal(0.5, 0.3, (n, n, 2))
        level[..., 2:4] = rng.normal(0.5, 0.5, (n, n, 2))
        level[..., 4] = 1 / (1 + np.exp(-rng.normal(-6, 1.5, (n, n))))
        level[..., 5:] = 1 / (1 + np.exp(-rng.normal(-5, 1.2, (n, n, 80))))
        for cx, cy, w, h, cls in planted:
            # The level whose stride suits the object, cells within its central region (as SimOTA assigns).
            if not (
                stride * 4 <= max(w, h) < stride * 16 or (stride == strides[-1] and max(w, h) >= stride * 16)
            ):
                continue
            inside = (np.abs((gx + 0.5) * stride - cx) < w / 4) & (np.abs((gy + 0.5) * stride - cy) < h / 4)
            k = inside.sum()
            level[inside, 0] = cx / stride - gx[inside] + rng.normal(0, 0.1, k)
            level[inside, 1] = cy / stride - gy[inside] + rng.normal(0, 0.1, k)
            level[inside, 2] = np.log(w / stride) + rng.normal(0, 0.1, k)
            level[inside, 3] = np.log(h / stride) + rng.normal(0, 0.1, k)
            level[inside, 4] = 1 / (1 + np.exp(-rng.normal(1.5, 1.5, k)))
            level[inside, 5 + cls] = rng.uniform(0.4, 0.95, k)
        rows.append(level.reshape(-1, 85))
    return np.concatenate(rows)[None].astype(np.float32)


def yolov5_outputs(rng, size=640, strides=(8, 16, 32), count=8):
    planted = objects(rng, count, size)
    maps = []
    for level, stride in enumerate(strides):
        n = size // stride
        gy, gx = np.mgrid[0:n, 0:n].astype(np.float32)
        m = rng.normal(0, 1, (3, 85, n, n)).astype(np.float32)
        m[:, 4] = rng.normal(-7, 1.5, (3, n, n))
        m[:, 5:] = rng.normal(-5, 1.2, (3, 80, n, n))
        anchors = np.asarray(YOLOV5_ANCHORS[level], np.float32).reshape(3, 2)
        for cx, cy, w, h, cls in planted:
            ratio = np.maximum(w / anchors[:, 0], anchors[:, 0] / w) * np.maximum(
                h / anchors[:, 1], anchors[:, 1] / h
            )
            for a in np.flatnonzero(ratio < 4.0):
                inside = (np.abs(gx + 0.5 - cx / stride) < 1.0) & (np.abs(gy + 0.5 - cy / stride) < 1.0)
                k = inside.sum()
                m[a, 4][inside] = rng.normal(2, 1, k)
                m[a, 5 + cls][inside] = rng.normal(2, 0.7, k)
                m[a, 2][inside] = logit(np.clip(np.sqrt(w / anchors[a, 0]) / 2, 0.05, 0.95))
                m[a, 3][inside] = logit(np.clip(np.sqrt(h / anchors[a, 1]) / 2, 0.05, 0.95))
        maps.append(m.reshape(1, 255, n, n))
    return maps


def yolov8_output(rng, size=640, strides=(8, 16, 32), count=8):
    """(1, 84, N): cx, cy, w, h in pixels and sigmoid class scores, clusters of confident cells on
    the planted objects, every other cell low."""
    planted = objects(rng, count, size)
    columns = []
    for stride in strides:
        n = size // stride
        gy, gx = np.mgrid[0:n, 0:n].astype(np.float32)
        level = np.zeros((84, n, n), np.float32)
        level[0] = (gx + 0.5) * stride
        level[1] = (gy + 0.5) * stride
        level[2:4] = rng.uniform(1, 4, (2, n, n)) * stride
        level[4:] = 1 / (1 + np.exp(-rng.normal(-7, 1.5, (80, n, n))))
        for cx, cy, w, h, cls in planted:
            if not (
                stride * 4 <= max(w, h) < stride * 16 or (stride == strides[-1] and max(w, h) >= stride * 16)
            ):
                continue
            inside = (np.abs((gx + 0.5) * stride - cx) < w / 4) & (np.abs((gy + 0.5) * stride - cy) < h / 4)
            k = inside.sum()
            level[0][inside] = cx + rng.normal(0, 2, k)
            level[1][inside] = cy + rng.normal(0, 2, k)
            level[2][inside] = w * rng.uniform(0.9, 1.1, k)
            level[3][inside] = h * rng.uniform(0.9, 1.1, k)
            level[4 + cls][inside] = rng.uniform(0.3, 0.95, k)
        columns.append(level.reshape(84, -1))
    return np.concatenate(columns, axis=1)[None].astype(np.float32)


def end2end_output(rng, size=640, count=8, k=300):
    rows = np.zeros((1, k, 6), np.float32)
    for i, (cx, cy, w, h, cls) in enumerate(objects(rng, count, size)):
        rows[0, i] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, rng.uniform(0.3, 0.95), cls]
    rows[0, count : count + 40, :4] = rng.uniform(0, size, (40, 4))
    rows[0, count : count + 40, 4] = rng.uniform(0.0, 0.2, 40)  # low-score rows below the threshold
    return rows


def tiny_yolov2_output(rng, count=4):
    m = rng.normal(0, 1, (5, 25, 13, 13)).astype(np.float32)
    m[:, 4] = rng.normal(-4, 1.5, (5, 13, 13))
    for _ in range(count):
        a, y, x, cls = rng.integers(5), rng.integers(13), rng.integers(13), rng.integers(20)
        m[a, 4, y, x] = 3.0
        m[a, 5 + cls, y, x] = 6.0
        m[(a + 1) % 5, 4, y, x] = 1.0
        m[(a + 1) % 5, 5 + cls, y, x] = 5.0
    return m.reshape(1, 125, 13, 13)


def openpose_outputs(rng, size=256, stride=8):
    """Three people on low noise, as a trained network's maps look."""
    people = [SKELETON * 1.2 + np.array(origin, np.float32) for origin in ((50, 60), (128, 90), (206, 70))]
    return render_people(people, size=size, stride=stride, rng=rng)


def lraspp_output(rng, size=520):
    logits = rng.normal(0, 0.5, (1, 21, size, size)).astype(np.float32)
    logits[:, 0] += 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(4):
        cls, cy, cx, r = rng.integers(1, 21), rng.uniform(0, size), rng.uniform(0, size), rng.uniform(40, 150)
        logits[0, cls][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += 4.0
    return logits


def p50(function, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def same_boxes(result, loop_boxes, size):
    """The loop's boxes (network pixels, clipped here) against the decoder's (original = network
    pixels in these cases)."""
    ours = result["boxes"]
    theirs = np.asarray(loop_boxes, np.float32).reshape(-1, 6)
    theirs[:, :4] = theirs[:, :4].clip(0, size)
    if ours.shape != theirs.shape:
        return False
    order_a, order_b = np.lexsort(ours.T[::-1]), np.lexsort(theirs.T[::-1])
    return bool(np.allclose(ours[order_a], theirs[order_b], atol=1e-2, rtol=1e-4))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="repetitions of each vectorised decoder")
    parser.add_argument("--loop-n", type=int, default=3, help="repetitions of each loop baseline")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    coco = [f"c{i}" for i in range(80)]
    rows = []
    numpy_rows = []  # (case, edgebench ms, hand-written numpy + cv2 ms, same boxes)

    yolox = Pipeline(
        manifest(
            {
                "name": "yolox",
                "strides": [8, 16, 32],
                "score_threshold": 0.25,
                "iou_threshold": 0.45,
                "max_detections": 300,
            },
            640,
            ["output"],
            coco,
        )
    )
    out = yolox_output(rng)
    geo = geometry(640, 640, 640)
    result = yolox.postprocess([out], geo)
    candidates = int(((out[0, :, 5:] * out[0, :, 4:5]).max(1) > 0.25).sum())
    agree = same_boxes(result, loops.yolox_loop(out, 640), 640)
    rows.append(
        (
            "YOLOX 640 (8400 cells)",
            f"{candidates} cand, {len(result['boxes'])} boxes",
            p50(lambda: yolox.postprocess([out], geo), args.n),
            p50(lambda: loops.yolox_loop(out, 640), args.loop_n),
            2.0,
            agree,
        )
    )

    yolov5 = Pipeline(
        manifest(
            {
                "name": "yolov5",
                "strides": [8, 16, 32],
                "anchors": YOLOV5_ANCHORS,
                "score_threshold": 0.25,
                "iou_threshold": 0.45,
                "max_detections": 300,
            },
            640,
            ["o0", "o1", "o2"],
            coco,
        )
    )
    maps = yolov5_outputs(rng)
    result = yolov5.postprocess(maps, geo)
    agree = same_boxes(result, loops.yolov5_loop(maps, YOLOV5_ANCHORS), 640)
    rows.append(
        (
            "YOLOv5 640 (25200 cells)",
            f"{len(result['boxes'])} boxes",
            p50(lambda: yolov5.postprocess(maps, geo), args.n),
            p50(lambda: loops.yolov5_loop(maps, YOLOV5_ANCHORS), args.loop_n),
            4.0,
            agree,
        )
    )

    tiny = Pipeline(
        manifest(
            {
                "name": "tiny_yolov2",
                "anchors": TINY2_ANCHORS,
                "stride": 32,
                "score_threshold": 0.25,
                "iou_threshold": 0.45,
            },
            416,
            ["output"],
            [f"v{i}" for i in range(20)],
        )
    )
    out2 = tiny_yolov2_output(rng)
    geo2 = geometry(416, 416, 416)
    result = tiny.postprocess([out2], geo2)
    agree = same_boxes(result, loops.tiny_yolov2_loop(out2, TINY2_ANCHORS), 416)
    rows.append(
        (
            "tiny-YOLOv2 416 (845 boxes)",
            f"{len(result['boxes'])} boxes",
            p50(lambda: tiny.postprocess([out2], geo2), args.n),
            p50(lambda: loops.tiny_yolov2_loop(out2, TINY2_ANCHORS), args.loop_n),
            1.0,
            agree,
        )
    )

    yolov8 = Pipeline(manifest({"name": "yolov8"}, 640, ["output0"], coco))
    out8 = yolov8_output(rng)
    result = yolov8.postprocess([out8], geo)
    agree = same_boxes(result, loops.yolov8_loop(out8), 640)
    ours = p50(lambda: yolov8.postprocess([out8], geo), args.n)
    rows.append(
        (
            "YOLOv8 640 (8400 cells)",
            f"{len(result['boxes'])} boxes",
            ours,
            p50(lambda: loops.yolov8_loop(out8), args.loop_n),
            2.0,
            agree,
        )
    )
    if cv2 is not None:
        agree = same_boxes(result, loops.yolov8_numpy_cv2(out8), 640)
        hand = p50(lambda: loops.yolov8_numpy_cv2(out8), args.n)
        numpy_rows.append(("YOLOv8 640 (8400 cells)", ours, hand, agree))

    end2end = Pipeline(manifest({"name": "end2end"}, 640, ["output0"], coco))
    rows_e2e = end2end_output(rng)
    result = end2end.postprocess([rows_e2e], geo)
    agree = same_boxes(result, loops.end2end_loop(rows_e2e), 640)
    rows.append(
        (
            "end2end 640 (300 rows)",
            f"{len(result['boxes'])} boxes",
            p50(lambda: end2end.postprocess([rows_e2e], geo), args.n),
            p50(lambda: loops.end2end_loop(rows_e2e), args.n),
            0.2,
            agree,
        )
    )

    pose = Pipeline(
        manifest({"name": "openpose_paf", "stride": 8, "upsample_ratio": 4}, 256, ["heatmaps", "pafs"], [])
    )
    heat, pafs = openpose_outputs(rng)
    geo3 = geometry(256, 256, 256)
    result = pose.postprocess([heat, pafs], geo3)
    loop_pose = (
        (lambda: loops.openpose_loop(heat, pafs, LIMBS.tolist(), PAF_CHANNELS.tolist())) if cv2 else None
    )
    rows.append(
        (
            "OpenPose 256 (3 people)",
            f"{len(result['people'])} people",
            p50(lambda: pose.postprocess([heat, pafs], geo3), max(args.n // 3, 10)),
            p50(loop_pose, args.loop_n) if loop_pose else float("nan"),
            None,
            None,
        )
    )

    seg = Pipeline(manifest({"name": "seg_argmax"}, 520, ["out"], [f"s{i}" for i in range(21)]))
    logits = lraspp_output(rng)
    geo4 = geometry(520, 480, 640)
    result = seg.postprocess([logits], geo4)
    agree = bool((loops.seg_argmax_loop(logits, 480, 640) == result["mask"]).mean() > 0.999)
    rows.append(
        (
            "LRASPP 520 -> 480x640",
            f"{len(result['classes'])} classes",
            p50(lambda: seg.postprocess([logits], geo4), max(args.n // 10, 10)),
            p50(lambda: loops.seg_argmax_loop(logits, 480, 640), 1),
            None,
            agree,
        )
    )

    cv2_version = cv2.__version__ if cv2 else "-"
    print(f"post-processing p50, 1 thread, numpy {np.__version__}, cv2 {cv2_version}")
    header = ("case", "result", "edgebench", "python loop", "speed-up", "goal", "same")
    print("{:<28} {:<22} {:>10} {:>12} {:>9} {:>8} {:>6}".format(*header))
    for name, what, ours, theirs, goal, agree in rows:
        verdict = "-" if goal is None else f"{goal:g} ms {'ok' if ours <= goal else 'MISS'}"
        same = "-" if agree is None else str(agree)
        print(
            f"{name:<28} {what:<22} {ours:8.3f} ms {theirs:9.2f} ms {theirs / ours:8.0f}x"
            f" {verdict:>8} {same:>6}"
        )
    for name, ours, hand, agree in numpy_rows:
        ratio = ours / hand
        print(
            f"{name:<28} edgebench {ours:.3f} ms vs hand-written numpy + cv2 {hand:.3f} ms:"
            f" ratio {ratio:.2f} ({'ok' if ratio <= 1.0 else 'SLOWER'}), same boxes {agree}"
        )


if __name__ == "__main__":
    main()
