"""The real benchmark.yml on the embedded default inventory (this machine as the device)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ansible")]


def playbook(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "benchmark.yml", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"ansible-playbook failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
        )
    return result


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"edgebench_models": ["resnet19"]}', "edgebench_models names models the catalog lacks: resnet19"),
        ('{"edgebench_providers": ["cpu", "gpu"]}', "edgebench_providers=['cpu', 'gpu']"),
        ('{"edgebench_reboot_policy": "sometimes"}', "edgebench_reboot_policy 'sometimes' must be one of"),
        ('{"edgebench_cooldown": "fixed:soon"}', "edgebench_cooldown 'fixed:soon' must be none"),
        ('{"edgebench_reboot_policy": "per_model"}', "localhost is this machine (ansible_connection=local)"),
        ('{"edgebench_profile": "everything"}', "edgebench_profile 'everything' is not a catalog profile"),
        ('{"edgebench_image_count": 0}', "edgebench_image_count (0)"),
        (
            '{"edgebench_accuracy_dataset": "/nonexistent/set"}',
            "edgebench_accuracy_dataset: /nonexistent/set is not a directory of labelled images.",
        ),
        (
            '{"edgebench_models": ["alexnet"], "edgebench_artifacts_dir": "/nonexistent"}',
            "No artifact in /nonexistent for alexnet. Convert first: edgebench convert --models alexnet",
        ),
    ],
)
def test_validate_stops_bad_plans_before_any_device_is_touched(tmp_path, extra, message):
    result = playbook("-e", extra, "-e", f"edgebench_work_dir={tmp_path}/work")
    assert result.returncode != 0
    flat = " ".join(result.stdout.split())
    assert message in flat, flat[-3000:]
    assert "PLAY [Provision" not in result.stdout
    assert not (tmp_path / "work").exists()


def test_local_benchmark_end_to_end_and_resume(artifacts_dir, tmp_path):
    plan = {
        "edgebench_models": ["mobilenet_v3_small"],
        "edgebench_providers": ["cpu", "cuda"],
        "edgebench_modes": ["warm", "cold"],
        "edgebench_image_count": 8,
        "edgebench_max_images": 8,  # exact row counts: no extension to the validity minimums
        "edgebench_warmup_count": 2,
        "edgebench_poll_interval_s": 0.5,
        "edgebench_artifacts_dir": str(artifacts_dir),
        "edgebench_results_dir": str(tmp_path / "results"),
        "edgebench_work_dir": str(tmp_path / "work"),
        "run_id": "local-e2e",
    }
    playbook("-e", json.dumps(plan), check=True)
    host_dir = tmp_path / "results" / "local-e2e" / "localhost"
    assert json.loads((host_dir / "env.json").read_text())["available_providers"] == ["cpu"]
    for mode in ("warm", "cold"):
        summary = json.loads((host_dir / "mobilenet_v3_small" / f"cpu-{mode}" / "summary.json").read_text())
        assert summary["status"] == "complete" and summary["images"]["measured"] == 8
        skipped = json.loads((host_dir / "mobilenet_v3_small" / f"cuda-{mode}" / "summary.json").read_text())
        assert skipped["status"] == "skipped" and "CUDAExecutionProvider" in skipped["reason"]
    with (tmp_path / "results" / "local-e2e" / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["provider"], r["mode"], r["status"]) for r in rows) == [
        ("cpu", "cold", "complete"), ("cpu", "warm", "complete"),
        ("cuda", "cold", "skipped"), ("cuda", "warm", "skipped"),
    ]  # fmt: skip

    # Rerun with the same run id: nothing is pushed again, nothing is measured again.
    timings = host_dir / "mobilenet_v3_small" / "cpu-warm" / "timings.csv"
    before = timings.read_text()
    again = playbook("-e", json.dumps(plan), "--tags", "deploy,run,collect", check=True)
    assert "Push the artifacts" in again.stdout
    push = again.stdout.split("Push the artifacts")[1].split("TASK [")[0]
    assert "changed:" not in push, push
    assert timings.read_text() == before


def test_accuracy_beside_speed_on_a_labelled_set(artifacts_dir, tmp_path):
    # Two classes named as two of the model's labels, two default photos each: the figures of a
    # random-init model mean nothing, but they must be measured, scored, kept and reported.
    labels = json.loads((artifacts_dir / "mobilenet_v3_small" / "manifest.json").read_text())["labels"][:2]
    photos = sorted((artifacts_dir / "images").glob("*.jpg"))[:4]
    for label, pair in zip(labels, (photos[:2], photos[2:]), strict=True):
        (tmp_path / "set" / label).mkdir(parents=True)
        for photo in pair:
            (tmp_path / "set" / label / photo.name).write_bytes(photo.read_bytes())
    plan = {
        "edgebench_models": ["mobilenet_v3_small"],
        "edgebench_accuracy_dataset": str(tmp_path / "set"),
        "edgebench_image_count": 4,
        "edgebench_max_images": 4,
        "edgebench_warmup_count": 1,
        "edgebench_poll_interval_s": 0.5,
        "edgebench_artifacts_dir": str(tmp_path / "artifacts"),
        "edgebench_results_dir": str(tmp_path / "results"),
        "edgebench_work_dir": str(tmp_path / "work"),
        "run_id": "local-accuracy",
    }
    # Its own artifacts directory, since validate stages the set into it.
    shutil.copytree(artifacts_dir / "mobilenet_v3_small", tmp_path / "artifacts" / "mobilenet_v3_small")
    playbook("-e", json.dumps(plan), check=True)
    staged = list((tmp_path / "work" / "artifacts" / "datasets").glob("set-*/*.jpg"))
    assert sorted(p.name.split("--")[0] for p in staged) == sorted([labels[0]] * 2 + [labels[1]] * 2)
    run_dir = tmp_path / "results" / "local-accuracy"
    summary = json.loads(
        (run_dir / "localhost" / "mobilenet_v3_small" / "cpu-warm" / "summary.json").read_text()
    )
    accuracy = summary["accuracy"]
    assert accuracy["status"] == "computed" and accuracy["images"] == 4, accuracy
    assert accuracy["task"] == "classification" and 0 <= accuracy["top1"] <= accuracy["top5"] <= 1
    report = (run_dir / "report" / "report.md").read_text()
    assert "| fps | top1 | top5 |" in report and "Accuracy beside speed" in report


def _converted(artifacts_dir: Path) -> list[str]:
    return [
        "-e",
        json.dumps(
            {"edgebench_models": ["mobilenet_v3_small"], "edgebench_artifacts_dir": str(artifacts_dir)}
        ),
    ]


def test_a_device_with_no_onnxruntime_wheel_for_its_architecture_is_refused_first(artifacts_dir, tmp_path):
    # A 32-bit Raspberry Pi OS reports armv7l; here a `uname` ahead on PATH says so for this machine.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "uname").write_text("#!/bin/sh\necho armv7l\n")
    (shim / "uname").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shim}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "ANSIBLE_NOCOLOR": "1",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "benchmark.yml",
         "-e", f"edgebench_work_dir={tmp_path}/work", *_converted(artifacts_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    flat = " ".join(result.stdout.split())
    assert "localhost is armv7l: PyPI has no onnxruntime wheel for it" in flat
    assert "Supply one in edgebench_extra_wheels" in flat
    assert "TASK [provision" not in result.stdout and not (tmp_path / "work").exists()


def test_a_runtime_python_too_old_is_refused_first(artifacts_dir, tmp_path):
    pyenv = subprocess.run(["pyenv", "prefix", "2.7.18"], capture_output=True, text=True, check=False)
    if pyenv.returncode != 0:
        pytest.skip("pyenv's CPython 2.7.18 is not on this machine")
    result = playbook(
        "-e",
        f"edgebench_work_dir={tmp_path}/work",
        *_converted(artifacts_dir),
        "-e",
        f"edgebench_runtime_python={pyenv.stdout.strip()}/bin/python2.7",
    )
    assert result.returncode != 0
    flat = " ".join(result.stdout.split())
    assert "localhost: edgebench_runtime_python" in flat
    assert "is Python 2.7; edgebench_runtime needs 3.6" in flat
    assert "Set edgebench_runtime_python" in flat
    assert "TASK [provision" not in result.stdout and not (tmp_path / "work").exists()


def test_a_runtime_python_that_does_not_run_is_named(artifacts_dir, tmp_path):
    result = playbook(
        "-e",
        f"edgebench_work_dir={tmp_path}/work",
        *_converted(artifacts_dir),
        "-e",
        f"edgebench_runtime_python={tmp_path}/no-such-python",
    )
    assert result.returncode != 0
    flat = " ".join(result.stdout.split())
    assert f"edgebench_runtime_python ({tmp_path}/no-such-python) did not run there" in flat
    assert "TASK [provision" not in result.stdout
