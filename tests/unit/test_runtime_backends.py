"""backends/: provider parsing, availability, the ONNX Runtime backend, the TensorRT seam."""

import numpy as np
import pytest
from machine import without_tensorrt

from edgebench_runtime.backends import (
    ProviderUnavailable,
    available_providers,
    create_backend,
    parse_provider,
    provider_availability,
)


def test_parse_provider():
    assert parse_provider("cpu") == ("cpu", None)
    assert parse_provider("tensorrt-fp16") == ("tensorrt", "fp16")


def test_availability_on_this_machine():
    assert provider_availability("cpu") == (True, None)
    assert "cpu" in available_providers()
    ok, reason = provider_availability("tensorrt-int4")
    assert not ok and "precision" in reason
    ok, reason = provider_availability("npu")
    assert not ok and "unknown provider" in reason
    ok, reason = provider_availability("cpu-fp16")
    assert not ok


@without_tensorrt
def test_tensorrt_is_unavailable_with_a_reason_where_it_is_absent():
    ok, reason = provider_availability("tensorrt-fp16")
    assert not ok and reason


def test_cuda_is_skipped_never_faked():
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    ok, reason = provider_availability("cuda")
    assert not ok and "CUDAExecutionProvider" in reason
    with pytest.raises(ProviderUnavailable):
        create_backend("cuda").load("/nonexistent", {"model_file": "model.onnx"})


@without_tensorrt
def test_tensorrt_seam_raises_provider_unavailable():
    backend = create_backend("tensorrt-fp16")
    assert backend.family == "tensorrt" and backend.precision == "fp16"
    with pytest.raises(ProviderUnavailable):
        backend.load("/nonexistent", {})


def test_onnxruntime_backend_runs_and_records_settings(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "model.onnx")
    )
    backend = create_backend(
        "cpu",
        {
            "threads": 1,
            "graph_optimization_level": "basic",
            "session_config": {"session.intra_op.allow_spinning": "0"},
        },
    )
    backend.load(str(tmp_path), {"model_file": "model.onnx"})
    out = backend.infer({"x": np.array([[-1, 2, -3, 4]], np.float32)})
    np.testing.assert_array_equal(out[0], [[0, 2, 0, 4]])
    details = backend.details()
    assert details["threads"] == 1 and details["graph_optimization_level"] == "basic"
    assert details["active_providers"] == ["CPUExecutionProvider"]
    assert details["session_config"] == {"session.intra_op.allow_spinning": "0"}
    assert details["version"]
    backend.close()
    backend.close()
    with pytest.raises(ValueError):
        create_backend("cpu", {"graph_optimization_level": "max"})
