"""Statistics over the measured rows: percentiles, dispersion, LoadGen's early-stopping estimate,
the stability verdict, the per-phase summary of a run, and its validity verdict.

Pure computation on numpy arrays and dicts (``read_timings`` output in, JSON-ready dicts out): no
files, no other runtime module.

Python 3.6 compatible.
"""

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

#: The timed phases of one image, timings.csv's columns of the same names.
PHASES = ("decode_ms", "pre_ms", "infer_ms", "post_ms")

__all__ = [
    "MAD_TO_STD",
    "PHASES",
    "STABILITY_THRESHOLDS",
    "VALIDITY_RULES",
    "dispersion",
    "early_stopping_estimate",
    "early_stopping_minimum",
    "early_stopping_overlatency",
    "nearest_rank",
    "phase_stats",
    "stability",
    "summarize_rows",
    "validity",
]

#: Coefficient of variation (std/mean) of infer_ms. pyperf warns when the standard deviation is
#: above 10 % of the mean; trtexec reports the coefficient of variance of GPU compute time and
#: flags it as unstable above 1 %, which CPU-only edge devices rarely meet, hence two levels.
STABILITY_THRESHOLDS = {"stable_below": 0.05, "unstable_above": 0.10}


#: The validity rules (``validity``), after MLPerf LoadGen and trtexec:
#: * ``min_images`` 64: the fewest samples from which LoadGen's early-stopping estimate of the 90th
#:   percentile exists at 99 % confidence (``early_stopping_minimum(0.9)``);
#: * ``p99_min_samples`` 662: the same for the 99th percentile; below it p99 is null;
#: * ``min_duration_s`` 3.0: trtexec's default ``--duration`` (the plan's
#:   ``edgebench_min_duration_s`` overrides it), over the summed per-image time of the measured rows;
#: * ``max_robust_dispersion`` 0.10: 1.4826 x MAD / median of infer_ms (the median absolute
#:   deviation scaled to estimate a standard deviation, so the bound reads as a CoV that one outlier
#:   cannot inflate) at pyperf's 10 % warning level;
#: * no throttling seen in the measured window, and the correctness check passed.
VALIDITY_RULES = {
    "min_images": 64,
    "p99_min_samples": 662,
    "min_duration_s": 3.0,
    "max_robust_dispersion": 0.10,
    "early_stopping_percentile": 0.9,
    "early_stopping_confidence": 0.99,
    "dispersion_metric": "infer_ms",
}

#: Scales the median absolute deviation to the standard deviation of a normal distribution.
MAD_TO_STD = 1.4826


