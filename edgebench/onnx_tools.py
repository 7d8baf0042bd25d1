"""ONNX graph checks and rewrites: validation, I/O description, opset conversion, int32 variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

__all__ = [
    "InvalidOnnxError",
    "ShapeMismatchError",
    "check_model",
    "convert_opset",
    "count_parameters",
    "describe_io",
    "fix_input_shape",
    "model_metadata",
    "model_opset",
    "narrow_int64",
]

_INT32_MIN, _INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max
# Operator inputs that accept int32 as well as int64 (opset 13+), by input index; every other
# int64 consumer gets a Cast back to int64 after the narrowed constant. Slice is left out on
# purpose: its index inputs must share one type, and some of them are often computed int64 shapes.
_ACCEPTS_INT32 = {
    "Gather": {1},
    "GatherElements": {1},
    "ScatterElements": {1},
}


class InvalidOnnxError(ValueError):
    """A file is not a valid ONNX model (unreadable, fails the checker or shape inference)."""


class ShapeMismatchError(ValueError):
    """A model's fixed input dimensions contradict the catalog's input size."""


def _dims(value: onnx.ValueInfoProto) -> list:
    return [
        dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else (dim.dim_param or "?")
        for dim in value.type.tensor_type.shape.dim
    ]


def fix_input_shape(model: onnx.ModelProto, height: int, width: int, layout: str = "NCHW"):
    """A copy of ``model`` whose image input is ``[1, 3, height, width]`` (or NHWC): dynamic batch
    becomes 1, dynamic spatial dimensions the catalog's size, and output dimensions that follow
    from them are inferred; ``(model, note)``, note None when nothing was dynamic. A fixed
    dimension that differs from the catalog's raises ShapeMismatchError naming both shapes."""
    initializers = {init.name for init in model.graph.initializer}
    image = next(value for value in model.graph.input if value.name not in initializers)
    wanted = [1, 3, height, width] if layout == "NCHW" else [1, height, width, 3]
    have = _dims(image)
    if len(have) != 4:
        raise ShapeMismatchError(
            f"model input {image.name!r} has shape {have}, not an image batch of rank 4 like {wanted}"
        )
    clash = [axis for axis, dim in enumerate(have) if isinstance(dim, int) and dim != wanted[axis]]
    if clash:
        raise ShapeMismatchError(
            f"model input {image.name!r} is {have} but the catalog's input gives {wanted} "
            f"({layout}, height {height}, width {width}); set the entry's input to the model's size"
        )
    if all(isinstance(dim, int) for dim in have):
        return model, None
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    target = next(value for value in fixed.graph.input if value.name == image.name)
    for dim, size in zip(target.type.tensor_type.shape.dim, wanted, strict=True):
        dim.Clear()
        dim.dim_value = size
    # Intermediate and output shapes recorded for the dynamic input would be stale: infer them anew.
    del fixed.graph.value_info[:]
    for output in fixed.graph.output:
        for dim in output.type.tensor_type.shape.dim:
            if not (dim.HasField("dim_value") and dim.dim_value > 0):
                dim.Clear()
    fixed = shape_inference.infer_shapes(fixed, check_type=True, data_prop=True)
    return fixed, f"input {image.name} {have} fixed to {wanted}"


def model_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


def check_model(path: Path) -> onnx.ModelProto:
    """Load, run the ONNX checker and strict shape inference; return the shape-inferred model."""
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise InvalidOnnxError(f"{path} is not a readable ONNX model: {exc}") from exc
    try:
        onnx.checker.check_model(model, full_check=False)
        return shape_inference.infer_shapes(model, check_type=True)
    except (onnx.checker.ValidationError, shape_inference.InferenceError) as exc:
        raise InvalidOnnxError(f"{path} fails ONNX validation: {str(exc).splitlines()[0]}") from exc


def model_opset(model: onnx.ModelProto) -> int:
    return next(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))


def _value_info(value: onnx.ValueInfoProto) -> dict:
    tensor = value.type.tensor_type
    shape = [
        dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None) for dim in tensor.shape.dim
    ]
    dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    return {"name": value.name, "shape": shape, "dtype": dtype}


