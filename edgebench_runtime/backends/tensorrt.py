"""TensorRT backend (``tensorrt-fp32``, ``tensorrt-fp16``, ``tensorrt-int8``) through the TensorRT
Python API and pycuda.

``load`` builds the engine from the artifact (its int32 variant where present) or finds it in the
engine cache (``engines.py``: keyed by ONNX sha256 + TensorRT version + GPU + precision + build
options), then reads every input/output tensor's name, shape and dtype from the engine itself and
allocates one page-locked host buffer and one device buffer per tensor, sized to it. ``infer``
copies every input host->device, executes, copies every output device->host, all on one stream, and
synchronises the stream before returning, so ``infer_ms`` holds the copies. The outputs returned
are the page-locked buffers themselves (valid until the next ``infer``). Four CUDA events recorded
on the stream between those stages give trtexec's breakdown per image, ``last_breakdown`` = (H2D,
GPU compute, D2H) in ms (``Event.time_till``); a pycuda without events leaves it None.

Two API shapes, chosen by the TensorRT major version present:

* TensorRT < 10 (JetPack 4.6: 8.2, JetPack 5: 8.5): binding indices (``num_bindings``,
  ``get_binding_name/shape/dtype``, ``binding_is_input``, ``set_binding_shape``) and
  ``execute_async_v2(bindings, stream_handle)``;
* TensorRT >= 10: tensor names (``num_io_tensors``, ``get_tensor_name/mode/shape/dtype``,
  ``set_input_shape``, ``set_tensor_address``) and ``execute_async_v3(stream_handle)``.

Provider options (``--provider-option tensorrt:KEY=VALUE``): ``workspace_mb`` (builder memory pool,
default 1024: keep it equal to the engines phase's ``--workspace-mb`` so the run finds its engine),
``engine_cache`` (directory; default ``<artifact>/engines``), ``calibration_images`` (a folder;
int8 is skipped without it), ``device_id`` (default 0).

Absent tensorrt, pycuda or GPU: the provider is ``skipped`` with the reason.

Python 3.6 compatible.
"""

import contextlib
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..engines import DEFAULT_WORKSPACE_MB, EngineCache, ensure_engine, make_logger, resolve_shape
from ..manifest import sha256_file
from ..provisioned import absent_reasons
from ..vocabulary import PRECISIONS, parse_provider
from .base import Backend, ProviderUnavailable
from .tensorrt_api import (
    BindingsApi,
    TensorsApi,
    TensorSpec,
    calibration_batches,
    calibration_digest,
    make_calibrator,
    plan_buffers,
    select_api,
)

__all__ = [
    "PRECISIONS",
    "BindingsApi",
    "TensorRTBackend",
    "TensorSpec",
    "TensorsApi",
    "gpu_identity",
    "plan_buffers",
    "select_api",
]


def _tensorrt():
    import tensorrt

    return tensorrt


def _cuda():
    import pycuda.driver

    return pycuda.driver


def _import_status():
    """``(tensorrt_version_or_None, pycuda_version_or_None, reason_or_None)``."""
    reasons = []
    trt_version = cuda_version = None
    try:
        trt_version = getattr(_tensorrt(), "__version__", "unknown")
    except Exception as exc:  # ImportError, or a broken install raising anything else
        reasons.append("tensorrt Python bindings not importable (%s)" % exc)
    try:
        driver = _cuda()
        package = sys.modules.get("pycuda")
        cuda_version = getattr(package, "VERSION_TEXT", None) or getattr(driver, "VERSION_TEXT", "unknown")
    except Exception as exc:
        reasons.append("pycuda not importable (%s)" % exc)
    if trt_version is None:
        reasons.append(
            "on a Jetson, JetPack installs the bindings for its system Python (python3-libnvinfer): "
            "run the runtime with that Python and edgebench_system_site_packages: true"
        )
    if reasons:
        reasons.extend("provisioning: %s" % note for note in absent_reasons(("pycuda", "tensorrt")))
    return trt_version, cuda_version, "; ".join(reasons) or None


def gpu_identity(cuda: Any, device_id: int = 0) -> Dict[str, Any]:
    """``{"name", "compute_capability": "M.m", "device_id"}`` of a CUDA device (initialises CUDA)."""
    cuda.init()
    count = cuda.Device.count()
    if count <= device_id:
        raise ProviderUnavailable("no CUDA device %d (this machine has %d)" % (device_id, count))
    device = cuda.Device(device_id)
    major, minor = device.compute_capability()
    return {
        "name": str(device.name()),
        "compute_capability": "%d.%d" % (major, minor),
        "device_id": device_id,
    }


