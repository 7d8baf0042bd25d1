"""Image decoding and the preprocessing a manifest describes.

OpenCV is used when importable; otherwise Pillow. The two paths give the same tensors within
``PILLOW_TOLERANCE`` (normalised units) for bilinear resizing: both resize without antialiasing
filters beyond their own kernels, so small differences remain at strong downscales.

Python 3.6 compatible: no dataclasses, no f-string ``=``, no walrus.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

try:  # OpenCV is optional on devices.
    import cv2

    cv2.setNumThreads(1)
except ImportError:  # pragma: no cover - depends on the device
    cv2 = None

__all__ = [
    "HAVE_CV2",
    "IMAGE_EXTENSIONS",
    "PILLOW_TOLERANCE",
    "ImageDecodeError",
    "ImageSourceError",
    "Preprocessor",
    "decode_image",
    "list_images",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

HAVE_CV2 = cv2 is not None
# Largest difference (in normalised tensor units, ImageNet std) seen between the cv2 and Pillow
# paths on the default photos; tests hold both paths to it.
PILLOW_TOLERANCE = 0.35

_CV2_INTERPOLATION = {}
if HAVE_CV2:
    _CV2_INTERPOLATION = {
        "bilinear": cv2.INTER_LINEAR,
        "bicubic": cv2.INTER_CUBIC,
        "nearest": cv2.INTER_NEAREST,
        "area": cv2.INTER_AREA,
        "lanczos": cv2.INTER_LANCZOS4,
    }


class ImageDecodeError(Exception):
    """An image file could not be read or decoded."""


def _pil():
    from PIL import Image

    return Image


def _pil_interpolation(name):
    image = _pil()
    resampling = getattr(image, "Resampling", image)
    return {
        "bilinear": resampling.BILINEAR,
        "bicubic": resampling.BICUBIC,
        "nearest": resampling.NEAREST,
        "area": resampling.BOX,
        "lanczos": resampling.LANCZOS,
    }[name]


def decode_image(path: str, use_cv2: Optional[bool] = None) -> np.ndarray:
    """Read an image file into an HxWx3 uint8 array in RGB order.

    ``use_cv2=None`` picks OpenCV when it is installed.
    """
    if use_cv2 is None:
        use_cv2 = HAVE_CV2
    if use_cv2:
        array = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if array is None:
            raise ImageDecodeError("cannot decode image %s" % path)
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    try:
        with _pil().open(str(path)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ImageDecodeError("cannot decode image %s: %s" % (path, exc)) from exc


def _resize(array, width, height, interpolation, use_cv2):
    if array.shape[1] == width and array.shape[0] == height:
        return array
    if use_cv2:
        return cv2.resize(array, (width, height), interpolation=_CV2_INTERPOLATION[interpolation])
    image = _pil().fromarray(array)
    return np.asarray(image.resize((width, height), _pil_interpolation(interpolation)))


class Preprocessor(object):
    """Turns a decoded RGB image into the network's input tensor.

    ``spec`` is the manifest's ``preprocess`` block; ``height``/``width`` the network input size.
    Calling it returns ``(tensor, geometry)``: a contiguous float32 array of shape (1, 3, H, W)
    (or (1, H, W, 3) for NHWC) and the mapping from original pixels to network pixels,
    ``net = orig * scale + offset`` per axis, which decoders invert to report results in
    original-image coordinates.
    """

    def __init__(
        self,
        spec: Dict[str, Any],
        height: Optional[int],
        width: Optional[int],
        layout: str = "NCHW",
        use_cv2: Optional[bool] = None,
    ) -> None:
        self.spec = dict(spec)
        self.height = int(height)
        self.width = int(width)
        self.layout = layout
        self.use_cv2 = HAVE_CV2 if use_cv2 is None else bool(use_cv2)
        self.mode = self.spec.get("resize", "stretch")
        if self.mode not in ("shorter", "letterbox", "stretch"):
            raise ValueError("unknown resize mode %r" % self.mode)
        self.interpolation = self.spec.get("interpolation", "bilinear")
        self.bgr = self.spec.get("color", "RGB").upper() == "BGR"
        scale = float(self.spec.get("scale", 1.0))
        mean = np.asarray(self.spec.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
        std = np.asarray(self.spec.get("std", [1.0, 1.0, 1.0]), dtype=np.float32)
        # (x * scale - mean) / std folded into one multiply-add per pixel, in float32.
        self._mul = (scale / std).astype(np.float32)
        self._add = (-mean / std).astype(np.float32)
        if self.bgr:
            self._mul = self._mul[::-1].copy()
            self._add = self._add[::-1].copy()
        # Output channel c reads input (RGB) channel _order[c].
        self._order = (2, 1, 0) if self.bgr else (0, 1, 2)
        self._mul_f = [float(v) for v in self._mul]
        self._add_f = [float(v) for v in self._add]
        self._any_add = bool(np.any(self._add != 0))
        self.pad_value = self.spec.get("pad_value", 114)
        # The pad value as the tensor holds it, computed as the pixels are (float32, mul then add).
        self._pad_pixel = (np.float32(self.pad_value) * self._mul + self._add).astype(np.float32)
        self.pad_align = self.spec.get("pad_align", "center")
        self.resize_size = self.spec.get("resize_size")

    def geometry_for(self, orig_height: int, orig_width: int) -> Dict[str, Any]:
        """Resize target, crop/pad offsets and scale for an image of the given size."""
        if self.mode == "stretch":
            return {
                "resized": (self.height, self.width),
                "scale": (self.height / float(orig_height), self.width / float(orig_width)),
                "offset": (0.0, 0.0),
            }
        if self.mode == "shorter":
            target = self.resize_size or min(self.height, self.width)
            ratio = target / float(min(orig_height, orig_width))
            new_h = max(round(orig_height * ratio), self.height)
            new_w = max(round(orig_width * ratio), self.width)
            top = round((new_h - self.height) / 2.0)
            left = round((new_w - self.width) / 2.0)
            return {
                "resized": (new_h, new_w),
                "scale": (new_h / float(orig_height), new_w / float(orig_width)),
                "offset": (-float(top), -float(left)),
            }
        ratio = min(self.height / float(orig_height), self.width / float(orig_width))
        new_h = round(orig_height * ratio)
        new_w = round(orig_width * ratio)
        if self.pad_align == "topleft":
            top, left = 0, 0
        else:
            top = (self.height - new_h) // 2
            left = (self.width - new_w) // 2
        return {
            "resized": (new_h, new_w),
            "scale": (new_h / float(orig_height), new_w / float(orig_width)),
            "offset": (float(top), float(left)),
        }

    def __call__(self, image: np.ndarray) -> Tuple[np.ndarray, Dict[str, Any]]:
        orig_h, orig_w = image.shape[:2]
        geometry = self.geometry_for(orig_h, orig_w)
        new_h, new_w = geometry["resized"]
        resized = _resize(image, new_w, new_h, self.interpolation, self.use_cv2)
        if self.mode == "shorter":
            top, left = int(-geometry["offset"][0]), int(-geometry["offset"][1])
            region = resized[top : top + self.height, left : left + self.width]
            top = left = 0
        elif self.mode == "letterbox":
            top, left = int(geometry["offset"][0]), int(geometry["offset"][1])
            region = resized
        else:
            top = left = 0
            region = resized
        tensor = self._tensor(region, top, left)
        geometry["original"] = (orig_h, orig_w)
        return tensor, geometry

    def _tensor(self, region, top, left):
        """One pass from the uint8 pixels to the float32 tensor: the channel order, the transpose
        and ``x * mul + add`` fused, written straight into the output (letterbox padding: only the
        border strips are filled, with the normalised pad value). No intermediate image or tensor
        is made, so no-op steps (scale 1, zero mean, unit std) cost nothing."""
        height, width = region.shape[:2]
        order = self._order
        if self.layout == "NCHW":
            out = np.empty((1, 3, self.height, self.width), dtype=np.float32)
            planes = out[0]
            if (height, width) != (self.height, self.width):
                self._pad(planes, top, left, height, width)
            target = planes[:, top : top + height, left : left + width]
            if self.use_cv2 and cv2 is not None:
                channels = cv2.split(region)
                for c in range(3):
                    src = channels[order[c]]
                    # dst = src * mul + 0 * src + add, converted to float32 in the same pass.
                    cv2.addWeighted(
                        src, self._mul_f[c], src, 0.0, self._add_f[c], dst=target[c], dtype=cv2.CV_32F
                    )
            else:
                np.multiply(
                    region.transpose(2, 0, 1)[list(order)],
                    self._mul[:, None, None],
                    out=target,
                    casting="unsafe",
                )
                if self._any_add:
                    target += self._add[:, None, None]
            return out
        out = np.empty((1, self.height, self.width, 3), dtype=np.float32)
        pixels = out[0]
        if (height, width) != (self.height, self.width):
            pixels[...] = self._pad_pixel
        target = pixels[top : top + height, left : left + width]
        np.multiply(region[:, :, list(order)], self._mul, out=target, casting="unsafe")
        if self._any_add:
            target += self._add
        return out

    def _pad(self, planes, top, left, height, width):
        """Fill the letterbox border of a (3, H, W) tensor with the normalised pad value."""
        for c in range(3):
            value = self._pad_pixel[c]
            plane = planes[c]
            plane[:top] = value
            plane[top + height :] = value
            plane[top : top + height, :left] = value
            plane[top : top + height, left + width :] = value


class ImageSourceError(Exception):
    """The image folder is missing, not a folder, or holds no image files."""


def list_images(folder: str) -> List[str]:
    """Sorted image files (JPEG/PNG/BMP) of ``folder``; raises ImageSourceError."""
    folder = str(folder)
    if not os.path.exists(folder):
        raise ImageSourceError("image folder %s does not exist" % folder)
    if not os.path.isdir(folder):
        raise ImageSourceError("image source %s is not a folder" % folder)
    names = sorted(
        name
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, name))
    )
    if not names:
        raise ImageSourceError("image folder %s holds no JPEG/PNG/BMP files" % folder)
    return [os.path.join(folder, name) for name in names]
