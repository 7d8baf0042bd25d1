"""The model catalog: loading, validation, profiles and name lookup."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgebench.labels import FROM_MODEL, LABEL_SETS
from edgebench_runtime.tasks import check_decoder_params, known_decoders

__all__ = [
    "DECODERS",
    "DEFAULT_CATALOG",
    "TASKS",
    "Catalog",
    "CatalogError",
    "ModelEntry",
    "load_catalog",
]

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "models" / "catalog.yml"
SCHEMA_VERSION = 1
TASKS = ("classification", "detection", "pose", "segmentation")
# Every decoder the device runtime registers (edgebench_runtime/tasks/): one list, no copy here.
DECODERS = tuple(known_decoders())
SOURCE_KINDS = ("torchvision", "builder", "onnx", "url")
RESIZE_MODES = ("shorter", "letterbox", "stretch")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area", "lanczos")
PREPROCESS_KEYS = (
    "preset",
    "resize",
    "resize_size",
    "interpolation",
    "color",
    "scale",
    "mean",
    "std",
    "pad_value",
    "pad_align",
)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_ENTRY_FIELDS = {
    "name",
    "task",
    "source",
    "input",
    "preprocess",
    "decoder",
    "labels",
    "opset",
    "nms_in_graph",
    "dynamic_axes",
    "reference",
    "notes",
}


class CatalogError(ValueError):
    """The catalog is malformed, or a requested model or profile is not in it."""


@dataclass(frozen=True)
class ModelEntry:
    """One validated catalog entry, with its preprocessing preset resolved."""

    name: str
    task: str
    source: dict[str, Any]
    input: dict[str, Any]
    preprocess: dict[str, Any]
    decoder: dict[str, Any]
    labels: str | list[str] | dict[str, str]  # a set name, inline names, {file: path} or from_model
    opset: int | None = 13  # None (ONNX sources without `opset:`): keep the file's own
    nms_in_graph: bool = False
    dynamic_axes: dict[str, Any] | None = None
    reference: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @property
    def source_kind(self) -> str:
        return next(kind for kind in SOURCE_KINDS if kind in self.source)

    def as_dict(self) -> dict[str, Any]:
        """Plain data, in a stable order, for manifests and build hashes."""
        return {
            "name": self.name,
            "task": self.task,
            "source": self.source,
            "input": self.input,
            "preprocess": self.preprocess,
            "decoder": self.decoder,
            "labels": self.labels,
            "opset": self.opset,
            "nms_in_graph": self.nms_in_graph,
            "dynamic_axes": self.dynamic_axes,
            "reference": self.reference,
        }


@dataclass
class Catalog:
    path: Path
    entries: dict[str, ModelEntry]
    profiles: dict[str, list[str]]

    def get(self, name: str) -> ModelEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise CatalogError(_unknown("model", name, self.entries)) from None

    def resolve(self, profile: str | None = None, models: list[str] | None = None) -> list[ModelEntry]:
        """Entries of a profile and/or an explicit list, in catalog order, without repeats."""
        names: list[str] = []
        if profile:
            if profile == "all":
                names.extend(self.entries)
            elif profile in self.profiles:
                names.extend(self.profiles[profile])
            else:
                raise CatalogError(_unknown("profile", profile, [*self.profiles, "all"]))
        for name in models or []:
            self.get(name)
            names.append(name)
        wanted = set(names)
        return [entry for entry in self.entries.values() if entry.name in wanted]


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(kind: str, name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(known))}"
    return f"unknown {kind} {name!r}{hint}"


def _fail(entry: str, field_name: str, problem: str) -> CatalogError:
    return CatalogError(f"catalog entry {entry!r}, field {field_name!r}: {problem}")


def _validate_source(name: str, source: Any) -> dict[str, Any]:
    if not isinstance(source, dict):
        raise _fail(name, "source", "must be a mapping")
    kinds = [kind for kind in SOURCE_KINDS if kind in source]
    if len(kinds) != 1:
        raise _fail(name, "source", f"needs exactly one of {', '.join(SOURCE_KINDS)}; got {kinds or 'none'}")
    kind = kinds[0]
    allowed = {kind, "weights", "sha256", "kwargs"}
    extra = set(source) - allowed
    if extra:
        raise _fail(name, "source", f"unknown keys {sorted(extra)}")
    if kind == "builder" and not re.match(r"^[\w.]+:\w+$", str(source["builder"])):
        raise _fail(name, "source.builder", "must look like 'package.module:function'")
    if kind == "url" and not _SHA256_RE.match(str(source.get("sha256", ""))):
        raise _fail(name, "source.sha256", "a URL source requires the file's sha256 (64 hex digits)")
    weights = source.get("weights")
    if isinstance(weights, dict):
        if not ({"path", "url"} & set(weights)):
            raise _fail(name, "source.weights", "needs 'path' or 'url'")
        if "url" in weights and not _SHA256_RE.match(str(weights.get("sha256", ""))):
            raise _fail(name, "source.weights.sha256", "a weights URL requires its sha256")
    elif weights is not None and not isinstance(weights, str):
        raise _fail(name, "source.weights", "must be a torchvision weights name or a mapping")
    return dict(source)


def _check_preprocess_keys(name: str, block: dict, where: str) -> None:
    for key in block:
        if key not in PREPROCESS_KEYS:
            raise _fail(
                name,
                f"{where}.{key}",
                f"unknown preprocessing key{_did_you_mean(key, PREPROCESS_KEYS)}; "
                f"valid keys: {', '.join(PREPROCESS_KEYS)}",
            )


def _validate_preprocess(name: str, raw: Any, presets: dict[str, dict]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(name, "preprocess", "must be a mapping")
    _check_preprocess_keys(name, raw, "preprocess")
    resolved: dict[str, Any] = {}
    preset = raw.get("preset")
    if preset is not None:
        if preset not in presets:
            raise _fail(name, "preprocess.preset", _unknown("preset", preset, presets))
        _check_preprocess_keys(name, presets[preset], f"preprocess_presets.{preset}")
        resolved.update(presets[preset])
    resolved.update({key: value for key, value in raw.items() if key != "preset"})
    resize = resolved.get("resize")
    if resize not in RESIZE_MODES:
        raise _fail(name, "preprocess.resize", f"must be one of {', '.join(RESIZE_MODES)}; got {resize!r}")
    if resolved.setdefault("interpolation", "bilinear") not in INTERPOLATIONS:
        raise _fail(
            name,
            "preprocess.interpolation",
            f"must be one of {', '.join(INTERPOLATIONS)}; got {resolved['interpolation']!r}"
            + _did_you_mean(resolved["interpolation"], INTERPOLATIONS),
        )
    if resolved.setdefault("color", "RGB") not in ("RGB", "BGR"):
        raise _fail(name, "preprocess.color", "must be RGB or BGR")
    resolved.setdefault("scale", 1.0)
    for key in ("mean", "std"):
        values = resolved.setdefault(key, [0.0, 0.0, 0.0] if key == "mean" else [1.0, 1.0, 1.0])
        if not (
            isinstance(values, list) and len(values) == 3 and all(isinstance(v, int | float) for v in values)
        ):
            raise _fail(name, f"preprocess.{key}", "must be a list of three numbers")
        if key == "std" and any(v == 0 for v in values):
            raise _fail(name, "preprocess.std", "must not contain zero")
    if resize == "shorter" and not isinstance(resolved.get("resize_size"), int):
        raise _fail(name, "preprocess.resize_size", "resize 'shorter' needs an integer resize_size")
    if resize == "letterbox":
        resolved.setdefault("pad_value", 114)
        if resolved.setdefault("pad_align", "center") not in ("center", "topleft"):
            raise _fail(name, "preprocess.pad_align", "must be center or topleft")
    return resolved


def _validate_labels(name: str, labels: Any, source: dict) -> str | list[str] | dict[str, str]:
    if isinstance(labels, list):
        if not labels or not all(isinstance(label, str | int) for label in labels):
            raise _fail(name, "labels", "an inline list needs at least one name, each a string")
        return [str(label) for label in labels]
    if isinstance(labels, dict):
        if set(labels) != {"file"} or not isinstance(labels["file"], str):
            raise _fail(name, "labels", "a mapping must be {file: path} (one name per line, or JSON/YAML)")
        return dict(labels)
    if labels == FROM_MODEL:
        if not set(source) & {"onnx", "url"}:
            raise _fail(name, "labels", "from_model reads ONNX metadata: only for onnx or url sources")
        return labels
    if labels not in LABEL_SETS:
        known = (*LABEL_SETS, FROM_MODEL)
        raise _fail(
            name,
            "labels",
            f"must be one of {', '.join(known)}, an inline list or {{file: path}}; got {labels!r}"
            + _did_you_mean(labels, known),
        )
    return labels


def _validate_entry(raw: Any, presets: dict[str, dict], index: int) -> ModelEntry:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise CatalogError(f"catalog entry #{index + 1} has no string 'name'")
    name = raw["name"]
    if not _NAME_RE.match(name):
        raise _fail(name, "name", "use lower-case letters, digits and underscores")
    extra = set(raw) - _ENTRY_FIELDS
    if extra:
        raise _fail(name, sorted(extra)[0], f"unknown field (allowed: {', '.join(sorted(_ENTRY_FIELDS))})")
    for required in ("task", "source", "input", "preprocess", "decoder", "labels"):
        if required not in raw:
            raise _fail(name, required, "is required")
    if raw["task"] not in TASKS:
        raise _fail(name, "task", f"must be one of {', '.join(TASKS)}; got {raw['task']!r}")
    source = _validate_source(name, raw["source"])
    shape = raw["input"]
    if not isinstance(shape, dict) or not all(
        isinstance(shape.get(k), int) and shape[k] > 0 for k in ("height", "width")
    ):
        raise _fail(name, "input", "needs positive integer height and width")
    layout = shape.get("layout", "NCHW")
    if layout not in ("NCHW", "NHWC"):
        raise _fail(name, "input.layout", "must be NCHW or NHWC")
    decoder = raw["decoder"]
    if not isinstance(decoder, dict) or decoder.get("name") not in DECODERS:
        got = decoder.get("name") if isinstance(decoder, dict) else decoder
        raise _fail(
            name,
            "decoder.name",
            f"must be one of {', '.join(DECODERS)}; got {got!r}" + _did_you_mean(got, DECODERS),
        )
    problems = check_decoder_params(decoder["name"], {k: v for k, v in decoder.items() if k != "name"})
    if problems:
        raise _fail(name, "decoder", "; ".join(problems))
    labels = _validate_labels(name, raw["labels"], source)
    opset = raw.get("opset", None if set(source) & {"onnx", "url"} else 13)
    if opset is not None and (not isinstance(opset, int) or not 7 <= opset <= 23):
        raise _fail(name, "opset", f"must be an integer opset between 7 and 23; got {opset!r}")
    reference = raw.get("reference", {}) or {}
    for key in ("params_m", "gflops"):
        if key in reference and not (isinstance(reference[key], int | float) and reference[key] > 0):
            raise _fail(name, f"reference.{key}", "must be a positive number")
    return ModelEntry(
        name=name,
        task=raw["task"],
        source=source,
        input={"height": shape["height"], "width": shape["width"], "layout": layout},
        preprocess=_validate_preprocess(name, raw["preprocess"], presets),
        decoder=dict(decoder),
        labels=labels,
        opset=opset,
        nms_in_graph=bool(raw.get("nms_in_graph", False)),
        dynamic_axes=raw.get("dynamic_axes"),
        reference=dict(reference),
        notes=str(raw.get("notes", "")),
    )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate the catalog; every problem is a CatalogError naming entry and field."""
    path = Path(path) if path else DEFAULT_CATALOG
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise CatalogError(f"catalog {path} must be a mapping with schema_version: {SCHEMA_VERSION}")
    presets = data.get("preprocess_presets") or {}
    raw_models = data.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise CatalogError(f"catalog {path} has no 'models' list")
    entries: dict[str, ModelEntry] = {}
    for index, raw in enumerate(raw_models):
        entry = _validate_entry(raw, presets, index)
        if entry.name in entries:
            raise _fail(entry.name, "name", "appears twice in the catalog")
        entries[entry.name] = entry
    profiles = data.get("profiles") or {}
    for profile, names in profiles.items():
        if profile == "all":
            raise CatalogError("profile 'all' is implicit (every entry); remove it from 'profiles'")
        for name in names or []:
            if name not in entries:
                raise CatalogError(f"profile {profile!r}: {_unknown('model', name, entries)}")
    return Catalog(path=path, entries=entries, profiles={k: list(v or []) for k, v in profiles.items()})