def describe_io(model: onnx.ModelProto) -> tuple[list[dict], list[dict]]:
    """Graph inputs (without initializers) and outputs: name, shape, dtype."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_value_info(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [_value_info(v) for v in model.graph.output]


def count_parameters(model: onnx.ModelProto) -> int:
    """Elements of every floating-point initializer: the model's trainable weights after export."""
    total = 0
    for init in model.graph.initializer:
        if helper.tensor_dtype_to_np_dtype(init.data_type).kind == "f":
            total += int(np.prod(init.dims)) if init.dims else 1
    return total


def convert_opset(model: onnx.ModelProto, target: int) -> tuple[onnx.ModelProto, str | None]:
    """Bring a model down (or up) to ``target``; on failure keep it and say why in the note."""
    current = model_opset(model)
    if current == target:
        return model, None
    try:
        converted = onnx.version_converter.convert_version(model, target)
        onnx.checker.check_model(converted)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return model, f"kept at opset {current}: onnx.version_converter cannot reach {target} ({first_line})"
    return converted, f"converted from opset {current} to {target} with onnx.version_converter"


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            uses.setdefault(name, []).append((node, index))
    return uses


def _all_accept_int32(uses: list[tuple[onnx.NodeProto, int]]) -> bool:
    return bool(uses) and all(index in _ACCEPTS_INT32.get(node.op_type, ()) for node, index in uses)


def _fits_int32(array: np.ndarray) -> bool:
    # Empty tensors stand for "input not given" (Resize's sizes, say): narrowing them behind a
    # Cast would hide that from shape inference, and there is nothing to gain.
    return array.size > 0 and array.min() >= _INT32_MIN and array.max() <= _INT32_MAX


def narrow_int64(model: onnx.ModelProto, cast_back: bool = True) -> onnx.ModelProto | None:
    """A copy with every int64 initializer and Constant that fits narrowed to int32, or None if
    there is nothing to narrow.

    Consumers that accept int32 read the narrowed tensor directly; for the others (Reshape shapes,
    Unsqueeze axes, ...) a Cast back to int64 is inserted when ``cast_back``, which TensorRT's parser
    handles without the int64-weights warnings the thesis had to remove by hand. Some graphs need
    their int64 shape constants visible to shape inference (a Resize whose sizes are a Concat of
    constants); for those, ``cast_back=False`` narrows only what needs no Cast.
    """
    narrowed = onnx.ModelProto()
    narrowed.CopyFrom(model)
    graph = narrowed.graph
    uses = _consumers(graph)
    graph_outputs = {value.name for value in graph.output}
    casts: list[onnx.NodeProto] = []
    changed = False

    def needs_cast(name: str) -> bool:
        return name in graph_outputs or not _all_accept_int32(uses.get(name, []))

    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.INT64:
            continue
        array = numpy_helper.to_array(init)
        if not _fits_int32(array) or (needs_cast(init.name) and not cast_back):
            continue
        original = init.name
        replacement = numpy_helper.from_array(array.astype(np.int32), original)
        if needs_cast(original):
            replacement.name = f"{original}__int32"
            casts.append(
                helper.make_node(
                    "Cast",
                    [replacement.name],
                    [original],
                    to=onnx.TensorProto.INT64,
                    name=f"{original}__to_int64",
                )
            )
        init.CopyFrom(replacement)
        changed = True

    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            array = numpy_helper.to_array(tensor)
            if (
                tensor.data_type == onnx.TensorProto.INT64
                and _fits_int32(array)
                and (cast_back or not needs_cast(node.output[0]))
            ):
                output = node.output[0]
                narrowed_name = f"{output}__int32" if needs_cast(output) else output
                constant = helper.make_node(
                    "Constant",
                    [],
                    [narrowed_name],
                    name=node.name,
                    value=numpy_helper.from_array(array.astype(np.int32)),
                )
                new_nodes.append(constant)
                if narrowed_name != output:
                    new_nodes.append(
                        helper.make_node(
                            "Cast",
                            [narrowed_name],
                            [output],
                            to=onnx.TensorProto.INT64,
                            name=f"{output}__to_int64",
                        )
                    )
                changed = True
                continue
        if node.op_type == "Cast" and not needs_cast(node.output[0]):
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == onnx.TensorProto.INT64:
                    attribute.i = onnx.TensorProto.INT32
                    changed = True
        new_nodes.append(node)
    if not changed:
        return None
    del graph.node[:]
    graph.node.extend(casts + new_nodes)
    del graph.value_info[:]
    return shape_inference.infer_shapes(narrowed, check_type=True)
