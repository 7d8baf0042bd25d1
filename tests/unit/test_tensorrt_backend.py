"""The TensorRT backend without a GPU: API dispatch by version (fake tensorrt 8.x / 10.x modules),
I/O read from the engine, buffer sizing (dynamic dims, dtypes), every copy inside infer, and
``skipped`` with the reason when tensorrt / pycuda / a GPU is absent."""

from __future__ import annotations

import numpy as np
import pytest
from test_tensorrt_fakes import install, write_fake_onnx

from edgebench_runtime.backends import ProviderUnavailable, create_backend, provider_availability
from edgebench_runtime.backends import tensorrt as backend_module
from edgebench_runtime.backends.tensorrt import (
    BindingsApi,
    TensorsApi,
    TensorSpec,
    plan_buffers,
    select_api,
)
from edgebench_runtime.engines import resolve_shape
from edgebench_runtime.manifest import sha256_file


def _artifact(tmp_path, inputs, outputs, manifest_inputs=None, int32=False):
    directory = tmp_path / "toy"
    directory.mkdir()
    write_fake_onnx(directory / "model.onnx", inputs, outputs)
    files = {"model.onnx": {"sha256": sha256_file(directory / "model.onnx"), "size": 1}}
    if int32:
        narrowed = [dict(spec, dtype="int32") if spec["dtype"] == "int64" else spec for spec in inputs]
        write_fake_onnx(directory / "model.int32.onnx", narrowed, outputs)
        files["model.int32.onnx"] = {"sha256": sha256_file(directory / "model.int32.onnx"), "size": 1}
    manifest = {
        "schema_version": 1,
        "name": "toy",
        "artifact": "toy",
        "files": files,
        "model_file": "model.onnx",
        "int32_file": "model.int32.onnx" if int32 else None,
        "inputs": manifest_inputs
        or [{"name": s["name"], "shape": s["shape"], "dtype": s["dtype"]} for s in inputs],
        "outputs": [{"name": s["name"], "shape": s["shape"], "dtype": s["dtype"]} for s in outputs],
    }
    return directory, manifest


IO_IN = [{"name": "images", "shape": [-1, 3, 4, 4], "dtype": "float32"}]
IO_OUT = [
    {"name": "scores", "shape": [-1, 10], "dtype": "float32"},
    {"name": "mask", "shape": [-1, 4, 4], "dtype": "int32"},
    {"name": "half", "shape": [1, 5], "dtype": "float16"},
]


def test_select_api_by_major_version():
    from test_tensorrt_fakes import make_trt

    assert select_api(make_trt("8.2.1.8")) is BindingsApi  # JetPack 4.6
    assert select_api(make_trt("8.5.2.2")) is BindingsApi  # JetPack 5
    assert select_api(make_trt("10.3.0")) is TensorsApi  # JetPack 6.1 / desktop


@pytest.mark.parametrize(
    ("version", "api", "call"), [("8.2.1.8", BindingsApi, "v2"), ("10.3.0", TensorsApi, "v3")]
)
def test_load_and_infer_through_each_api(monkeypatch, tmp_path, version, api, call):
    _trt, cuda, state = install(monkeypatch, version)
    directory, manifest = _artifact(
        tmp_path,
        IO_IN,
        IO_OUT,
        manifest_inputs=[{"name": "images", "shape": [1, 3, 4, 4], "dtype": "float32"}],
    )
    backend = create_backend("tensorrt-fp16", {"provider_options": {"workspace_mb": 64}})
    backend.load(directory, manifest)
    assert isinstance(backend.api, api)
    # I/O comes from the engine, dynamic batch resolved from the manifest (1), outputs in manifest order.
    assert backend.input_names == ["images"]
    assert backend.output_names == ["scores", "mask", "half"]
    sizes = {item["name"]: (item["shape"], item["dtype"], item["bytes"]) for item in backend.io}
    assert sizes == {
        "images": ([1, 3, 4, 4], "float32", 192),
        "scores": ([1, 10], "float32", 40),
        "mask": ([1, 4, 4], "int32", 64),
        "half": ([1, 5], "float16", 10),
    }
    allocations = [entry[2] for entry in cuda.log if entry[0] == "alloc"]
    assert sorted(allocations) == [10, 40, 64, 192]
    cuda.log.clear()
    image = np.full((1, 3, 4, 4), 2.0, dtype=np.float32)
    outputs = backend.infer({"images": image})
    # Every input copied in, execution, every output copied out, then the stream synchronised, in that order.
    kinds = [entry[0] for entry in cuda.log]
    assert kinds == ["htod", "execute", "dtoh", "dtoh", "dtoh", "sync"]
    assert state["api_used"] == call
    assert outputs[0].shape == (1, 10) and np.allclose(outputs[0], 2.0)
    assert outputs[1].dtype == np.int32 and (outputs[1] == 3).all()
    assert outputs[2].dtype == np.float16 and np.allclose(outputs[2], 4.0)
    assert state["flags"] == ["FP16"] and state["workspace_bytes"] == 64 << 20
    details = backend.details()
    assert details["engine"]["status"] == "built" and details["precision"] == "fp16"
    assert details["api"] == api.name and details["gpu"]["compute_capability"] == "8.7"
    backend.close()
    backend.close()  # safe twice
    assert ("pop",) in cuda.log


