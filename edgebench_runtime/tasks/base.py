"""The task pipeline interface and the decoder registry.

A ``Pipeline`` is built from an artifact's manifest. Per image the measured loop calls

    feeds, geometry = pipeline.preprocess(image)     # timed as pre_ms
    outputs = backend.infer(feeds)                   # timed as infer_ms
    result = pipeline.postprocess(outputs, geometry) # timed as post_ms
    pipeline.brief(result)                           # untimed: the short text in timings.csv

Pre-processing is always ``imaging.Preprocessor`` (resize mode, crop/letterbox, mean/std, colour
order as the manifest says). Post-processing is the decoder named by the manifest's
``decoder.name``. A decoder is a subclass of ``Decoder`` registered under its name:

    @register_decoder("yolox")
    class YoloxDecoder(Decoder):
        def __call__(self, outputs, geometry): ...

Modules placed in ``edgebench_runtime/tasks/`` are imported by the package, so a new decoder plugs
in by adding its file; nothing else changes. A decoder declares the parameters it reads in
``parameters`` (name -> kind: ``number``, ``int``, ``bool``, ``list``, ``str`` or a tuple of allowed
values) and the ones it cannot do without in ``required``; ``check_decoder_params`` holds a catalog
entry to them, so a typo is refused at convert (with the closest valid name), never on a device.

``geometry`` (from the Preprocessor) maps original pixels to network pixels,
``net = orig * scale + offset`` per axis (y, x), so decoders report in original-image coordinates.

Python 3.6 compatible.
"""

import difflib
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Tuple, Type

import numpy as np

from ..imaging import Preprocessor

__all__ = [
    "Decoder",
    "Pipeline",
    "UnknownDecoder",
    "check_decoder_params",
    "closest",
    "get_decoder_class",
    "known_decoders",
    "register_decoder",
]

_DECODERS = {}


class UnknownDecoder(KeyError):
    pass


def register_decoder(name: str) -> Callable[[Type["Decoder"]], Type["Decoder"]]:
    """Class decorator registering a Decoder subclass under ``name``."""

    def wrap(cls):
        if name in _DECODERS and _DECODERS[name] is not cls:
            raise ValueError("decoder %r registered twice (%s, %s)" % (name, _DECODERS[name], cls))
        cls.name = name
        _DECODERS[name] = cls
        return cls

    return wrap


def known_decoders() -> List[str]:
    return sorted(_DECODERS)


def get_decoder_class(name: str) -> Type["Decoder"]:
    try:
        return _DECODERS[name]
    except KeyError:
        raise UnknownDecoder(
            "unknown decoder %r (this runtime knows: %s)" % (name, ", ".join(known_decoders()))
        ) from None


def closest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the nearest of ``known``, or ``""``."""
    close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
    return " (did you mean %r?)" % close[0] if close else ""


def _kind_ok(kind, value):
    if isinstance(kind, tuple):
        return value in kind
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, (list, tuple))
    if kind == "str":
        return isinstance(value, str)
    return True


def _kind_text(kind):
    if isinstance(kind, tuple):
        return "one of " + ", ".join(str(k) for k in kind)
    return {"bool": "true or false", "int": "an integer", "number": "a number", "list": "a list"}.get(
        kind, "a " + str(kind)
    )


def check_decoder_params(name: str, params: Optional[Dict[str, Any]]) -> List[str]:
    """Problems with a decoder block's parameters (everything but ``name``), as a list of messages:
    unknown names (with the closest known one), missing required ones, values of the wrong kind."""
    cls = get_decoder_class(name)
    problems = []
    for key in sorted(params):
        if key not in cls.parameters:
            known = ", ".join(sorted(cls.parameters)) or "none"
            problems.append(
                "unknown parameter %r for decoder %s%s; it takes: %s"
                % (key, name, closest(key, cls.parameters), known)
            )
        elif not _kind_ok(cls.parameters[key], params[key]):
            problems.append(
                "parameter %r must be %s, not %r" % (key, _kind_text(cls.parameters[key]), params[key])
            )
    for key in cls.required:
        if key not in params:
            problems.append("decoder %s needs parameter %r (%s)" % (name, key, cls.required[key]))
    return problems


class Decoder(object):
    """Turns raw outputs into the task result. One instance per model run.

    ``params`` is the manifest's ``decoder`` block (thresholds, strides, ...). Subclasses may
    precompute and cache anything per input size (grids, anchors) in ``__init__`` or lazily.
    """

    name = None
    # The parameters this decoder reads (name -> kind) and those it needs (name -> why).
    parameters: ClassVar[dict] = {}
    required: ClassVar[dict] = {}

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        self.manifest = manifest
        self.params = dict(params or {})
        self.labels = manifest.get("labels") or []
        self.output_names = [item["name"] for item in manifest.get("outputs", [])]
        self.input_names = [item["name"] for item in manifest.get("inputs", [])]

    def feeds(
        self, tensor: np.ndarray, geometry: Dict[str, Any], input_names: List[str]
    ) -> Dict[str, np.ndarray]:
        """The backend feeds for one image. Models with extra inputs (e.g. an ``image_shape``
        input of ONNX-zoo tiny-YOLOv3) override this; the call is inside ``pre_ms``."""
        return {input_names[0]: tensor}

    def __call__(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Any:
        raise NotImplementedError

    def brief(self, result: Any) -> str:
        """A short, CSV-safe text for timings.csv (no commas or newlines); untimed."""
        return ""


class Pipeline(object):
    """Pre-processing + decoder for one artifact."""

    def __init__(
        self,
        manifest: Dict[str, Any],
        input_names: Optional[List[str]] = None,
        use_cv2: Optional[bool] = None,
    ) -> None:
        self.manifest = manifest
        spec = manifest.get("input") or {}
        inputs = manifest.get("inputs") or []
        height, width = spec.get("height"), spec.get("width")
        layout = spec.get("layout", "NCHW")
        if (height is None or width is None) and inputs:
            shape = inputs[0]["shape"]
            height, width = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
        self.preprocessor = Preprocessor(manifest.get("preprocess") or {}, height, width, layout, use_cv2)
        decoder_spec = dict(manifest.get("decoder") or {"name": "raw"})
        name = decoder_spec.pop("name", "raw")
        self.decoder = get_decoder_class(name)(manifest, decoder_spec)
        self.input_names = list(input_names or [item["name"] for item in inputs])
        if not self.input_names:
            raise ValueError("the manifest lists no inputs")
        dtype = (inputs[0].get("dtype") if inputs else None) or "float32"
        if dtype != "float32":
            raise ValueError("input dtype %s: this runtime feeds float32 only" % dtype)

    @property
    def decoder_name(self) -> str:
        return self.decoder.name

    def preprocess(self, image: np.ndarray) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
        tensor, geometry = self.preprocessor(image)
        return self.decoder.feeds(tensor, geometry, self.input_names), geometry

    def postprocess(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Any:
        return self.decoder(outputs, geometry)

    def brief(self, result: Any) -> str:
        return self.decoder.brief(result)


def softmax(logits, axis=-1):
    """Numerically stable softmax that keeps float32."""
    logits = np.asarray(logits, dtype=np.float32)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted
