"""The on-device correctness check end to end: real converted artifacts (with their stored reference
outputs), real ONNX Runtime, ``edgebench-runtime run`` in a subprocess as Ansible drives it.

A provider whose outputs are deliberately perturbed (a ``sitecustomize`` on the children's
PYTHONPATH adds noise to ONNX Runtime's outputs) is still timed - every row measured, status
complete - and flagged in summary.json's ``correctness``. Older artifacts without references are
"not checked" with the reason; skipped providers say why they were not checked.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebench_runtime.results import read_timings

REPO = Path(__file__).resolve().parents[2]

PERTURB = """
import os
if os.environ.get("EDGEBENCH_TEST_PERTURB"):
    from edgebench_runtime.backends import onnxruntime_backend as _ort_backend

    _infer = _ort_backend.OrtBackend.infer

    def _perturbed(self, feeds):
        outputs = _infer(self, feeds)
        return [out + float(os.environ["EDGEBENCH_TEST_PERTURB"]) * (out == out.max()) for out in outputs]

    _ort_backend.OrtBackend.infer = _perturbed
"""


@pytest.fixture(scope="module")
def correctness_artifacts(artifacts_dir, tmp_path_factory):
    """mobilenet_v3_small (linked), ``legacy``: the same model as an artifact from before reference
    outputs existed (no reference.npz, no ``reference_outputs``)."""
    root = tmp_path_factory.mktemp("correctness") / "artifacts"
    root.mkdir()
    for name in ("mobilenet_v3_small", "images"):
        (root / name).symlink_to(Path(artifacts_dir) / name, target_is_directory=True)
    legacy = root / "legacy"
    shutil.copytree(Path(artifacts_dir) / "mobilenet_v3_small", legacy)
    manifest = json.loads((legacy / "manifest.json").read_text())
    manifest.pop("reference_outputs")
    manifest["files"].pop("reference.npz")
    (legacy / "reference.npz").unlink()
    manifest["name"] = manifest["artifact"] = "legacy"
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    return root


def _run(artifacts, output, models, providers="cpu", modes="warm", env=None, extra=()):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebench_runtime",
            "run",
            "--artifacts",
            str(artifacts),
            "--output",
            str(output),
            "--models",
            models,
            "--providers",
            providers,
            "--modes",
            modes,
            "--count",
            "4",
            "--max-images",  # exact row counts: no extension to the validity minimums
            "4",
            "--warmup",
            "2",
            "--threads",
            "1",
            "--progress",
            "never",
            "--telemetry-interval",
            "0",
            *extra,
        ],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _summary(output, model, job):
    return json.loads((Path(output) / model / job / "summary.json").read_text())


def test_reference_outputs_stored_at_conversion(artifacts_dir):
    from edgebench_runtime.manifest import verify_artifact

    artifact = Path(artifacts_dir) / "mobilenet_v3_small"
    manifest = verify_artifact(artifact)  # reference.npz is listed with its sha256 and verifies
    block = manifest["reference_outputs"]
    assert manifest["files"]["reference.npz"]["sha256"] and block["file"] == "reference.npz"
    assert "onnxruntime" in block["producer"] and block["outputs"] == [o["name"] for o in manifest["outputs"]]
    assert [image["name"] for image in block["images"]] == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]
    assert block["tolerances"]["tensorrt-fp16"]["atol"] > block["tolerances"]["cpu"]["atol"]
    with np.load(artifact / "reference.npz") as stored:
        assert stored["input_0"].shape == tuple(manifest["inputs"][0]["shape"])
        assert stored["output_2_0"].shape == tuple(manifest["outputs"][0]["shape"])


@pytest.mark.slow
def test_pillow_decoding_on_the_device_passes_the_check(correctness_artifacts, tmp_path):
    # Devices without OpenCV decode and resize with Pillow, which antialiases when it shrinks: single
    # pixels differ from the controller's cv2 tensor by ~1 normalised unit, the mean by far less.
    result = _run(correctness_artifacts, tmp_path / "pil", "mobilenet_v3_small", extra=("--decode", "pillow"))
    assert result.returncode == 0, result.stderr
    verdict = _summary(tmp_path / "pil", "mobilenet_v3_small", "cpu-warm")["correctness"]
    assert verdict["status"] == "passed", verdict["reason"]
    # Judged in the model's own units: the mean difference over the input's spread.
    assert verdict["input_relative_mean"] < verdict["tolerance"]["input_relative_mean"]
    assert verdict["input_mean_abs"] < verdict["input_max_abs"]


@pytest.mark.slow
def test_run_records_verdicts_and_times_a_failing_provider(correctness_artifacts, tmp_path):
    good = tmp_path / "good"
    result = _run(correctness_artifacts, good, "mobilenet_v3_small,legacy", "cpu,cuda", "warm,cold")
    assert result.returncode == 0, result.stderr
    for mode in ("warm", "cold"):
        verdict = _summary(good, "mobilenet_v3_small", "cpu-" + mode)["correctness"]
        assert verdict["status"] == "passed" and verdict["passed"] is True and verdict["level"] == "task"
        assert verdict["max_abs"] <= 1e-3 and verdict["task_agreement"] == 1.0
        assert (
            verdict["input_max_abs"] is not None and verdict["input_max_abs"] < 0.1
        )  # images found, decoded here
        assert verdict["tolerance"]["atol"] == 1e-3 and len(verdict["images"]) == 3
    legacy = _summary(good, "legacy", "cpu-warm")
    assert legacy["status"] == "complete" and legacy["correctness"]["status"] == "not checked"
    assert "no reference outputs" in legacy["correctness"]["reason"]
    cuda = _summary(good, "mobilenet_v3_small", "cuda-warm")
    if cuda["status"] == "skipped":
        assert cuda["correctness"]["passed"] is None and "skipped" in cuda["correctness"]["reason"]

    # The same model with ONNX Runtime's outputs perturbed: timed in full, flagged.
    bad = tmp_path / "bad"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(PERTURB)
    env = dict(os.environ, PYTHONPATH=str(site), EDGEBENCH_TEST_PERTURB="0.5")
    result = _run(correctness_artifacts, bad, "mobilenet_v3_small", "cpu", "warm", env=env)
    assert result.returncode == 0, result.stderr
    flagged = _summary(bad, "mobilenet_v3_small", "cpu-warm")
    assert flagged["status"] == "complete" and flagged["images"]["measured"] == 4
    assert read_timings(str(bad / "mobilenet_v3_small" / "cpu-warm" / "timings.csv"))["index"].tolist() == [
        0,
        1,
        2,
        3,
    ]
    verdict = flagged["correctness"]
    assert verdict["status"] == "failed" and verdict["passed"] is False
    assert verdict["max_abs"] == pytest.approx(0.5, rel=1e-3) and "max abs diff" in verdict["reason"]
    assert "CORRECTNESS CHECK FAILED" in result.stderr

    # A small perturbation (0.01 on the top logit) fails CPU's raw tolerance while top-1 still agrees.
    env["EDGEBENCH_TEST_PERTURB"] = "0.01"
    result = _run(correctness_artifacts, tmp_path / "small", "mobilenet_v3_small", "cpu", "warm", env=env)
    verdict = _summary(tmp_path / "small", "mobilenet_v3_small", "cpu-warm")["correctness"]
    assert verdict["passed"] is False and verdict["task_agreement"] == 1.0
