"""Fake ``tensorrt`` (8.x and 10.x API shapes) and ``pycuda.driver`` modules for the TensorRT tests
that run without a GPU. Each fake exposes only its own version's API, so a backend that called the
wrong one fails with AttributeError. Imported by test_tensorrt_backend.py / test_tensorrt_engines.py.

The fake "ONNX file" is JSON: {"inputs": [{"name", "shape", "dtype"}], "outputs": [...]} (dtype one
of float32, float16, int32, int8, bool); the fake engine bytes carry that I/O, the precision and the
TensorRT version, so deserialising checks both. The fake execution writes, into every output,
``mean(first input) + output index``.
"""

from __future__ import annotations

import enum
import json
import types
from pathlib import Path

import numpy as np

_DTYPES = {"float32": 0, "float16": 1, "int8": 2, "int32": 3, "bool": 4, "int64": 5}
_NP = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.bool_, 5: np.int64}
MAGIC = b"FAKEENGINE"


def write_fake_onnx(path, inputs, outputs):
    path.write_text(json.dumps({"inputs": inputs, "outputs": outputs}))
    return path


def make_trt(version="10.3.0", state=None, old_workspace_api=False):
    """A fake ``tensorrt`` module; ``state`` (a dict) collects what the builder was asked to do."""
    state = state if state is not None else {}
    state.setdefault("builds", 0)
    state.setdefault("timing_cache_loaded", [])
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class ILogger:
        def __init__(self):
            pass

    ILogger.Severity = Severity
    trt.ILogger = ILogger
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"EXPLICIT_BATCH": 0})
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", {"FP16": 0, "INT8": 1})
    trt.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    trt.DataType = enum.IntEnum(
        "DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "INT64": 5}
    )
    trt.nptype = lambda dt: _NP[int(dt)]

    class Tensor:
        def __init__(self, spec):
            self.name = spec["name"]
            self.shape = tuple(spec["shape"])

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.io = None

        @property
        def num_inputs(self):
            return len(self.io["inputs"])

        def get_input(self, i):
            return Tensor(self.io["inputs"][i])

    class Parser:
        def __init__(self, network, logger):
            self.network, self.logger, self.errors = network, logger, []

        def parse_from_file(self, path):
            text = Path(path).read_text()
            try:
                self.network.io = json.loads(text)
            except ValueError:
                self.errors = ["In node 0: unsupported operator FakeOp"]
                return False
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    class TimingCache:
        def __init__(self, blob):
            self.blob = bytes(blob)

        def serialize(self):
            return self.blob + b"+"

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, low, opt, high):
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class Config:
        def __init__(self):
            self.flags = set()
            self.profiles = []
            self.cache = None
            self.int8_calibrator = None
            if old_workspace_api:
                self.max_workspace_size = 0

        def set_flag(self, flag):
            self.flags.add(flag.name)

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        def create_timing_cache(self, blob):
            state["timing_cache_loaded"].append(bytes(blob))
            return TimingCache(blob)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    if not old_workspace_api:

        def set_memory_pool_limit(self, pool, size):
            state["workspace_bytes"] = size

        Config.set_memory_pool_limit = set_memory_pool_limit

    class Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            state["network_flags"] = flags
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            state["builds"] += 1
            state["flags"] = sorted(config.flags)
            state["profiles"] = [p.shapes for p in config.profiles]
            if old_workspace_api:
                state["workspace_bytes"] = config.max_workspace_size
            self.logger.log(Severity.INFO, f"fake build of {network.num_inputs} inputs")
            self.logger.log(Severity.VERBOSE, "verbose chatter that is not kept")
            if state.get("fail_build"):
                self.logger.log(Severity.ERROR, "out of tactics")
                return None
            payload = {"io": network.io, "version": version, "flags": sorted(config.flags)}
            return MAGIC + json.dumps(payload).encode()

    trt.Builder = Builder
    trt.OnnxParser = Parser

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            data = bytes(data)
            if not data.startswith(MAGIC):
                return None
            try:
                payload = json.loads(data[len(MAGIC) :].decode())
            except ValueError:
                return None
            if payload["version"] != version:
                return None
            state["deserialized"] = state.get("deserialized", 0) + 1
            return (Engine10 if major >= 10 else Engine8)(payload["io"])

    trt.Runtime = Runtime

    class EngineBase:
        def __init__(self, io):
            self.specs = [dict(s, is_input=True) for s in io["inputs"]] + [
                dict(s, is_input=False) for s in io["outputs"]
            ]

        def create_execution_context(self):
            return (Context10 if major >= 10 else Context8)(self)

    class Engine8(EngineBase):
        @property
        def num_bindings(self):
            return len(self.specs)

        def get_binding_name(self, i):
            return self.specs[i]["name"]

        def get_binding_shape(self, i):
            return tuple(self.specs[i]["shape"])

        def get_binding_dtype(self, i):
            return trt.DataType(_DTYPES[self.specs[i]["dtype"]])

        def binding_is_input(self, i):
            return self.specs[i]["is_input"]

    class Engine10(EngineBase):
        def _spec(self, name):
            return next(s for s in self.specs if s["name"] == name)

        @property
        def num_io_tensors(self):
            return len(self.specs)

        def get_tensor_name(self, i):
            return self.specs[i]["name"]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if self._spec(name)["is_input"] else trt.TensorIOMode.OUTPUT

        def get_tensor_shape(self, name):
            return tuple(self._spec(name)["shape"])

        def get_tensor_dtype(self, name):
            return trt.DataType(_DTYPES[self._spec(name)["dtype"]])

    class ContextBase:
        def __init__(self, engine):
            self.engine = engine
            self.shapes = {s["name"]: tuple(s["shape"]) for s in engine.specs}
            self.addresses = {}

        def _batch(self):
            first = next(s for s in self.engine.specs if s["is_input"])
            return self.shapes[first["name"]][0]

        def _resolved(self, spec):
            shape = self.shapes[spec["name"]]
            if spec["is_input"]:
                return shape
            return tuple(self._batch() if d < 0 and axis == 0 else d for axis, d in enumerate(shape))

        def _run(self, stream_handle):
            memory = state["cuda"].memory
            specs = self.engine.specs
            first = next(s for s in specs if s["is_input"])
            value = np.frombuffer(
                memory[self.addresses[first["name"]]],
                dtype=_NP[_DTYPES[first["dtype"]]],
                count=int(np.prod(self._resolved(first))),
            )
            mean = float(value.astype(np.float64).mean())
            outputs = [s for s in specs if not s["is_input"]]
            for j, spec in enumerate(outputs):
                shape = self._resolved(spec)
                data = np.full(shape, mean + j, dtype=_NP[_DTYPES[spec["dtype"]]])
                memory[self.addresses[spec["name"]]][: data.nbytes] = data.tobytes()
            state["cuda"].log.append(("execute", stream_handle))
            state["cuda"].clock_ms += state["cuda"].execute_ms
            return True

    class Context8(ContextBase):
        def set_binding_shape(self, i, shape):
            self.shapes[self.engine.specs[i]["name"]] = tuple(shape)
            return True

        def get_binding_shape(self, i):
            return self._resolved(self.engine.specs[i])

        def execute_async_v2(self, bindings, stream_handle):
            for spec, address in zip(self.engine.specs, bindings, strict=True):
                self.addresses[spec["name"]] = address
            state["api_used"] = "v2"
            return self._run(stream_handle)

    class Context10(ContextBase):
        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            return self._resolved(next(s for s in self.engine.specs if s["name"] == name))

        def set_tensor_address(self, name, address):
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle):
            state["api_used"] = "v3"
            return self._run(stream_handle)

    return trt