def test_explicit_batch_flag_only_before_tensorrt_10(monkeypatch, tmp_path):
    for version, flags in (("8.2.1.8", 1), ("10.3.0", 0)):
        _trt, _cuda, state = install(monkeypatch, version)
        (tmp_path / version).mkdir()
        directory, manifest = _artifact(tmp_path / version, IO_IN, IO_OUT[:1])
        backend = create_backend("tensorrt-fp32")
        backend.load(directory, manifest)
        assert state["network_flags"] == flags
        # The dynamic input got an optimisation profile fixed at the manifest's shape.
        assert state["profiles"] == [{"images": ((1, 3, 4, 4),) * 3}]
        backend.close()


def test_old_workspace_api_before_8_4(monkeypatch, tmp_path):
    _trt, _cuda, state = install(monkeypatch, "8.2.1.8", old_workspace_api=True)
    directory, manifest = _artifact(tmp_path, IO_IN, IO_OUT[:1])
    backend = create_backend("tensorrt-fp32", {"provider_options": {"workspace_mb": "256"}})
    backend.load(directory, manifest)
    assert state["workspace_bytes"] == 256 << 20 and state["flags"] == []
    backend.close()


def test_int32_variant_is_built_and_int64_feeds_are_cast(monkeypatch, tmp_path):
    _trt, _cuda, _state = install(monkeypatch, "10.3.0")
    inputs = [{"name": "ids", "shape": [1, 6], "dtype": "int64"}]
    directory, manifest = _artifact(
        tmp_path, inputs, [{"name": "out", "shape": [1, 2], "dtype": "float32"}], int32=True
    )
    backend = create_backend("tensorrt-fp32")
    backend.load(directory, manifest)
    assert backend.model_file == "model.int32.onnx"
    assert backend.io[0]["dtype"] == "int32" and backend.io[0]["bytes"] == 24
    out = backend.infer({"ids": np.arange(6, dtype=np.int64).reshape(1, 6)})
    assert np.allclose(out[0], 2.5)
    with pytest.raises(ValueError, match="expects"):
        backend.infer({"ids": np.zeros((1, 7), dtype=np.int64)})
    backend.close()


def test_plan_buffers_sizes_from_described_io():
    specs = [
        TensorSpec("images", (-1, 3, 224, 224), np.float32, True, 0),
        TensorSpec("boxes", (-1, 100, 4), np.float16, False, 1),
        TensorSpec("classes", (-1, 100), np.int32, False, 2),
        TensorSpec("valid", (1, 100), np.bool_, False, 3),
        TensorSpec("q", (1, 8), np.int8, False, 4),
    ]
    shapes = {
        "images": resolve_shape(specs[0].shape, [1, 3, 224, 224]),
        "boxes": (2, 100, 4),
        "classes": (2, 100),
    }
    plan = {spec.name: (shape, nbytes) for spec, shape, nbytes in plan_buffers(specs, shapes)}
    assert plan == {
        "images": ((1, 3, 224, 224), 1 * 3 * 224 * 224 * 4),
        "boxes": ((2, 100, 4), 2 * 100 * 4 * 2),
        "classes": ((2, 100), 2 * 100 * 4),
        "valid": ((1, 100), 100),
        "q": ((1, 8), 8),
    }
    # The thesis sized every output as 100 floats; a data-dependent shape is refused, not guessed.
    with pytest.raises(ValueError, match="data-dependent"):
        plan_buffers([TensorSpec("nms", (-1, 7), np.float32, False, 0)], {})


def test_resolve_shape_uses_manifest_dims_else_one():
    assert resolve_shape((-1, 3, -1, -1), [1, 3, 320, 320]) == (1, 3, 320, 320)
    assert resolve_shape((-1, 3, 8), ["batch", 3, 8]) == (1, 3, 8)
    assert resolve_shape((2, 3), None) == (2, 3)


def test_skipped_with_reason_when_tensorrt_or_pycuda_absent(monkeypatch):
    def missing(name):
        def load():
            raise ImportError(f"No module named '{name}'")

        return load

    monkeypatch.setattr(backend_module, "_tensorrt", missing("tensorrt"))
    monkeypatch.setattr(backend_module, "_cuda", missing("pycuda"))
    ok, reason = provider_availability("tensorrt-fp16")
    assert (
        not ok and "tensorrt Python bindings not importable" in reason and "pycuda not importable" in reason
    )
    with pytest.raises(ProviderUnavailable, match="tensorrt"):
        create_backend("tensorrt-fp16").load("/nonexistent", {})


