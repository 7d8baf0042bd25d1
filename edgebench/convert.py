"""The conversion job: catalog entries to verified ONNX artifacts, one model at a time.

A model that fails (export error, invalid graph, failed parity) is reported with its reason and
the others go on; a failed model never replaces an earlier good artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx

from edgebench import artifacts
from edgebench.catalog import ModelEntry
from edgebench.images import ensure_default_images, image_paths
from edgebench.labels import LabelsError, resolve_labels
from edgebench.onnx_tools import (
    InvalidOnnxError,
    ShapeMismatchError,
    check_model,
    convert_opset,
    count_parameters,
    describe_io,
    fix_input_shape,
    model_opset,
    narrow_int64,
)
from edgebench.verify import onnx_runner, parity
from edgebench_runtime.correctness import DEFAULT_TOLERANCES, REFERENCE_BLOCK
from edgebench_runtime.imaging import Preprocessor, decode_image
from edgebench_runtime.tasks import Pipeline

__all__ = ["ConversionError", "ConvertResult", "convert", "convert_one"]

MODEL_FILE = "model.onnx"
INT32_FILE = "model.int32.onnx"
REFERENCE_FILE = "reference.npz"
# How many of the default photos (sorted by name) get stored reference outputs.
REFERENCE_IMAGES = 3
EXPORTER = "torch.onnx.export(dynamo=False)"


class ConversionError(RuntimeError):
    """One model could not be converted or verified; the message names the model and the numbers."""


@dataclass
class ConvertResult:
    name: str
    status: str  # converted | cached | failed
    seconds: float
    artifact_dir: Path | None = None
    size_bytes: int | None = None
    max_abs_diff: float | None = None
    weights: str | None = None
    message: str = ""


def _torch_reference(module) -> Callable[[np.ndarray], list[np.ndarray]]:
    import torch

    def run(tensor: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            outputs = module(torch.from_numpy(tensor))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return [output.numpy() for output in outputs]

    return run


def _export_torch(entry: ModelEntry, opset: int, weights_policy: str, path: Path) -> tuple[dict, Callable]:
    import torch

    from edgebench.sources import build_torch_model, random_input_batch

    exportable = build_torch_model(entry, weights_policy)
    dummy = random_input_batch(entry, 1, 0)
    started = time.perf_counter()
    # The TorchScript exporter is deprecated but is the one that honours opset 13; its warnings
    # and trace chatter say nothing actionable to the user.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            exportable.module,
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=exportable.output_names,
            dynamic_axes=entry.dynamic_axes,
            do_constant_folding=True,
        )
    info = {
        "exporter": EXPORTER,
        "seconds": round(time.perf_counter() - started, 3),
        "notes": exportable.notes,
        "weights": exportable.weights,
    }
    return info, _torch_reference(exportable.module)


def _fixed_shapes(model: onnx.ModelProto, entry: ModelEntry) -> tuple[onnx.ModelProto, str | None]:
    try:
        return fix_input_shape(model, entry.input["height"], entry.input["width"], entry.input["layout"])
    except ShapeMismatchError as exc:
        raise ConversionError(str(exc)) from exc


def _import_onnx(
    entry: ModelEntry, opset: int | None, catalog_dir: Path, path: Path
) -> tuple[dict, Callable | None]:
    from edgebench.sources import fetch_onnx

    started = time.perf_counter()
    original = fetch_onnx(entry, catalog_dir)
    model = check_model(original)
    fixed, shape_note = _fixed_shapes(model, entry)
    # No opset in the catalog (None): the file's own is kept.
    converted, note = convert_opset(fixed, opset) if opset is not None else (fixed, None)
    onnx.save(converted, str(path))
    notes = [text for text in (shape_note, note) if text]
    info = {
        "exporter": "custom ONNX" + (f" ({note})" if note else ""),
        "seconds": round(time.perf_counter() - started, 3),
        "notes": notes,
        "weights": entry.source.get("weights") or "unknown",
        "original_sha256": artifacts.file_record(original)["sha256"],
    }
    # A converted graph is checked against the file it came from; an unchanged one has no
    # independent reference and is only checked to run and give finite outputs.
    reference = onnx_runner(original) if converted is not model else None
    return info, reference


def _fix_exported_shapes(entry: ModelEntry, path: Path, export: dict) -> None:
    """An export with ``dynamic_axes`` is fixed to batch 1 and the catalog's input size too."""
    fixed, note = _fixed_shapes(onnx.load(str(path)), entry)
    if note:
        onnx.save(fixed, str(path))
        export["notes"] = [*export.get("notes", []), note]


