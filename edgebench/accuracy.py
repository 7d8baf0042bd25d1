"""Accuracy of an artifact on labelled data the user supplies, through the device's own pipeline
(imaging, ONNX Runtime on the CPU, the manifest's decoder) on the controller.

Two dataset layouts:

- class per folder: ``DATASET/<class name>/*.jpg|png|...``; the folder names are the model's
  label names. Gives top-1 and top-5 accuracy.
- COCO-style detection: ``DATASET/annotations.json`` (or ``--annotations FILE``) with ``images``
  (``id``, ``file_name``), ``annotations`` (``image_id``, ``category_id``, ``bbox`` x, y, w, h)
  and ``categories`` (``id``, ``name``); image files relative to DATASET. Category names are matched
  to the model's labels. mAP comes from pycocotools' COCOeval (AP at IoU 0.50:0.95, 0.50, 0.75).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.predict import PredictError

__all__ = [
    "IMAGE_SUFFIXES",
    "AccuracyError",
    "LabelledSet",
    "coco_map",
    "evaluate",
    "label_mapping",
    "load_labelled",
    "score",
    "topk_accuracy",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class AccuracyError(ValueError):
    """The dataset cannot be read, or its labels do not match the model's."""


@dataclass
class LabelledSet:
    kind: str  # "classes" | "coco"
    images: list[Path]
    classes: list[str] = field(default_factory=list)  # per image, for "classes"
    coco: dict | None = None  # the annotation file, for "coco"
    image_ids: list[int] = field(default_factory=list)  # per image, for "coco"