def test_skipped_with_reason_when_no_gpu(monkeypatch):
    from test_tensorrt_fakes import FakeCuda

    install(monkeypatch, "10.3.0")
    monkeypatch.setattr(FakeCuda, "devices", 0)
    ok, reason = provider_availability("tensorrt")
    assert not ok and "no CUDA device" in reason


def test_int8_without_calibration_images_is_skipped(monkeypatch, tmp_path):
    install(monkeypatch, "10.3.0")
    assert provider_availability("tensorrt-int8") == (True, None)
    directory, manifest = _artifact(tmp_path, IO_IN, IO_OUT[:1])
    with pytest.raises(ProviderUnavailable, match="calibration images"):
        create_backend("tensorrt-int8").load(directory, manifest)
    with pytest.raises(ProviderUnavailable, match="does not exist"):
        create_backend(
            "tensorrt-int8", {"provider_options": {"calibration_images": str(tmp_path / "no")}}
        ).load(directory, manifest)


def test_unknown_precision_reported():
    ok, reason = provider_availability("tensorrt-int4")
    assert not ok and "precision" in reason


@pytest.mark.parametrize("version", ["8.2.1.8", "10.3.0"])
def test_cuda_events_give_trtexecs_breakdown_per_image(monkeypatch, tmp_path, version):
    # The fake stream's clock: copies 1 ms per KiB, execution 2.5 ms; events read it where recorded.
    install(monkeypatch, version)
    directory, manifest = _artifact(
        tmp_path, IO_IN, IO_OUT, manifest_inputs=[{**IO_IN[0], "shape": [1, 3, 4, 4]}]
    )
    backend = create_backend("tensorrt-fp32")
    backend.load(directory, manifest)
    assert backend.measures_breakdown and backend.last_breakdown is None
    backend.infer({"images": np.ones((1, 3, 4, 4), np.float32)})
    h2d, compute, d2h = backend.last_breakdown
    assert h2d == pytest.approx(192 / 1024) and compute == pytest.approx(2.5)
    assert d2h == pytest.approx((40 + 64 + 10) / 1024)
    backend.close()


def test_no_breakdown_where_pycuda_has_no_events(monkeypatch, tmp_path):
    install(monkeypatch, "10.3.0", events=False)
    directory, manifest = _artifact(
        tmp_path, IO_IN, IO_OUT[:1], manifest_inputs=[{**IO_IN[0], "shape": [1, 3, 4, 4]}]
    )
    backend = create_backend("tensorrt-fp32")
    backend.load(directory, manifest)
    backend.infer({"images": np.ones((1, 3, 4, 4), np.float32)})
    assert not backend.measures_breakdown and backend.last_breakdown is None
    backend.close()


def test_the_measured_loop_records_the_breakdown_beside_each_row(monkeypatch, tmp_path):
    from edgebench_runtime.bench import measure
    from edgebench_runtime.results import BreakdownWriter, TimingsWriter, read_breakdown
    from edgebench_runtime.summary import compose_summary

    install(monkeypatch, "10.3.0")
    directory, manifest = _artifact(
        tmp_path, IO_IN, IO_OUT[:1], manifest_inputs=[{**IO_IN[0], "shape": [1, 3, 4, 4]}]
    )
    backend = create_backend("tensorrt-fp16")
    backend.load(directory, manifest)

    class Pipeline:
        def preprocess(self, image):
            return {"images": np.ones((1, 3, 4, 4), np.float32)}, {}

        def postprocess(self, outputs, geometry):
            return None

        def brief(self, result):
            return ""

    results = tmp_path / "out"
    results.mkdir()
    writer = TimingsWriter(str(results / "timings.csv"))
    breakdown = BreakdownWriter(str(results / "gpu_timings.csv"))
    measure(backend, Pipeline(), ["a.jpg"], writer, 0, 3, 0, 0, decode=lambda p: None, breakdown=breakdown)
    writer.close()
    breakdown.close()
    stages = read_breakdown(str(results / "gpu_timings.csv"))
    assert stages["index"].tolist() == [0, 1, 2]
    assert stages["gpu_compute_ms"].tolist() == [2.5, 2.5, 2.5]
    job = {"result_dir": str(results), "count": 3, "model": "toy", "provider": "tensorrt-fp16"}
    job.update({"mode": "warm", "warmup": 0})
    summary = compose_summary(job, "complete")
    assert summary["phases"]["gpu_compute_ms"]["mean"] == pytest.approx(2.5)
    assert summary["phases"]["h2d_ms"]["n"] == 3 and summary["gpu_breakdown"]["n"] == 3
    backend.close()
