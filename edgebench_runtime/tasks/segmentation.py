"""``seg_argmax``: per-pixel class of a segmentation network, in original-image pixels.

The logits ``(1, C, H, W)`` are at the network input size (torchvision's LRASPP/DeepLab/FCN upsample
inside the graph). The class map is computed over the part of the input that holds the image (a
letterbox's padding is skipped) and resized back to the original size by nearest neighbour with
pixel-centre alignment: original pixel ``(y, x)`` takes the class of network pixel
``floor((y + 0.5) * scale + offset)`` per axis (``F.interpolate(mode="nearest-exact")`` on the
cropped map). For a centre crop (``resize: shorter``) the pixels outside the crop take the nearest
border class.

Result: ``{"mask": uint8 (orig H, orig W) (int32 above 256 classes), "histogram": int64 (C,)
pixel count per class, "classes": present class ids, "labels": their names}``.

Decoder parameters: none.

Python 3.6 compatible.
"""

from typing import Any, Dict, List, Optional

import numpy as np

from .base import Decoder, register_decoder

__all__ = ["SegArgmax", "class_argmax", "source_indices"]


def class_argmax(logits: np.ndarray, dtype: Any = np.uint8) -> np.ndarray:
    """Argmax over axis 0 of a (C, H, W) array (first maximum wins, as numpy and torch): one
    vectorised comparison per class, much faster than ``ndarray.argmax(axis=0)`` here."""
    best = logits[0].copy()
    index = np.zeros(best.shape, dtype=dtype)
    greater = np.empty(best.shape, dtype=bool)
    for c in range(1, logits.shape[0]):
        np.greater(logits[c], best, out=greater)
        np.maximum(best, logits[c], out=best)
        np.putmask(index, greater, c)
    return index


def source_indices(size_out: int, scale: float, offset: float, size_in: int) -> np.ndarray:
    """For each output pixel along one axis, the input pixel whose area holds its centre."""
    centres = (np.arange(size_out, dtype=np.float64) + 0.5) * float(scale) + float(offset)
    return np.clip(np.floor(centres).astype(np.int64), 0, size_in - 1)


@register_decoder("seg_argmax")
class SegArgmax(Decoder):
    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        Decoder.__init__(self, manifest, params)
        self._index_cache = {}

    def _indices(self, geometry, height, width):
        original = geometry.get("original") if geometry else None
        if original is None:
            original = (height, width)
        scale = geometry.get("scale", (1.0, 1.0)) if geometry else (1.0, 1.0)
        offset = geometry.get("offset", (0.0, 0.0)) if geometry else (0.0, 0.0)
        key = (tuple(original), tuple(scale), tuple(offset), height, width)
        if key not in self._index_cache:
            rows = source_indices(original[0], scale[0], offset[0], height)
            cols = source_indices(original[1], scale[1], offset[1], width)
            self._index_cache = {key: (rows, cols)}  # one image size at a time is the common case
        return self._index_cache[key]

    def __call__(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Dict[str, Any]:
        logits = np.asarray(outputs[0])
        logits = logits.reshape(logits.shape[-3:])
        classes, height, width = logits.shape
        rows, cols = self._indices(geometry, height, width)
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        dtype = np.uint8 if classes <= 256 else np.int32
        net_mask = class_argmax(logits[:, r0:r1, c0:c1], dtype)
        mask = net_mask[(rows - r0)[:, None], (cols - c0)[None, :]]
        histogram = np.bincount(mask.ravel(), minlength=classes).astype(np.int64)
        present = np.flatnonzero(histogram)
        labels = self.labels
        names = [labels[c] if c < len(labels) else str(int(c)) for c in present.tolist()]
        return {"mask": mask, "histogram": histogram, "classes": present, "labels": names}

    def brief(self, result: Dict[str, Any]) -> str:
        return "%d classes" % len(result["classes"])
