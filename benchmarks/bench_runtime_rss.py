"""Memory does not grow with the number of images: peak RSS after 5000 images vs after 500.

Runs ``edgebench-runtime run`` twice on mobilenet_v3_small (random init, exported here) over the
default photos, cycled, and compares the child's peak RSS (``getrusage`` ru_maxrss, reported as
``peak_rss_mb`` in summary.json) and the largest RSS the telemetry sampler saw.

Target (issue 3): peak RSS after 5000 images within 10 % of the peak after 500.

Run: .venv/bin/python benchmarks/bench_runtime_rss.py [--small 500 --large 5000]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgebench_runtime.manifest import sha256_file  # noqa: E402


def record(path):
    return {"sha256": sha256_file(str(path)), "size": path.stat().st_size}


def make_artifacts(root):
    import torch
    import torchvision
    from PIL import Image
    from skimage import data

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(weights=None)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 224, 224))
    model.eval()
    target = root / "mobilenet_v3_small"
    target.mkdir(parents=True)
    torch.onnx.export(
        model,
        torch.randn(1, 3, 224, 224),
        str(target / "model.onnx"),
        dynamo=False,
        opset_version=13,
        input_names=["input"],
        output_names=["logits"],
    )
    manifest = {
        "schema_version": 1,
        "name": "mobilenet_v3_small",
        "artifact": "mobilenet_v3_small",
        "task": "classification",
        "opset": 13,
        "weights": "random-init",
        "files": {"model.onnx": record(target / "model.onnx")},
        "model_file": "model.onnx",
        "int32_file": None,
        "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [1, 1000], "dtype": "float32"}],
        "input": {"height": 224, "width": 224, "layout": "NCHW"},
        "preprocess": {
            "resize": "shorter",
            "resize_size": 256,
            "interpolation": "bilinear",
            "color": "RGB",
            "scale": 1 / 255.0,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "decoder": {"name": "imagenet_topk", "top_k": 5},
        "labels": [f"class_{i}" for i in range(1000)],
        "nms_in_graph": False,
    }
    (target / "manifest.json").write_text(json.dumps(manifest))
    images = root / "images"
    images.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()).save(str(images / (name + ".jpg")), quality=90)


def run(artifacts, output, count):
    command = [
        sys.executable,
        "-m",
        "edgebench_runtime",
        "run",
        "--artifacts",
        str(artifacts),
        "--output",
        str(output),
        "--models",
        "mobilenet_v3_small",
        "--count",
        str(count),
        "--warmup",
        "10",
        "--threads",
        "1",
        "--progress",
        "never",
        "--quiet",
    ]
    subprocess.run(command, check=True, cwd=str(REPO))
    return json.loads((output / "mobilenet_v3_small" / "cpu-warm" / "summary.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        make_artifacts(root / "artifacts")
        small = run(root / "artifacts", root / "small", args.small)
        large = run(root / "artifacts", root / "large", args.large)
    print("peak RSS of the benchmark child, mobilenet_v3_small, CPU, 1 thread")
    print("{:<8} {:>14} {:>20} {:>10}".format("images", "peak RSS MiB", "max sampled RSS MiB", "status"))
    for count, data in ((args.small, small), (args.large, large)):
        print(
            "{:<8d} {:14.1f} {:>20} {:>10}".format(
                count, data["peak_rss_mb"], data["telemetry"]["rss_max_sampled_mb"], data["status"]
            )
        )
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    print(
        "ratio {}/{}: {:.3f} (target within 10 %): {}".format(
            args.large, args.small, ratio, "PASS" if abs(ratio - 1) <= 0.10 else "FAIL"
        )
    )


if __name__ == "__main__":
    main()
