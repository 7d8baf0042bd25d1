"""Pre-processing: edgebench's decode + Preprocessor vs the bare cv2 + numpy pipeline.

Input: a 640x480 JPEG; output: the 1x3x224x224 float32 tensor of the torchvision ImageNet recipe
(shorter side to 256, centre crop 224, mean/std). The bare pipeline is the shortest correct cv2 +
numpy code for the same tensor. Both run alternately, 1 OpenCV thread, p50 over many repetitions.

Target (issue 3): edgebench <= 1.3x the bare pipeline.

Run: .venv/bin/python benchmarks/bench_runtime_preprocess.py [--n 400]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgebench.catalog import load_catalog
from edgebench_runtime.imaging import Preprocessor, decode_image

cv2.setNumThreads(1)
# The catalog's ImageNet recipe, exactly as the converter writes it into a classifier's manifest.
SPEC = load_catalog().resolve(models=["mobilenet_v3_small"])[0].preprocess
MEAN = np.array(SPEC["mean"], np.float32)
STD = np.array(SPEC["std"], np.float32)


def bare(path):
    image = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    ratio = 256.0 / min(h, w)
    nh, nw = round(h * ratio), round(w * ratio)
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (nh - 224) // 2, (nw - 224) // 2
    crop = image[top : top + 224, left : left + 224].astype(np.float32) / 255.0
    return np.ascontiguousarray(((crop - MEAN) / STD).transpose(2, 0, 1)[None])


def make_jpeg(directory):
    from skimage import data

    image = cv2.resize(data.coffee(), (640, 480), interpolation=cv2.INTER_AREA)
    path = str(Path(directory) / "coffee_640x480.jpg")
    cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def timed(function, path, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        function(path)
        times.append(time.perf_counter() - t0)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pre = Preprocessor(SPEC, 224, 224)

    def edgebench(path):
        return pre(decode_image(path))[0]

    with tempfile.TemporaryDirectory() as directory:
        path = make_jpeg(directory)
        diff = np.abs(edgebench(path) - bare(path)).max()
        bare_t, edge_t = [], []
        for _ in range(args.rounds):
            bare_t += timed(bare, path, args.n)
            edge_t += timed(edgebench, path, args.n)
        image = decode_image(path)
        decode_t = timed(decode_image, path, args.n)
        pre_t = timed(lambda _p: pre(image), path, args.n)
    b, e = statistics.median(bare_t) * 1e3, statistics.median(edge_t) * 1e3
    print(f"640x480 JPEG -> 1x3x224x224 float32, 1 OpenCV thread, p50 over {len(bare_t)} runs each")
    print(f"{'bare cv2 + numpy':<32} {b:8.3f} ms")
    print(
        "{:<32} {:8.3f} ms  (decode {:.3f} + pre {:.3f})".format(
            "edgebench decode + Preprocessor",
            e,
            statistics.median(decode_t) * 1e3,
            statistics.median(pre_t) * 1e3,
        )
    )
    print(
        "ratio edgebench / bare: {:.3f} (target <= 1.3): {}".format(e / b, "PASS" if e / b <= 1.3 else "FAIL")
    )
    print(f"max abs difference of the tensors: {diff:.2e}")


if __name__ == "__main__":
    main()
