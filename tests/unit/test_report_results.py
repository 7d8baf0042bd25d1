"""edgebench.results: device types, fingerprints, and the clear errors for trees that cannot be
reported on (missing, empty, no summaries, unsupported or mixed schema versions). Trees are
synthetic but schema-valid (tests/synthetic_results.py: the runtime's own statistics)."""

from __future__ import annotations

import json
import re

import pytest
from synthetic_results import synthetic_env, synthetic_run

from edgebench.results import (
    ResultsError,
    check_host_tree,
    check_run_dir,
    device_type,
    find_run_dirs,
    fingerprint,
    fingerprint_diff,
    run_started,
    summary_rows,
)


def _run(tmp_path, name="r1", start=1_700_000_000.0):
    hosts = {"pi-a": synthetic_env("pi-a", "Raspberry Pi 4 Model B Rev 1.4")}
    return synthetic_run(tmp_path / "results" / name, hosts, {"m1": 10.0}, count=5, start=start)


def test_device_type_from_board_override_and_cpu():
    assert device_type({"board_model": "Raspberry Pi 4 Model B Rev 1.4"}) == "Raspberry Pi 4 Model B"
    assert device_type({"board_model": "Raspberry Pi 5 Model B Rev 1.0\x00"}) == "Raspberry Pi 5 Model B"
    assert (
        device_type({"board_model": "NVIDIA Jetson Nano Developer Kit"}) == "NVIDIA Jetson Nano Developer Kit"
    )
    assert device_type({"device_type": "bench-pi", "board_model": "x"}) == "bench-pi"
    assert device_type({"cpu_model": "AMD EPYC", "arch": "x86_64"}) == "AMD EPYC (x86_64)"
    assert device_type(None) == "unknown device"


def test_fingerprint_and_diff_name_the_changed_fields():
    a = synthetic_env("h", "Raspberry Pi 4 Model B Rev 1.4")
    b = synthetic_env(
        "h", "Raspberry Pi 4 Model B Rev 1.4", cpu_governor="performance", versions={"onnxruntime": "1.18.0"}
    )
    diff = fingerprint_diff(fingerprint(a), fingerprint(b))
    assert diff == {"cpu_governor": ("ondemand", "performance"), "onnxruntime": ("1.17.1", "1.18.0")}
    summary = {"settings": {"model_sha256": "ab" * 32}, "backend": {"version": "1.17.1"}}
    assert fingerprint(a, summary)["model_sha256"] == "ab" * 32


def test_a_good_run_passes_and_the_lead_functions_still_work(tmp_path):
    run = _run(tmp_path)
    assert [p.name for p in check_run_dir(run)] == ["pi-a"]
    assert check_host_tree(run / "pi-a").problems == []
    rows = summary_rows(run)
    assert {(r["provider"], r["mode"], r["status"], r["images"]) for r in rows} == {
        ("cpu", "warm", "complete", 5),
        ("cpu", "cold", "complete", 5),
    }
    assert find_run_dirs(tmp_path / "results") == [run]
    assert run_started(run).startswith("2023-11-14T22:13:20")


def test_missing_empty_and_summaryless_runs_are_refused(tmp_path):
    with pytest.raises(ResultsError, match="no results directory"):
        check_run_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="empty: no host directories"):
        check_run_dir(tmp_path / "empty")
    (tmp_path / "bare" / "hostA").mkdir(parents=True)
    (tmp_path / "bare" / "hostA" / "env.json").write_text(json.dumps(synthetic_env("hostA")))
    with pytest.raises(
        ResultsError, match=re.escape("holds no results: no <host>/<model>/<provider>-<mode>/summary.json")
    ):
        check_run_dir(tmp_path / "bare")


def test_mixed_schema_versions_are_refused_naming_the_files(tmp_path):
    run = _run(tmp_path)
    path = run / "pi-a" / "m1" / "cpu-cold" / "summary.json"
    summary = json.loads(path.read_text())
    summary["schema_version"] = 2
    path.write_text(json.dumps(summary))
    with pytest.raises(ResultsError) as info:
        check_run_dir(run)
    message = str(info.value)
    assert "mixes result schema versions" in message
    assert "schema_version 2 in 1 file(s) (pi-a/m1/cpu-cold/summary.json)" in message
    assert "schema_version 1" in message


def test_a_uniformly_newer_schema_is_refused(tmp_path):
    run = _run(tmp_path)
    for path in run.rglob("*"):
        if path.name in ("summary.json", "env.json"):
            data = json.loads(path.read_text())
            data["schema_version"] = 2
            path.write_text(json.dumps(data))
        elif path.suffix == ".csv":
            lines = path.read_text().splitlines()
            path.write_text("\n".join([lines[0]] + ["2" + line[1:] for line in lines[1:]]) + "\n")
    with pytest.raises(ResultsError, match="reads schema_version 1 only"):
        check_run_dir(run)


def test_the_report_folder_in_a_run_is_not_a_host(tmp_path):
    from edgebench.report import build_report
    from edgebench.results import host_dirs

    run = _run(tmp_path)
    first = build_report([run], formats="csv")
    assert first == run / "report" / "tables"
    build_report([run], formats="csv")  # again, with report/ now inside the run
    assert [p.name for p in host_dirs(run)] == ["pi-a"]
    (run / "stray").mkdir()
    assert [p.name for p in host_dirs(run)] == ["pi-a"]
