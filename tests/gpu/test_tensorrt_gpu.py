"""TensorRT on a real GPU: engine build from a converted artifact, I/O read from the engine, outputs
that pass the correctness check against ONNX Runtime CPU's stored references, the engine cache, and
the ``engines`` command. Skipped (with the reason) where tensorrt, pycuda or a GPU is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebench_runtime.backends import create_backend, provider_availability

REPO = Path(__file__).resolve().parents[2]
_OK, _REASON = provider_availability("tensorrt-fp32")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _OK, reason=f"TensorRT not usable here: {_REASON}"),
]


@pytest.fixture(scope="module")
def gpu_artifacts(artifacts_dir, tmp_path_factory):
    """A private copy (engines are written into the artifact's engines/ folder)."""
    root = tmp_path_factory.mktemp("trt") / "artifacts"
    root.mkdir()
    shutil.copytree(Path(artifacts_dir) / "mobilenet_v3_small", root / "mobilenet_v3_small")
    (root / "images").symlink_to(Path(artifacts_dir) / "images", target_is_directory=True)
    return root


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_runs_and_passes_the_correctness_check(gpu_artifacts, precision):
    from edgebench_runtime.correctness import check
    from edgebench_runtime.manifest import verify_artifact

    artifact = gpu_artifacts / "mobilenet_v3_small"
    manifest = verify_artifact(artifact)
    backend = create_backend(f"tensorrt-{precision}", {"provider_options": {"workspace_mb": 512}})
    try:
        backend.load(artifact, manifest)
        io = {item["name"]: item for item in backend.io}
        assert io[manifest["inputs"][0]["name"]]["shape"] == manifest["inputs"][0]["shape"]
        assert io[manifest["outputs"][0]["name"]]["bytes"] == 4 * int(
            np.prod(manifest["outputs"][0]["shape"])
        )
        verdict = check(backend, manifest, artifact, backend.provider)
        assert verdict["passed"] is True, verdict
        assert verdict["level"] == "task" and verdict["task_agreement"] == 1.0
        details = backend.details()
        assert details["engine"]["status"] in ("built", "cached") and details["gpu"]["name"]
    finally:
        backend.close()
    again = create_backend(f"tensorrt-{precision}", {"provider_options": {"workspace_mb": 512}})
    try:
        again.load(artifact, manifest)
        assert again.engine_info["status"] == "cached"
    finally:
        again.close()


def test_engines_command_then_run(gpu_artifacts, tmp_path):
    command = [sys.executable, "-m", "edgebench_runtime"]
    args = ["engines", "--artifacts", str(gpu_artifacts), "--models", "mobilenet_v3_small"]
    args += ["--precisions", "fp16", "--workspace-mb", "256"]
    first = subprocess.run([*command, *args], cwd=str(REPO), capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([*command, *args], cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "cached" in second.stdout and "built" not in second.stdout
    run = subprocess.run(
        [*command, "run", "--artifacts", str(gpu_artifacts), "--output", str(tmp_path / "out"),
         "--models", "mobilenet_v3_small", "--providers", "tensorrt-fp16", "--count", "5", "--warmup", "2",
         "--provider-option", "tensorrt:workspace_mb=256", "--progress", "never"],
        cwd=str(REPO), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(
        (tmp_path / "out" / "mobilenet_v3_small" / "tensorrt-fp16-warm" / "summary.json").read_text()
    )
    assert summary["status"] == "complete" and summary["correctness"]["passed"] is True
    assert summary["backend"]["engine"]["status"] == "cached"  # the engines phase's engine was found