def _int64_initializers(path: Path) -> int:
    model = onnx.load(str(path))
    return sum(init.data_type == onnx.TensorProto.INT64 for init in model.graph.initializer)


def _int32_variant(model: onnx.ModelProto, path: Path) -> tuple[Path, str] | None:
    """Write the int32 variant, fully narrowed if ONNX Runtime accepts that, otherwise narrowed
    only where no Cast is needed; None when the graph has nothing to narrow."""
    for cast_back, mode in ((True, "full"), (False, "direct-only")):
        narrowed = narrow_int64(model, cast_back=cast_back)
        if narrowed is None:
            continue
        onnx.save(narrowed, str(path))
        try:
            check_model(path)
            onnx_runner(path)
        except Exception:
            continue
        return path, mode
    path.unlink(missing_ok=True)
    return None


def _shapes_text(outputs: list[np.ndarray], names: list[str]) -> str:
    return ", ".join(f"{n} {list(np.shape(o))}" for n, o in zip(names, outputs, strict=False))


def _check_decoder(pipeline: Pipeline, entry: ModelEntry, outputs, geometry, output_names) -> None:
    """The device's decoder, run on the stored reference outputs: a layout the decoder cannot read
    fails here, naming the shapes, instead of on a device."""
    name = entry.decoder["name"]
    try:
        pipeline.postprocess(list(outputs), geometry)
    except Exception as exc:
        raise ConversionError(
            f"decoder {name} cannot decode this model's outputs ({_shapes_text(outputs, output_names)}): "
            f"{type(exc).__name__}: {exc}; check decoder.name and its parameters"
        ) from exc
    if name == "imagenet_topk" and entry.decoder.get("softmax", True):
        logits = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        if logits.size > 1 and logits.min() >= 0 and abs(logits.sum() - 1.0) < 1e-3:
            raise ConversionError(
                f"the model's output already sums to 1 ({logits.size} values in [0, 1]): the graph ends "
                "in a softmax and imagenet_topk would apply a second one; set decoder.softmax: false"
            )


def _reference_outputs(
    entry: ModelEntry,
    runner: Callable,
    images: list[Path],
    output_names: list[str],
    path: Path,
    pipeline: Pipeline | None = None,
) -> tuple[list[list[int] | None], dict]:
    """Write ``reference.npz`` (ONNX Runtime CPU on a few default photos) and return the manifest's
    ``reference_outputs`` block and the output shapes seen; the device compares every provider
    against it before timing. ``pipeline`` (the device's decoder) is run on every reference."""
    import onnxruntime

    preprocess = Preprocessor(
        entry.preprocess, entry.input["height"], entry.input["width"], entry.input["layout"]
    )
    arrays: dict[str, np.ndarray] = {}
    chosen = []
    shapes: list[list[int]] = []
    for index, image_path in enumerate(sorted(images)[:REFERENCE_IMAGES]):
        image = decode_image(image_path)
        tensor, geometry = preprocess(image)
        outputs = runner(tensor)
        if len(outputs) != len(output_names):
            raise ConversionError(
                f"reference run gave {len(outputs)} outputs, the graph names {len(output_names)}"
            )
        if pipeline is not None:
            _check_decoder(pipeline, entry, outputs, geometry, output_names)
        seen = [list(np.shape(output)) for output in outputs]
        shapes = seen if index == 0 else [a if a == b else None for a, b in zip(shapes, seen, strict=True)]
        arrays[f"input_{index}"] = tensor
        for j, output in enumerate(outputs):
            arrays[f"output_{index}_{j}"] = np.asarray(output)
        chosen.append(
            {
                "name": image_path.name,
                "sha256": artifacts.file_record(image_path)["sha256"],
                "height": int(image.shape[0]),
                "width": int(image.shape[1]),
            }
        )
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return shapes, {
        "file": REFERENCE_FILE,
        "producer": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider",
        "model_file": MODEL_FILE,
        "images": chosen,
        "outputs": list(output_names),
        "keys": {"input": "input_<image>", "output": "output_<image>_<output>"},
        "tolerances": DEFAULT_TOLERANCES,
    }


