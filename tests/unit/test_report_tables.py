"""The report's tables on synthetic, schema-valid trees (statistics from the runtime's own
summarize_rows): values equal the summaries, units of one device type are averaged with their
spread, the fastest model is bold, speed-ups, warm vs cold, failures, fingerprint notes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synthetic_results import synthetic_env, synthetic_run, write_result

from edgebench.report.load import load_results
from edgebench.report.render_markdown import to_markdown
from edgebench.report.tables import (
    device_tables,
    failure_table,
    fingerprint_notes,
    speedup_table,
    warm_cold_table,
)
from edgebench.results import ResultsError

PI4 = "Raspberry Pi 4 Model B"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Three Raspberry Pi 4 units (speeds 1.0, 1.1, 0.9; one with a newer ONNX Runtime) and a
    Jetson with cpu + cuda; two models; warm and cold; plus hand-made partial / oom / skipped."""
    root = tmp_path_factory.mktemp("fleet") / "run1"
    hosts = {
        "pi-a": synthetic_env("pi-a", f"{PI4} Rev 1.4"),
        "pi-b": {**synthetic_env("pi-b", f"{PI4} Rev 1.5"), "_speed": 1.1},
        "pi-c": {
            **synthetic_env("pi-c", f"{PI4} Rev 1.5", versions={"onnxruntime": "1.18.0"}),
            "_speed": 0.9,
        },
    }
    synthetic_run(root, hosts, {"fast": 10.0, "slow": 40.0}, count=30, seed=3)
    jetson = {"nano": {**synthetic_env("nano", "NVIDIA Jetson Nano Developer Kit"), "_speed": 0.5}}
    synthetic_run(root, jetson, {"fast": 10.0, "slow": 40.0}, providers=("cpu", "cuda"), count=30, seed=4)
    rng = np.random.default_rng(0)
    # partial: interrupted after 7 of 30 images; oom: nothing measured; skipped: no TensorRT.
    write_result(
        root / "pi-a" / "big" / "cpu-warm",
        host="pi-a",
        model="big",
        provider="cpu",
        mode="warm",
        infer_ms=rng.normal(300, 5, 7),
        status="partial",
        reason="interrupted (SIGTERM)",
        requested=30,
    )
    write_result(
        root / "pi-b" / "big" / "cpu-warm",
        host="pi-b",
        model="big",
        provider="cpu",
        mode="warm",
        infer_ms=np.array([]),
        status="oom",
        reason="MemoryError in session.run",
        requested=30,
    )
    write_result(
        root / "nano" / "fast" / "tensorrt-fp16-warm",
        host="nano",
        model="fast",
        provider="tensorrt-fp16",
        mode="warm",
        infer_ms=np.array([]),
        status="skipped",
        reason="tensorrt Python bindings not importable",
        requested=30,
    )
    return root


def _summary(root, host, model, run):
    return json.loads((root / host / model / run / "summary.json").read_text())


def test_runs_table_carries_every_summary_statistic(fleet):
    result = load_results([fleet])
    runs = result.runs.set_index(["host", "model", "provider", "mode"])
    summary = _summary(fleet, "pi-b", "slow", "cpu-warm")
    row = runs.loc[("pi-b", "slow", "cpu", "warm")]
    for phase in ("pre_ms", "infer_ms", "post_ms", "total_ms", "e2e_ms"):
        for stat in ("mean", "std", "p50", "p90", "p99", "min", "max"):
            expected = summary["phases"][phase][stat]
            if expected is None:  # p99 from fewer than 662 images is null (issue 11): NaN here
                assert pd.isna(row[f"{phase}_{stat}"])
                continue
            assert row[f"{phase}_{stat}"] == pytest.approx(expected)
    assert row["fps"] == pytest.approx(summary["fps"])
    assert row["device_type"] == PI4
    assert row["fp_onnxruntime"] == "1.17.1"
    assert set(result.hosts["device_type"]) == {PI4, "NVIDIA Jetson Nano Developer Kit"}
    cold = runs.loc[("pi-a", "fast", "cpu", "cold")]
    assert cold["steady_infer_p50"] == pytest.approx(
        _summary(fleet, "pi-a", "fast", "cpu-cold")["phases_excluding_first"]["infer_ms"]["p50"]
    )
    timings = result.timings()
    assert len(timings[(timings["host"] == "pi-c") & (timings["model"] == "slow")]) == 60


def test_units_of_a_device_type_are_averaged_with_their_spread(fleet):
    # Issue 11: units are averaged only when their fingerprints agree; pi-c runs a newer ONNX
    # Runtime, so pi-a and pi-b are averaged and pi-c has a table of its own naming the difference.
    runs = load_results([fleet]).runs
    tables = device_tables(runs)
    table = tables[(PI4, "cpu", "warm")].set_index("model")
    means = [_summary(fleet, h, "slow", "cpu-warm")["phases"]["infer_ms"]["mean"] for h in ("pi-a", "pi-b")]
    fps = [_summary(fleet, h, "slow", "cpu-warm")["fps"] for h in ("pi-a", "pi-b")]
    row = table.loc["slow"]
    assert row["units"] == 2 and row["unit_hosts"] == "pi-a, pi-b"
    assert row["infer_ms"] == pytest.approx(np.mean(means))
    assert row["infer_spread_pct"] == pytest.approx((max(means) - min(means)) / np.mean(means) * 100)
    assert 5 < row["infer_spread_pct"] < 15  # the units run at 1.0x and 1.1x
    assert (row["fps_min"], row["fps_max"]) == (pytest.approx(min(fps)), pytest.approx(max(fps)))
    own = tables[(f"{PI4} [onnxruntime 1.18.0]", "cpu", "warm")].set_index("model")
    assert own.loc["slow", "units"] == 1 and own.loc["slow", "unit_hosts"] == "pi-c"
    assert own.loc["slow", "infer_ms"] == pytest.approx(
        _summary(fleet, "pi-c", "slow", "cpu-warm")["phases"]["infer_ms"]["mean"]
    )
    # "big" has a partial unit and an oom unit: not averaged in, its status says why.
    assert table.loc["big", "units"] == 0 and table.loc["big", "status"] == "oom/partial"
    assert table["fastest"].tolist() == [m == "fast" for m in table.index]


