"""The validity verdict and the statistics behind it: LoadGen's early-stopping minimums (64 for
p90, 662 for p99 at 99 % confidence), nearest-rank percentiles, the robust dispersion that one
outlier cannot inflate, the verdict's reasons, and the run's extension to the minimums."""

import math

import numpy as np
import pytest

from edgebench_runtime.bench import extension_target
from edgebench_runtime.results import (
    VALIDITY_RULES,
    dispersion,
    early_stopping_estimate,
    early_stopping_minimum,
    early_stopping_overlatency,
    nearest_rank,
    phase_stats,
    validity,
)


def test_early_stopping_minimums_are_loadgens():
    assert early_stopping_minimum(0.9, 0.99) == 64 == VALIDITY_RULES["min_images"]
    assert early_stopping_minimum(0.99, 0.99) == 662 == VALIDITY_RULES["p99_min_samples"]
    assert early_stopping_overlatency(63) == 0 and early_stopping_overlatency(64) == 1


def _binomial_cdf(k, n, p):
    """Exact, in rationals: an independent reference for the runtime's log-space sum."""
    from fractions import Fraction

    q = Fraction(p).limit_denominator(1000)
    return float(sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1)))


@pytest.mark.parametrize("n", [64, 100, 500, 5000])
def test_overlatency_is_the_largest_count_at_the_confidence(n):
    t = early_stopping_overlatency(n, 0.9, 0.99)
    assert _binomial_cdf(t, n, 0.1) <= 0.01 < _binomial_cdf(t + 1, n, 0.1)


def test_early_stopping_estimate_bounds_the_p90_from_above():
    rng = np.random.default_rng(1)
    values = np.sort(rng.gamma(4.0, 2.0, 2000))
    estimate, t = early_stopping_estimate(values)
    empirical = nearest_rank(values, 0.9)
    assert t > 1 and estimate == values[-t] and estimate > empirical
    # Over many samples of the same distribution the estimate stays above the true p90 (~99 %).
    true_p90 = np.quantile(rng.gamma(4.0, 2.0, 2_000_000), 0.9)
    below = sum(early_stopping_estimate(np.sort(rng.gamma(4.0, 2.0, 200)))[0] < true_p90 for _ in range(300))
    assert below <= 9  # 1 % expected: 3 of 300
    assert early_stopping_estimate(values[:63]) == (None, 0)


def test_nearest_rank_percentiles():
    values = np.arange(1.0, 11.0)  # 1..10
    assert nearest_rank(values, 0.5) == 5.0 and nearest_rank(values, 0.9) == 9.0
    assert nearest_rank(values, 0.91) == 10.0 and nearest_rank(values, 0.0) == 1.0
    assert nearest_rank([], 0.5) is None
    stats = phase_stats(np.arange(1.0, 101.0))
    assert (stats["p50"], stats["p90"]) == (50.0, 90.0)
    assert stats["p99"] is None and "100 samples" in stats["p99_reason"]
    assert stats["p90_early_stopping"] == 98.0  # t = 3 at n = 100: P(Bin(100, 0.1) <= 3) = 0.008


def test_one_outlier_inflates_the_cov_not_the_robust_dispersion():
    rng = np.random.default_rng(2)
    values = rng.normal(10.0, 0.2, 200)
    values[17] = 120.0  # one stall
    spread = dispersion(values)
    assert spread["cov"] > 0.5 and spread["robust"] < 0.05
    assert spread["iqr_over_median"] < 0.05


def _summary(**changes):
    summary = {
        "status": "complete",
        "reason": None,
        "images": {"measured": 100},
        "measured_s": 5.0,
        "dispersion": {"robust": 0.02, "cov": 0.3},
        "throttling": {"seen": False, "evidence": []},
        "correctness": {"status": "passed", "passed": True, "reason": None},
    }
    summary.update(changes)
    return summary


def test_a_run_meeting_every_rule_is_valid():
    verdict = validity(_summary())
    assert verdict == {"verdict": "valid", "reasons": [], "notes": [], "rules": VALIDITY_RULES}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"images": {"measured": 63}}, "63 measured images, under the 64"),
        ({"measured_s": 2.5}, "measured for 2.50 s, under the minimum 3.00 s"),
        ({"dispersion": {"robust": 0.12, "cov": 0.12}}, "varies by 12.0 % of its median"),
        ({"throttling": {"seen": True, "evidence": ["3 x86 thermal throttle events"]}}, "3 x86 thermal"),
        (
            {"correctness": {"status": "failed", "passed": False, "reason": "x: max abs"}},
            "correctness failed: x",
        ),
        (
            {"correctness": {"status": "not checked", "passed": None, "reason": "no ref"}},
            "not checked: no ref",
        ),
        ({"status": "timeout", "reason": "timed out"}, "the run is timeout: timed out"),
    ],
)
def test_each_rule_makes_a_run_invalid_with_its_reason(changes, reason):
    verdict = validity(_summary(**changes))
    assert verdict["verdict"] == "invalid"
    assert len(verdict["reasons"]) == 1 and reason in verdict["reasons"][0]


def test_plan_overrides_and_unobservable_throttling():
    assert validity(_summary(measured_s=2.0), {"min_duration_s": 1.0})["verdict"] == "valid"
    verdict = validity(_summary(throttling={"seen": None, "reason": "no throttle source"}))
    assert verdict["verdict"] == "valid" and "no throttle source" in verdict["notes"][0]


def test_extension_target_meets_count_and_duration_under_the_cap():
    # 20 requested, 20 measured in 0.2 s: to 64 images and 3 s (10 ms each -> 330 with a 10 % margin).
    assert extension_target(20, 0.2, 20, 64, 3.0, 10000) == 330
    assert extension_target(330, 3.3, 20, 64, 3.0, 10000) == 330  # met: nothing more
    assert extension_target(20, 10.0, 20, 64, 3.0, 10000) == 64  # slow model: the count decides
    assert extension_target(64, 0.064, 20, 64, 3.0, 1000) == 1000  # capped
    assert extension_target(1000, 1.0, 20, 64, 3.0, 1000) == 1000  # at the cap: stop
    assert extension_target(5, 0.01, 5, 64, 3.0, 5) == 5  # a cap at the request: no extension
