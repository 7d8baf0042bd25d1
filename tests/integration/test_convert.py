"""Real conversions: PyTorch export, ONNX checks, ONNX Runtime parity, manifests and caching."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgebench import artifacts
from edgebench.catalog import load_catalog
from edgebench.cli import main as cli_main
from edgebench.convert import convert, convert_one
from edgebench_runtime.manifest import sha256_file, verify_artifact

pytestmark = pytest.mark.slow

# One model per decoder family, at reduced input sizes where the architecture allows, to keep CI fast.
FAMILY_MODELS = {
    "ssdlite320_mobilenet_v3_large": None,
    "tiny_yolov2": 224,
    "tiny_yolov3": 224,
    "yolov5n": 256,
    "yolox_nano": 256,
    "lightweight_openpose": None,
    "lraspp_mobilenet_v3_large": 224,
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _sized(entry, size):
    if size is None:
        return entry
    return dataclasses.replace(entry, input={**entry.input, "height": size, "width": size})


@pytest.mark.parametrize("name", sorted(FAMILY_MODELS))
def test_each_decoder_family_converts_with_parity(catalog, tmp_path, name):
    entry = _sized(catalog.get(name), FAMILY_MODELS[name])
    result = convert_one(entry, tmp_path, catalog_dir=catalog.path.parent)
    assert result.status == "converted", result.message
    manifest = verify_artifact(tmp_path / name)
    parity = manifest["parity"]
    assert parity["passed"] and parity["reference"] == "pytorch"
    assert parity["images"]["cases"] >= 5 and parity["random"]["cases"] >= 2
    assert manifest["weights"] == "random-init"
    assert manifest["opset"] == 13
    assert manifest["inputs"][0]["shape"] == [1, 3, entry.input["height"], entry.input["width"]]
    assert manifest["decoder"] == entry.decoder and manifest["preprocess"] == entry.preprocess
    assert manifest["measured"]["params_m"] == pytest.approx(entry.reference["params_m"], rel=0.1)
    for file_name, record in manifest["files"].items():
        assert sha256_file(tmp_path / name / file_name) == record["sha256"]


def test_classifier_artifact_manifest_and_int32_variant(artifacts_dir):
    manifest = verify_artifact(artifacts_dir / "shufflenet_v2_x0_5")
    assert manifest["parity"]["images"]["top1_agree"] == 1.0
    assert len(manifest["labels"]) == 1000
    assert manifest["versions"]["torch"].startswith("2.14")
    assert manifest["int32_file"] == "model.int32.onnx"
    narrowed = onnx.load(str(artifacts_dir / "shufflenet_v2_x0_5" / "model.int32.onnx"))
    assert not [i.name for i in narrowed.graph.initializer if i.data_type == onnx.TensorProto.INT64]
    for node in narrowed.graph.node:
        if node.op_type == "Constant":
            assert node.attribute[0].t.data_type != onnx.TensorProto.INT64, node.name
    # The variant gives exactly the original's outputs.
    tensor = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    outputs = []
    for file_name in ("model.onnx", "model.int32.onnx"):
        session = ort.InferenceSession(str(artifacts_dir / "shufflenet_v2_x0_5" / file_name))
        outputs.append(session.run(None, {"input": tensor})[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert manifest["parity"]["int32"]["passed"]


def test_second_convert_is_a_cache_hit_and_changed_entries_reexport(
    catalog, artifacts_dir, tmp_path, monkeypatch
):
    entries = catalog.resolve(models=["mobilenet_v3_small", "shufflenet_v2_x0_5"])
    first = convert(entries, artifacts_dir, catalog_dir=catalog.path.parent)
    assert [r.status for r in first] == ["cached", "cached"]

    exports = []
    real_export = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: (exports.append(a[2]), real_export(*a, **k)))
    # Copy the cached artifacts so this test's re-export does not disturb the shared ones.
    work = tmp_path / "work"
    shutil.copytree(artifacts_dir, work, ignore=shutil.ignore_patterns(".lock"))
    assert [r.status for r in convert(entries, work, catalog_dir=catalog.path.parent)] == ["cached", "cached"]
    assert exports == []
    changed = [entries[0], dataclasses.replace(entries[1], reference={"params_m": 1.4, "gflops": 0.04})]
    statuses = [r.status for r in convert(changed, work, catalog_dir=catalog.path.parent)]
    assert statuses == ["cached", "converted"]
    assert len(exports) == 1
    forced = convert(entries[:1], work, catalog_dir=catalog.path.parent, force=True)
    assert forced[0].status == "converted" and len(exports) == 2


def test_opset_override_is_kept_apart(catalog, tmp_path):
    entry = catalog.get("mobilenet_v3_small")
    result = convert_one(entry, tmp_path, catalog_dir=catalog.path.parent, opset=17)
    assert result.status == "converted", result.message
    manifest = verify_artifact(tmp_path / "mobilenet_v3_small-opset17")
    assert manifest["opset"] == 17 and manifest["artifact"] == "mobilenet_v3_small-opset17"
    assert not (tmp_path / "mobilenet_v3_small").exists()


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.conv(x).relu().mean((2, 3)))


def _custom_entry(catalog, **source):
    return dataclasses.replace(
        catalog.get("mobilenet_v3_small"),
        name="custom_tiny",
        source=source,
        input={"height": 64, "width": 64, "layout": "NCHW"},
        decoder={"name": "raw"},
        labels="none",
    )


def _export_tiny(path, opset):
    torch.manual_seed(0)
    torch.onnx.export(
        _Tiny().eval(),
        (torch.zeros(1, 3, 64, 64),),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=["input"],
        output_names=["logits"],
    )
    return path


def test_custom_onnx_is_converted_down_and_checked_against_the_original(catalog, tmp_path):
    original = _export_tiny(tmp_path / "tiny15.onnx", 15)
    entry = _custom_entry(catalog, onnx=str(original))
    result = convert_one(entry, tmp_path / "out", catalog_dir=catalog.path.parent)
    assert result.status == "converted", result.message
    manifest = verify_artifact(tmp_path / "out" / "custom_tiny")
    assert manifest["export"]["original_sha256"] == sha256_file(original)
    if manifest["opset"] == 13:
        assert manifest["parity"]["reference"] == "original ONNX"
        assert "converted from opset 15 to 13" in manifest["export"]["notes"][0]
    else:
        assert "kept at opset 15" in manifest["export"]["notes"][0]


def test_custom_onnx_from_url_is_verified_and_cached(catalog, tmp_path, monkeypatch):
    monkeypatch.setattr("edgebench.sources._CACHE_DIR", tmp_path / "cache")
    original = _export_tiny(tmp_path / "tiny13.onnx", 13)
    good = _custom_entry(catalog, url=original.as_uri(), sha256=sha256_file(original))
    assert convert_one(good, tmp_path / "out", catalog_dir=catalog.path.parent).status == "converted"
    assert list((tmp_path / "cache" / "downloads").rglob("tiny13.onnx"))
    bad = _custom_entry(catalog, url=original.as_uri(), sha256="0" * 64)
    result = convert_one(bad, tmp_path / "out2", catalog_dir=catalog.path.parent)
    assert result.status == "failed" and "does not match" in result.message
    assert not (tmp_path / "out2" / "custom_tiny").exists()


def test_bad_inputs_fail_one_model_without_touching_the_others(catalog, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 10)
    pinned = _export_tiny(tmp_path / "pinned.onnx", 13)
    entries = [
        _custom_entry(catalog, onnx=str(garbage)),
        dataclasses.replace(_custom_entry(catalog, onnx=str(pinned), sha256="1" * 64), name="pinned"),
        dataclasses.replace(_custom_entry(catalog, onnx=str(pinned)), name="fine"),
    ]
    results = convert(entries, tmp_path / "out", catalog_dir=catalog.path.parent)
    assert [r.status for r in results] == ["failed", "failed", "converted"]
    assert "not a readable ONNX model" in results[0].message
    assert "does not match the catalog's sha256" in results[1].message
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_failed_parity_keeps_the_previous_artifact(catalog, tmp_path, monkeypatch):
    entry = _custom_entry(catalog, onnx=str(_export_tiny(tmp_path / "t.onnx", 13)))
    assert convert_one(entry, tmp_path / "out", catalog_dir=catalog.path.parent).status == "converted"
    before = (tmp_path / "out" / "custom_tiny" / "manifest.json").read_text()

    def broken_parity(*args, **kwargs):
        return {
            "passed": False,
            "atol": 1e-4,
            "rtol": 1e-3,
            "random": {"max_abs": 0.5},
            "images": {"max_abs": 0.7},
        }

    monkeypatch.setattr("edgebench.convert.parity", broken_parity)
    result = convert_one(entry, tmp_path / "out", catalog_dir=catalog.path.parent, force=True)
    assert result.status == "failed"
    assert "parity failed: max abs diff 0.5 on random inputs, 0.7 on photos" in result.message
    assert (tmp_path / "out" / "custom_tiny" / "manifest.json").read_text() == before


def test_cli_convert_and_models(artifacts_dir, capsys):
    assert cli_main(["convert", "--models", "mobilenet_v3_small", "--artifacts", str(artifacts_dir)]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v3_small  cached" in out and str(artifacts_dir) in out
    assert cli_main(["convert", "--models", "resnet19", "--artifacts", str(artifacts_dir)]) == 2
    assert "did you mean resnet18" in capsys.readouterr().err
    assert cli_main(["models", "--task", "pose"]) == 0
    assert "lightweight_openpose" in capsys.readouterr().out


def test_images_manifest(artifacts_dir):
    manifest = verify_artifact(artifacts_dir / "images")
    assert len(manifest["files"]) >= 5
    assert json.loads((artifacts_dir / "images" / "manifest.json").read_text())["source"] == "skimage.data"
    assert artifacts.library_versions()["onnx"]