def test_markdown_bolds_the_fastest_model(fleet):
    table = device_tables(load_results([fleet]).runs)[(PI4, "cpu", "warm")]
    lines = to_markdown(table, columns=["model", "infer_ms", "fps"]).splitlines()
    assert lines[0] == "| model | infer_ms | fps |"
    fast = next(line for line in lines if "fast" in line and "slow" not in line)
    assert fast.startswith("| **fast** | **")
    assert not any("**" in line for line in lines if "slow" in line)


def test_speedup_is_cpu_over_each_other_provider(fleet):
    table = speedup_table(load_results([fleet]).runs)
    row = table[(table["model"] == "slow") & (table["mode"] == "warm")].iloc[0]
    cpu = _summary(fleet, "nano", "slow", "cpu-warm")
    cuda = _summary(fleet, "nano", "slow", "cuda-warm")
    assert row["cuda infer ×"] == pytest.approx(
        cpu["phases"]["infer_ms"]["mean"] / cuda["phases"]["infer_ms"]["mean"]
    )
    assert row["cuda FPS ×"] == pytest.approx(cuda["fps"] / cpu["fps"])
    assert 3 < row["cuda infer ×"] < 5  # synthetic cuda runs at 1/4 of the cpu time
    assert set(table["device_type"]) == {"NVIDIA Jetson Nano Developer Kit"}  # no cuda on the Pis


def test_warm_cold_and_failure_tables(fleet):
    runs = load_results([fleet]).runs
    wc = warm_cold_table(runs).set_index(["host", "model", "provider"])
    row = wc.loc[("pi-a", "fast", "cpu")]
    warm, cold = _summary(fleet, "pi-a", "fast", "cpu-warm"), _summary(fleet, "pi-a", "fast", "cpu-cold")
    assert row["load_ms_cold"] == pytest.approx(cold["load_ms"])
    assert row["first_inference_ms_cold"] == pytest.approx(cold["first_inference_ms"])
    assert row["steady_p50_diff_ms"] == pytest.approx(
        cold["phases_excluding_first"]["infer_ms"]["p50"] - warm["phases"]["infer_ms"]["p50"]
    )
    failures = failure_table(runs)
    got = {
        (r.host, r.model, r.provider, r.status, r.images_measured, r.reason) for r in failures.itertuples()
    }
    assert got == {
        ("pi-a", "big", "cpu", "partial", 7, "interrupted (SIGTERM)"),
        ("pi-b", "big", "cpu", "oom", 0, "MemoryError in session.run"),
        ("nano", "fast", "tensorrt-fp16", "skipped", 0, "tensorrt Python bindings not importable"),
    }


def test_fingerprint_notes_name_units_that_differ(fleet):
    notes = fingerprint_notes(load_results([fleet]).hosts)
    assert any(n.startswith(f"{PI4} units differ in onnxruntime") and "pi-c: 1.18.0" in n for n in notes)
    assert any("devices run different onnxruntime versions" in n for n in notes)


def test_load_results_refuses_mixed_runs(tmp_path, fleet):
    other = synthetic_run(tmp_path / "run2", {"x": synthetic_env("x")}, {"fast": 1.0}, count=3)
    path = other / "x" / "fast" / "cpu-warm" / "summary.json"
    data = json.loads(path.read_text())
    data["schema_version"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="mixes result schema versions"):
        load_results([fleet, other])
    assert isinstance(load_results(fleet).runs, pd.DataFrame)


def test_failed_correctness_check_is_a_warning_in_the_report(tmp_path):
    """The runtime's on-device correctness verdict (summary.json `correctness`) reaches the device
    table and the report's warnings."""
    from edgebench.report import build_report

    run = synthetic_run(
        tmp_path / "run",
        {"pi-a": synthetic_env("pi-a", f"{PI4} Rev 1.4")},
        {"m": 10.0},
        modes=("warm",),
        count=5,
    )
    path = run / "pi-a" / "m" / "cpu-warm" / "summary.json"
    summary = json.loads(path.read_text())
    summary["correctness"] = {
        "status": "failed",
        "passed": False,
        "max_abs": 0.7,
        "reason": "top-1 differs from the reference on 2 of 5 images",
    }
    path.write_text(json.dumps(summary))
    table = device_tables(load_results(run).runs)[(PI4, "cpu", "warm")]
    assert table.loc[0, "correctness"] == "failed"
    md = build_report([run], formats="md", history=False, timelines=False).read_text()
    assert (
        "correctness check failed: pi-a m cpu-warm: top-1 differs from the reference on 2 of 5 images" in md
    )
