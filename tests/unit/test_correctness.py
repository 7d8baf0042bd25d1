"""The correctness check's comparisons and verdicts on synthetic artifacts (no model conversion):
task-level agreement per kind, tolerances per provider/precision, raw fallback for a decoder that is
missing or returns nothing, and "not checked" for artifacts without references."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench_runtime.correctness import (
    DEFAULT_TOLERANCES,
    check,
    compare_task,
    not_checked,
    safe_check,
    tolerance_for,
)


def test_tolerances_per_provider_and_precision_fp16_wider():
    cpu, cuda = tolerance_for("cpu"), tolerance_for("cuda")
    fp32, fp16, int8 = (
        tolerance_for("tensorrt-fp32"),
        tolerance_for("tensorrt-fp16"),
        tolerance_for("tensorrt-int8"),
    )
    assert tolerance_for("tensorrt") == fp32
    assert cpu["atol"] < cuda["atol"] <= fp32["atol"] < fp16["atol"]
    assert fp16["rtol"] > fp32["rtol"] and fp16["mask_agreement"] < fp32["mask_agreement"]
    assert int8["atol"] is None  # raw differences recorded, not judged
    assert all(tol["iou"] == 0.9 for tol in DEFAULT_TOLERANCES.values())
    # The manifest's block overrides, per family and per provider string.
    block = {"tolerances": {"tensorrt": {"iou": 0.8}, "tensorrt-fp16": {"atol": 0.5}}}
    overridden = tolerance_for("tensorrt-fp16", block)
    assert overridden["iou"] == 0.8 and overridden["atol"] == 0.5 and overridden["rtol"] == fp16["rtol"]


TOL = tolerance_for("cpu")


def test_classification_top1_with_tie_allowance():
    ref = {"classes": np.array([3, 7, 1]), "scores": np.array([0.5, 0.4995, 0.001])}
    same = {"classes": np.array([3, 1, 7]), "scores": np.array([0.5, 0.3, 0.2])}
    swapped = {"classes": np.array([7, 3]), "scores": np.array([0.5, 0.49])}
    other = {"classes": np.array([1, 3]), "scores": np.array([0.6, 0.3])}
    assert compare_task(ref, same, TOL)[0] == 1.0
    agreement, threshold, detail = compare_task(ref, swapped, TOL)
    assert agreement == 1.0 and threshold == 1.0 and detail["tie"]  # within top1_tie of the reference
    assert compare_task(ref, other, TOL)[0] == 0.0


def _boxes(*rows):
    return {"boxes": np.array(rows, dtype=np.float32).reshape(-1, 6), "labels": []}


def test_detection_iou_and_matched_classes():
    ref = _boxes([10, 10, 110, 110, 0.9, 1], [200, 200, 300, 260, 0.8, 2])
    near = _boxes([200, 201, 300, 261, 0.79, 2], [11, 10, 111, 110, 0.88, 1])  # order differs, IoU > 0.95
    assert compare_task(ref, near, TOL)[0] == 1.0
    shifted = _boxes([30, 10, 130, 110, 0.9, 1], [200, 200, 300, 260, 0.8, 2])  # IoU 0.67 for the first
    agreement, threshold, detail = compare_task(ref, shifted, TOL)
    assert agreement == 0.5 and threshold == TOL["box_agreement"] and detail["matched"] == 1
    wrong_class = _boxes([10, 10, 110, 110, 0.9, 5], [200, 200, 300, 260, 0.8, 2])
    assert compare_task(ref, wrong_class, TOL)[0] == 0.5
    extra = _boxes([10, 10, 110, 110, 0.9, 1], [200, 200, 300, 260, 0.8, 2], [0, 0, 5, 5, 0.3, 0])
    assert compare_task(ref, extra, TOL)[0] == pytest.approx(2 / 3)
    assert compare_task(_boxes(), _boxes(), TOL)[0] == 1.0
    assert compare_task(_boxes(), ref, TOL)[0] == 0.0


def _people(*people):
    out = np.full((len(people), 18, 3), -1.0, dtype=np.float32)
    for index, points in enumerate(people):
        for k, (x, y) in points.items():
            out[index, k] = (x, y, 0.9)
    return {"people": out, "scores": np.ones(len(people), np.float32)}


def test_pose_keypoint_distance():
    ref = _people({0: (100, 100), 1: (100, 150), 2: (80, 150)}, {0: (300, 100), 1: (300, 150)})
    close = _people({0: (301, 100), 1: (300, 151)}, {0: (100.5, 100), 1: (100, 150.5), 2: (80, 151)})
    agreement, threshold, detail = compare_task(ref, close, TOL)
    assert (
        agreement == 1.0
        and threshold == TOL["keypoint_agreement"]
        and detail["max_matched_distance_px"] <= 1.5
    )
    far = _people({0: (100, 100), 1: (100, 160), 2: (80, 150)}, {0: (300, 100), 1: (300, 150)})
    assert compare_task(ref, far, TOL)[0] == pytest.approx(4 / 5)
    assert compare_task(_people(), _people(), TOL)[0] == 1.0


def test_segmentation_pixel_agreement():
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:30] = 7
    other = mask.copy()
    other[0, :10] = 3
    agreement, threshold, _ = compare_task({"mask": mask}, {"mask": other}, TOL)
    assert agreement == pytest.approx(1 - 10 / 2000) and threshold == TOL["mask_agreement"]
    assert compare_task({"mask": mask}, {"mask": mask[:, :40]}, TOL)[0] == 0.0


def test_results_of_no_known_kind_are_not_compared():
    assert compare_task(None, None, TOL) is None
    assert compare_task({"something": 1}, {"something": 1}, TOL) is None


# --- check() on a synthetic artifact -------------------------------------------------------------


class ArrayBackend:
    """A loaded 'backend' returning fixed outputs (optionally perturbed)."""

    provider = "cpu"

    def __init__(self, outputs, input_names=("input",), output_names=("logits",)):
        self.outputs = outputs
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.fed = []

    def infer(self, feeds):
        self.fed.append(feeds)
        return self.outputs[len(self.fed) - 1]


def _synthetic(tmp_path, decoder, outputs_per_image, output_names=("logits",)):
    artifact = tmp_path / "toy"
    artifact.mkdir()
    arrays = {}
    images = []
    for index, outputs in enumerate(outputs_per_image):
        arrays[f"input_{index}"] = np.full((1, 3, 8, 8), float(index), np.float32)
        for j, output in enumerate(outputs):
            arrays[f"output_{index}_{j}"] = output
        images.append({"name": f"img{index}.jpg", "sha256": "0" * 64, "height": 16, "width": 24})
    np.savez_compressed(artifact / "reference.npz", **arrays)
    manifest = {
        "schema_version": 1,
        "task": "classification",
        "inputs": [{"name": "input", "shape": [1, 3, 8, 8], "dtype": "float32"}],
        "outputs": [{"name": name, "shape": [1, 5], "dtype": "float32"} for name in output_names],
        "input": {"height": 8, "width": 8, "layout": "NCHW"},
        "preprocess": {"resize": "stretch"},
        "decoder": decoder,
        "labels": [],
        "reference_outputs": {"file": "reference.npz", "images": images, "outputs": list(output_names)},
    }
    return artifact, manifest


LOGITS = [
    [np.array([[0.1, 2.0, 0.3, -1.0, 0.5]], np.float32)],
    [np.array([[3.0, 0.0, 0.1, 0.2, 0.4]], np.float32)],
]


def test_check_passes_on_identical_outputs_and_feeds_the_stored_inputs(tmp_path):
    artifact, manifest = _synthetic(tmp_path, {"name": "imagenet_topk", "top_k": 3}, LOGITS)
    backend = ArrayBackend([list(o) for o in LOGITS])
    verdict = check(backend, manifest, artifact, "cpu")
    assert verdict["status"] == "passed" and verdict["passed"] is True and verdict["level"] == "task"
    assert verdict["max_abs"] == 0.0 and verdict["task_agreement"] == 1.0 and verdict["reason"] is None
    assert verdict["tolerance"]["atol"] == TOL["atol"]
    assert [float(f["input"].mean()) for f in backend.fed] == [0.0, 1.0]
    assert any("not found" in note for note in verdict["notes"])  # no image files: geometry from sizes


def test_check_flags_a_perturbed_provider(tmp_path):
    artifact, manifest = _synthetic(tmp_path, {"name": "imagenet_topk", "top_k": 3}, LOGITS)
    perturbed = [[LOGITS[0][0] + np.array([[2.0, 0, 0, 0, 0]], np.float32)], [LOGITS[1][0] + 1e-5]]
    verdict = check(ArrayBackend(perturbed), manifest, artifact, "cpu")
    assert verdict["status"] == "failed" and verdict["passed"] is False
    assert verdict["max_abs"] == pytest.approx(2.0) and verdict["task_agreement"] == 0.0
    assert "img0.jpg: max abs diff 2" in verdict["reason"] and "agreement 0.000" in verdict["reason"]
    # The same tiny error on image 1 passes on CPU; the fp16 tolerance also lets it through.
    assert verdict["images"][1]["task_agreement"] == 1.0
    small = [[LOGITS[0][0] + 0.05], [LOGITS[1][0] - 0.05]]
    assert check(ArrayBackend(small), manifest, artifact, "cpu")["passed"] is False
    assert check(ArrayBackend(small), manifest, artifact, "tensorrt-fp16")["passed"] is True


def test_nan_and_shape_mismatch_fail(tmp_path):
    artifact, manifest = _synthetic(tmp_path, {"name": "imagenet_topk"}, LOGITS)
    nan = [[np.full((1, 5), np.nan, np.float32)], [LOGITS[1][0]]]
    assert "NaN" in check(ArrayBackend(nan), manifest, artifact)["reason"]
    short = [[np.zeros((1, 4), np.float32)], [LOGITS[1][0]]]
    assert "shape" in check(ArrayBackend(short), manifest, artifact)["reason"]


def test_outputs_matched_by_name_when_the_provider_orders_them_differently(tmp_path):
    a, b = np.ones((1, 5), np.float32), np.zeros((1, 5), np.float32)
    artifact, manifest = _synthetic(tmp_path, {"name": "raw"}, [[a, b]], output_names=("a", "b"))
    verdict = check(ArrayBackend([[b, a]], output_names=("b", "a")), manifest, artifact)
    assert verdict["passed"] is True and verdict["level"] == "raw"
    assert any("decoder raw gives no result" in note for note in verdict["notes"])


def test_unregistered_decoder_falls_back_to_raw_and_says_so(tmp_path):
    artifact, manifest = _synthetic(tmp_path, {"name": "decoder_of_the_future"}, LOGITS)
    verdict = check(ArrayBackend([list(o) for o in LOGITS]), manifest, artifact)
    assert verdict["passed"] is True and verdict["level"] == "raw" and verdict["task_agreement"] is None
    assert any("raw outputs only" in note and "decoder_of_the_future" in note for note in verdict["notes"])
    bad = [[LOGITS[0][0] + 1.0], [LOGITS[1][0]]]
    assert check(ArrayBackend(bad), manifest, artifact)["passed"] is False


def test_artifact_without_references_is_not_checked(tmp_path):
    artifact, manifest = _synthetic(tmp_path, {"name": "imagenet_topk"}, LOGITS)
    del manifest["reference_outputs"]
    verdict = check(ArrayBackend([]), manifest, artifact)
    assert (
        verdict["status"] == "not checked"
        and verdict["passed"] is None
        and "no reference outputs" in verdict["reason"]
    )
    manifest["reference_outputs"] = {"file": "gone.npz", "images": []}
    assert "missing" in check(ArrayBackend([]), manifest, artifact)["reason"]
    assert not_checked("x")["status"] == "not checked"


def test_safe_check_turns_a_crash_into_an_error_verdict(tmp_path):
    artifact, manifest = _synthetic(tmp_path, {"name": "imagenet_topk"}, LOGITS)

    class Broken(ArrayBackend):
        def infer(self, feeds):
            raise RuntimeError("device lost")

    verdict = safe_check(Broken([]), manifest, artifact)
    assert verdict["status"] == "error" and verdict["passed"] is None and "device lost" in verdict["reason"]
