"""The correctness check still catches real errors, each planted in a real converted model run by
real ONNX Runtime: a swapped colour order, a wrong mean/std, a wrong scale (the input check, in
the model's own units, for a normalised classifier and a 0-255 detector alike), a provider whose
outputs are off by more than the tolerance, and a wrong output layout. The untouched provider
passes on both, decoding the photos with cv2 and with Pillow."""

import copy

import numpy as np
import pytest

from edgebench_runtime.backends import create_backend
from edgebench_runtime.correctness import check

MODELS = ("mobilenet_v3_small", "yolox_nano")  # normalised input / 0-255 BGR input


@pytest.fixture(scope="module")
def planted_artifacts(convert_models):
    return convert_models(MODELS)


class Planted:
    """ONNX Runtime CPU with an error planted in its outputs."""

    def __init__(self, backend, change):
        self.backend = backend
        self.change = change
        self.provider = "cpu"
        self.input_names = backend.input_names
        self.output_names = backend.output_names

    def infer(self, feeds):
        return [self.change(np.array(out, copy=True)) for out in self.backend.infer(feeds)]


def _backend(artifacts, model):
    from edgebench_runtime.manifest import load_manifest

    manifest = load_manifest(str(artifacts / model))
    backend = create_backend("cpu", {"threads": 1})
    backend.load(str(artifacts / model), manifest)
    return backend, manifest


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("use_cv2", [True, False])
def test_the_untouched_provider_passes(planted_artifacts, model, use_cv2):
    backend, manifest = _backend(planted_artifacts, model)
    verdict = check(backend, manifest, planted_artifacts / model, "cpu", use_cv2=use_cv2)
    assert verdict["status"] == "passed", verdict["reason"]
    assert verdict["level"] == "task" and verdict["task_agreement"] == 1.0
    assert verdict["input_relative_mean"] < 0.05  # Pillow vs cv2: ~0.01-0.025 of the spread


def _flip_colour(spec):
    return dict(spec, color="RGB" if spec.get("color", "RGB").upper() == "BGR" else "BGR")


def _wrong_scale(spec):
    scale = float(spec.get("scale", 1.0))
    return dict(spec, scale=scale * 255.0 if scale < 0.1 else scale / 255.0)


def _wrong_mean(spec):
    # The classifier's ImageNet mean dropped; the detector (no mean) given one.
    mean = spec.get("mean") or [0.0, 0.0, 0.0]
    return dict(spec, mean=[0.0, 0.0, 0.0] if any(mean) else [123.7, 116.3, 103.5])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("plant", "names"),
    [(_flip_colour, "colour order"), (_wrong_scale, "scale"), (_wrong_mean, "mean or std")],
)
def test_a_wrong_preprocessing_on_the_device_fails(planted_artifacts, model, plant, names):
    backend, manifest = _backend(planted_artifacts, model)
    device = copy.deepcopy(manifest)
    device["preprocess"] = plant(manifest["preprocess"])
    verdict = check(backend, device, planted_artifacts / model, "cpu")
    assert verdict["status"] == "failed"
    assert verdict["input_relative_mean"] > 3 * verdict["tolerance"]["input_relative_mean"]
    assert "pre-processing differs" in verdict["reason"] and names in verdict["reason"]


@pytest.mark.parametrize("model", MODELS)
def test_outputs_off_by_more_than_the_tolerance_fail(planted_artifacts, model):
    backend, manifest = _backend(planted_artifacts, model)
    rng = np.random.default_rng(0)
    noisy = Planted(backend, lambda out: out + rng.normal(0, 0.05, out.shape).astype(out.dtype))
    verdict = check(noisy, manifest, planted_artifacts / model, "cpu")
    assert verdict["status"] == "failed" and "max abs diff" in verdict["reason"]
    # Within tolerance (1e-5 noise): passes.
    quiet = Planted(backend, lambda out: out + rng.normal(0, 1e-5, out.shape).astype(out.dtype))
    assert check(quiet, manifest, planted_artifacts / model, "cpu")["status"] == "passed"


def test_a_wrong_output_layout_fails_the_task_comparison(planted_artifacts):
    # The detector's (1, N, 85) read as if it were stored (1, 85, N): same size, wrong layout.
    backend, manifest = _backend(planted_artifacts, "yolox_nano")
    transposed = Planted(
        backend,
        lambda out: np.ascontiguousarray(
            out.reshape(out.shape[0], -1, out.shape[1]).transpose(0, 2, 1)
        ).reshape(out.shape),
    )
    verdict = check(transposed, manifest, planted_artifacts / "yolox_nano", "cpu")
    assert verdict["status"] == "failed"
    assert verdict["task_agreement"] < 0.5 and "boxes agreement" in verdict["reason"]
    # The classifier with its logits in reverse order: top-1 changes.
    backend, manifest = _backend(planted_artifacts, "mobilenet_v3_small")
    reversed_logits = Planted(backend, lambda out: out[..., ::-1].copy())
    verdict = check(reversed_logits, manifest, planted_artifacts / "mobilenet_v3_small", "cpu")
    assert verdict["status"] == "failed" and verdict["task_agreement"] == 0.0
