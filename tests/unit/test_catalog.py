from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from edgebench.catalog import DECODERS, TASKS, CatalogError, load_catalog
from edgebench.labels import labels_for

# The thesis's models and input sizes (height = width).
THESIS_MODELS = {
    "alexnet": 224, "densenet121": 224, "efficientnet_b0": 224, "googlenet": 224, "inception_v3": 299,
    "mnasnet0_5": 224, "mnasnet0_75": 224, "mnasnet1_0": 224, "mnasnet1_3": 224, "mobilenet_v2": 224,
    "mobilenet_v3_large": 224, "mobilenet_v3_small": 224, "shufflenet_v2_x0_5": 224, "squeezenet1_0": 224,
    "resnet18": 224,
    "ssdlite320_mobilenet_v3_large": 320, "tiny_yolov2": 416, "tiny_yolov3": 416, "yolov5n": 640,
    "yolov5s": 640, "yolov5n6": 1280, "yolov5s6": 1280, "yolox_nano": 416, "yolox_tiny": 416, "yolox_s": 640,
    "lightweight_openpose": 256, "lraspp_mobilenet_v3_large": 520,
}  # fmt: skip
LARGE_MODELS = {"resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d"}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_every_thesis_model_is_present_with_its_input_size(catalog):
    for name, size in THESIS_MODELS.items():
        entry = catalog.get(name)
        assert (entry.input["height"], entry.input["width"]) == (size, size), name
    for name in LARGE_MODELS:
        assert catalog.get(name).input["height"] == 224


def test_entries_are_complete(catalog):
    for entry in catalog.entries.values():
        assert entry.task in TASKS
        assert entry.decoder["name"] in DECODERS
        assert entry.opset == 13
        assert entry.reference["params_m"] > 0 and entry.reference["gflops"] > 0, entry.name
        assert {"resize", "color", "scale", "mean", "std"} <= set(entry.preprocess)
        assert labels_for(entry.labels) or entry.labels == "none"


def test_profiles_resolve(catalog):
    quick = catalog.resolve("quick")
    assert len(quick) == 3
    assert len({entry.task for entry in quick}) >= 2
    assert {entry.name for entry in catalog.resolve("thesis")} == set(THESIS_MODELS)
    assert {entry.name for entry in catalog.resolve("large")} == LARGE_MODELS
    assert len(catalog.resolve("all")) == len(catalog.entries) >= 32
    assert [e.name for e in catalog.resolve(models=["resnet18", "alexnet"])] == ["alexnet", "resnet18"]


def test_unknown_names_suggest_the_closest(catalog):
    with pytest.raises(CatalogError, match="did you mean mobilenet_v3_small"):
        catalog.resolve(models=["mobilenet_v3_smal"])
    with pytest.raises(CatalogError, match="unknown profile 'thesys'; did you mean thesis"):
        catalog.resolve("thesys")


def _write_catalog(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(Path(load_catalog().path).read_text())
    mutate(data)
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["models"][0].update(task="captioning"), "entry 'alexnet', field 'task'"),
        (lambda d: d["models"][0].pop("input"), "entry 'alexnet', field 'input'"),
        (
            lambda d: d["models"][1].update(decoder={"name": "magic"}),
            "entry 'densenet121', field 'decoder.name'",
        ),
        (lambda d: d["models"][2]["preprocess"].update(resize="squash"), "field 'preprocess.resize'"),
        (lambda d: d["models"][3].update(colour="RGB"), "entry 'googlenet', field 'colour'"),
        (
            lambda d: d["models"][4].update(source={"url": "https://example.org/m.onnx"}),
            "field 'source.sha256'",
        ),
        (lambda d: d["models"].append(dict(d["models"][0])), "appears twice"),
        (lambda d: d["profiles"].update(mine=["nope"]), "profile 'mine': unknown model 'nope'"),
    ],
)
def test_malformed_catalog_names_entry_and_field(tmp_path, mutate, message):
    with pytest.raises(CatalogError, match=message.replace("(", r"\(")):
        load_catalog(_write_catalog(tmp_path, mutate))


def test_unreadable_catalog_is_one_clear_error(tmp_path):
    bad = tmp_path / "catalog.yml"
    bad.write_text("models: [unclosed")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(bad)
    with pytest.raises(CatalogError, match="cannot read catalog"):
        load_catalog(tmp_path / "missing.yml")


