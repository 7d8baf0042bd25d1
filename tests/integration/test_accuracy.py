"""`edgebench accuracy`: top-1/top-5 of a real pretrained classifier on a labelled set whose labels
are known by construction (rendered text lines, upright or turned 180 degrees, for PaddleOCR's
text-line orientation classifier), and COCO mAP through pycocotools for a detector whose outputs
are known, so that the mAP is known too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageDraw, ImageFont
from test_convert_onnx_models import ORIENTATION_ONNX, catalog_for, entry
from tiny_models import export_onnx

from edgebench.cli import main as cli_main

pytestmark = pytest.mark.slow
WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "edge", "bench", "jetson", "tensor")
needs_orientation = pytest.mark.skipif(
    ORIENTATION_ONNX is None, reason="needs the real model: pip install --no-deps rapidocr==3.10.0"
)


def orientation_set(root: Path, per_class: int) -> Path:
    """Rendered text lines, upright in ``0/`` and the same lines turned 180 degrees in ``180/``:
    labels known by construction for PaddleOCR's text-line orientation classifier."""
    rng = np.random.default_rng(0)
    for label in ("0", "180"):
        (root / "lines" / label).mkdir(parents=True)
    for index in range(per_class):
        text = " ".join(rng.choice(WORDS, 3))
        line = Image.new("RGB", (320, 48), (255, 255, 255))
        ImageDraw.Draw(line).text(
            (6, 6), text, fill=(0, 0, 0), font=ImageFont.load_default(size=int(rng.integers(22, 34)))
        )
        line.save(root / "lines" / "0" / f"{index}.png")
        line.rotate(180).save(root / "lines" / "180" / f"{index}.png")
    return root / "lines"


def convert_orientation(root: Path) -> Path:
    """The real classifier converted as ``orient`` into ``root/artifacts``."""
    stretch = {"resize": "stretch", "color": "BGR", "scale": 1 / 255, "mean": [0.5] * 3, "std": [0.5] * 3}
    decoder = {"name": "imagenet_topk", "top_k": 2, "softmax": False}
    catalog = catalog_for(
        root, entry("orient", ORIENTATION_ONNX, 48, 192, decoder, ["0", "180"], "classification", stretch)
    )
    artifacts = root / "artifacts"
    argv = ["--catalog", str(catalog), "convert", "--models", "orient", "--artifacts", str(artifacts)]
    assert cli_main(argv) == 0
    return artifacts


