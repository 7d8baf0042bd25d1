"""TensorRT engines: cache keys, the build through the TensorRT Python API, and the on-disk cache.

An engine is built on the device from the artifact's ONNX file (its int32 variant where present) and
cached as ``<cache>/<model>-<precision>-<key16>.engine`` with ``.json`` metadata (the key's
components, the engine's sha256 and size, build time) and ``.log`` (the builder's log). The key is
the sha256 of

    sha256 of the ONNX file + TensorRT version + GPU name + compute capability + precision
    + build options (workspace limit, optimisation-profile shapes, calibration set)

so any change rebuilds and nothing else does. A cached engine whose file is missing, whose sha256
differs from its metadata, or that TensorRT refuses to deserialise (corrupt, or built by an
incompatible TensorRT) is rebuilt, never trusted. A timing cache per TensorRT version and GPU
(``timing-<version>-<gpu>-sm<cc>.cache``) is loaded before every build and saved after it.

The default cache directory is ``<artifact>/engines/`` (deploy copies artifacts without deleting, so
engines survive a redeploy; a changed ``model.onnx`` changes the key).

Builder API used, present in TensorRT 8.0 - 10.x: ``Builder``, ``create_network`` (explicit batch
flag before 10), ``OnnxParser.parse_from_file``, ``create_builder_config``,
``set_memory_pool_limit`` (8.4+; ``max_workspace_size`` before), ``BuilderFlag.FP16/INT8``,
``create_optimization_profile`` for inputs with dynamic dimensions, ``create_timing_cache`` /
``set_timing_cache`` / ``get_timing_cache``, ``build_serialized_network``,
``Runtime.deserialize_cuda_engine``.

Python 3.6 compatible.
"""

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "DEFAULT_WORKSPACE_MB",
    "EngineBuildError",
    "EngineCache",
    "build_serialized",
    "deserialize",
    "engine_key",
    "ensure_engine",
    "make_logger",
    "resolve_shape",
    "trt_major",
]

DEFAULT_WORKSPACE_MB = 1024
ENGINE_SCHEMA = 1
_LOG_LINES = 4000


class EngineBuildError(Exception):
    """TensorRT could not parse the ONNX file or build an engine from it."""


def trt_major(trt: Any) -> int:
    """The major version of a ``tensorrt`` module (``"8.2.1.8"`` -> 8)."""
    match = re.match(r"\s*(\d+)", str(getattr(trt, "__version__", "0")))
    return int(match.group(1)) if match else 0


def engine_key(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    precision: str,
    build_options: Dict[str, Any],
) -> Tuple[str, Dict[str, Any]]:
    """``(key, components)``: the sha256 over everything that determines the engine."""
    if isinstance(compute_capability, (tuple, list)):
        compute_capability = "%d.%d" % tuple(compute_capability[:2])
    components = {
        "schema": ENGINE_SCHEMA,
        "onnx_sha256": str(onnx_sha256),
        "tensorrt": str(trt_version),
        "gpu": str(gpu_name),
        "compute_capability": str(compute_capability),
        "precision": str(precision),
        "build_options": build_options or {},
    }
    text = json.dumps(components, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), components