def test_own_builders_match_the_reference_parameter_counts(catalog):
    for entry in catalog.entries.values():
        if entry.source_kind != "builder":
            continue
        module_name, _, function = entry.source["builder"].partition(":")
        model = getattr(importlib.import_module(module_name), function)()
        params_m = sum(p.numel() for p in model.parameters()) / 1e6
        assert params_m == pytest.approx(entry.reference["params_m"], rel=0.10), entry.name


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["models"][0]["preprocess"].update(colour="BGR"),
            "entry 'alexnet', field 'preprocess.colour': unknown preprocessing key (did you mean 'color'?)",
        ),
        (
            lambda d: d["preprocess_presets"]["imagenet"].update(men=[0, 0, 0]),
            "entry 'alexnet', field 'preprocess_presets.imagenet.men': unknown preprocessing key "
            "(did you mean 'mean'?)",
        ),
        (
            lambda d: d["models"][0]["preprocess"].update(interpolation="lanczoz"),
            "got 'lanczoz' (did you mean 'lanczos'?)",
        ),
        (
            lambda d: d["models"][0].update(decoder={"name": "imagenet_topk", "sofmax": False}),
            "entry 'alexnet', field 'decoder': unknown parameter 'sofmax' for decoder imagenet_topk "
            "(did you mean 'softmax'?)",
        ),
        (
            lambda d: d["models"][0].update(decoder={"name": "imagenet_topk", "softmax": "no"}),
            "parameter 'softmax' must be true or false, not 'no'",
        ),
        (
            lambda d: d["models"][0].update(decoder={"name": "yolo8"}),
            "got 'yolo8' (did you mean 'yolov8'?)",
        ),
        (
            lambda d: d["models"][0].update(decoder={"name": "yolov5", "strides": [8, 16, 32]}),
            "decoder yolov5 needs parameter 'anchors'",
        ),
        (lambda d: d["models"][0].update(labels="from_model"), "only for onnx or url sources"),
        (lambda d: d["models"][0].update(labels="coco8"), "did you mean 'coco80'?"),
        (lambda d: d["models"][0].update(labels={"path": "x.txt"}), "must be {file: path}"),
        (lambda d: d["models"][0].update(labels=[]), "an inline list needs at least one name"),
    ],
)
def test_strict_catalog_names_the_key_and_the_closest_valid_one(tmp_path, mutate, message):
    with pytest.raises(CatalogError) as caught:
        load_catalog(_write_catalog(tmp_path, mutate))
    assert message in str(caught.value)


def test_label_forms_lanczos_and_onnx_opset_default(tmp_path):
    def mutate(data):
        data["models"][0].update(labels=["cat", "dog"])
        data["models"][1].update(labels={"file": "names.txt"})
        data["models"][2]["preprocess"].update(interpolation="lanczos")
        data["models"].append(
            {
                "name": "mine",
                "task": "detection",
                "source": {"onnx": "mine.onnx", "weights": "pretrained"},
                "input": {"height": 640, "width": 640},
                "preprocess": {"preset": "yolov5"},
                "decoder": {"name": "yolov8", "score_threshold": 0.3},
                "labels": "from_model",
            }
        )

    catalog = load_catalog(_write_catalog(tmp_path, mutate))
    assert catalog.get("alexnet").labels == ["cat", "dog"]
    assert catalog.get("densenet121").labels == {"file": "names.txt"}
    assert catalog.get("efficientnet_b0").preprocess["interpolation"] == "lanczos"
    mine = catalog.get("mine")
    assert mine.labels == "from_model" and mine.opset is None  # the file's own opset is kept
    assert catalog.get("alexnet").opset == 13


def test_labels_from_onnx_metadata_and_files(tmp_path):
    from edgebench.labels import LabelsError, labels_from_metadata, read_labels_file

    # Ultralytics writes a Python dict literal; paddle2onnx exports one name per line.
    assert labels_from_metadata({"names": "{0: 'Normal', 1: 'Fall'}", "stride": "32"}) == (
        "names",
        ["Normal", "Fall"],
    )
    assert labels_from_metadata({"character": "text\ntitle\nfigure\n"}) == (
        "character",
        ["text", "title", "figure"],
    )
    assert labels_from_metadata({"labels": '["a", "b"]'})[1] == ["a", "b"]
    assert labels_from_metadata({"classes": "cat, dog"})[1] == ["cat", "dog"]
    with pytest.raises(LabelsError, match=r"metadata has none of names, .*\(its keys: author, stride\)"):
        labels_from_metadata({"author": "x", "stride": "32"})
    (tmp_path / "names.txt").write_text("cat\n\ndog\n")
    (tmp_path / "names.json").write_text('{"0": "cat", "1": "dog"}')
    (tmp_path / "names.yaml").write_text("- cat\n- dog\n")
    for name in ("names.txt", "names.json", "names.yaml"):
        assert read_labels_file(tmp_path / name) == ["cat", "dog"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(LabelsError, match="holds no names"):
        read_labels_file(tmp_path / "empty.txt")
