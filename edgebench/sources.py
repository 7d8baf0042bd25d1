"""Turning a catalog entry's `source` into something to export: a PyTorch module, or an ONNX file.

Official weights are used when they can be had (already in the torch hub cache, or downloadable);
otherwise the model is built with random weights, its BatchNorm running statistics recalibrated on
random batches (raw random init collapses activations to ~1e-10, which makes parity meaningless),
and the artifact is marked ``random-init``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import socket
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgebench.catalog import ModelEntry

__all__ = [
    "ExportableModel",
    "SourceError",
    "build_torch_model",
    "fetch_onnx",
    "random_input_batch",
]

_DOWNLOAD_TIMEOUT_S = 5.0
_CACHE_DIR = Path(os.environ.get("EDGEBENCH_CACHE", Path.home() / ".cache" / "edgebench"))
_reachable_hosts: dict[str, bool] = {}


class SourceError(RuntimeError):
    """A model's source cannot be built, fetched or verified."""


@dataclass
class ExportableModel:
    module: nn.Module
    weights: str  # "pretrained" | "random-init"
    output_names: list[str]
    notes: list[str] = field(default_factory=list)


class _DetectionHead(nn.Module):
    """SSD backbone + head only: anchors, box decoding and NMS are the device's post-processing."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.backbone = detector.backbone
        self.head = detector.head

    def forward(self, images: torch.Tensor):
        features = list(self.backbone(images).values())
        outputs = self.head(features)
        return outputs["bbox_regression"], outputs["cls_logits"]


class _SegmentationOut(nn.Module):
    """Only the main segmentation map (torchvision returns a dict)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)["out"]


