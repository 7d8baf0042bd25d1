"""Labels a catalog entry names: a built-in set, an inline list, a file, or the model's own ONNX
metadata (``from_model``). The converter writes the resolved list into each manifest so devices need
neither torchvision nor network access to name a class."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

__all__ = [
    "FROM_MODEL",
    "LABEL_SETS",
    "METADATA_KEYS",
    "LabelsError",
    "labels_for",
    "labels_from_metadata",
    "read_labels_file",
    "resolve_labels",
]

FROM_MODEL = "from_model"
# ONNX metadata keys that carry class names, in the order they are tried: Ultralytics writes
# ``names`` (a Python dict literal ``{0: 'person', ...}``), PaddleOCR/PaddleDetection exports
# through paddle2onnx write ``character`` (one name per line); other exporters use the rest.
METADATA_KEYS = ("names", "labels", "classes", "class_names", "label_list", "character")


class LabelsError(ValueError):
    """Labels cannot be read from where the catalog says."""

# Lightweight OpenPose keypoint order (COCO keypoints plus the neck, as in the original OpenPose).
_OPENPOSE_KEYPOINTS = [
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
]  # fmt: skip

LABEL_SETS = ("imagenet1k", "coco80", "coco91", "voc20", "voc21", "coco_keypoints18", "none")


def _as_list(value: Any) -> list[str] | None:
    """A parsed label container as a list of names: a list, or a mapping index -> name."""
    if isinstance(value, dict):
        try:
            items = sorted((int(key), str(name)) for key, name in value.items())
        except (TypeError, ValueError):
            return None
        if [index for index, _ in items] != list(range(len(items))):
            return None
        return [name for _, name in items]
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    return None


def _parse(text: str) -> list[str]:
    text = text.strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = _as_list(parse(text))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if parsed is not None:
            return parsed
    lines = [line.strip() for line in text.splitlines()]
    if len(lines) > 1:
        return [line for line in lines if line]
    return [part.strip() for part in text.split(",") if part.strip()]


def labels_from_metadata(metadata: dict[str, str]) -> tuple[str, list[str]]:
    """(key, names) from an ONNX model's ``metadata_props``; LabelsError when none carries them."""
    for key in METADATA_KEYS:
        if metadata.get(key, "").strip():
            names = _parse(metadata[key])
            if names:
                return key, names
    shown = ", ".join(sorted(metadata)) or "none"
    raise LabelsError(
        f"labels: from_model, but the model's metadata has none of {', '.join(METADATA_KEYS)} "
        f"(its keys: {shown}); give the labels inline (a list) or as {{file: path}}"
    )


def read_labels_file(path: Path) -> list[str]:
    """A labels file: one name per line (.txt), or a JSON/YAML list or index -> name mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc}") from exc
    if path.suffix in (".yml", ".yaml"):
        import yaml

        names = _as_list(yaml.safe_load(text))
    elif path.suffix == ".json":
        names = _as_list(json.loads(text))
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise LabelsError(f"labels file {path} holds no names (one per line, or a JSON/YAML list)")
    return names


def resolve_labels(spec: Any, catalog_dir: Path, onnx_file: Path | None = None) -> tuple[list[str], str]:
    """The names a catalog ``labels`` field stands for, and a short text saying where they came from."""
    if isinstance(spec, list):
        return [str(name) for name in spec], "inline"
    if isinstance(spec, dict):
        path = Path(spec["file"]).expanduser()
        path = path if path.is_absolute() else (catalog_dir / path).resolve()
        return read_labels_file(path), f"file {path}"
    if spec == FROM_MODEL:
        if onnx_file is None:
            raise LabelsError("labels: from_model reads ONNX metadata: only for onnx or url sources")
        import onnx

        model = onnx.load(str(onnx_file), load_external_data=False)
        key, names = labels_from_metadata({prop.key: prop.value for prop in model.metadata_props})
        return names, f"model metadata '{key}'"
    return labels_for(spec), spec


def labels_for(name: str) -> list[str]:
    """The class (or keypoint) names of a label set, index-aligned with the model's outputs."""
    # torchvision ships these lists in its source, so they load offline.
    from torchvision.models import _meta

    if name == "imagenet1k":
        return list(_meta._IMAGENET_CATEGORIES)
    if name == "coco91":
        return list(_meta._COCO_CATEGORIES)
    if name == "coco80":
        return [label for label in _meta._COCO_CATEGORIES if label not in ("__background__", "N/A")]
    if name == "voc21":
        return list(_meta._VOC_CATEGORIES)
    if name == "voc20":
        return list(_meta._VOC_CATEGORIES[1:])
    if name == "coco_keypoints18":
        return list(_OPENPOSE_KEYPOINTS)
    if name == "none":
        return []
    raise KeyError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
