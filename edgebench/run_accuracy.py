"""Accuracy beside speed: each collected run's predictions.jsonl scored against the labelled set the
run measured (``edgebench_accuracy_dataset``), written as the ``accuracy`` block of the controller's
copy of its summary.json.

The collect phase calls it after every merge (``edgebench collect-check --accuracy-dataset``): the
devices' summaries never hold the block, so a fetched copy that replaces the controller's would
lose it, and computing it again from the files each time keeps it true to the rows kept. Scoring is
``accuracy.score``, the same as ``edgebench accuracy`` (top-1/top-5; COCO mAP through
pycocotools). A run whose predictions do not cover every image of the set gets
``{"status": "unavailable", "reason": ...}``, never a figure over part of the set.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgebench.accuracy import AccuracyError, LabelledSet, label_mapping, load_labelled, score
from edgebench.dataset_stage import device_names
from edgebench.results import run_records
from edgebench_runtime.predictions import PREDICTIONS_FILE, read_predictions
from edgebench_runtime.results import atomic_write_json

__all__ = ["accuracy_of_run", "describe", "score_host"]


def _unavailable(dataset: Path, reason: str) -> dict:
    return {"status": "unavailable", "dataset": str(dataset), "reason": reason}


def _labels_of(artifacts_dir: Path, model: str) -> tuple[list[str] | None, dict, str | None]:
    """The model's labels and its decoder (from the controller's artifact), or a reason why not."""
    path = Path(artifacts_dir) / model / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, {}, f"the model's manifest {path} cannot be read ({exc}): its labels are needed"
    labels = list(manifest.get("labels") or [])
    if not labels:
        return None, {}, f"{model} has no labels: accuracy needs label names to compare with"
    return labels, manifest.get("decoder") or {}, None


def accuracy_of_run(
    run_dir: Path,
    data: LabelledSet,
    names: list[str],
    labels: list[str],
    dataset: Path,
    summary: dict | None = None,
    decoder: dict | None = None,
) -> dict:
    """The ``accuracy`` block of one run directory: its predictions.jsonl (device file names,
    ``names`` in the set's order) scored against ``data``."""
    path = Path(run_dir) / PREDICTIONS_FILE
    status = (summary or {}).get("status")
    if not path.is_file():
        why = f" (the run is {status}: {(summary or {}).get('reason')})" if status != "complete" else ""
        return _unavailable(dataset, f"the run recorded no {PREDICTIONS_FILE}{why}")
    index_of = {name: index for index, name in enumerate(names)}
    predicted, foreign = {}, []
    for record in read_predictions(str(path)):
        index = index_of.get(str(record["image"]))
        if index is None:
            foreign.append(str(record["image"]))
        else:
            predicted[index] = record.get("result") or {}
    if foreign:
        return _unavailable(
            dataset,
            f"{len(foreign)} predicted images are not in the labelled set, e.g. {foreign[0]!r}: "
            "the set changed since the run; run it again on this set",
        )
    missing = [name for name in names if index_of[name] not in predicted]
    if missing:
        unreadable = set(((summary or {}).get("images") or {}).get("unreadable_files") or [])
        hint = (
            "they could not be decoded"
            if unreadable and set(missing) <= unreadable
            else f"the run is {status}"
            if status != "complete"
            else "measure at least as many images as the set holds (edgebench_image_count)"
        )
        return _unavailable(
            dataset,
            f"predictions for {len(predicted)} of {len(names)} images, e.g. none for {missing[0]!r} ({hint})",
        )
    try:
        figures = score(data, labels, predicted)
    except AccuracyError as exc:
        return _unavailable(dataset, str(exc))
    block = {"status": "computed", "dataset": str(dataset), "images": len(predicted), **figures}
    if figures["task"] == "detection":
        block["score_threshold"] = (decoder or {}).get("score_threshold")
    return block


def score_host(host_dir: Path, dataset: Path, artifacts_dir: Path) -> list[str]:
    """Write the ``accuracy`` block into every run's summary.json under ``host_dir``; one line per
    run saying what it holds."""
    dataset = Path(dataset).expanduser()
    try:
        data = load_labelled(dataset)
        names = device_names(data, dataset)
        problem = None
    except AccuracyError as exc:
        data, names, problem = None, [], f"the labelled set cannot be read: {exc}"
    lines = []
    for record in run_records(host_dir):
        if record.summary is None:
            continue  # the tree's check names the missing or unreadable summary
        labels, decoder, why = _labels_of(artifacts_dir, record.model)
        if problem or why:
            block = _unavailable(dataset, problem or why)
        else:
            try:
                label_mapping(data, labels)
            except AccuracyError as exc:
                block = _unavailable(dataset, str(exc))
            else:
                block = accuracy_of_run(record.path, data, names, labels, dataset, record.summary, decoder)
        atomic_write_json(str(record.path / "summary.json"), {**record.summary, "accuracy": block})
        lines.append(f"accuracy: {record.model} {record.provider}-{record.mode}: {describe(block)}")
    return lines


def describe(block: dict) -> str:
    """One line for an accuracy block: ``top-1 0.950, top-5 1.000 (60 images)``, ``mAP 0.412, AP50
    0.630 (...)``, or ``unavailable: <reason>``."""
    if block.get("status") != "computed":
        return f"unavailable: {block.get('reason')}"
    if block.get("task") == "classification":
        return f"top-1 {block['top1']:.3f}, top-5 {block['top5']:.3f} ({block['images']} images)"
    return (
        f"mAP {block['map']:.3f}, AP50 {block['map50']:.3f}, AP75 {block['map75']:.3f} "
        f"({block['images']} images)"
    )
