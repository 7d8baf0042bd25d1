"""Accuracy of collected runs (edgebench/run_accuracy.py, dataset_stage.py): a labelled set staged flat
for the devices, each run's predictions.jsonl scored into its summary.json (top-1/top-5, COCO mAP
through pycocotools) with known answers, unavailable when the predictions do not cover the set, and
the figures in the summary rows and the report's device tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic_results import synthetic_env, write_result

from edgebench.accuracy import AccuracyError, LabelledSet, load_labelled
from edgebench.cli import main as cli_main
from edgebench.dataset_stage import device_names, stage_dataset
from edgebench.report.assemble import assemble_report
from edgebench.report.load import load_results
from edgebench.report.render_markdown import render_markdown
from edgebench.results import summary_rows
from edgebench.run_accuracy import score_host
from edgebench_runtime.manifest import verify_artifact
from edgebench_runtime.predictions import PREDICTIONS_FILE


def _class_set(root: Path) -> Path:
    for label, count in (("cat", 3), ("dog", 2)):
        (root / "set" / label).mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", (8, 8), (index, 0, 0)).save(root / "set" / label / f"{index}.png")
    return root / "set"


def _artifact(root: Path, model: str, labels: list[str], decoder: dict, task: str = "classification") -> Path:
    (root / "artifacts" / model).mkdir(parents=True, exist_ok=True)
    manifest = {"schema_version": 1, "name": model, "task": task, "labels": labels, "decoder": decoder,
                "files": {}}  # fmt: skip
    (root / "artifacts" / model / "manifest.json").write_text(json.dumps(manifest))
    return root / "artifacts"


def _run(root: Path, model: str, provider: str, predictions: list[tuple[str, dict]] | None) -> Path:
    run_dir = root / "results" / "r1" / "pi"
    (run_dir).mkdir(parents=True, exist_ok=True)
    (run_dir / "env.json").write_text(json.dumps(synthetic_env("pi")))
    result = run_dir / model / f"{provider}-warm"
    write_result(result, host="pi", model=model, provider=provider, mode="warm", infer_ms=np.full(6, 5.0))
    if predictions is not None:
        lines = [
            json.dumps({"image": name, "from": "measured", "result": data}) for name, data in predictions
        ]
        (result / PREDICTIONS_FILE).write_text("\n".join(lines) + "\n")
    return run_dir


def _top(*labels: str) -> dict:
    return {"top": [{"label": label, "score": 0.5, "index": i} for i, label in enumerate(labels)]}


def test_the_set_is_staged_flat_once_with_a_manifest_devices_verify(tmp_path):
    dataset = _class_set(tmp_path)
    staged = stage_dataset(dataset, tmp_path / "artifacts" / "datasets")
    assert staged.copied and staged.images == 5 and staged.kind == "classes"
    assert staged.name.startswith("set-") and len(staged.name) == len("set-") + 12
    files = sorted(p.name for p in staged.path.iterdir())
    assert files == ["cat--0.png", "cat--1.png", "cat--2.png", "dog--0.png", "dog--1.png", "manifest.json"]
    manifest = verify_artifact(str(staged.path))
    assert manifest["images"]["dog--1.png"] == {"source": "dog/1.png", "class": "dog"}
    assert not stage_dataset(dataset, tmp_path / "artifacts" / "datasets").copied
    Image.new("RGB", (8, 8), (9, 9, 9)).save(dataset / "dog" / "2.png")  # a changed set: a new folder
    assert stage_dataset(dataset, tmp_path / "artifacts" / "datasets").name != staged.name


def test_a_set_the_devices_cannot_measure_is_refused_with_what_to_do(tmp_path, capsys):
    dataset = _class_set(tmp_path)
    Image.new("RGB", (8, 8)).save(dataset / "cat" / "x.webp")
    with pytest.raises(
        AccuracyError, match=r"1 images of .* are of a kind the devices do not read.*JPEG or PNG"
    ):
        stage_dataset(dataset, tmp_path / "staged")
    with pytest.raises(AccuracyError, match="relative path: give the labelled set's absolute path"):
        stage_dataset(Path("set"), tmp_path / "staged")
    assert cli_main(["accuracy-check", str(tmp_path / "none"), "--stage-into", str(tmp_path / "staged")]) == 0
    answer = json.loads(capsys.readouterr().out)[str(tmp_path / "none")]
    assert answer["name"] is None and "is not a directory of labelled images" in answer["problem"]
    # Before any device is touched: class folders that match none of a classifier's labels; a
    # detector's labels are not the class folders' business.
    (dataset / "cat" / "x.webp").unlink()
    artifacts = _artifact(tmp_path, "m", ["kitten", "dog"], {"name": "imagenet_topk"})
    _artifact(tmp_path, "det", ["person"], {"name": "yolov8"}, task="detection")
    argv = ["accuracy-check", str(dataset), "--stage-into", str(tmp_path / "staged"),
            "--artifacts", str(artifacts), "--models", "m,det,not_converted"]  # fmt: skip
    assert cli_main(argv) == 0
    answer = json.loads(capsys.readouterr().out)[str(dataset)]
    assert answer["name"].startswith("set-") and answer["images"] == 5
    assert answer["problem"] == (
        "m: 1 class folders are not among the model's labels, e.g. 'cat'; name them as the model's labels"
    )


def test_flat_names_stay_unique():
    data = LabelledSet("coco", [Path("/s/a--b/c.png"), Path("/s/a/b--c.png"), Path("/s/a/b/c.png")])
    assert device_names(data, Path("/s")) == ["a--b--c.png", "a--b--c-2.png", "a--b--c-3.png"]


def test_classification_runs_are_scored_per_provider(tmp_path):
    dataset = _class_set(tmp_path)
    artifacts = _artifact(tmp_path, "m", ["cat", "dog", "fox"], {"name": "imagenet_topk"})
    predictions = [
        ("cat--0.png", _top("cat", "dog")),
        ("cat--1.png", _top("dog", "cat")),  # wrong at top-1, right at top-2
        ("cat--2.png", _top("cat", "fox")),
        ("dog--0.png", _top("dog", "cat")),
        ("dog--1.png", _top("fox", "cat", "cat", "cat", "cat", "dog")),  # dog only 6th
    ]
    run_dir = _run(tmp_path, "m", "cpu", predictions)
    _run(tmp_path, "m", "cuda", predictions[:4])  # incomplete: no figure over part of the set
    lines = score_host(run_dir, dataset, artifacts)
    assert lines == [
        "accuracy: m cpu-warm: top-1 0.600, top-5 0.800 (5 images)",
        "accuracy: m cuda-warm: unavailable: predictions for 4 of 5 images, e.g. none for 'dog--1.png' "
        "(measure at least as many images as the set holds (edgebench_image_count))",
    ]
    block = json.loads((run_dir / "m" / "cpu-warm" / "summary.json").read_text())["accuracy"]
    assert block == {"status": "computed", "dataset": str(dataset), "images": 5, "task": "classification",
                     "top1": 0.6, "top5": 0.8}  # fmt: skip
    rows = {r["provider"]: r for r in summary_rows(tmp_path / "results" / "r1")}
    assert rows["cpu"]["top1"] == 0.6 and rows["cpu"]["accuracy"] == "computed"
    assert rows["cuda"]["accuracy"] == "unavailable" and rows["cuda"]["top1"] is None
    report = assemble_report(load_results(tmp_path / "results" / "r1"), history=False)
    cpu = next(d for d in report.devices if d.provider == "cpu")
    assert "top1" in cpu.shown_columns and cpu.table["top1"].iloc[0] == 0.6
    markdown = render_markdown(report)
    assert "| fps | top1 | top5 |" in markdown  # beside the speed
    assert "accuracy unavailable: pi m cuda-warm: predictions for 4 of 5 images" in markdown


def test_predictions_of_another_set_or_no_predictions_are_unavailable(tmp_path):
    dataset = _class_set(tmp_path)
    artifacts = _artifact(tmp_path, "m", ["cat", "dog"], {"name": "imagenet_topk"})
    run_dir = _run(tmp_path, "m", "cpu", [("owl--0.png", _top("cat"))])
    _run(tmp_path, "m", "cuda", None)
    lines = score_host(run_dir, dataset, artifacts)
    assert "1 predicted images are not in the labelled set, e.g. 'owl--0.png'" in lines[0]
    assert lines[1] == "accuracy: m cuda-warm: unavailable: the run recorded no predictions.jsonl"
    _artifact(tmp_path, "m", ["kitten", "dog"], {"name": "imagenet_topk"})
    assert (
        "1 class folders are not among the model's labels, e.g. 'cat'"
        in score_host(run_dir, dataset, artifacts)[0]
    )


def test_detection_runs_get_coco_map_from_pycocotools(tmp_path):
    (tmp_path / "coco").mkdir()
    Image.new("RGB", (400, 200)).save(tmp_path / "coco" / "a.png")
    truth = {
        "images": [{"id": 7, "file_name": "a.png", "width": 400, "height": 200}],
        "annotations": [
            {"image_id": 7, "category_id": 3, "bbox": [50, 50, 100, 100]},
            {"image_id": 7, "category_id": 5, "bbox": [200, 60, 100, 100]},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
    }
    (tmp_path / "coco" / "annotations.json").write_text(json.dumps(truth))
    artifacts = _artifact(tmp_path, "det", ["cat", "dog"], {"name": "end2end", "score_threshold": 0.25})
    boxes = {"boxes": [
        {"label": "cat", "score": 0.9, "box": [50, 50, 150, 150]},  # exactly the cat
        {"label": "dog", "score": 0.8, "box": [200, 40, 300, 140]},  # IoU 0.667 with the dog
        {"label": "cat", "score": 0.7, "box": [320, 100, 380, 180]},  # a cat where there is none
    ]}  # fmt: skip
    run_dir = _run(tmp_path, "det", "cpu", [("a.png", boxes)])
    assert score_host(run_dir, tmp_path / "coco", artifacts) == [
        "accuracy: det cpu-warm: mAP 0.700, AP50 1.000, AP75 0.500 (1 images)"
    ]
    block = json.loads((run_dir / "det" / "cpu-warm" / "summary.json").read_text())["accuracy"]
    # Per category, averaged: cat AP 1 at every IoU; dog matched at IoU 0.50..0.65, 4 of 10.
    assert block["map"] == pytest.approx(0.7) and block["map50"] == 1.0 and block["map75"] == 0.5
    assert block["detections"] == 3 and block["score_threshold"] == 0.25
    assert load_labelled(tmp_path / "coco").kind == "coco"
