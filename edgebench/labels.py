"""Label sets named by the catalog; the converter writes the resolved list into each manifest
so devices need neither torchvision nor network access to name a class."""

from __future__ import annotations

__all__ = ["LABEL_SETS", "labels_for"]

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