def _host_reachable(url: str) -> bool:
    """One quick TCP connect per host and process; this machine may be offline."""
    if os.environ.get("EDGEBENCH_OFFLINE") == "1":
        return False
    host = urllib.parse.urlparse(url).hostname or ""
    if host not in _reachable_hosts:
        try:
            socket.create_connection((host, 443), timeout=_DOWNLOAD_TIMEOUT_S).close()
            _reachable_hosts[host] = True
        except OSError:
            _reachable_hosts[host] = False
    return _reachable_hosts[host]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, sha256: str) -> Path:
    """Download once into the cache, verified by sha256; a cached file is re-checked on use."""
    target = _CACHE_DIR / "downloads" / sha256 / Path(urllib.parse.urlparse(url).path).name
    if target.exists() and _sha256(target) == sha256:
        return target
    if urllib.parse.urlparse(url).scheme != "file" and not _host_reachable(url):
        raise SourceError(f"cannot download {url}: host unreachable and no cached copy at {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as exc:
            os.unlink(tmp.name)
            raise SourceError(f"cannot download {url}: {exc}") from exc
    actual = _sha256(Path(tmp.name))
    if actual != sha256:
        os.unlink(tmp.name)
        raise SourceError(f"refusing {url}: sha256 {actual} does not match the catalog's {sha256}")
    os.replace(tmp.name, target)
    return target


def fetch_onnx(entry: ModelEntry, catalog_dir: Path) -> Path:
    """The local, verified ONNX file of an `onnx:` or `url:` source."""
    source = entry.source
    if "url" in source:
        return _download(source["url"], source["sha256"])
    path = Path(os.path.expanduser(source["onnx"]))
    if not path.is_absolute():
        path = (catalog_dir / path).resolve()
    if not path.is_file():
        raise SourceError(f"model {entry.name}: ONNX file {path} does not exist")
    if source.get("sha256") and _sha256(path) != source["sha256"]:
        raise SourceError(f"model {entry.name}: {path} does not match the catalog's sha256; refusing it")
    return path


def _torchvision_constructor(name: str):
    import torchvision.models as classification
    import torchvision.models.detection as detection
    import torchvision.models.segmentation as segmentation

    for namespace in (classification, detection, segmentation):
        if hasattr(namespace, name):
            return namespace, getattr(namespace, name)
    raise SourceError(f"torchvision has no model constructor {name!r}")


def _torchvision_weights(namespace, weights_name: str):
    enum_name, _, member = weights_name.partition(".")
    try:
        return getattr(getattr(namespace, enum_name), member)
    except AttributeError:
        raise SourceError(f"torchvision has no weights {weights_name!r}") from None


def _pretrained_available(weights) -> bool:
    """Weights are usable offline when the checkpoint is cached, or when its host answers."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urllib.parse.urlparse(weights.url).path).name
    return cached.exists() or _host_reachable(weights.url)


def _build_torchvision(entry: ModelEntry, weights_policy: str) -> tuple[nn.Module, str, list[str]]:
    namespace, constructor = _torchvision_constructor(entry.source["torchvision"])
    kwargs = dict(entry.source.get("kwargs") or {})
    notes: list[str] = []
    weights_name = entry.source.get("weights")
    if isinstance(weights_name, str) and weights_policy != "random":
        weights = _torchvision_weights(namespace, weights_name)
        if _pretrained_available(weights):
            try:
                return constructor(weights=weights, **kwargs), "pretrained", notes
            except Exception as exc:
                notes.append(f"official weights {weights_name} failed to load ({exc}); random init used")
        else:
            notes.append(f"official weights {weights_name} unreachable offline; random init used")
        if weights_policy == "pretrained":
            raise SourceError(f"model {entry.name}: pretrained weights required but {notes[-1]}")
    if entry.source["torchvision"] in ("googlenet", "inception_v3"):
        # Without official weights these default to auxiliary heads that only run in training.
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", True)
    if entry.task == "detection":
        kwargs.setdefault("weights_backbone", None)
    if entry.task == "segmentation":
        kwargs.setdefault("weights_backbone", None)
    return constructor(weights=None, **kwargs), "random-init", notes


def _load_checkpoint(module: nn.Module, spec: dict, entry: ModelEntry) -> None:
    path = _download(spec["url"], spec["sha256"]) if "url" in spec else Path(spec["path"]).expanduser()
    if not path.exists():
        raise SourceError(f"model {entry.name}: checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    module.load_state_dict(state)


def _build_builder(entry: ModelEntry, weights_policy: str) -> tuple[nn.Module, str, list[str]]:
    module_name, _, function_name = entry.source["builder"].partition(":")
    try:
        builder = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise SourceError(
            f"model {entry.name}: cannot import builder {entry.source['builder']}: {exc}"
        ) from exc
    module = builder(**dict(entry.source.get("kwargs") or {}))
    spec = entry.source.get("weights")
    notes: list[str] = []
    if isinstance(spec, dict) and weights_policy != "random":
        try:
            _load_checkpoint(module, spec, entry)
            return module, "pretrained", notes
        except (SourceError, OSError, RuntimeError) as exc:
            if weights_policy == "pretrained":
                raise SourceError(f"model {entry.name}: pretrained weights required: {exc}") from exc
            notes.append(f"checkpoint unavailable ({exc}); random init used")
    return module, "random-init", notes


def random_input_batch(entry: ModelEntry, batch: int, seed: int) -> torch.Tensor:
    """Random images in the network's own input range: uniform pixels through the entry's
    scale/mean/std, so BatchNorm statistics and parity inputs look like real preprocessed data."""
    rng = np.random.default_rng(seed)
    height, width = entry.input["height"], entry.input["width"]
    pixels = rng.integers(0, 256, size=(batch, 3, height, width)).astype(np.float32)
    spec = entry.preprocess
    mean = np.asarray(spec["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec["std"], np.float32).reshape(1, 3, 1, 1)
    tensor = (pixels * np.float32(spec["scale"]) - mean) / std
    if entry.input["layout"] == "NHWC":
        tensor = tensor.transpose(0, 2, 3, 1)
    return torch.from_numpy(np.ascontiguousarray(tensor))


@torch.no_grad()
def _recalibrate_batchnorm(module: nn.Module, entry: ModelEntry, passes: int = 4) -> None:
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the passes
    module.train()
    for seed in range(passes):
        module(random_input_batch(entry, 2, seed))
    module.eval()


def _output_names(entry: ModelEntry, module: nn.Module) -> list[str]:
    if entry.source_kind == "torchvision" and entry.task == "detection":
        return ["bbox_regression", "cls_logits"]
    if entry.source_kind == "torchvision" and entry.task == "segmentation":
        return ["out"]
    if entry.task == "classification":
        return ["logits"]
    with torch.no_grad():
        outputs = module(random_input_batch(entry, 1, 0))
    if isinstance(outputs, torch.Tensor):
        return ["output"]
    return [f"output{i}" for i in range(len(outputs))]


def build_torch_model(entry: ModelEntry, weights_policy: str = "auto") -> ExportableModel:
    """The entry's model in eval mode, wrapped so that its outputs are plain tensors.

    ``weights_policy``: ``auto`` (official weights when reachable), ``random`` or ``pretrained``.
    """
    torch.manual_seed(0)
    if entry.source_kind == "torchvision":
        module, weights, notes = _build_torchvision(entry, weights_policy)
    elif entry.source_kind == "builder":
        module, weights, notes = _build_builder(entry, weights_policy)
    else:
        raise SourceError(f"model {entry.name}: source {entry.source_kind!r} is not a PyTorch model")
    if entry.source_kind == "torchvision" and entry.task == "detection":
        module = _DetectionHead(module)
    elif entry.source_kind == "torchvision" and entry.task == "segmentation":
        module = _SegmentationOut(module)
    if weights == "random-init":
        _recalibrate_batchnorm(module, entry)
        notes.append("random-init: BatchNorm running statistics recalibrated on random batches")
    module.eval()
    return ExportableModel(
        module=module, weights=weights, output_names=_output_names(entry, module), notes=notes
    )
