"""A catalog entry proposed from an ONNX file: its inputs, outputs, opset and metadata read, task,
decoder, labels and preprocessing guessed from the output layout and the exporter's metadata.

The proposal is a starting point shown to the user (``edgebench add-onnx FILE``); it is written
into the catalog only on request (``--write``), and `edgebench convert` then checks it for real
(the decoder runs on the model's outputs there).
"""

from __future__ import annotations

import ast
import hashlib
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import yaml

from edgebench.labels import LabelsError, labels_from_metadata
from edgebench.onnx_tools import describe_io, model_metadata, model_opset

__all__ = ["AddOnnxError", "Proposal", "append_entry", "fetch", "propose"]

_STRIDES = (8, 16, 32)


class AddOnnxError(ValueError):
    """The file cannot be read, or the entry cannot be written."""


@dataclass
class Proposal:
    entry: dict
    notes: list[str] = field(default_factory=list)

    def as_yaml(self) -> str:
        text = yaml.safe_dump([self.entry], sort_keys=False, default_flow_style=None, width=100)
        return "".join(f"  {line}\n" for line in text.splitlines())


def fetch(location: str, cache_dir: Path) -> tuple[Path, dict]:
    """(local file, the entry's source block): a path as it is, a URL downloaded once into
    ``cache_dir`` and pinned by the sha256 of what came."""
    if not re.match(r"^[a-z][a-z0-9+.-]*://", location):
        path = Path(location).expanduser()
        if not path.is_file():
            raise AddOnnxError(f"{location} is not a file (give an ONNX file or a URL)")
        return path.resolve(), {"onnx": str(path.resolve())}
    name = Path(urllib.parse.urlparse(location).path).name or "model.onnx"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as tmp:
        try:
            with urllib.request.urlopen(location, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as exc:
            Path(tmp.name).unlink()
            raise AddOnnxError(f"cannot download {location}: {exc}") from exc
    digest = hashlib.sha256(Path(tmp.name).read_bytes()).hexdigest()
    # Where edgebench convert looks for a URL source's file (sources._download): no second download.
    target = cache_dir / digest / name
    target.parent.mkdir(parents=True, exist_ok=True)
    Path(tmp.name).replace(target)
    return target, {"url": location, "sha256": digest}


def _size_from(inputs: list[dict], metadata: dict, size: tuple[int, int] | None, default: int):
    shape = inputs[0]["shape"]
    nhwc = len(shape) == 4 and shape[3] == 3 and shape[1] != 3
    dims = (shape[1], shape[2]) if nhwc else (shape[2], shape[3]) if len(shape) == 4 else (None, None)
    fixed = tuple(d if isinstance(d, int) and d > 0 else None for d in dims)
    if size is not None:
        return size, nhwc, "given"
    if all(fixed):
        return fixed, nhwc, "the file's fixed input"
    try:
        imgsz = ast.literal_eval(metadata.get("imgsz", ""))
        if isinstance(imgsz, list | tuple) and len(imgsz) == 2:
            return (int(imgsz[0]), int(imgsz[1])), nhwc, "metadata imgsz"
    except (ValueError, SyntaxError):
        pass
    return (default, default), nhwc, f"a guess ({default}): the file's input is dynamic, check it"


def _cells(height: int, width: int) -> int:
    return sum((height // s) * (width // s) for s in _STRIDES)


def _output_shape(path: Path, image: dict, height: int, width: int, nhwc: bool) -> list | None:
    """The first output's shape when the model runs on a zero image of the proposed size (a
    dynamic file declares symbolic output shapes), or None when it does not run."""
    import numpy as np
    import onnxruntime as ort

    if image["dtype"] != "float32":
        return None
    shape = (1, height, width, 3) if nhwc else (1, 3, height, width)
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return list(session.run(None, {image["name"]: np.zeros(shape, np.float32)})[0].shape)
    except Exception:
        return None


def _ends_in_softmax(model: onnx.ModelProto, output: str) -> bool:
    producer = {out: node for node in model.graph.node for out in node.output}
    node = producer.get(output)
    while node is not None and node.op_type in ("Identity", "Reshape", "Flatten", "Squeeze"):
        node = producer.get(node.input[0])
    return node is not None and node.op_type == "Softmax"


def propose(
    path: Path, source: dict, name: str | None = None, size: tuple[int, int] | None = None
) -> Proposal:
    """The catalog entry this file most likely needs, with notes on what was guessed."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise AddOnnxError(f"{path} is not a readable ONNX model: {exc}") from exc
    inputs, outputs = describe_io(model)
    if not inputs:
        raise AddOnnxError(f"{path} has no graph input")
    metadata = model_metadata(model)
    ultralytics = metadata.get("author", "").startswith("Ultralytics")
    paddle = model.producer_name.lower().startswith("paddle")
    notes = [
        f"input {inputs[0]['name']} {inputs[0]['shape']} {inputs[0]['dtype']}; outputs "
        + ", ".join(f"{o['name']} {o['shape']}" for o in outputs)
        + f"; opset {model_opset(model)} (kept: no opset in the entry); producer {model.producer_name or '?'}"
    ]
    declared = outputs[0]["shape"]
    classifier_like = len(declared) in (2, 4) and (len(declared) == 2 or declared[2:] == [1, 1])
    (height, width), nhwc, size_from = _size_from(inputs, metadata, size, 224 if classifier_like else 640)
    notes.append(f"input size {height}x{width}: {size_from}")
    first = _output_shape(path, inputs[0], height, width, nhwc) or declared
    if first != declared:
        notes.append(f"output {outputs[0]['name']} is {first} at that size")
    try:
        key, names = labels_from_metadata(metadata)
        labels: object = "from_model"
        notes.append(f"labels: {len(names)} names in the metadata ({key!r})")
    except LabelsError:
        names, labels = [], None
    task, decoder, preprocess = "classification", {"name": "raw"}, {"preset": "imagenet"}
    last = first[-1] if first else None
    if len(first) == 3 and isinstance(first[1], int) and isinstance(first[2], int):
        channels, cells = min(first[1], first[2]), max(first[1], first[2])
        if first[2] in (6, 7) and first[1] > 7:
            task, decoder = "detection", {"name": "end2end"}
            notes.append("decoder end2end: rows x1, y1, x2, y2, score, class (NMS-free or NMS in the graph)")
        elif cells == _cells(height, width) and first[1] < first[2]:
            task, decoder = "detection", {"name": "yolov8"}
            notes.append(f"decoder yolov8: (1, 4 + {channels - 4}, {cells}) is Ultralytics' anchor-free head")
        elif cells == _cells(height, width):
            task, decoder = "detection", {"name": "yolox"}
            notes.append(
                "decoder yolox: (1, cells, 5 + C); a YOLOv5 export with decoded boxes is not this layout"
            )
        if task == "detection":
            preprocess = {"preset": "yolox" if decoder["name"] == "yolox" else "yolov5"}
            classes = (
                channels - 4
                if decoder["name"] == "yolov8"
                else (channels - 5 if decoder["name"] == "yolox" else None)
            )
            if labels is None and classes == 80:
                labels = "coco80"
                notes.append("labels coco80: 80 classes and no names in the file")
            if names and classes is not None and len(names) != classes and decoder["name"] == "yolov8":
                decoder["num_classes"] = classes
                notes.append(f"{len(names)} names but {classes} class channels: num_classes {classes}")
    elif classifier_like and isinstance(first[1], int):
        decoder = {"name": "imagenet_topk", "top_k": min(5, first[1])}
        if _ends_in_softmax(model, outputs[0]["name"]):
            decoder["softmax"] = False
            notes.append("softmax: false: the graph already ends in a Softmax")
        if labels is None and first[1] in (1000, 1001):
            labels = "imagenet1k"
            if first[1] == 1001:
                decoder["label_offset"] = 1
    elif len(first) == 4 and isinstance(last, int) and isinstance(first[1], int):
        task, decoder = "segmentation", {"name": "seg_argmax"}
        preprocess = {"preset": "imagenet_stretch"}
    if ultralytics:
        preprocess = {"preset": "yolov5"}
        notes.append("preprocess yolov5 preset: Ultralytics' centred letterbox, grey 114, RGB in [0, 1]")
    elif paddle and task == "classification":
        preprocess = {
            "resize": "stretch",
            "color": "BGR",
            "scale": 0.00392156862745098,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
        }
        notes.append("preprocess: a PaddleOCR-style guess (BGR, (x / 255 - 0.5) / 0.5): check the model card")
    else:
        notes.append(f"preprocess {preprocess}: a guess from the layout: check the model card")
    if labels is None:
        labels = "none"
        notes.append("labels none: no names in the file; give a list or {file: path}")
    entry = {
        "name": name or re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "model",
        "task": task,
        "source": {**source, "weights": "pretrained"},
        "input": {"height": int(height), "width": int(width), **({"layout": "NHWC"} if nhwc else {})},
        "preprocess": preprocess,
        "decoder": decoder,
        "labels": labels,
    }
    if decoder["name"] == "raw":
        notes.append("decoder raw: the layout is not one edgebench decodes; timings only")
    return Proposal(entry, notes)


def append_entry(catalog_path: Path, proposal: Proposal) -> None:
    """Append the entry to the catalog's ``models:`` list, keeping the file's text and comments;
    the result must load as a valid catalog, or nothing is written."""
    from edgebench.catalog import CatalogError, load_catalog

    text = catalog_path.read_text()
    catalog = load_catalog(catalog_path)
    name = proposal.entry["name"]
    if name in catalog.entries:
        raise AddOnnxError(f"the catalog already has a model named {name!r}; choose another with --name")
    data = yaml.safe_load(text)
    if list(data)[-1] != "models":
        raise AddOnnxError(
            f"{catalog_path}: 'models:' is not the last section, so the entry cannot be appended; "
            "paste it under models: yourself"
        )
    updated = text.rstrip("\n") + "\n" + proposal.as_yaml()
    with tempfile.NamedTemporaryFile("w", dir=catalog_path.parent, suffix=".yml", delete=False) as tmp:
        tmp.write(updated)
    try:
        if name not in load_catalog(Path(tmp.name)).entries:
            raise AddOnnxError("the appended entry did not land in models:")
    except (CatalogError, AddOnnxError):
        Path(tmp.name).unlink()
        raise
    Path(tmp.name).replace(catalog_path)