def nearest_rank(sorted_values: Sequence[float], fraction: float) -> Optional[float]:
    """The nearest-rank percentile (LoadGen, trtexec): the value of rank ceil(fraction x n)."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = math.ceil(fraction * n - 1e-9)
    return float(sorted_values[min(max(rank, 1), n) - 1])


_OVERLATENCY = {}


def early_stopping_overlatency(n: int, percentile: float = 0.9, confidence: float = 0.99) -> Any:
    """LoadGen's early stopping: the largest number ``t`` of samples allowed above the estimate,
    i.e. the largest ``t`` with P(Binomial(n, 1 - percentile) <= t) <= 1 - confidence; 0 when
    none (too few samples). The estimate is then the t-th largest sample."""
    key = (int(n), percentile, confidence)
    if key not in _OVERLATENCY:  # every phase of a result shares its n
        _OVERLATENCY[key] = _overlatency(int(n), percentile, confidence)
    return _OVERLATENCY[key]


def _overlatency(n, percentile, confidence):
    q = 1.0 - percentile
    allowed = 1.0 - confidence
    cumulative = 0.0
    t = -1
    if n <= 0:
        return 0
    log_q, log_p = math.log(q), math.log1p(-q)
    for k in range(int(n) + 1):
        log_pmf = (
            math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_p
        )
        cumulative += math.exp(log_pmf)
        if cumulative > allowed:
            break
        t = k
    return max(t, 0)


def early_stopping_minimum(percentile: float = 0.9, confidence: float = 0.99) -> int:
    """The fewest samples for which ``early_stopping_overlatency`` is at least 1 (64 for p90, 662
    for p99 at 99 % confidence, LoadGen's figures)."""
    n = 1
    while early_stopping_overlatency(n, percentile, confidence) < 1:
        n += 1
    return n


def early_stopping_estimate(
    sorted_values: Sequence[float], percentile: float = 0.9, confidence: float = 0.99
) -> Tuple[Optional[float], int]:
    """``(estimate, overlatency count)``: an upper bound of the percentile at ``confidence`` (the
    t-th largest sample), or ``(None, 0)`` from too few samples."""
    t = early_stopping_overlatency(len(sorted_values), percentile, confidence)
    if t < 1:
        return None, 0
    return float(sorted_values[len(sorted_values) - t]), t


def phase_stats(values: Any) -> Dict[str, Any]:
    """n, mean, std (sample, ddof=1), min, max, nearest-rank p50/p90/p99 (p99 null below
    ``p99_min_samples``, with ``p99_reason``), median absolute deviation, in ms."""
    values = np.asarray(values, dtype=np.float64)
    n = int(values.size)
    if n == 0:
        return {
            "n": 0,
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
            "p50": None,
            "p90": None,
            "p99": None,
            "p99_reason": "no samples",
            "mad": None,
        }
    ordered = np.sort(values)
    p50 = nearest_rank(ordered, 0.5)
    estimate, _overlatency = early_stopping_estimate(
        ordered, VALIDITY_RULES["early_stopping_percentile"], VALIDITY_RULES["early_stopping_confidence"]
    )
    enough = n >= VALIDITY_RULES["p99_min_samples"]
    return {
        "n": n,
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if n > 1 else 0.0,
        "min": float(ordered[0]),
        "max": float(ordered[-1]),
        "p50": p50,
        "p90": nearest_rank(ordered, 0.9),
        "p99": nearest_rank(ordered, 0.99) if enough else None,
        "p99_reason": None
        if enough
        else "%d samples: a p99 needs at least %d (LoadGen's early-stopping minimum at 99 %% confidence)"
        % (n, VALIDITY_RULES["p99_min_samples"]),
        "p90_early_stopping": estimate,
        "mad": float(np.median(np.abs(values - np.median(values)))),
    }


def dispersion(values: Any) -> Dict[str, Any]:
    """CoV (std / mean) beside the robust dispersion 1.4826 x MAD / median, and IQR / median."""
    values = np.asarray(values, dtype=np.float64)
    out = {"cov": None, "robust": None, "iqr_over_median": None, "mad": None, "median": None}
    if values.size < 2:
        return out
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    mean = float(values.mean())
    q1, q3 = np.percentile(values, [25, 75])
    out.update(
        {
            "cov": float(values.std(ddof=1)) / mean if mean > 0 else None,
            "robust": MAD_TO_STD * mad / median if median > 0 else None,
            "iqr_over_median": float(q3 - q1) / median if median > 0 else None,
            "mad": mad,
            "median": median,
        }
    )
    return out


def stability(infer_stats: Dict[str, Any]) -> Dict[str, Any]:
    """Verdict from the coefficient of variation of infer_ms (see STABILITY_THRESHOLDS)."""
    mean, std = infer_stats.get("mean"), infer_stats.get("std")
    verdict = {"metric": "infer_ms", "cv": None, "verdict": "unknown", "thresholds": STABILITY_THRESHOLDS}
    if not mean or std is None or infer_stats.get("n", 0) < 2:
        return verdict
    cv = std / mean
    verdict["cv"] = cv
    if cv < STABILITY_THRESHOLDS["stable_below"]:
        verdict["verdict"] = "stable"
    elif cv <= STABILITY_THRESHOLDS["unstable_above"]:
        verdict["verdict"] = "noisy"
    else:
        verdict["verdict"] = "unstable"
        verdict["warning"] = (
            "infer_ms varies by %.1f %% of its mean (over %.0f %%): results may be unreliable; "
            "check throttling, background load and CPU frequency scaling"
            % (cv * 100, STABILITY_THRESHOLDS["unstable_above"] * 100)
        )
    return verdict


def _fps(mean_ms):
    if mean_ms is None or mean_ms <= 0 or math.isnan(mean_ms):
        return None
    return 1000.0 / mean_ms


def summarize_rows(rows: Dict[str, Any], cold: bool = False) -> Dict[str, Any]:
    """Statistics of the rows (``read_timings`` output): per phase, total (pre+infer+post), e2e
    (decode+...), FPS = 1000 / mean(total), end-to-end FPS = 1000 / mean(e2e), the stability
    verdict, the dispersion of infer_ms (CoV beside the robust MAD- and IQR-based figures),
    ``measured_s`` (the summed per-image time the minimum duration is judged on); in cold mode
    also the statistics without the first image of each segment, which the dispersion uses."""
    total = rows["pre_ms"] + rows["infer_ms"] + rows["post_ms"]
    e2e = total + rows["decode_ms"]
    phases = dict((name, phase_stats(rows[name])) for name in PHASES)
    phases["total_ms"] = phase_stats(total)
    phases["e2e_ms"] = phase_stats(e2e)
    out = {
        "phases": phases,
        "fps": _fps(phases["total_ms"]["mean"]),
        "fps_e2e": _fps(phases["e2e_ms"]["mean"]),
        "stability": stability(phases["infer_ms"]),
        "measured_s": float(e2e.sum()) / 1000.0,
    }
    steady_infer = rows["infer_ms"]
    if cold and rows["index"].size:
        segments = rows["segment"]
        first = np.ones(segments.size, dtype=bool)
        first[1:] = segments[1:] != segments[:-1]
        keep = ~first
        steady = dict((name, phase_stats(rows[name][keep])) for name in PHASES)
        steady["total_ms"] = phase_stats(total[keep])
        out["phases_excluding_first"] = steady
        steady_infer = rows["infer_ms"][keep]
    out["dispersion"] = dict(dispersion(steady_infer), metric="infer_ms", excludes_first=bool(cold))
    return out


def validity(summary: Dict[str, Any], rules: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``{"verdict": "valid" | "invalid", "reasons": [...], "notes": [...], "rules": ...}`` for a
    summary.json (see VALIDITY_RULES; ``rules`` overrides, e.g. the plan's minimum duration).
    Valid only when complete, from at least ``min_images`` measured images over at least
    ``min_duration_s``, with the robust dispersion within bounds, no throttling seen and the
    correctness check passed."""
    chosen = dict(VALIDITY_RULES)
    chosen.update(dict((key, value) for key, value in (rules or {}).items() if value is not None))
    reasons = []
    notes = []
    status = summary.get("status")
    if status != "complete":
        reasons.append(
            "the run is %s%s" % (status, (": %s" % summary["reason"]) if summary.get("reason") else "")
        )
    measured = int((summary.get("images") or {}).get("measured") or 0)
    if measured < chosen["min_images"]:
        reasons.append(
            "%d measured images, under the %d LoadGen needs for its early-stopping p90 estimate"
            % (measured, chosen["min_images"])
        )
    duration = summary.get("measured_s")
    if duration is None or duration < chosen["min_duration_s"]:
        reasons.append(
            "measured for %.2f s, under the minimum %.2f s (edgebench_min_duration_s)"
            % (duration or 0.0, chosen["min_duration_s"])
        )
    spread = (summary.get("dispersion") or {}).get("robust")
    if spread is None:
        if measured >= 2:
            reasons.append("no dispersion of %s (median 0)" % chosen["dispersion_metric"])
    elif spread > chosen["max_robust_dispersion"]:
        reasons.append(
            "%s varies by %.1f %% of its median (1.4826 x MAD), over %.0f %%: background load, "
            "frequency scaling or throttling?"
            % (chosen["dispersion_metric"], spread * 100, chosen["max_robust_dispersion"] * 100)
        )
    throttling = summary.get("throttling") or {}
    if throttling.get("seen"):
        reasons.append("throttling during the run: %s" % "; ".join(throttling.get("evidence") or ["seen"]))
    elif throttling.get("seen") is None:
        notes.append(
            "throttling could not be observed (%s)" % (throttling.get("reason") or "no telemetry yet")
        )
    correctness = summary.get("correctness") or {}
    if correctness.get("passed") is not True:
        reasons.append(
            "correctness %s%s"
            % (
                correctness.get("status") or "not checked",
                (": %s" % correctness["reason"]) if correctness.get("reason") else "",
            )
        )
    return {
        "verdict": "invalid" if reasons else "valid",
        "reasons": reasons,
        "notes": notes,
        "rules": chosen,
    }
