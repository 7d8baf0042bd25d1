"""End-to-end tests of ``edgebench-runtime run`` on real exported models with real ONNX Runtime.

Each run goes through the CLI in a subprocess, exactly as Ansible drives it on a device.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from machine import without_tensorrt

from edgebench.catalog import load_catalog
from edgebench_runtime.results import TIMINGS_COLUMNS, read_timings, summarize_rows

REPO = Path(__file__).resolve().parents[2]
# The catalog's ImageNet recipe, as the converter writes it into a classifier's manifest.
IMAGENET = load_catalog().resolve(models=["mobilenet_v3_small"])[0].preprocess


# --- test artifacts: the converted classifiers + two custom ONNX models (``raw`` decoder) -------------


def _sha(path):
    from edgebench_runtime.manifest import sha256_file

    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def _export_hungry(root, name, megabytes):
    """A custom model (``raw`` decoder) whose inference allocates ``megabytes`` MiB: Tile of the
    1x3x224x224 input (588 KiB) by N, then a mean."""
    import onnx
    from onnx import TensorProto, helper

    repeats = max(1, int(megabytes * 1024 * 1024 / (3 * 224 * 224 * 4)))
    graph = helper.make_graph(
        [
            helper.make_node("Tile", ["input", "repeats"], ["big"]),
            helper.make_node("ReduceMean", ["big"], ["output"], keepdims=0),
        ],
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [])],
        [helper.make_tensor("repeats", TensorProto.INT64, [4], [repeats, 1, 1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    target = root / name
    target.mkdir(parents=True)
    onnx.save(model, str(target / "model.onnx"))
    manifest = {
        "schema_version": 1,
        "name": name,
        "artifact": name,
        "task": "classification",
        "opset": 13,
        "weights": "random-init",
        "files": {"model.onnx": _sha(target / "model.onnx")},
        "model_file": "model.onnx",
        "int32_file": None,
        "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32"}],
        "outputs": [{"name": "output", "shape": [], "dtype": "float32"}],
        "input": {"height": 224, "width": 224, "layout": "NCHW"},
        "preprocess": dict(IMAGENET, resize="stretch"),
        "decoder": {"name": "raw"},
        "labels": [],
        "nms_in_graph": False,
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.fixture(scope="session")
def runtime_artifacts(artifacts_dir, tmp_path_factory):
    """The shared converted artifacts (linked, never modified) plus ``hungry`` and ``tiny``."""
    root = tmp_path_factory.mktemp("runtime_artifacts") / "artifacts"
    root.mkdir()
    for name in ("mobilenet_v3_small", "shufflenet_v2_x0_5", "images"):
        (root / name).symlink_to(Path(artifacts_dir) / name, target_is_directory=True)
    _export_hungry(root, "hungry", 1024)
    _export_hungry(root, "tiny", 0)
    return root


# --- helpers ---------------------------------------------------------------------------------------


def cli(*args, timeout=180, env=None):
    return subprocess.run(
        [sys.executable, "-m", "edgebench_runtime", *[str(a) for a in args]],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def run(artifacts, output, *extra, timeout=180):
    if "--count" in extra and "--max-images" not in extra:
        # These tests count rows exactly: the run must not extend itself to the validity minimums.
        extra = (*extra, "--max-images", extra[extra.index("--count") + 1])
    return cli(
        "run",
        "--artifacts",
        artifacts,
        "--output",
        output,
        "--threads",
        "1",
        "--progress",
        "never",
        *extra,
        timeout=timeout,
    )


def summary(output, model, job):
    return json.loads((Path(output) / model / job / "summary.json").read_text())


def assert_rows_exact(result_dir, count):
    rows = read_timings(str(Path(result_dir) / "timings.csv"))
    assert rows["index"].tolist() == list(range(count))
    assert len(set(rows["seq"].tolist())) == count
    assert (rows["schema_version"] == 1).all()
    return rows


def _cgroup_dir():
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        parts = line.split(":", 2)
        if "memory" in parts[1].split(","):
            return Path("/sys/fs/cgroup/memory") / parts[2].lstrip("/")
    return None


# --- tests -----------------------------------------------------------------------------------------


@pytest.mark.slow
@without_tensorrt  # it asserts tensorrt-fp16 is skipped
def test_run_complete_statistics_and_skips(runtime_artifacts, tmp_path):
    out = tmp_path / "out"
    proc = run(
        runtime_artifacts,
        out,
        "--models",
        "mobilenet_v3_small,shufflenet_v2_x0_5",
        "--providers",
        "cpu,cuda,tensorrt-fp16",
        "--modes",
        "warm,cold",
        "--count",
        "5",
        "--warmup",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    for model in ("mobilenet_v3_small", "shufflenet_v2_x0_5"):
        for mode in ("warm", "cold"):
            data = summary(out, model, "cpu-" + mode)
            assert data["schema_version"] == 1
            assert data["status"] == "complete"
            rows = assert_rows_exact(out / model / ("cpu-" + mode), 5)
            # statistics against numpy on the written rows
            for phase in ("decode_ms", "pre_ms", "infer_ms", "post_ms"):
                values = rows[phase]
                stats = data["phases"][phase]
                assert stats["n"] == 5
                assert stats["mean"] == pytest.approx(values.mean())
                assert stats["std"] == pytest.approx(values.std(ddof=1))
                assert stats["min"] == pytest.approx(values.min()) and stats["max"] == pytest.approx(
                    values.max()
                )
                for q in (50, 90):  # nearest rank, as LoadGen and trtexec
                    assert stats[f"p{q}"] == np.percentile(values, q, method="inverted_cdf")
                assert stats["p99"] is None and "662" in stats["p99_reason"]
            total = rows["pre_ms"] + rows["infer_ms"] + rows["post_ms"]
            assert data["fps"] == pytest.approx(1000.0 / total.mean())
            assert data["fps_e2e"] == pytest.approx(1000.0 / (total + rows["decode_ms"]).mean())
            assert data["stability"]["verdict"] in ("stable", "noisy", "unstable")
            assert data["validity"]["verdict"] == "invalid"  # 5 images, capped by --max-images
            assert any("5 measured images, under the 64" in r for r in data["validity"]["reasons"])
            assert data["load_ms"] > 0 and data["first_inference_ms"] > 0
            assert data["backend"]["threads"] == 1
            assert data["backend"]["graph_optimization_level"] == "all"
            assert data["backend"]["active_providers"] == ["CPUExecutionProvider"]
            assert data["artifact"]["verified"] is True
            assert data["telemetry"]["samples"] >= 1
            assert "throttling" in data and "energy" in data
            assert all(r.split(":")[0].isdigit() for r in rows["result"])  # top-1 class index
            if mode == "cold":  # the first measured image is the first inference ever
                assert data["first_inference_ms"] == pytest.approx(rows["infer_ms"][0])
                assert data["phases_excluding_first"]["infer_ms"]["n"] == 4
            else:
                assert data["segments"][0]["warmup_disjoint"] is True
                photos = sorted(p.name for p in (runtime_artifacts / "images").glob("*.jpg"))
                warm = photos[-max(1, len(photos) // 5) :]  # the last ones are kept for warm-up
                assert not set(rows["image"]) & set(warm)
            telemetry = (out / model / ("cpu-" + mode) / "telemetry.csv").read_text().splitlines()
            assert telemetry[0].startswith("schema_version,time,elapsed_s,segment")
        for provider in ("cuda", "tensorrt-fp16"):
            data = summary(out, model, provider + "-warm")
            assert data["status"] == "skipped"
            assert data["reason"]
            assert not (out / model / (provider + "-warm") / "timings.csv").exists()
    assert "CUDAExecutionProvider" in summary(out, "mobilenet_v3_small", "cuda-cold")["reason"]
    status = json.loads((out / "status.json").read_text())
    assert status["schema_version"] == 1 and status["state"] == "finished"
    assert status["jobs_done"] == status["jobs_total"] == 12
    assert status["counts"] == {"complete": 4, "skipped": 8}
    env = json.loads((out / "env.json").read_text())
    assert env["providers"]["cpu"]["available"] is True
    # Rerun: complete results are not redone.
    again = run(runtime_artifacts, out, "--models", "mobilenet_v3_small", "--count", "5", "--warmup", "2")
    assert again.returncode == 0 and "already complete" in again.stderr
    assert len(summary(out, "mobilenet_v3_small", "cpu-warm")["segments"]) == 1
    # --force redoes.
    forced = run(
        runtime_artifacts, out, "--models", "mobilenet_v3_small", "--count", "3", "--warmup", "2", "--force"
    )
    assert forced.returncode == 0, forced.stderr
    assert_rows_exact(out / "mobilenet_v3_small" / "cpu-warm", 3)


@pytest.mark.slow
def test_sigkill_mid_model_then_resume_has_exact_rows(runtime_artifacts, tmp_path):
    out = tmp_path / "out"
    count = 400
    args = [
        sys.executable,
        "-m",
        "edgebench_runtime",
        "run",
        "--artifacts",
        str(runtime_artifacts),
        "--output",
        str(out),
        "--models",
        "tiny,shufflenet_v2_x0_5",
        "--count",
        str(count),
        "--max-images",
        str(count),
        "--warmup",
        "1",
        "--threads",
        "1",
        "--progress",
        "never",
    ]
    parent = subprocess.Popen(
        args, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True
    )
    timings = out / "tiny" / "cpu-warm" / "timings.csv"
    status_path = out / "status.json"
    deadline = time.time() + 60
    pid = None
    while time.time() < deadline:
        if timings.exists() and timings.read_text().count("\n") > 30 and status_path.exists():
            current = json.loads(status_path.read_text()).get("current") or {}
            pid = current.get("child_pid")
            if pid:
                break
        time.sleep(0.05)
    assert pid, "the child never reported progress"
    os.kill(pid, signal.SIGKILL)
    _stdout, stderr = parent.communicate(timeout=120)
    assert parent.returncode == 4, stderr  # one run failed, the other model still ran
    killed = summary(out, "tiny", "cpu-warm")
    assert killed["status"] == "failed" and "SIGKILL" in killed["reason"]
    assert 0 < killed["images"]["measured"] < count
    assert summary(out, "shufflenet_v2_x0_5", "cpu-warm")["status"] == "complete"
    # Simulate the worst case of a crash: a torn last line.
    with open(str(timings), "a") as handle:
        handle.write("1,99999,99999,astro")
    proc = run(
        runtime_artifacts, out, "--models", "tiny,shufflenet_v2_x0_5", "--count", str(count), "--warmup", "1"
    )
    assert proc.returncode == 0, proc.stderr
    assert "resuming at image" in proc.stderr and "already complete" in proc.stderr
    resumed = summary(out, "tiny", "cpu-warm")
    assert resumed["status"] == "complete"
    rows = assert_rows_exact(out / "tiny" / "cpu-warm", count)
    assert sorted(set(rows["segment"].tolist())) == [0, 1]
    assert [s["exit"] for s in resumed["segments"]] == ["failed", "complete"]
    assert resumed["phases"]["infer_ms"]["n"] == count
    assert resumed["segments"][1]["start_index"] == killed["images"]["measured"]


@pytest.mark.slow
def test_rlimit_as_out_of_memory_then_next_model_runs(runtime_artifacts, tmp_path):
    out = tmp_path / "out"
    proc = run(
        runtime_artifacts,
        out,
        "--models",
        "hungry,tiny",
        "--count",
        "3",
        "--warmup",
        "1",
        "--memory-limit-mb",
        "900",
    )
    assert proc.returncode == 4, proc.stderr
    data = summary(out, "hungry", "cpu-warm")
    assert data["status"] == "oom", data
    assert "allocate" in data["reason"].lower() or "memory" in data["reason"].lower()
    assert data["images"]["measured"] == 0
    assert summary(out, "tiny", "cpu-warm")["status"] == "complete"


@pytest.mark.slow
def test_cgroup_v1_memory_limit_kill_is_oom(runtime_artifacts, tmp_path):
    parent = _cgroup_dir()
    if parent is None or not (parent / "memory.limit_in_bytes").exists():
        pytest.skip("no cgroup v1 memory controller for this process")
    group = parent / (f"edgebench_test_{os.getpid()}")
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(400 * 1024 * 1024))
    except OSError as exc:
        pytest.skip(f"cgroup v1 memory controller not writable here: {exc}")
    try:
        out = tmp_path / "out"
        prefix = f"sh -c 'echo $$ > {group}/cgroup.procs && exec \"$@\"' sh"
        proc = run(
            runtime_artifacts,
            out,
            "--models",
            "hungry,tiny",
            "--count",
            "3",
            "--warmup",
            "0",
            "--modes",
            "cold",
            "--child-prefix",
            prefix,
        )
        assert proc.returncode == 4, proc.stderr
        data = summary(out, "hungry", "cpu-cold")
        assert data["status"] == "oom", data
        assert "SIGKILL" in data["reason"] and (
            "oom_kill" in data["reason"] or "Killed process" in data["reason"]
        )
        assert data["segments"][0]["exit_code"] == -9
        assert summary(out, "tiny", "cpu-cold")["status"] == "complete"
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


@pytest.mark.slow
def test_corrupt_artifact_fails_that_model_only(runtime_artifacts, tmp_path):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    for name in ("images", "tiny", "shufflenet_v2_x0_5"):
        shutil.copytree(str(runtime_artifacts / name), str(artifacts / name))
    model = artifacts / "shufflenet_v2_x0_5" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    out = tmp_path / "out"
    proc = run(artifacts, out, "--models", "shufflenet_v2_x0_5,tiny", "--count", "2", "--warmup", "1")
    assert proc.returncode == 4
    bad = summary(out, "shufflenet_v2_x0_5", "cpu-warm")
    assert bad["status"] == "failed" and "sha256" in bad["reason"]
    assert bad["artifact"]["verified"] is False
    assert summary(out, "tiny", "cpu-warm")["status"] == "complete"
    assert cli("verify", str(artifacts / "shufflenet_v2_x0_5"), str(artifacts / "tiny")).returncode == 4


@pytest.mark.slow
def test_bad_inputs_give_one_clear_message_and_exit_code(runtime_artifacts, tmp_path):
    out = tmp_path / "out"
    proc = run(runtime_artifacts, out, "--models", "tiny", "--images", tmp_path / "nope")
    assert proc.returncode == 3 and "does not exist" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run(runtime_artifacts, out, "--models", "tiny", "--images", tmp_path / "empty")
    assert proc.returncode == 3 and "holds no JPEG" in proc.stderr
    proc = run(runtime_artifacts, out, "--models", "mobilenet_v3_smal")
    assert proc.returncode == 3 and "did you mean mobilenet_v3_small" in proc.stderr
    proc = run(runtime_artifacts, out, "--models", "tiny", "--providers", "npu")
    assert proc.returncode == 2 and "unknown provider" in proc.stderr
    proc = run(runtime_artifacts, out, "--models", "tiny", "--modes", "lukewarm")
    assert proc.returncode == 2 and "unknown mode" in proc.stderr
    proc = run(runtime_artifacts, out, "--models", "tiny", "--cooldown", "sometimes")
    assert proc.returncode == 2 and "cooldown policy" in proc.stderr
    (tmp_path / "file").write_text("x")
    proc = run(runtime_artifacts, tmp_path / "file" / "out", "--models", "tiny")
    assert proc.returncode == 3 and "not writable" in proc.stderr
    for line in (p for p in proc.stderr.splitlines() if p.strip()):
        assert "Traceback" not in line
    # An unreadable image is skipped and counted, not fatal.
    images = tmp_path / "images"
    shutil.copytree(str(runtime_artifacts / "images"), str(images))
    (images / "broken.jpg").write_bytes(b"not a jpeg at all")
    proc = run(
        runtime_artifacts, out, "--models", "tiny", "--images", images, "--count", "6", "--warmup", "0"
    )
    assert proc.returncode == 0, proc.stderr
    data = summary(out, "tiny", "cpu-warm")
    assert data["status"] == "complete"
    assert data["images"]["unreadable"] == 1 and data["images"]["unreadable_files"] == ["broken.jpg"]
    assert_rows_exact(out / "tiny" / "cpu-warm", 6)


@pytest.mark.slow
def test_full_disk_fails_with_enospc_and_keeps_rows(runtime_artifacts, tmp_path):
    mount = tmp_path / "sd"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    try:
        out = mount / "out"
        proc = run(runtime_artifacts, out, "--models", "tiny", "--count", "5000", "--warmup", "1")
        assert proc.returncode == 4
        data = summary(out, "tiny", "cpu-warm")
        assert data["status"] == "failed"
        assert "ENOSPC" in data["reason"]
        rows = read_timings(str(out / "tiny" / "cpu-warm" / "timings.csv"))
        assert 100 < rows["index"].size < 5000
        assert rows["index"].tolist() == list(range(rows["index"].size))
        assert data["images"]["measured"] == rows["index"].size
    finally:
        subprocess.run(["umount", str(mount)])


@pytest.mark.slow
def test_timeout_is_recorded_with_images_done(runtime_artifacts, tmp_path):
    out = tmp_path / "out"
    proc = run(
        runtime_artifacts,
        out,
        "--models",
        "tiny",
        "--count",
        "1000000",
        "--warmup",
        "0",
        "--timeout",
        "3",
        "--telemetry-interval",
        "0.5",
    )
    assert proc.returncode == 4
    data = summary(out, "tiny", "cpu-warm")
    assert data["status"] == "timeout"
    assert data["images"]["measured"] > 0
    assert (
        data["images"]["measured"]
        == read_timings(str(out / "tiny" / "cpu-warm" / "timings.csv"))["index"].size
    )
    assert data["telemetry"]["samples"] >= 3


@pytest.fixture(scope="module")
def probe():
    proc = cli("probe", timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@without_tensorrt
def test_probe_says_why_tensorrt_is_unavailable(probe):
    assert probe["providers"]["tensorrt"]["available"] is False and probe["providers"]["tensorrt"]["reason"]


def test_probe_on_this_machine(probe):
    data = probe
    assert data["schema_version"] == 1
    assert data["providers"]["cpu"]["available"] is True
    assert "cpu" in data["available_providers"]
    assert data["cpu_count"] >= 1 and data["memory_total_mb"] > 0
    assert data["python"]["version"]
    assert data["versions"]["numpy"] and data["versions"]["onnxruntime"]
    for key in (
        "hostname",
        "board_model",
        "jetson",
        "os",
        "kernel",
        "nvpmodel",
        "cpu_governor",
        "thermal_zones",
        "power_rails",
    ):
        assert key in data


def test_summarize_matches_summary(runtime_artifacts, tmp_path):
    out = tmp_path / "out"
    assert run(runtime_artifacts, out, "--models", "tiny", "--count", "4", "--warmup", "1").returncode == 0
    directory = out / "tiny" / "cpu-warm"
    before = json.loads((directory / "summary.json").read_text())
    rows = read_timings(str(directory / "timings.csv"))
    expected = summarize_rows(rows)
    assert before["phases"] == expected["phases"]
    # Wrong statistics in summary.json: summarize must put back what timings.csv says (a summarize
    # that did nothing would leave these and fail), and keep what is not a statistic.
    corrupt = dict(before, fps=1.0, fps_e2e=1.0, measured_s=0.0, images=dict(before["images"], measured=99))
    corrupt["phases"] = {phase: dict(stats, mean=-1.0, p50=-1.0) for phase, stats in before["phases"].items()}
    corrupt.pop("stability")
    corrupt.pop("dispersion")
    (directory / "summary.json").write_text(json.dumps(corrupt))
    assert cli("summarize", str(directory)).returncode == 0
    after = json.loads((directory / "summary.json").read_text())
    assert after["phases"] == before["phases"]
    for key, value in expected.items():
        assert after[key] == json.loads(json.dumps(value)), key
    assert after["images"]["measured"] == rows["index"].size == 4
    assert {k: v for k, v in after.items() if k not in expected and k != "images"} == {
        k: v for k, v in before.items() if k not in expected and k != "images"
    }
    assert list(TIMINGS_COLUMNS)[:2] == ["schema_version", "index"]


@pytest.mark.slow
def test_an_interrupted_cold_run_restarts_from_scratch_and_keeps_its_rows(runtime_artifacts, tmp_path):
    # Issue 11: a resumed cold process would hold a second first inference; the cold unit starts
    # over (one process, one first inference) and the interrupted rows are kept aside.
    out = tmp_path / "out"
    args = ("--models", "shufflenet_v2_x0_5", "--modes", "cold,warm", "--count", "4", "--warmup", "1")
    assert run(runtime_artifacts, out, *args).returncode == 0
    for job in ("cpu-cold", "cpu-warm"):  # interrupt both after 2 of 4 images
        directory = out / "shufflenet_v2_x0_5" / job
        lines = (directory / "timings.csv").read_text().splitlines(keepends=True)
        (directory / "timings.csv").write_text("".join(lines[:3]))
        data = json.loads((directory / "summary.json").read_text())
        data["status"] = "partial"
        (directory / "summary.json").write_text(json.dumps(data))
    proc = run(runtime_artifacts, out, *args)
    assert proc.returncode == 0, proc.stderr
    cold = out / "shufflenet_v2_x0_5" / "cpu-cold"
    assert "restarts from scratch" in proc.stderr
    rows = assert_rows_exact(cold, 4)
    assert set(rows["segment"].tolist()) == {0}  # one process
    data = summary(out, "shufflenet_v2_x0_5", "cpu-cold")
    assert len(data["segments"]) == 1 and data["first_inference_ms"] == pytest.approx(rows["infer_ms"][0])
    kept = read_timings(str(cold / "interrupted-1.timings.csv"))
    assert kept["index"].tolist() == [0, 1]
    assert (cold / "interrupted-1.summary.json").exists()
    # A warm run resumes where it stopped, as before.
    warm = assert_rows_exact(out / "shufflenet_v2_x0_5" / "cpu-warm", 4)
    assert sorted(set(warm["segment"].tolist())) == [0, 1]