@needs_orientation
def test_top1_of_a_real_classifier_on_labels_known_by_construction(tmp_path, capsys):
    orientation_set(tmp_path, 30)
    artifacts = str(convert_orientation(tmp_path))
    capsys.readouterr()
    assert cli_main(["accuracy", "orient", str(tmp_path / "lines"), "--artifacts", artifacts, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "classification" and report["images"] == 60
    assert report["top1"] >= 0.9  # 79 of 80 when tried; chance is 0.5
    assert report["top5"] == 1.0  # two classes: always within the top two
    # A folder named unlike every label is refused with the closest one.
    (tmp_path / "lines" / "18O").mkdir()
    Image.new("RGB", (64, 16)).save(tmp_path / "lines" / "18O" / "x.png")
    assert cli_main(["accuracy", "orient", str(tmp_path / "lines"), "--artifacts", artifacts]) == 2
    assert "'18O' (did you mean '180'?)" in capsys.readouterr().err


@needs_orientation
def test_accuracy_beside_speed_from_a_real_runtime_run(tmp_path, capsys):
    """A real ``edgebench-runtime run --plan`` with predictions on, over the staged labelled set,
    then the collect phase's scoring: the run's top-1 is what ``edgebench accuracy`` computes for
    the same model and set (the same pipeline and the same scoring)."""
    from edgebench.dataset_stage import stage_dataset

    lines = orientation_set(tmp_path, 10)
    artifacts = convert_orientation(tmp_path)
    staged = stage_dataset(lines, artifacts / "datasets")
    plan = {
        "schema_version": 1, "run_id": "acc", "models": ["orient"], "providers": ["cpu"], "modes": ["warm"],
        "images": {"source": str(staged.path), "count": 20, "warmup": 2}, "predictions": True,
        "validity": {"min_duration_s": 0, "max_images": 20}, "threads": 1, "timeout_s": 300,
        "cooldown": "none", "reboot_policy": "never",
        "tensorrt": {"workspace_mb": 256, "calibration_images": None},
        "paths": {"artifacts": str(artifacts), "output": str(tmp_path / "device" / "host")},
    }  # fmt: skip
    (tmp_path / "plan-acc.json").write_text(json.dumps(plan))
    run = subprocess.run(
        [sys.executable, "-m", "edgebench_runtime", "run", "--plan", str(tmp_path / "plan-acc.json"),
         "--progress", "never"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    device_run = tmp_path / "device" / "host" / "orient" / "cpu-warm"
    records = [json.loads(line) for line in (device_run / "predictions.jsonl").read_text().splitlines()]
    # 20 images: the last 2 of the sorted set kept apart for the 2 warm-up inferences, the other
    # 18 measured and cycled to 20 rows; each image recorded once.
    assert len(records) == 20 and len({r["image"] for r in records}) == 20
    assert sum(r["from"] == "warmup" for r in records) == 2
    assert json.loads((device_run / "summary.json").read_text()).get("accuracy") is None

    collect = ["collect-check", str(tmp_path / "device"), "--run-dir", str(tmp_path / "results"),
               "--host", "host", "--accuracy-dataset", str(lines), "--artifacts", str(artifacts)]  # fmt: skip
    capsys.readouterr()
    assert cli_main(collect) == 0
    assert "accuracy: orient cpu-warm: top-1" in capsys.readouterr().out
    summary_path = tmp_path / "results" / "host" / "orient" / "cpu-warm" / "summary.json"
    block = json.loads(summary_path.read_text())["accuracy"]
    assert block["status"] == "computed" and block["images"] == 20
    assert cli_main(["accuracy", "orient", str(lines), "--artifacts", str(artifacts), "--json"]) == 0
    controller = json.loads(capsys.readouterr().out)
    assert controller["images"] == 20 and block["top1"] == controller["top1"] >= 0.9
    assert block["top5"] == controller["top5"] == 1.0
    # A later collect replaces the run with the device's copy, which has no figures: they are
    # scored again, not lost.
    assert cli_main(collect) == 0
    assert json.loads(summary_path.read_text())["accuracy"] == block


class FixedRows(torch.nn.Module):
    """Always the same three end2end rows (network pixels of a 320 x 320 letterbox)."""

    def __init__(self, rows):
        super().__init__()
        self.register_buffer("rows", torch.tensor([rows], dtype=torch.float32))

    def forward(self, images):
        return self.rows + images.mean() * 0


def test_coco_map_through_pycocotools_with_known_answers(tmp_path, capsys):
    # A 200 x 400 photo letterboxes into 320 x 320 at ratio 0.8 with 80 rows of padding above:
    # network (x, y) = (0.8 x, 0.8 y + 80).
    def net(x1, y1, x2, y2):
        return [0.8 * x1, 0.8 * y1 + 80, 0.8 * x2, 0.8 * y2 + 80]

    rows = [
        [*net(50, 50, 150, 150), 0.9, 0],  # exactly the cat
        [*net(200, 40, 300, 140), 0.8, 1],  # the dog box, shifted: IoU 0.667 with the truth
        [*net(320, 100, 380, 180), 0.7, 0],  # a cat where there is none
    ]
    path = export_onnx(FixedRows(rows), (320, 320), tmp_path / "fixed.onnx", ["output0"])
    (tmp_path / "coco").mkdir()
    Image.new("RGB", (400, 200), (90, 120, 60)).save(tmp_path / "coco" / "a.png")
    truth = {
        "images": [{"id": 7, "file_name": "a.png", "width": 400, "height": 200}],
        "annotations": [
            {"image_id": 7, "category_id": 3, "bbox": [50, 50, 100, 100]},
            {"image_id": 7, "category_id": 5, "bbox": [200, 60, 100, 100]},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
    }
    (tmp_path / "coco" / "annotations.json").write_text(json.dumps(truth))
    preprocess = {"resize": "letterbox", "pad_value": 114, "pad_align": "center", "scale": 1 / 255}
    catalog = catalog_for(
        tmp_path, entry("fixed", path, 320, 320, {"name": "end2end"}, ["cat", "dog"], "detection", preprocess)
    )
    artifacts = str(tmp_path / "artifacts")
    assert (
        cli_main(["--catalog", str(catalog), "convert", "--models", "fixed", "--artifacts", artifacts]) == 0
    )
    capsys.readouterr()
    argv = ["accuracy", "fixed", str(tmp_path / "coco"), "--artifacts", artifacts, "--json"]
    assert cli_main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "detection" and report["detections"] == 3
    # Per class (COCO averages over categories): cat AP 1.0 at every IoU (its false positive scores
    # below the true one); dog matched at IoU 0.50..0.65 only: AP 1.0 at 4 of 10 thresholds.
    assert report["map50"] == 1.0
    assert report["map75"] == pytest.approx(0.5)
    assert report["map"] == pytest.approx((1.0 + 0.4) / 2)
    truth["categories"][1]["name"] = "hound"
    (tmp_path / "coco" / "annotations.json").write_text(json.dumps(truth))
    assert cli_main(argv) == 2
    assert "1 categories are not among the model's labels, e.g. 'hound'" in capsys.readouterr().err
    assert yaml.safe_load(catalog.read_text())["models"][0]["name"] == "fixed"


def test_not_a_dataset_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    from edgebench.accuracy import AccuracyError, load_labelled

    with pytest.raises(AccuracyError, match=r"neither annotations.json .COCO-style. nor class folders"):
        load_labelled(tmp_path / "empty")
    with pytest.raises(AccuracyError, match="is not a directory"):
        load_labelled(tmp_path / "missing")
    assert Path(tmp_path).is_dir()
