"""Task pipelines. Every module of this package is imported so that its decoders register.

Python 3.6 compatible.
"""

import importlib
import pkgutil

from .base import (
    Decoder,
    Pipeline,
    UnknownDecoder,
    check_decoder_params,
    closest,
    get_decoder_class,
    known_decoders,
    register_decoder,
    softmax,
)

__all__ = [
    "Decoder",
    "Pipeline",
    "UnknownDecoder",
    "check_decoder_params",
    "closest",
    "get_decoder_class",
    "known_decoders",
    "register_decoder",
    "softmax",
]


def _import_decoder_modules():
    for info in pkgutil.iter_modules(__path__):
        if info[1] != "base":
            importlib.import_module(__name__ + "." + info[1])


_import_decoder_modules()