def _safe(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def _atomic_write(path, data):
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


class EngineCache(object):
    """Engine files and their metadata in one directory."""

    def __init__(self, directory: str) -> None:
        self.directory = str(directory)

    def _base(self, name, precision, key):
        return os.path.join(self.directory, "%s-%s-%s" % (_safe(name), _safe(precision), key[:16]))

    def paths(self, name: str, precision: str, key: str) -> Tuple[str, str, str]:
        base = self._base(name, precision, key)
        return base + ".engine", base + ".json", base + ".log"

    def timing_cache_path(self, trt_version: str, gpu_name: str, compute_capability: str) -> str:
        if isinstance(compute_capability, (tuple, list)):
            compute_capability = "%d%d" % tuple(compute_capability[:2])
        return os.path.join(
            self.directory,
            "timing-%s-%s-sm%s.cache"
            % (_safe(trt_version), _safe(gpu_name), _safe(str(compute_capability).replace(".", ""))),
        )

    def lookup(self, name: str, precision: str, key: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
        """``(engine bytes, None)`` when a cached engine matches its metadata, else
        ``(None, why not)``."""
        engine_path, meta_path, _log = self.paths(name, precision, key)
        if not os.path.isfile(engine_path):
            return None, "no cached engine"
        try:
            with open(meta_path) as handle:
                meta = json.load(handle)
            with open(engine_path, "rb") as handle:
                data = handle.read()
        except (IOError, OSError, ValueError) as exc:
            return None, "cached engine metadata unreadable (%s)" % exc
        if meta.get("key") != key:
            return None, "cached engine metadata has another key"
        if len(data) != meta.get("engine_size") or _sha256_bytes(data) != meta.get("engine_sha256"):
            return None, "cached engine %s does not match its recorded sha256 (corrupt)" % engine_path
        return data, None

    def metadata(self, name: str, precision: str, key: str) -> Optional[Dict[str, Any]]:
        try:
            with open(self.paths(name, precision, key)[1]) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return None

    def store(
        self,
        name: str,
        precision: str,
        key: str,
        components: Dict[str, Any],
        data: bytes,
        build_ms: float,
        log_lines: List[str],
    ) -> Dict[str, Any]:
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory)
        engine_path, meta_path, log_path = self.paths(name, precision, key)
        # Engines of this model and precision under other keys are stale: drop them (disk is small
        # on the devices); a build for another key rebuilds anyway.
        prefix = "%s-%s-" % (_safe(name), _safe(precision))
        for other in os.listdir(self.directory):
            stale = other.startswith(prefix) and not other.startswith(os.path.basename(engine_path)[:-7])
            if stale and other.endswith((".engine", ".json", ".log")):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, other))
        _atomic_write(log_path, ("\n".join(log_lines) + "\n").encode("utf-8", "replace"))
        _atomic_write(engine_path, data)
        meta = {
            "schema_version": ENGINE_SCHEMA,
            "key": key,
            "components": components,
            "engine_sha256": _sha256_bytes(data),
            "engine_size": len(data),
            "build_ms": build_ms,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "log": os.path.basename(log_path),
        }
        _atomic_write(meta_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        return meta


def make_logger(trt: Any, keep_verbose: bool = False) -> Any:
    """A ``trt.ILogger`` that keeps the builder's messages (INFO and above) in ``.lines``."""
    severity = trt.ILogger.Severity
    names = {}
    for label in ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"):
        if hasattr(severity, label):
            names[int(getattr(severity, label))] = label
    limit = int(severity.VERBOSE) if keep_verbose else int(severity.INFO)

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.lines = []

        def log(self, level, message):
            level = int(level)
            if level <= limit:
                self.lines.append("[%s] %s" % (names.get(level, level), message))
                if len(self.lines) > _LOG_LINES:
                    del self.lines[: len(self.lines) - _LOG_LINES]

        def errors(self):
            return [line for line in self.lines if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]

    return _Logger()


def resolve_shape(engine_shape: Sequence[int], wanted: Optional[Sequence[Any]] = None) -> Tuple[int, ...]:
    """A concrete shape for a tensor whose shape may hold dynamic (-1) dimensions: the dimension of
    ``wanted`` (e.g. the manifest's input shape) where that is a positive int, else 1."""
    wanted = list(wanted or [])
    out = []
    for axis, dim in enumerate(engine_shape):
        dim = int(dim)
        if dim < 0:
            choice = wanted[axis] if axis < len(wanted) else None
            dim = int(choice) if isinstance(choice, int) and choice > 0 else 1
        out.append(dim)
    return tuple(out)


def build_serialized(
    trt: Any,
    onnx_path: str,
    precision: str,
    workspace_mb: int,
    logger: Any,
    timing_cache_path: Optional[str] = None,
    input_shapes: Optional[Dict[str, Any]] = None,
    calibrator: Any = None,
) -> Tuple[bytes, float, List[str]]:
    """Build an engine; returns ``(engine bytes, build_ms, notes)``. Raises EngineBuildError."""
    major = trt_major(trt)
    notes = []
    builder = trt.Builder(logger)
    flags = 0
    if major < 10:  # explicit batch is the only mode from TensorRT 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(
            "TensorRT's ONNX parser rejected %s: %s" % (onnx_path, "; ".join(errors) or "no detail")
        )
    config = builder.create_builder_config()
    workspace = int(workspace_mb) << 20
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:  # TensorRT < 8.4
        config.max_workspace_size = workspace
    if precision == "fp16":
        if not getattr(builder, "platform_has_fast_fp16", True):
            notes.append("this GPU has no fast fp16: TensorRT may keep fp32 kernels")
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        if calibrator is None:
            raise EngineBuildError("int8 needs a calibrator (calibration images)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
    elif precision != "fp32":
        raise EngineBuildError("unknown precision %r" % precision)
    profile = None
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = tuple(int(d) for d in tensor.shape)
        if any(d < 0 for d in shape):
            if profile is None:
                profile = builder.create_optimization_profile()
            fixed = resolve_shape(shape, (input_shapes or {}).get(tensor.name))
            profile.set_shape(tensor.name, fixed, fixed, fixed)
            notes.append("input %s %s built for %s" % (tensor.name, list(shape), list(fixed)))
    if profile is not None:
        config.add_optimization_profile(profile)
    blob = b""
    if timing_cache_path and os.path.isfile(timing_cache_path):
        with open(timing_cache_path, "rb") as handle:
            blob = handle.read()
    cache = None
    try:
        cache = config.create_timing_cache(blob)
    except Exception as exc:
        notes.append("timing cache %s unreadable (%s): starting a new one" % (timing_cache_path, exc))
    if cache is None and blob:
        cache = config.create_timing_cache(b"")
    if cache is not None:
        config.set_timing_cache(cache, False)
    started = time.time()
    serialized = builder.build_serialized_network(network, config)
    build_ms = (time.time() - started) * 1e3
    if serialized is None:
        errors = logger.errors() if hasattr(logger, "errors") else []
        raise EngineBuildError(
            "TensorRT could not build %s (%s): %s"
            % (onnx_path, precision, "; ".join(errors[-5:]) or "see the builder log")
        )
    data = bytes(memoryview(serialized))
    if timing_cache_path and cache is not None:
        try:
            _atomic_write(timing_cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
        except (IOError, OSError, AttributeError) as exc:
            notes.append("timing cache not saved: %s" % exc)
    return data, build_ms, notes


def deserialize(trt: Any, logger: Any, data: bytes) -> Tuple[Any, Any]:
    """``(runtime, engine)`` or ``(runtime, None)`` when TensorRT refuses the bytes."""
    runtime = trt.Runtime(logger)
    try:
        engine = runtime.deserialize_cuda_engine(data)
    except Exception:
        engine = None
    return runtime, engine


def ensure_engine(
    trt: Any,
    cache: EngineCache,
    name: str,
    onnx_path: str,
    onnx_sha256: str,
    precision: str,
    gpu: Dict[str, Any],
    build_options: Dict[str, Any],
    logger: Any,
    input_shapes: Optional[Dict[str, Any]] = None,
    calibrator_factory: Optional[Callable[[str], Any]] = None,
    load: bool = True,
) -> Tuple[Any, Any, Dict[str, Any]]:
    """The engine for these inputs: cached when a valid one exists, built otherwise.

    Returns ``(runtime, engine or None when load is False, info)``; ``info`` has ``status``
    (built | cached), ``key``, ``components``, ``path``, ``build_ms``, ``log``, ``rebuilt_because``.
    """
    key, components = engine_key(
        onnx_sha256,
        getattr(trt, "__version__", "unknown"),
        gpu["name"],
        gpu["compute_capability"],
        precision,
        build_options,
    )
    engine_path, _meta_path, log_path = cache.paths(name, precision, key)
    info = {
        "key": key,
        "components": components,
        "path": engine_path,
        "log": log_path,
        "rebuilt_because": None,
    }
    data, why = cache.lookup(name, precision, key)
    runtime = engine = None
    if data is not None:
        if load:
            runtime, engine = deserialize(trt, logger, data)
            if engine is None:
                why = "cached engine %s could not be deserialised (corrupt or incompatible)" % engine_path
                data = None
        if data is not None:
            meta = cache.metadata(name, precision, key) or {}
            info.update({"status": "cached", "build_ms": meta.get("build_ms")})
            return runtime, engine, info
    if why and why != "no cached engine":
        info["rebuilt_because"] = why
    calibrator = calibrator_factory(key) if (precision == "int8" and calibrator_factory) else None
    timing = cache.timing_cache_path(components["tensorrt"], gpu["name"], gpu["compute_capability"])
    if not os.path.isdir(cache.directory):
        os.makedirs(cache.directory)
    try:
        data, build_ms, notes = build_serialized(
            trt,
            onnx_path,
            precision,
            build_options.get("workspace_mb", DEFAULT_WORKSPACE_MB),
            logger,
            timing,
            input_shapes,
            calibrator,
        )
    except EngineBuildError:
        with contextlib.suppress(IOError, OSError):
            _atomic_write(
                log_path, ("\n".join(getattr(logger, "lines", [])) + "\n").encode("utf-8", "replace")
            )
        raise
    lines = list(notes) + list(getattr(logger, "lines", []))
    cache.store(name, precision, key, components, data, build_ms, lines)
    info.update({"status": "built", "build_ms": build_ms, "notes": notes, "timing_cache": timing})
    if load:
        runtime, engine = deserialize(trt, logger, data)
        if engine is None:
            raise EngineBuildError("TensorRT produced %s but cannot deserialise it" % engine_path)
    return runtime, engine, info
