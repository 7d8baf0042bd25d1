"""A labelled set made ready for the devices (``edgebench_accuracy_dataset``): its images copied flat
into ``<artifacts>/datasets/<folder>-<sha12>/`` on the controller, which deploy pushes like an
artifact and whose folder the run plan's ``images.source`` names on the device.

Flat because the runtime measures the files of one folder: a class-per-folder image
``<class>/<file>`` becomes ``<class>--<file>``, a COCO ``file_name`` with folders has its ``/``
turned into ``--``; a name taken twice gets ``-2``, ``-3`` before its suffix. The names are a pure
function of the set (:func:`device_names`), so the controller maps the devices' predictions back to
the labels from the set itself. ``manifest.json`` holds, in the artifacts' form, every file's size
and sha256 (``edgebench-runtime verify`` checks the copy on each device) and, per device file, the
original path and its class. The folder is named by the sha256 of that manifest's content: a
changed set is a new folder, an unchanged one is staged once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgebench.accuracy import AccuracyError, LabelledSet, label_mapping, load_labelled
from edgebench_runtime.imaging import IMAGE_EXTENSIONS
from edgebench_runtime.manifest import MANIFEST_NAME, SCHEMA_VERSION, sha256_file

__all__ = ["StagedSet", "check_labels", "device_names", "stage_dataset"]


@dataclass
class StagedSet:
    name: str  # <folder>-<sha12>: the folder under <artifacts>/datasets/
    path: Path
    kind: str  # "classes" | "coco"
    images: int
    copied: bool  # staged now, rather than found staged before
    data: LabelledSet


def device_names(data: LabelledSet, dataset: Path) -> list[str]:
    """The flat file name of each image of ``data`` (in its order) on the devices."""
    taken: set[str] = set()
    names = []
    for path in data.images:
        flat = Path(path).relative_to(dataset).as_posix().replace("/", "--")
        stem, suffix = os.path.splitext(flat)
        candidate, number = flat, 1
        while candidate in taken:
            number += 1
            candidate = f"{stem}-{number}{suffix}"
        taken.add(candidate)
        names.append(candidate)
    return names


def _manifest(data: LabelledSet, dataset: Path, names: list[str]) -> dict:
    files, images = {}, {}
    for index, (path, name) in enumerate(zip(data.images, names, strict=True)):
        files[name] = {"sha256": sha256_file(path), "size": Path(path).stat().st_size}
        images[name] = {
            "source": Path(path).relative_to(dataset).as_posix(),
            "class": data.classes[index] if data.kind == "classes" else None,
        }
    return {"schema_version": SCHEMA_VERSION, "kind": "labelled-images", "layout": data.kind,
            "files": files, "images": images}  # fmt: skip


#: the task each layout scores
_TASK_OF_LAYOUT = {"classes": "classification", "coco": "detection"}


def check_labels(data: LabelledSet, artifacts_dir: Path, models: list[str]) -> list[str]:
    """Before a run: the set's class or category names that none of a model's labels match, per
    model of the task the set scores (the others' accuracy reads unavailable, with the reason).
    Models without an artifact are left to the check that names them."""
    problems = []
    for model in models:
        try:
            manifest = json.loads((Path(artifacts_dir) / model / MANIFEST_NAME).read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("task") != _TASK_OF_LAYOUT[data.kind]:
            continue
        try:
            label_mapping(data, list(manifest.get("labels") or []))
        except AccuracyError as exc:
            problems.append(f"{model}: {exc}")
    return problems


def stage_dataset(dataset: Path, datasets_dir: Path) -> StagedSet:
    """Check ``dataset`` (it loads as a labelled set, every image is of a kind the devices read)
    and copy it flat under ``datasets_dir`` unless that copy exists; AccuracyError names what is
    wrong and what to do."""
    dataset = Path(dataset).expanduser()
    if not dataset.is_absolute():
        raise AccuracyError(f"{dataset} is a relative path: give the labelled set's absolute path")
    data = load_labelled(dataset)
    unread = [p for p in data.images if not str(p).lower().endswith(IMAGE_EXTENSIONS)]
    if unread:
        raise AccuracyError(
            f"{len(unread)} images of {dataset} are of a kind the devices do not read, e.g. {unread[0]}: "
            "convert them to JPEG or PNG"
        )
    names = device_names(data, dataset)
    manifest = _manifest(data, dataset, names)
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{dataset.name}-{digest}"
    target = Path(datasets_dir) / name
    if (target / MANIFEST_NAME).is_file():
        return StagedSet(name, target, data.kind, len(names), copied=False, data=data)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copied into a scratch folder beside the target and moved in whole: a validate play stopped
    # half-way, or another one staging the same set, never leaves a partial copy under that name.
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        for path, flat in zip(data.images, names, strict=True):
            shutil.copyfile(path, scratch / flat)
        (scratch / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        scratch.chmod(0o755)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / MANIFEST_NAME).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return StagedSet(name, target, data.kind, len(names), copied=True, data=data)