class TensorRTBackend(Backend):
    name = "tensorrt"
    families = ("tensorrt",)

    def __init__(self, provider: str, options: Optional[Dict[str, Any]] = None) -> None:
        Backend.__init__(self, provider, options)
        self.precision = self.precision or "fp32"
        self.provider_options = dict(self.options.get("provider_options") or {})
        self.workspace_mb = int(self.provider_options.get("workspace_mb", DEFAULT_WORKSPACE_MB))
        self.engine_cache = self.provider_options.get("engine_cache")
        self.calibration_images = self.provider_options.get("calibration_images")
        self.device_id = int(self.provider_options.get("device_id", 0))
        self.model_file = None
        self.engine_info = None
        self.gpu = None
        self.api = None
        self.io = []
        self._trt = self._cuda = None
        self._ctx = None
        self._runtime = self._engine = self._context = None
        self._stream = None
        self._events = None
        self._inputs = []  # (name, host, device)
        self._outputs = []  # (host, device) in output_names order
        self._device_buffers = []
        self._results = []

    @classmethod
    def availability(cls, provider: str) -> Tuple[bool, Optional[str]]:
        precision = parse_provider(provider)[1] or "fp32"
        if precision not in PRECISIONS:
            return False, "unknown TensorRT precision %r (known: %s)" % (precision, ", ".join(PRECISIONS))
        _trt_version, _cuda_version, reason = _import_status()
        if reason:
            return False, reason
        try:
            cuda = _cuda()
            cuda.init()
            if cuda.Device.count() < 1:
                return False, "pycuda sees no CUDA device"
        except Exception as exc:
            return False, "CUDA is not usable through pycuda (%s: %s)" % (type(exc).__name__, exc)
        return True, None

    def version(self) -> Optional[str]:
        return _import_status()[0]

    # --- load ---------------------------------------------------------------------------------

    def build_options(self, manifest: Dict[str, Any]) -> Dict[str, Any]:
        """What goes into the engine key besides the ONNX file, TensorRT, GPU and precision."""
        options = {
            "workspace_mb": self.workspace_mb,
            "explicit_batch": True,
            "input_shapes": dict(
                (item["name"], list(item.get("shape") or [])) for item in manifest.get("inputs", [])
            ),
        }
        if self.precision == "int8":
            options["calibration"] = calibration_digest(self.calibration_images)
        return options

    def onnx_file(self, manifest: Dict[str, Any]) -> str:
        return manifest.get("int32_file") or manifest.get("model_file") or "model.onnx"

    def check_usable(self) -> None:
        """Raise ProviderUnavailable with the reason when this provider cannot run here."""
        ok, reason = self.availability(self.provider)
        if not ok:
            raise ProviderUnavailable(reason)
        if self.precision == "int8" and not self.calibration_images:
            raise ProviderUnavailable(
                "tensorrt-int8 needs calibration images: pass --provider-option "
                "tensorrt:calibration_images=DIR (none given)"
            )
        if self.precision == "int8" and not os.path.isdir(str(self.calibration_images)):
            raise ProviderUnavailable("calibration image folder %s does not exist" % self.calibration_images)

    def load(self, artifact_dir: str, manifest: Dict[str, Any]) -> None:
        self.check_usable()
        self.prepare_engine(artifact_dir, manifest)
        self._prepare_io(manifest)

    def prepare_engine(self, artifact_dir: str, manifest: Dict[str, Any]) -> Dict[str, Any]:
        """Find the cached engine or build it (the ``engines`` command stops here); returns
        ``engine_info`` (``status`` built | cached, ``key``, ``path``, ``build_ms``, ``log``)."""
        self._trt, self._cuda = _tensorrt(), _cuda()
        self.gpu = gpu_identity(self._cuda, self.device_id)
        self._ctx = self._cuda.Device(self.device_id).retain_primary_context()
        self._ctx.push()
        self._load_engine(artifact_dir, manifest)
        return self.engine_info

    def _load_engine(self, artifact_dir, manifest):
        trt = self._trt
        self.model_file = self.onnx_file(manifest)
        onnx_path = os.path.join(str(artifact_dir), self.model_file)
        record = (manifest.get("files") or {}).get(self.model_file) or {}
        onnx_sha = record.get("sha256") or sha256_file(onnx_path)
        cache = EngineCache(self.engine_cache or os.path.join(str(artifact_dir), "engines"))
        logger = make_logger(trt)
        input_shapes = dict((item["name"], item.get("shape")) for item in manifest.get("inputs", []))
        name = (
            manifest.get("artifact")
            or manifest.get("name")
            or os.path.basename(os.path.abspath(str(artifact_dir)))
        )
        cuda = self._cuda
        calibration = self.calibration_images

        def calibrator_factory(key):
            batches = calibration_batches(calibration, manifest)
            return make_calibrator(
                trt, cuda, batches, os.path.join(cache.directory, "calibration-%s.cache" % key[:16])
            )

        self._runtime, self._engine, self.engine_info = ensure_engine(
            trt,
            cache,
            name,
            onnx_path,
            onnx_sha,
            self.precision,
            self.gpu,
            self.build_options(manifest),
            logger,
            input_shapes=input_shapes,
            calibrator_factory=calibrator_factory,
        )

    def _prepare_io(self, manifest):
        trt, cuda = self._trt, self._cuda
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise MemoryError("TensorRT could not create an execution context (out of GPU memory?)")
        self.api = select_api(trt)(trt, self._engine, self._context)
        specs = self.api.tensors()
        wanted = dict((item["name"], item.get("shape")) for item in manifest.get("inputs", []))
        shapes = {}
        for spec in specs:
            if spec.is_input:
                shapes[spec.name] = resolve_shape(spec.shape, wanted.get(spec.name))
                if any(d < 0 for d in spec.shape):
                    self.api.set_input_shape(spec, shapes[spec.name])
        for spec in specs:
            if not spec.is_input:
                shapes[spec.name] = self.api.shape(spec) if any(d < 0 for d in spec.shape) else spec.shape
        plan = plan_buffers(specs, shapes)
        self._stream = cuda.Stream()
        try:
            self._events = [cuda.Event() for _stage in range(4)]
        except Exception:  # an old or partial pycuda: no per-stage breakdown
            self._events = None
        self.measures_breakdown = bool(self._events)
        addresses = {}
        hosts = {}
        for spec, shape, nbytes in plan:
            host = cuda.pagelocked_empty(shape, spec.dtype)
            device = cuda.mem_alloc(max(nbytes, 1))
            self._device_buffers.append(device)
            addresses[spec.name] = int(device)
            hosts[spec.name] = (host, device)
        self.api.bind(specs, addresses)
        self.io = [dict(spec.describe(), shape=list(shape), bytes=nbytes) for spec, shape, nbytes in plan]
        self.input_names = [spec.name for spec in specs if spec.is_input]
        engine_outputs = [spec.name for spec in specs if not spec.is_input]
        manifest_outputs = [item["name"] for item in manifest.get("outputs", [])]
        if sorted(manifest_outputs) == sorted(engine_outputs):
            self.output_names = manifest_outputs
        else:
            self.output_names = engine_outputs
        self._inputs = [(name,) + hosts[name] for name in self.input_names]
        self._outputs = [hosts[name] for name in self.output_names]
        self._results = [host for host, _device in self._outputs]

    # --- inference ----------------------------------------------------------------------------

    def infer(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        cuda = self._cuda
        stream = self._stream
        events = self._events
        if events:
            events[0].record(stream)
        for name, host, device in self._inputs:
            value = feeds[name]
            if value.shape == host.shape and value.dtype == host.dtype:
                np.copyto(host, value)
            elif value.size == host.size:
                host[...] = np.asarray(value).reshape(host.shape)  # casts, e.g. int64 -> int32
            else:
                raise ValueError(
                    "input %s has shape %s, the engine expects %s" % (name, value.shape, host.shape)
                )
            cuda.memcpy_htod_async(device, host, stream)
        if events:
            events[1].record(stream)
        if not self.api.execute(stream.handle):
            raise RuntimeError("TensorRT execution failed (%s)" % self.api.name)
        if events:
            events[2].record(stream)
        for host, device in self._outputs:
            cuda.memcpy_dtoh_async(host, device, stream)
        if events:
            events[3].record(stream)
        stream.synchronize()
        if events:
            self.last_breakdown = (
                events[0].time_till(events[1]),
                events[1].time_till(events[2]),
                events[2].time_till(events[3]),
            )
        return self._results

    def close(self) -> None:
        for device in self._device_buffers:
            with contextlib.suppress(Exception):
                device.free()
        self._device_buffers = []
        self._inputs = self._outputs = self._results = []
        self._events = None
        self._context = self._engine = self._runtime = None
        self._stream = None
        if self._ctx is not None:
            with contextlib.suppress(Exception):
                self._ctx.pop()
            self._ctx = None

    def details(self) -> Dict[str, Any]:
        data = Backend.details(self)
        info = dict(self.engine_info or {})
        info.pop("components", None)
        data.update(
            {
                "precision": self.precision,
                "model_file": self.model_file,
                "workspace_mb": self.workspace_mb,
                "engine": info or None,
                "engine_key": (self.engine_info or {}).get("components"),
                "api": self.api.name if self.api is not None else None,
                "gpu": self.gpu,
                "io": self.io,
                "provider_options": self.provider_options,
            }
        )
        return data
