"""TensorRT's I/O plumbing under the backend: the two API shapes (binding indices before
TensorRT 10, tensor names from 10), the engine's I/O tensor descriptions, the buffer plan, and the
int8 calibration feed (images, their digest for the engine key, the entropy calibrator).

Kept apart from ``tensorrt.py`` (the backend class, its availability and life cycle) so each reads
on its own; this module needs the TensorRT and pycuda modules only as arguments.

Python 3.6 compatible.
"""

import hashlib
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Type

import numpy as np

from ..engines import trt_major
from ..imaging import Preprocessor, decode_image, list_images
from ..manifest import sha256_file

__all__ = [
    "BindingsApi",
    "TensorSpec",
    "TensorsApi",
    "calibration_batches",
    "calibration_digest",
    "make_calibrator",
    "plan_buffers",
    "select_api",
]


class TensorSpec(object):
    """One engine I/O tensor as the engine describes it."""

    __slots__ = ("dtype", "index", "is_input", "name", "shape")

    def __init__(self, name: str, shape: Sequence[int], dtype: Any, is_input: bool, index: int) -> None:
        self.name = str(name)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.is_input = bool(is_input)
        self.index = int(index)

    def describe(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "mode": "input" if self.is_input else "output",
        }


class BindingsApi(object):
    """TensorRT 8.x: binding indices and ``execute_async_v2``."""

    name = "bindings/execute_async_v2"

    def __init__(self, trt: Any, engine: Any, context: Any) -> None:
        self.trt, self.engine, self.context = trt, engine, context
        self.bindings = None

    def tensors(self) -> List[TensorSpec]:
        engine = self.engine
        return [
            TensorSpec(
                engine.get_binding_name(i),
                engine.get_binding_shape(i),
                self.trt.nptype(engine.get_binding_dtype(i)),
                engine.binding_is_input(i),
                i,
            )
            for i in range(engine.num_bindings)
        ]

    def set_input_shape(self, spec: TensorSpec, shape: Sequence[int]) -> None:
        if not self.context.set_binding_shape(spec.index, tuple(shape)):
            raise ValueError("TensorRT refused shape %s for input %s" % (list(shape), spec.name))

    def shape(self, spec: TensorSpec) -> Tuple[int, ...]:
        return tuple(int(d) for d in self.context.get_binding_shape(spec.index))

    def bind(self, specs: List[TensorSpec], addresses: Dict[str, int]) -> None:
        bindings = [0] * len(specs)
        for spec in specs:
            bindings[spec.index] = int(addresses[spec.name])
        self.bindings = bindings

    def execute(self, stream_handle: int) -> bool:
        return self.context.execute_async_v2(bindings=self.bindings, stream_handle=stream_handle)


class TensorsApi(object):
    """TensorRT 10.x: tensor names, ``set_tensor_address`` and ``execute_async_v3``."""

    name = "tensors/execute_async_v3"

    def __init__(self, trt: Any, engine: Any, context: Any) -> None:
        self.trt, self.engine, self.context = trt, engine, context

    def tensors(self) -> List[TensorSpec]:
        engine = self.engine
        specs = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            specs.append(
                TensorSpec(
                    name,
                    engine.get_tensor_shape(name),
                    self.trt.nptype(engine.get_tensor_dtype(name)),
                    engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT,
                    i,
                )
            )
        return specs

    def set_input_shape(self, spec: TensorSpec, shape: Sequence[int]) -> None:
        if not self.context.set_input_shape(spec.name, tuple(shape)):
            raise ValueError("TensorRT refused shape %s for input %s" % (list(shape), spec.name))

    def shape(self, spec: TensorSpec) -> Tuple[int, ...]:
        return tuple(int(d) for d in self.context.get_tensor_shape(spec.name))

    def bind(self, specs: List[TensorSpec], addresses: Dict[str, int]) -> None:
        for spec in specs:
            if not self.context.set_tensor_address(spec.name, int(addresses[spec.name])):
                raise ValueError("TensorRT refused the address of tensor %s" % spec.name)

    def execute(self, stream_handle: int) -> bool:
        return self.context.execute_async_v3(stream_handle)


def select_api(trt: Any) -> Type[Any]:
    """The API adapter class for the TensorRT present: by its major version."""
    return TensorsApi if trt_major(trt) >= 10 else BindingsApi


def plan_buffers(
    specs: List[TensorSpec], shapes: Dict[str, Sequence[int]]
) -> List[Tuple[TensorSpec, Tuple[int, ...], int]]:
    """``[(spec, shape, nbytes)]`` for every tensor: ``shapes`` maps name -> concrete shape (inputs
    resolved from the manifest, outputs as the execution context reports them after the input
    shapes are set). A dimension still dynamic (a data-dependent output) is an error."""
    plan = []
    for spec in specs:
        shape = tuple(int(d) for d in shapes.get(spec.name, spec.shape))
        if any(d < 0 for d in shape):
            raise ValueError(
                "tensor %s has a data-dependent shape %s: this backend needs shapes known before execution"
                % (spec.name, list(shape))
            )
        count = 1
        for dim in shape:
            count *= dim
        plan.append((spec, shape, count * spec.dtype.itemsize))
    return plan


def calibration_batches(
    folder: str, manifest: Dict[str, Any], use_cv2: Optional[bool] = None, limit: int = 500
) -> Iterator[np.ndarray]:
    spec = manifest.get("input") or {}
    preprocess = Preprocessor(
        manifest.get("preprocess") or {},
        spec.get("height"),
        spec.get("width"),
        spec.get("layout", "NCHW"),
        use_cv2,
    )
    for path in list_images(folder)[:limit]:
        yield preprocess(decode_image(path))[0]


def calibration_digest(folder: str, limit: int = 500) -> str:
    digest = hashlib.sha256()
    for path in list_images(folder)[:limit]:
        digest.update(os.path.basename(path).encode("utf-8") + b"\0" + sha256_file(path).encode("ascii"))
    return digest.hexdigest()


def make_calibrator(trt: Any, cuda: Any, batches: Iterable[np.ndarray], cache_path: str) -> Any:
    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(batches)
            self.device = None

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            try:
                batch = np.ascontiguousarray(next(self.batches), dtype=np.float32)
            except StopIteration:
                return None
            if self.device is None:
                self.device = cuda.mem_alloc(batch.nbytes)
            cuda.memcpy_htod(self.device, batch)
            return [int(self.device)]

        def read_calibration_cache(self):
            if os.path.isfile(cache_path):
                with open(cache_path, "rb") as handle:
                    return handle.read()
            return None

        def write_calibration_cache(self, cache):
            with open(cache_path, "wb") as handle:
                handle.write(bytes(memoryview(cache)))

    return _Calibrator()