class FakeDevice:
    def __init__(self, cuda, index):
        self.cuda, self.index = cuda, index

    @staticmethod
    def count():
        return FakeCuda.devices

    def name(self):
        return self.cuda.gpu_name

    def compute_capability(self):
        return self.cuda.capability

    def retain_primary_context(self):
        cuda = self.cuda

        class Context:
            def push(self):
                cuda.log.append(("push",))

            def pop(self):
                cuda.log.append(("pop",))

        return Context()


class FakeCuda(types.ModuleType):
    """A fake ``pycuda.driver``: device memory is a dict address -> bytearray."""

    devices = 1

    def __init__(self, gpu_name="Orin (nvgpu)", capability=(8, 7), events=True):
        super().__init__("pycuda.driver")
        self.gpu_name, self.capability = gpu_name, capability
        self.memory = {}
        self.log = []
        self.pinned = []
        self.VERSION_TEXT = "2024.1-fake"
        # The stream's clock: copies take 1 ms per KiB, an execution ``execute_ms``; CUDA events
        # read it where they are recorded, as real events time the stream's work.
        self.clock_ms = 0.0
        self.execute_ms = 2.5
        cuda = self

        class Event:
            def __init__(self, flags=0):
                self.at = None

            def record(self, stream=None):
                self.at = cuda.clock_ms
                return self

            def synchronize(self):
                return self

            def time_till(self, other):
                return other.at - self.at

            def time_since(self, other):
                return self.at - other.at

        if events:
            self.Event = Event

        class Device(FakeDevice):
            def __init__(self, index):
                FakeDevice.__init__(self, cuda, index)

        class Stream:
            handle = 4242

            def synchronize(self):
                cuda.log.append(("sync",))

        class Allocation:
            def __init__(self, address):
                self.address = address

            def __int__(self):
                return self.address

            def free(self):
                cuda.log.append(("free", self.address))

        self.Device = Device
        self.Stream = Stream
        self._Allocation = Allocation

    def init(self):
        pass

    def mem_alloc(self, nbytes):
        address = 0x1000 * (len(self.memory) + 1)
        self.memory[address] = bytearray(nbytes)
        self.log.append(("alloc", address, nbytes))
        return self._Allocation(address)

    def pagelocked_empty(self, shape, dtype):
        array = np.zeros(shape, dtype=dtype)
        self.pinned.append(array)
        return array

    def memcpy_htod_async(self, device, host, stream=None):
        self.memory[int(device)][: host.nbytes] = host.tobytes()
        self.log.append(("htod", int(device), host.nbytes))
        self.clock_ms += host.nbytes / 1024.0

    def memcpy_htod(self, device, host):
        self.memcpy_htod_async(device, host)

    def memcpy_dtoh_async(self, host, device, stream=None):
        raw = bytes(self.memory[int(device)][: host.nbytes])
        host[...] = np.frombuffer(raw, dtype=host.dtype).reshape(host.shape)
        self.log.append(("dtoh", int(device), host.nbytes))
        self.clock_ms += host.nbytes / 1024.0


