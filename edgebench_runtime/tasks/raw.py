"""``raw``: no post-processing; the outputs are discarded. For any custom ONNX model.

Python 3.6 compatible.
"""

from typing import Any, Dict, List

from .base import Decoder, register_decoder

__all__ = ["RawDecoder"]


@register_decoder("raw")
class RawDecoder(Decoder):
    def __call__(self, outputs: List[Any], geometry: Dict[str, Any]) -> None:
        return None
