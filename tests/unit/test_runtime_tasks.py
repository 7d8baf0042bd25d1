"""tasks/: the pipeline interface, the decoder registry, imagenet_topk and raw."""

import numpy as np
import pytest

from edgebench_runtime.tasks import (
    Decoder,
    Pipeline,
    UnknownDecoder,
    known_decoders,
    register_decoder,
    softmax,
)

PRE = {
    "resize": "shorter",
    "resize_size": 256,
    "scale": 1 / 255.0,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "color": "RGB",
}


def manifest(decoder, labels=None, outputs=("logits",)):
    return {
        "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32"}],
        "outputs": [{"name": name} for name in outputs],
        "input": {"height": 224, "width": 224, "layout": "NCHW"},
        "preprocess": PRE,
        "decoder": decoder,
        "labels": labels if labels is not None else [f"label{i}" for i in range(1000)],
    }


def image(h=480, w=640):
    return np.random.default_rng(1).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_builtin_decoders_registered():
    assert {"imagenet_topk", "raw"} <= set(known_decoders())


def test_pipeline_preprocess_is_float32_nchw():
    pipeline = Pipeline(manifest({"name": "raw"}))
    feeds, geometry = pipeline.preprocess(image())
    assert list(feeds) == ["input"]
    assert feeds["input"].dtype == np.float32 and feeds["input"].shape == (1, 3, 224, 224)
    assert feeds["input"].flags["C_CONTIGUOUS"]
    assert geometry["original"] == (480, 640)
    assert pipeline.postprocess([np.zeros((1, 1000), np.float32)], geometry) is None


def test_imagenet_topk_matches_numpy_softmax():
    pipeline = Pipeline(manifest({"name": "imagenet_topk", "top_k": 5}))
    logits = np.random.default_rng(2).normal(size=(1, 1000)).astype(np.float32) * 4
    result = pipeline.postprocess([logits], {})
    exp = np.exp(logits[0].astype(np.float64) - logits.max())
    probs = exp / exp.sum()
    expected = np.argsort(-probs)[:5]
    assert result["classes"].tolist() == expected.tolist()
    assert result["scores"].dtype == np.float32
    np.testing.assert_allclose(result["scores"], probs[expected], rtol=1e-5)
    assert result["labels"] == [f"label{i}" for i in expected]
    assert pipeline.brief(result) == f"{expected[0]}:{probs[expected[0]]:.4f}"
    assert "," not in pipeline.brief(result)


def test_imagenet_topk_options():
    logits = np.array([[0.1, 0.7, 0.2]], np.float32)
    decoder_manifest = manifest(
        {"name": "imagenet_topk", "k": 2, "softmax": False, "label_offset": 1}, labels=["a", "b"]
    )
    result = Pipeline(decoder_manifest).postprocess([logits], {})
    assert result["classes"].tolist() == [1, 2]
    assert result["labels"] == ["a", "b"]
    np.testing.assert_allclose(result["scores"], [0.7, 0.2])


def test_softmax_stays_float32_and_stable():
    out = softmax(np.array([1000.0, 1000.0], np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.5, 0.5])


def test_unknown_decoder_names_the_known_ones():
    with pytest.raises(UnknownDecoder, match="imagenet_topk"):
        Pipeline(manifest({"name": "yolox_future"}))


def test_a_new_decoder_plugs_in_by_registering_a_name():
    """What the detection/pose/segmentation decoders of the next issue do."""

    @register_decoder("test_two_inputs")
    class TwoInputs(Decoder):
        def feeds(self, tensor, geometry, input_names):
            shape = np.array([geometry["original"]], dtype=np.float32)
            return {input_names[0]: tensor, input_names[1]: shape}

        def __call__(self, outputs, geometry):
            boxes = outputs[0].reshape(-1, 4) / np.array(geometry["scale"] * 2, np.float32)
            return {"boxes": boxes}

        def brief(self, result):
            return f"{len(result['boxes'])} boxes"

    data = manifest({"name": "test_two_inputs", "score_threshold": 0.3}, outputs=("boxes",))
    data["inputs"].append({"name": "image_shape", "shape": [1, 2], "dtype": "float32"})
    pipeline = Pipeline(data, input_names=["input", "image_shape"])
    assert pipeline.decoder.params == {"score_threshold": 0.3}
    feeds, geometry = pipeline.preprocess(image(300, 400))
    assert feeds["image_shape"].tolist() == [[300, 400]]
    result = pipeline.postprocess([np.ones((1, 2, 4), np.float32)], geometry)
    assert pipeline.brief(result) == "2 boxes"


def test_non_float32_inputs_are_refused():
    data = manifest({"name": "raw"})
    data["inputs"][0]["dtype"] = "uint8"
    with pytest.raises(ValueError, match="float32"):
        Pipeline(data)
