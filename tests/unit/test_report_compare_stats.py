"""Statistically sound comparisons: the bootstrap of the median matches plain resampling, a
planted 10 % slowdown on a stable model is flagged, the same model rerun under other background
load is flagged only when its interval says so, an invalid side makes a pair "not comparable",
and what differs between the two plans is named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synthetic_results import rescale_result, synthetic_env, synthetic_run

from edgebench.report.history import bootstrap_medians, compare_runs, format_compare, history_table

DAY = 86_400.0
T0 = 1_735_689_600.0
PI = {"pi-a": synthetic_env("pi-a", "Raspberry Pi 4 Model B Rev 1.4")}


def test_bootstrap_medians_match_resampling_every_value():
    rng = np.random.default_rng(5)
    values = rng.gamma(3.0, 2.0, 301)
    ours = bootstrap_medians(values, 20000, np.random.default_rng(1))
    naive = np.median(values[rng.integers(0, values.size, (20000, values.size))], axis=1)
    assert set(np.unique(ours)) <= set(values)  # a resample's median is one of the values
    for q in (2.5, 25, 50, 75, 97.5):
        assert np.percentile(ours, q) == pytest.approx(np.percentile(naive, q), rel=0.01)


def _two_runs(tmp_path, count=400, factor=1.0, cv=0.03, seed_b=1, **b):
    root = tmp_path / "results"
    synthetic_run(root / "a", PI, {"m": 20.0}, modes=("warm",), count=count, start=T0, seed=0, cv=cv)
    synthetic_run(
        root / "b",
        PI,
        {"m": 20.0},
        modes=("warm",),
        count=b.get("count_b", count),
        start=T0 + DAY,
        seed=seed_b,
        cv=b.get("cv_b", cv),
        slowdown={("pi-a", "m", "cpu", "warm"): factor},
    )
    return root


def test_a_planted_ten_percent_slowdown_on_a_stable_model_is_flagged(tmp_path):
    root = _two_runs(tmp_path, factor=1.10)
    row = history_table(root).iloc[-1]
    assert row["flag"] == "regression"
    assert row["change_pct"] == pytest.approx(10, abs=1.5)
    assert row["ci_low_pct"] > 5 and row["ci_low_pct"] < row["change_pct"] < row["ci_high_pct"]
    side = compare_runs(root / "a", root / "b").iloc[0]
    assert side["flag"] == "regression"
    assert "95 % interval" in format_compare(compare_runs(root / "a", root / "b"), "a", "b")


def test_a_rerun_under_other_background_load_is_flagged_only_when_its_interval_says_so(tmp_path):
    # Run b under load: noisier (cv 9 %, still valid) and a little slower (+3 %): the interval
    # reaches inside the band, no flag; the lower CPU clock the telemetry saw is named beside it.
    root = _two_runs(tmp_path, factor=1.03, cv_b=0.09)
    path = root / "b" / "pi-a" / "m" / "cpu-warm" / "summary.json"
    summary = json.loads(path.read_text())
    summary["telemetry"]["cpu_mhz_min"] = 300.0
    path.write_text(json.dumps(summary))
    row = history_table(root).iloc[-1]
    assert row["validity"] == "valid" and row["flag"] == ""
    assert row["ci_low_pct"] < 5
    assert "lowest CPU clock (MHz) 600.0 → 300.0" in row["differences"]
    # The same load with the model 25 % slower: now the whole interval lies above the band.
    rescale_result(root / "b" / "pi-a" / "m" / "cpu-warm", 1.25 / 1.03)
    row = history_table(root).iloc[-1]
    assert row["flag"] == "regression" and row["ci_low_pct"] > 5


def test_an_invalid_side_is_not_comparable_never_a_regression(tmp_path):
    # The fleet: 60 images per model in one run, 400 in the other, +30 % apart.
    root = _two_runs(tmp_path, count=60, factor=1.3, count_b=400)
    row = history_table(root).iloc[-1]
    assert row["flag"] == "not comparable"
    assert "a invalid: 60 measured images, under the 64" in row["comparable"]
    assert "images requested 60 → 400" in row["differences"]
    assert pd.isna(row["ci_low_pct"])  # no interval computed: the verdict stands on validity
    assert "not comparable" in format_compare(compare_runs(root / "a", root / "b"), "a", "b")


def test_noise_alone_is_not_flagged(tmp_path):
    for seed in range(3):
        root = _two_runs(tmp_path / str(seed), factor=1.0, seed_b=seed + 10)
        row = history_table(root).iloc[-1]
        assert row["flag"] == "" and row["ci_low_pct"] < 0 < row["ci_high_pct"] + 2