def load_labelled(dataset: Path, annotations: Path | None = None) -> LabelledSet:
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise AccuracyError(f"{dataset} is not a directory of labelled images")
    annotations = annotations or (dataset / "annotations.json")
    if annotations.is_file():
        try:
            coco = json.loads(annotations.read_text())
            images = [dataset / item["file_name"] for item in coco["images"]]
            ids = [int(item["id"]) for item in coco["images"]]
            if not isinstance(coco["annotations"], list) or not isinstance(coco["categories"], list):
                raise TypeError("annotations and categories must be lists")
        except (ValueError, KeyError, TypeError) as exc:
            raise AccuracyError(f"{annotations} is not COCO-style detection JSON: {exc!r}") from exc
        missing = [str(path) for path in images if not path.is_file()]
        if missing:
            raise AccuracyError(f"{len(missing)} images of {annotations} are missing, e.g. {missing[0]}")
        return LabelledSet("coco", images, coco=coco, image_ids=ids)
    images, classes = [], []
    for folder in sorted(path for path in dataset.iterdir() if path.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(path)
                classes.append(folder.name)
    if not images:
        raise AccuracyError(
            f"{dataset} has neither annotations.json (COCO-style) nor class folders with images"
        )
    return LabelledSet("classes", images, classes=classes)


def topk_accuracy(predicted: list[list[str]], truth: list[str], k: int) -> float:
    return sum(t in p[:k] for p, t in zip(predicted, truth, strict=True)) / float(len(truth))


def coco_map(coco: dict, detections: list[dict]) -> dict:
    """COCOeval bbox AP at IoU 0.50:0.95, 0.50 and 0.75 of ``detections`` (COCO results format)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = dict(coco)
    truth.setdefault("info", {})
    truth.setdefault("licenses", [])
    for index, annotation in enumerate(truth["annotations"]):
        annotation.setdefault("id", index + 1)
        annotation.setdefault("iscrowd", 0)
        annotation.setdefault("area", float(annotation["bbox"][2] * annotation["bbox"][3]))
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground = COCO()
        ground.dataset = truth
        ground.createIndex()
        if not detections:
            return {"map": 0.0, "map50": 0.0, "map75": 0.0, "detections": 0}
        found = ground.loadRes(detections)
        evaluation = COCOeval(ground, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {
        "map": round(float(stats[0]), 4),
        "map50": round(float(stats[1]), 4),
        "map75": round(float(stats[2]), 4),
        "detections": len(detections),
    }


def _match(names: list[str], labels: list[str], what: str) -> dict[str, str]:
    """Dataset name -> model label (exact, else case-insensitive); unknown names refused."""
    import difflib

    lower = {label.lower(): label for label in labels}
    mapping, unknown = {}, []
    for name in names:
        label = name if name in labels else lower.get(name.lower())
        if label is None:
            unknown.append(name)
        else:
            mapping[name] = label
    if unknown:
        first = unknown[0]
        close = difflib.get_close_matches(first, labels, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AccuracyError(
            f"{len(unknown)} {what} are not among the model's labels, e.g. {first!r}{hint}; "
            "name them as the model's labels"
        )
    return mapping


def label_mapping(data: LabelledSet, labels: list[str]) -> dict[str, str]:
    """The set's class folder or category names -> the model's labels; AccuracyError naming the
    first that matches none."""
    if data.kind == "classes":
        return _match(sorted(set(data.classes)), labels, "class folders")
    return _match(sorted({c["name"] for c in data.coco["categories"]}), labels, "categories")


def score(data: LabelledSet, labels: list[str], predicted: dict[int, dict]) -> dict:
    """Top-1/top-5 (class folders) or COCO mAP (annotations) of ``predicted``: image index in
    ``data.images`` -> the decoded result as ``edgebench predict --json`` gives it
    (``edgebench_runtime.predictions.result_as_data``). The one scoring of both ``edgebench
    accuracy`` and the devices' predictions.jsonl. Images without a prediction are left out."""
    mapping = label_mapping(data, labels)
    indices = sorted(predicted)
    if not indices:
        raise AccuracyError("no image of the labelled set has a prediction to score")
    if data.kind == "classes":
        if any("top" not in predicted[index] for index in indices):
            raise AccuracyError("class folders need a classification model (decoder imagenet_topk)")
        names = [[top["label"] for top in predicted[index]["top"]] for index in indices]
        truth = [mapping[data.classes[index]] for index in indices]
        return {
            "task": "classification",
            "top1": round(topk_accuracy(names, truth, 1), 4),
            "top5": round(topk_accuracy(names, truth, 5), 4),
        }
    category_of = {c["name"]: int(c["id"]) for c in data.coco["categories"]}
    label_to_category = {mapping[name]: category_of[name] for name in category_of}
    if any("boxes" not in predicted[index] for index in indices):
        raise AccuracyError("COCO annotations need a detection model")
    detections = []
    for index in indices:
        for box in predicted[index]["boxes"]:
            if box["label"] in label_to_category:
                x1, y1, x2, y2 = box["box"]
                detections.append({
                    "image_id": data.image_ids[index], "category_id": label_to_category[box["label"]],
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "score": box["score"],
                })  # fmt: skip
    return {"task": "detection", **coco_map(data.coco, detections)}


def evaluate(artifact_dir: Path, data: LabelledSet, score_threshold: float | None = None) -> dict:
    """Run every image through the artifact; top-1/top-5 or COCO mAP."""
    from edgebench.predict import result_as_data
    from edgebench_runtime.backends import create_backend
    from edgebench_runtime.imaging import ImageDecodeError, decode_image
    from edgebench_runtime.manifest import ArtifactError, verify_artifact
    from edgebench_runtime.tasks import Pipeline

    try:
        manifest = verify_artifact(artifact_dir)
    except ArtifactError as exc:
        raise PredictError(f"artifact check failed: {exc}") from exc
    labels = list(manifest.get("labels") or [])
    if not labels:
        raise AccuracyError("the artifact has no labels: accuracy needs label names to compare with")
    if score_threshold is not None:
        manifest = dict(manifest, decoder=dict(manifest["decoder"], score_threshold=score_threshold))
    label_mapping(data, labels)  # names that match no label are refused before any inference
    backend = create_backend("cpu")
    backend.load(str(artifact_dir), manifest)
    predicted, unreadable = {}, []
    try:
        pipeline = Pipeline(manifest, backend.input_names)
        for index, path in enumerate(data.images):
            try:
                image = decode_image(path)
            except ImageDecodeError:
                unreadable.append(str(path))
                continue
            feeds, geometry = pipeline.preprocess(image)
            predicted[index] = result_as_data(manifest, pipeline.postprocess(backend.infer(feeds), geometry))
    finally:
        backend.close()
    report = {"model": manifest["name"], "images": len(predicted), "unreadable": unreadable}
    report.update(score(data, labels, predicted))
    if data.kind == "coco":
        report["score_threshold"] = manifest["decoder"].get("score_threshold")
    return report
