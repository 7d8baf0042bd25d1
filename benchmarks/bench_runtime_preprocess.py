"""Pre-processing: edgebench's Preprocessor vs a bare, hand-written cv2 + numpy pipeline, for every
preprocessing preset of the catalog.

Input: a 640x480 photo (already decoded to RGB: decoding is the same ``cv2.imread`` on both sides
and is timed once apart); output: the float32 tensor at the preset's catalog input size. The bare
pipeline is the code one writes by hand for that recipe (resize, crop or ``cv2.copyMakeBorder``,
channel flip, ``astype``, the arithmetic the recipe needs and nothing more, transpose); it skips
no-op steps (a zero mean, a unit std) as a person would. Both run alternately, 1 OpenCV thread,
p50 over many repetitions.

Goal (issue 12): edgebench / bare <= 1.0 on every preset, tensors equal (to float32 rounding: the
bare code orders the arithmetic differently).

Run: .venv/bin/python benchmarks/bench_runtime_preprocess.py [--n 200] [--rounds 5]
"""

import argparse
import dataclasses
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
INTERPOLATION = {
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


def presets():
    """(name, first catalog entry using it) for every preset, plus distinct overrides."""
    catalog = load_catalog()
    seen = {}
    for entry in catalog.entries.values():
        spec = entry.preprocess
        key = (*sorted((k, str(v)) for k, v in spec.items()), entry.input["height"])
        if key not in seen:
            seen[key] = entry
    cases = [(entry.name, entry) for entry in seen.values()]
    # The 2023 thesis's own tiny-YOLOv2 path: letterbox, pixels in 0..255, no normalisation.
    thesis = catalog.get("tiny_yolov2")
    spec = dict(thesis.preprocess, resize="letterbox", scale=1.0, pad_value=114, pad_align="center")
    cases.append(("thesis tiny-YOLOv2 (0..255)", dataclasses.replace(thesis, preprocess=spec)))
    return cases


def bare_pipeline(spec, height, width):
    """A hand-written function for one recipe, in the style of a model's example script."""
    interpolation = INTERPOLATION[spec["interpolation"]]
    mean = np.array(spec["mean"], np.float32)
    std = np.array(spec["std"], np.float32)
    scale = float(spec["scale"])
    bgr = spec["color"] == "BGR"
    normalise = bool(np.any(mean != 0) or np.any(std != 1))
    if bgr:
        mean, std = mean[::-1], std[::-1]

    def run(image):
        h, w = image.shape[:2]
        if spec["resize"] == "shorter":
            ratio = spec["resize_size"] / min(h, w)
            nh, nw = max(round(h * ratio), height), max(round(w * ratio), width)
            image = cv2.resize(image, (nw, nh), interpolation=interpolation)
            top, left = round((nh - height) / 2), round((nw - width) / 2)
            image = image[top : top + height, left : left + width]
        elif spec["resize"] == "letterbox":
            ratio = min(height / h, width / w)
            nh, nw = round(h * ratio), round(w * ratio)
            image = cv2.resize(image, (nw, nh), interpolation=interpolation)
            if spec["pad_align"] == "topleft":
                top, left = 0, 0
            else:
                top, left = (height - nh) // 2, (width - nw) // 2
            pad = spec["pad_value"]
            image = cv2.copyMakeBorder(
                image, top, height - nh - top, left, width - nw - left, cv2.BORDER_CONSTANT, value=(pad,) * 3
            )
        else:
            image = cv2.resize(image, (width, height), interpolation=interpolation)
        if bgr:
            image = image[:, :, ::-1]
        tensor = image.astype(np.float32)
        if scale != 1.0:
            tensor *= np.float32(scale)
        if normalise:
            tensor = (tensor - mean) / std
        return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None])

    return run


def photo(directory):
    from skimage import data

    image = cv2.resize(data.coffee(), (640, 480), interpolation=cv2.INTER_AREA)
    path = str(Path(directory) / "coffee_640x480.jpg")
    cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def timed(function, argument, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        function(argument)
        times.append(time.perf_counter() - t0)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = photo(directory)
        image = decode_image(path)
        decode_ms = statistics.median(timed(decode_image, path, args.n)) * 1e3
    print(
        f"640x480 photo (decoded: cv2.imread + BGR->RGB {decode_ms:.3f} ms) -> float32 tensor, "
        f"1 OpenCV thread, p50 over {args.n * args.rounds} runs each"
    )
    header = ("preset (first model)", "recipe", "input", "edgebench", "bare", "ratio", "max diff", "goal")
    print("{:<30} {:<34} {:>9} {:>10} {:>10} {:>6} {:>9} {:>5}".format(*header))
    misses = 0
    for name, entry in presets():
        spec, height, width = entry.preprocess, entry.input["height"], entry.input["width"]
        pre = Preprocessor(spec, height, width)
        bare = bare_pipeline(spec, height, width)

        def ours(img, pre=pre):
            return pre(img)[0]

        diff = float(np.abs(ours(image) - bare(image)).max())
        ours_t, bare_t = [], []
        for _ in range(args.rounds):
            bare_t += timed(bare, image, args.n)
            ours_t += timed(ours, image, args.n)
        o, b = statistics.median(ours_t) * 1e3, statistics.median(bare_t) * 1e3
        recipe = f"{spec['resize']} {spec['interpolation']} {spec['color']}" + (
            " mean/std" if any(spec["mean"]) or any(v != 1 for v in spec["std"]) else ""
        )
        ok = o / b <= 1.0 and diff <= 1e-5 * max(1.0, float(np.abs(bare(image)).max()))
        misses += not ok
        print(
            f"{name:<30} {recipe:<34} {height:>4}x{width:<4} {o:7.3f} ms {b:7.3f} ms {o / b:6.2f}"
            f" {diff:9.1e} {'ok' if ok else 'MISS':>5}"
        )
    print("all presets within the goal" if not misses else f"{misses} preset(s) miss the goal")


if __name__ == "__main__":
    main()