def install(
    monkeypatch,
    version="10.3.0",
    state=None,
    gpu_name="Orin (nvgpu)",
    capability=(8, 7),
    events=True,
    **kwargs,
):
    """Patch the backend to see the fake tensorrt + pycuda; returns (trt, cuda, state). ``events``
    False: a pycuda without CUDA events (the per-stage breakdown is then absent)."""
    from edgebench_runtime.backends import tensorrt as backend_module

    state = state if state is not None else {}
    trt = make_trt(version, state, **kwargs)
    cuda = FakeCuda(gpu_name, capability, events)
    state["cuda"] = cuda
    monkeypatch.setattr(backend_module, "_tensorrt", lambda: trt)
    monkeypatch.setattr(backend_module, "_cuda", lambda: cuda)
    return trt, cuda, state


def test_fakes_expose_only_their_versions_api():
    trt8, trt10 = make_trt("8.2.1.8"), make_trt("10.3.0")
    engine8 = trt8.Runtime(None).deserialize_cuda_engine(
        MAGIC + json.dumps({"io": {"inputs": [], "outputs": []}, "version": "8.2.1.8", "flags": []}).encode()
    )
    engine10 = trt10.Runtime(None).deserialize_cuda_engine(
        MAGIC + json.dumps({"io": {"inputs": [], "outputs": []}, "version": "10.3.0", "flags": []}).encode()
    )
    assert hasattr(engine8, "num_bindings") and not hasattr(engine8, "num_io_tensors")
    assert hasattr(engine10, "num_io_tensors") and not hasattr(engine10, "num_bindings")
    # A TensorRT 8 engine is refused by TensorRT 10 (incompatible), as the real one does.
    assert (
        trt10.Runtime(None).deserialize_cuda_engine(
            MAGIC
            + json.dumps({"io": {"inputs": [], "outputs": []}, "version": "8.2.1.8", "flags": []}).encode()
        )
        is None
    )
