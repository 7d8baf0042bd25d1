"""History and regression flags on synthetic, schema-valid runs of one fleet: a planted 20 %
slowdown is flagged (with the fingerprint change as its likely cause), noise-level changes are
not, the 3 × noise rule raises the threshold above 5 % for a noisy key, runs with other settings
are not compared, and `compare` / "changes since the previous run" use the same logic."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from synthetic_results import synthetic_env, synthetic_run

from edgebench.report.history import (
    changes_since_previous,
    compare_runs,
    format_compare,
    format_history,
    history_table,
)

DAY = 86_400.0
T0 = 1_735_689_600.0  # 2025-01-01


def _fleet(onnxruntime="1.17.1"):
    return {
        "pi-a": synthetic_env(
            "pi-a", "Raspberry Pi 4 Model B Rev 1.4", versions={"onnxruntime": onnxruntime}
        ),
        "pi-b": synthetic_env("pi-b", "Raspberry Pi 4 Model B Rev 1.4"),
    }


MODELS = {"m_fast": 10.0, "m_slow": 50.0}
# Valid results (issue 11: at least 64 images over at least 3 s); fewer make every pair "not comparable".
COUNT = 400


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Four daily runs; run 4 plants a 20 % slowdown of pi-a / m_slow / cpu-warm and ships pi-a
    with a newer ONNX Runtime. Every other result only moves by sampling noise (cv 3 %, 400 images:
    the medians move by well under 1 %)."""
    root = tmp_path_factory.mktemp("history") / "results"
    for k in range(3):
        synthetic_run(root / f"run{k + 1}", _fleet(), MODELS, count=COUNT, start=T0 + k * DAY, seed=k)
    synthetic_run(
        root / "run4",
        _fleet("1.18.0"),
        MODELS,
        count=COUNT,
        start=T0 + 3 * DAY,
        seed=3,
        slowdown={("pi-a", "m_slow", "cpu", "warm"): 1.2},
    )
    return root


def test_planted_slowdown_is_flagged_and_noise_is_not(results):
    table = history_table(results)
    assert len(table) == 4 * 2 * 2 * 2  # runs × hosts × models × modes
    flagged = table[table["flag"] != ""]
    assert len(flagged) == 1, flagged
    row = flagged.iloc[0]
    assert (row["run_id"], row["host"], row["model"], row["mode"], row["flag"]) == (
        "run4",
        "pi-a",
        "m_slow",
        "warm",
        "regression",
    )
    assert row["change_pct"] == pytest.approx(20, abs=2)
    assert row["threshold_pct"] == pytest.approx(5.0)  # run-to-run noise is far below 5 % / 3
    assert row["noise_source"].startswith("run-to-run, 2 earlier changes")
    assert "onnxruntime 1.17.1 → 1.18.0" in row["likely_cause"]
    unflagged = table[(table["flag"] == "") & table["change_pct"].notna()]
    assert unflagged["change_pct"].abs().max() < 2.5
    assert table[table["run_id"] == "run1"]["previous_run"].isna().all()


def test_three_times_the_noise_raises_the_threshold(tmp_path):
    """A key whose median swings ±6 % between runs: an 8 % change is within 3 × that noise, so it
    is not flagged although it is above 5 %."""
    root = tmp_path / "results"
    for k, factor in enumerate([1.0, 1.06, 1.0, 1.08]):
        synthetic_run(
            root / f"r{k}",
            {"pi-a": _fleet()["pi-a"]},
            {"m": 50.0},
            modes=("warm",),
            count=COUNT,
            start=T0 + k * DAY,
            seed=k,
            slowdown={("pi-a", "m", "cpu", "warm"): factor},
        )
    table = history_table(root)
    last = table.iloc[-1]
    assert last["change_pct"] == pytest.approx(8, abs=1.5)
    assert last["noise_pct"] > 5 and last["threshold_pct"] > 15
    assert last["flag"] == ""


def test_runs_with_other_settings_are_not_compared(tmp_path):
    root = tmp_path / "results"
    synthetic_run(root / "a", {"pi-a": _fleet()["pi-a"]}, {"m": 50.0}, modes=("warm",), count=20, start=T0)
    synthetic_run(
        root / "b",
        {"pi-a": _fleet()["pi-a"]},
        {"m": 50.0},
        modes=("warm",),
        count=20,
        start=T0 + DAY,
        slowdown={("pi-a", "m", "cpu", "warm"): 2.0},
    )
    path = root / "b" / "pi-a" / "m" / "cpu-warm" / "summary.json"
    summary = json.loads(path.read_text())
    summary["settings"]["backend_options"]["threads"] = 1
    path.write_text(json.dumps(summary))
    table = history_table(root)
    assert table["flag"].tolist() == ["", ""]
    assert table.iloc[1]["noise_source"] == "no earlier run with the same settings"


def test_filters_since_device_model(results):
    assert set(history_table(results, since="2025-01-03")["run_id"]) == {"run3", "run4"}
    assert set(history_table(results, device="pi-b")["host"]) == {"pi-b"}
    assert set(history_table(results, device="Raspberry Pi 4 Model B")["host"]) == {"pi-a", "pi-b"}
    assert set(history_table(results, model="m_fast")["model"]) == {"m_fast"}
    # the filter keeps earlier runs as baselines: run4's flag survives --since
    assert (history_table(results, since="2025-01-04")["flag"] == "regression").sum() == 1
    with pytest.raises(ValueError, match="not a date"):
        history_table(results, since="yesterday")


def test_changes_since_previous_and_compare_agree(results):
    changes = changes_since_previous(results / "run4")
    assert set(changes["previous_run"]) == {"run3"}
    assert changes[changes["flag"] == "regression"][["host", "model", "mode"]].values.tolist() == [
        ["pi-a", "m_slow", "warm"]
    ]
    assert changes_since_previous(results / "run1").empty
    side = compare_runs(results / "run3", results / "run4")
    assert len(side) == 8
    row = side[(side["host"] == "pi-a") & (side["model"] == "m_slow") & (side["mode"] == "warm")].iloc[0]
    assert row["flag"] == "regression"
    assert "onnxruntime 1.17.1 → 1.18.0" in row["fingerprint_changes"]
    assert (side["flag"] == "regression").sum() == 1
    text = format_compare(side, "run3", "run4")
    assert "run3 ms" in text and "regression" in text


def test_format_history_lists_flags(results):
    text = format_history(history_table(results))
    assert "flagged changes:" in text
    assert "run4 pi-a m_slow cpu-warm: regression +" in text and "likely cause: onnxruntime" in text
    assert format_history(pd.DataFrame()) == "no runs found"
