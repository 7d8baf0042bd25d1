"""Engine cache: keys, invalidation (any change rebuilds, nothing else does), corrupt or incompatible
engine files rebuilt, the timing cache persisted, the builder log kept, and the ``engines`` command
(one line per model x precision with ``built`` / ``cached``, exit codes) - all with a fake TensorRT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from machine import without_tensorrt
from test_tensorrt_fakes import install, write_fake_onnx

from edgebench_runtime import cli
from edgebench_runtime.backends import create_backend
from edgebench_runtime.engines import EngineBuildError, EngineCache, engine_key
from edgebench_runtime.manifest import sha256_file

BASE = ("a" * 64, "10.3.0", "Orin (nvgpu)", (8, 7), "fp16", {"workspace_mb": 1024, "explicit_batch": True})


def test_engine_key_changes_with_every_component_and_nothing_else():
    key, components = engine_key(*BASE)
    assert components["compute_capability"] == "8.7" and len(key) == 64
    # Same inputs (option order irrelevant) -> same key.
    assert engine_key(*BASE[:5], {"explicit_batch": True, "workspace_mb": 1024})[0] == key
    changed = [
        ("b" * 64, *BASE[1:]),
        (BASE[0], "10.3.1", *BASE[2:]),
        (*BASE[:2], "Xavier", *BASE[3:]),
        (*BASE[:3], (7, 2), *BASE[4:]),
        (*BASE[:4], "fp32", BASE[5]),
        (*BASE[:5], {"workspace_mb": 512, "explicit_batch": True}),
        (*BASE[:5], dict(BASE[5], calibration="c" * 64)),
    ]
    keys = {engine_key(*args)[0] for args in changed}
    assert key not in keys and len(keys) == len(changed)


def _artifact(root, name="toy", dims=(1, 3, 4, 4)):
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    write_fake_onnx(
        directory / "model.onnx",
        [{"name": "images", "shape": list(dims), "dtype": "float32"}],
        [{"name": "logits", "shape": [1, 10], "dtype": "float32"}],
    )
    manifest = {
        "schema_version": 1,
        "name": name,
        "artifact": name,
        "files": {
            "model.onnx": {
                "sha256": sha256_file(directory / "model.onnx"),
                "size": (directory / "model.onnx").stat().st_size,
            }
        },
        "model_file": "model.onnx",
        "int32_file": None,
        "inputs": [{"name": "images", "shape": list(dims), "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [1, 10], "dtype": "float32"}],
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory, manifest


def _prepare(directory, manifest, provider="tensorrt-fp16", **options):
    backend = create_backend(provider, {"provider_options": options})
    try:
        return backend.prepare_engine(directory, manifest)
    finally:
        backend.close()


def test_built_then_cached_then_rebuilt_on_any_change(monkeypatch, tmp_path):
    _trt, _cuda, state = install(monkeypatch, "10.3.0")
    directory, manifest = _artifact(tmp_path)
    first = _prepare(directory, manifest)
    assert first["status"] == "built" and state["builds"] == 1 and first["build_ms"] is not None
    assert first["path"].startswith(str(directory / "engines"))
    again = _prepare(directory, manifest)
    assert again["status"] == "cached" and again["key"] == first["key"] and state["builds"] == 1
    # Precision, workspace, the ONNX file, the TensorRT version, the GPU: each one rebuilds.
    assert _prepare(directory, manifest, "tensorrt-fp32")["status"] == "built"
    assert _prepare(directory, manifest, workspace_mb=256)["status"] == "built"
    manifest["files"]["model.onnx"]["sha256"] = "f" * 64
    assert _prepare(directory, manifest)["status"] == "built"
    assert state["builds"] == 4
    install(monkeypatch, "10.4.0", state=state)
    assert _prepare(directory, manifest)["status"] == "built"
    install(monkeypatch, "10.4.0", state=state, gpu_name="Xavier", capability=(7, 2))
    info = _prepare(directory, manifest)
    assert info["status"] == "built" and info["components"]["gpu"] == "Xavier" and state["builds"] == 6
    assert _prepare(directory, manifest)["status"] == "cached" and state["builds"] == 6


def test_corrupt_engine_file_is_rebuilt_not_trusted(monkeypatch, tmp_path):
    _trt, _cuda, state = install(monkeypatch, "8.5.2.2")
    directory, manifest = _artifact(tmp_path)
    first = _prepare(directory, manifest)
    with open(first["path"], "r+b") as handle:  # flip bytes in place: same size, other sha256
        handle.seek(12)
        handle.write(b"XX")
    info = _prepare(directory, manifest)
    assert info["status"] == "built" and "corrupt" in info["rebuilt_because"] and state["builds"] == 2
    # A truncated file too.
    with open(info["path"], "r+b") as handle:
        handle.truncate(5)
    assert _prepare(directory, manifest)["status"] == "built" and state["builds"] == 3


def test_engine_that_tensorrt_refuses_is_rebuilt(monkeypatch, tmp_path):
    _trt, _cuda, state = install(monkeypatch, "10.3.0")
    directory, manifest = _artifact(tmp_path)
    first = _prepare(directory, manifest)
    # Same key and matching metadata, but bytes this TensorRT cannot deserialise (e.g. a hand-copied
    # engine of another build): the sha256 matches the metadata, deserialisation decides.
    cache = EngineCache(directory / "engines")
    bogus = b"not an engine"
    meta_path = cache.paths("toy", "fp16", first["key"])[1]
    meta = json.loads(Path(meta_path).read_text())
    import hashlib

    meta.update(engine_sha256=hashlib.sha256(bogus).hexdigest(), engine_size=len(bogus))
    Path(meta_path).write_text(json.dumps(meta))
    Path(first["path"]).write_bytes(bogus)
    info = _prepare(directory, manifest)
    assert info["status"] == "built" and "deserialised" in info["rebuilt_because"] and state["builds"] == 2


def test_timing_cache_persisted_log_kept_stale_engines_pruned(monkeypatch, tmp_path):
    _trt, _cuda, state = install(monkeypatch, "10.3.0")
    directory, manifest = _artifact(tmp_path)
    first = _prepare(directory, manifest)
    engines = directory / "engines"
    timing = [p for p in engines.iterdir() if p.name.startswith("timing-")]
    assert len(timing) == 1 and "sm87" in timing[0].name and timing[0].read_bytes() == b"+"
    log = Path(first["log"]).read_text()
    assert "[INFO] fake build of 1 inputs" in log and "verbose chatter" not in log
    meta = json.loads(Path(first["path"][: -len(".engine")] + ".json").read_text())
    assert meta["key"] == first["key"] and meta["components"]["precision"] == "fp16"
    second = _prepare(directory, manifest, workspace_mb=512)
    # The second build loaded the first build's timing cache, and saved the grown one.
    assert state["timing_cache_loaded"] == [b"", b"+"] and timing[0].read_bytes() == b"++"
    names = sorted(p.name for p in engines.iterdir() if p.suffix == ".engine")
    assert names == [second["path"].rsplit("/", 1)[1]]  # the engine of the old key is gone


def test_build_failure_raises_with_the_builder_errors(monkeypatch, tmp_path):
    _trt, _cuda, state = install(monkeypatch, "10.3.0")
    directory, manifest = _artifact(tmp_path)
    state["fail_build"] = True
    with pytest.raises(EngineBuildError, match="out of tactics"):
        _prepare(directory, manifest)
    (directory / "model.onnx").write_text("garbage")
    state["fail_build"] = False
    with pytest.raises(EngineBuildError, match="unsupported operator"):
        _prepare(directory, manifest)


def test_engines_command_lines_and_exit_codes(monkeypatch, tmp_path, capsys):
    _trt, _cuda, state = install(monkeypatch, "8.2.1.8")
    _artifact(tmp_path, "alpha")
    _artifact(tmp_path, "beta")
    argv = [
        "engines",
        "--artifacts",
        str(tmp_path),
        "--models",
        "alpha,beta",
        "--precisions",
        "fp32,fp16",
        "--workspace-mb",
        "128",
    ]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(": built in " in line for line in lines)
    assert lines[0].startswith("alpha tensorrt-fp32") and state["workspace_bytes"] == 128 << 20
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(": cached" in line and "built" not in line for line in lines)
    # int8 without calibration images: skipped with the reason, not a failure.
    assert cli.main([*argv[:6], "int8"]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "calibration images" in out and "built" not in out
    # A corrupt artifact fails that model (exit 4), the others still go.
    (tmp_path / "alpha" / "model.onnx").write_text("{}")
    assert cli.main(argv) == 4
    out = capsys.readouterr().out
    assert "alpha: FAILED: artifact check failed" in out and "beta tensorrt-fp16: cached" in out
    # Unknown model / precision.
    assert cli.main([*argv[:4], "gamma", *argv[5:]]) == 3
    assert "no artifact for gamma" in capsys.readouterr().err
    assert cli.main([*argv[:6], "fp8"]) == 2


@without_tensorrt
def test_engines_command_without_tensorrt_exits_3(tmp_path, capsys):
    _artifact(tmp_path, "alpha")
    code = cli.main(["engines", "--artifacts", str(tmp_path), "--models", "alpha", "--precisions", "fp16"])
    err = capsys.readouterr()
    assert code == 3 and "TensorRT is not available on this device" in err.err and "built" not in err.out
