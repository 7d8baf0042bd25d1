"""The TensorRT seam (``tensorrt-fp32``, ``tensorrt-fp16``, ``tensorrt-int8``).

The backend itself (engine build and cache, pycuda buffers sized from the engine's I/O, the
TensorRT 8.x and 10.x APIs) is the next issue's work. Until then this module reports the provider
``skipped`` with the precise reason, so a plan naming TensorRT runs everywhere without faking it.

Python 3.6 compatible.
"""

from .base import Backend, ProviderUnavailable, parse_provider

__all__ = ["PRECISIONS", "TensorRTBackend"]

PRECISIONS = ("fp32", "fp16", "int8")


def _import_status():
    """``(tensorrt_version_or_None, pycuda_version_or_None, reason_or_None)``."""
    reasons = []
    trt_version = cuda_version = None
    try:
        import tensorrt

        trt_version = getattr(tensorrt, "__version__", "unknown")
    except Exception as exc:  # ImportError, or a broken install raising anything else
        reasons.append("tensorrt Python bindings not importable (%s)" % exc)
    try:
        import pycuda

        cuda_version = getattr(pycuda, "VERSION_TEXT", "unknown")
    except Exception as exc:
        reasons.append("pycuda not importable (%s)" % exc)
    return trt_version, cuda_version, "; ".join(reasons) or None


class TensorRTBackend(Backend):
    name = "tensorrt"
    families = ("tensorrt",)

    @classmethod
    def availability(cls, provider):
        precision = parse_provider(provider)[1] or "fp32"
        if precision not in PRECISIONS:
            return False, "unknown TensorRT precision %r (known: %s)" % (precision, ", ".join(PRECISIONS))
        trt_version, _cuda_version, reason = _import_status()
        if reason:
            return False, reason
        return False, (
            "TensorRT %s is present but this edgebench_runtime has no TensorRT backend yet" % trt_version
        )

    def version(self):
        return _import_status()[0]

    def load(self, artifact_dir, manifest):
        raise ProviderUnavailable(self.availability(self.provider)[1])

    def infer(self, feeds):  # pragma: no cover - load() never succeeds yet
        raise NotImplementedError
