"""Backends by provider family: ``cpu``/``cuda`` -> ONNX Runtime, ``tensorrt[-fp16|-fp32|-int8]``
-> TensorRT. A new backend registers its families with ``register_backend``.

Python 3.6 compatible.
"""

from typing import Any, Dict, List, Optional, Tuple, Type

from .base import Backend, ProviderUnavailable, parse_provider
from .onnxruntime_backend import OrtBackend
from .tensorrt import TensorRTBackend

__all__ = [
    "Backend",
    "ProviderUnavailable",
    "available_providers",
    "backend_class",
    "create_backend",
    "known_families",
    "parse_provider",
    "provider_availability",
    "register_backend",
]

_BACKENDS = {}


def register_backend(cls: Type[Backend]) -> Type[Backend]:
    for family in cls.families:
        _BACKENDS[family] = cls
    return cls


register_backend(OrtBackend)
register_backend(TensorRTBackend)


def known_families() -> List[str]:
    return sorted(_BACKENDS)


def backend_class(provider: str) -> Type[Backend]:
    family = parse_provider(provider)[0]
    if family not in _BACKENDS:
        raise KeyError("unknown provider %r (known: %s)" % (provider, ", ".join(known_families())))
    return _BACKENDS[family]


def provider_availability(provider: str) -> Tuple[bool, Optional[str]]:
    """``(ok, reason)`` for a provider string, without loading any model."""
    try:
        cls = backend_class(provider)
    except KeyError as exc:
        return False, str(exc.args[0])
    return cls.availability(provider)


def available_providers() -> List[str]:
    """The provider families usable on this device (``tensorrt`` listed once if any precision)."""
    found = []
    for family in known_families():
        ok, _reason = provider_availability(family)
        if ok:
            found.append(family)
    return found


def create_backend(provider: str, options: Optional[Dict[str, Any]] = None) -> Backend:
    return backend_class(provider)(provider, options)