def _concrete(declared: list[dict], seen: list[list[int] | None]) -> list[dict]:
    """Output descriptions with every dimension the graph leaves open filled from the reference
    runs, where all reference photos agreed on it (an in-graph NMS count may not: left named)."""
    out = []
    for item, shape in zip(declared, seen, strict=True):
        dims = item["shape"]
        if shape is not None and len(shape) == len(dims):
            dims = [d if isinstance(d, int) and d > 0 else s for d, s in zip(dims, shape, strict=True)]
        out.append({**item, "shape": dims})
    return out


def _source_file(entry: ModelEntry, catalog_dir: Path) -> Path | None:
    if entry.source_kind in ("onnx", "url"):
        from edgebench.sources import fetch_onnx

        return fetch_onnx(entry, catalog_dir)
    return None


def convert_one(
    entry: ModelEntry,
    artifacts_dir: Path,
    *,
    catalog_dir: Path,
    opset: int | None = None,
    weights_policy: str = "auto",
    force: bool = False,
) -> ConvertResult:
    """Convert and verify one entry into ``artifacts_dir/<name>``; a cache hit does nothing."""
    started = time.perf_counter()
    opset = opset or entry.opset
    name = artifacts.artifact_name(entry, opset)
    target = artifacts_dir / name
    try:
        source_file = _source_file(entry, catalog_dir)
        recipe = artifacts.build_hash(entry, opset, weights_policy, source_file)
        if isinstance(entry.labels, dict):  # a labels file: its content is part of the recipe too
            labels_file = Path(entry.labels["file"]).expanduser()
            labels_file = labels_file if labels_file.is_absolute() else catalog_dir / labels_file
            if labels_file.is_file():
                recipe = hashlib.sha256(
                    (recipe + artifacts.file_record(labels_file)["sha256"]).encode()
                ).hexdigest()
        if not force:
            manifest = artifacts.cached_manifest(target, recipe)
            if manifest is not None:
                return ConvertResult(
                    name,
                    "cached",
                    time.perf_counter() - started,
                    target,
                    manifest["files"][MODEL_FILE]["size"],
                    manifest["parity"].get("max_abs"),
                    manifest["weights"],
                )
        images = image_paths(ensure_default_images(artifacts_dir))
        staging = artifacts.staging_dir(artifacts_dir, name)
        try:
            manifest = _build(
                entry, opset, weights_policy, catalog_dir, staging, images, recipe, name, source_file
            )
            artifacts.publish(staging, manifest, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except Exception as exc:
        return ConvertResult(name, "failed", time.perf_counter() - started, message=f"{name}: {exc}")
    return ConvertResult(
        name,
        "converted",
        time.perf_counter() - started,
        target,
        manifest["files"][MODEL_FILE]["size"],
        manifest["parity"].get("max_abs"),
        manifest["weights"],
    )


def _build(
    entry: ModelEntry,
    opset: int,
    weights_policy: str,
    catalog_dir: Path,
    staging: Path,
    images: list[Path],
    recipe: str,
    name: str,
    source_file: Path | None = None,
) -> dict:
    model_path = staging / MODEL_FILE
    try:
        labels, labels_from = resolve_labels(entry.labels, catalog_dir, source_file)
    except LabelsError as exc:
        raise ConversionError(str(exc)) from exc
    if entry.source_kind in ("torchvision", "builder"):
        export, reference = _export_torch(entry, opset or 13, weights_policy, model_path)
        if entry.dynamic_axes:
            _fix_exported_shapes(entry, model_path, export)
    else:
        export, reference = _import_onnx(entry, opset, catalog_dir, model_path)
    try:
        model = check_model(model_path)
    except InvalidOnnxError as exc:
        raise ConversionError(f"exported graph is invalid: {exc}") from exc
    inputs, outputs = describe_io(model)
    if len(inputs) != 1:
        raise ConversionError(f"expected one image input, the graph has {[i['name'] for i in inputs]}")
    runner = onnx_runner(model_path)
    checks = parity(entry, reference or runner, runner, images)
    if reference is None:
        checks["reference"] = "none: custom ONNX used as is; checked to run with finite outputs"
    else:
        checks["reference"] = (
            "pytorch" if entry.source_kind in ("torchvision", "builder") else "original ONNX"
        )
    if not checks["passed"]:
        agreement = checks["images"].get("top1_agree")
        raise ConversionError(
            f"parity failed: max abs diff {checks['random']['max_abs']:.3g} on random inputs, "
            f"{checks['images']['max_abs']:.3g} on photos (atol {checks['atol']}, rtol {checks['rtol']})"
            + (f", top-1 agreement {agreement:.0%}" if agreement is not None else "")
        )
    checks["max_abs"] = max(checks["random"]["max_abs"], checks["images"]["max_abs"])
    files = {MODEL_FILE: artifacts.file_record(model_path)}
    draft = {
        "inputs": inputs,
        "outputs": outputs,
        "input": entry.input,
        "preprocess": entry.preprocess,
        "decoder": entry.decoder,
        "labels": labels,
        "nms_in_graph": entry.nms_in_graph,
    }
    try:
        pipeline = Pipeline(draft)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConversionError(f"decoder {entry.decoder['name']}: {exc}") from exc
    seen_shapes, reference_block = _reference_outputs(
        entry, runner, images, [item["name"] for item in outputs], staging / REFERENCE_FILE, pipeline
    )
    outputs = _concrete(outputs, seen_shapes)
    files[REFERENCE_FILE] = artifacts.file_record(staging / REFERENCE_FILE)
    int32_file = None
    narrowed = _int32_variant(model, staging / INT32_FILE)
    if narrowed is not None:
        int32_path, mode = narrowed
        int32_checks = parity(entry, runner, onnx_runner(int32_path), images)
        checks["int32"] = {
            "max_abs": max(int32_checks["random"]["max_abs"], int32_checks["images"]["max_abs"]),
            "passed": int32_checks["passed"],
            "mode": mode,
            "int64_initializers_left": _int64_initializers(int32_path),
        }
        if not int32_checks["passed"]:
            raise ConversionError(f"int32 variant differs from the original: {checks['int32']}")
        files[INT32_FILE] = artifacts.file_record(int32_path)
        int32_file = INT32_FILE
    weights = export.pop("weights")
    return {
        "schema_version": 1,
        "name": entry.name,
        "artifact": name,
        "task": entry.task,
        "opset": model_opset(model),
        "weights": weights,
        "files": files,
        "model_file": MODEL_FILE,
        "int32_file": int32_file,
        "inputs": inputs,
        "outputs": outputs,
        "input": entry.input,
        "preprocess": entry.preprocess,
        "decoder": entry.decoder,
        "labels": labels,
        "label_set": entry.labels if isinstance(entry.labels, str) else "custom",
        "labels_from": labels_from,
        "nms_in_graph": entry.nms_in_graph,
        "reference": entry.reference,
        REFERENCE_BLOCK: reference_block,
        "measured": {
            "params_m": round(count_parameters(model) / 1e6, 3),
            "onnx_bytes": files[MODEL_FILE]["size"],
        },
        "source": entry.source,
        "export": {**export, "created": datetime.now(UTC).isoformat(timespec="seconds")},
        "versions": artifacts.library_versions(),
        "parity": checks,
        "build_hash": recipe,
    }


def convert(
    entries: Iterable[ModelEntry],
    artifacts_dir: Path,
    *,
    catalog_dir: Path,
    opset: int | None = None,
    weights_policy: str = "auto",
    force: bool = False,
    on_result: Callable[[ConvertResult], None] | None = None,
) -> list[ConvertResult]:
    """Convert every entry; failures are results, not exceptions."""
    artifacts_dir = Path(artifacts_dir)
    results = []
    for entry in entries:
        result = convert_one(
            entry,
            artifacts_dir,
            catalog_dir=catalog_dir,
            opset=opset,
            weights_policy=weights_policy,
            force=force,
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
