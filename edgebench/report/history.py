"""History across runs and regression flags.

Per host × model × provider × mode, the steady-state median inference time of every run (warm:
``phases.infer_ms.p50``; cold: the median without the first image of each segment). A run is
compared with the previous *compatible* run of the same key: same run settings (threads, graph
level, provider options, warm-up, memory limit, decode path), a result with measured rows.

A pair where either side is invalid (summary.json ``validity``) is ``not comparable``: never a
regression or an improvement. Otherwise the change is called only when the bootstrap confidence
interval (95 %, ``BOOTSTRAP_RESAMPLES`` resamples of each side's stored per-image timings) of the
ratio of the two medians lies wholly outside the no-change band ``1 ± threshold``:

    regression   when the interval's lower end is above  1 + threshold
    improvement  when the interval's upper end is below  1 − threshold

with ``threshold = max(5 %, 3 × noise)``, where ``noise`` is the run-to-run noise of that key: the
root mean square of the relative changes between the earlier consecutive compatible runs when
there are at least two such changes, else 0 (the interval alone then speaks for the within-run
noise). A change of fingerprint between the two runs (ONNX Runtime / TensorRT / JetPack version,
power mode, governor, kernel, the model file's sha256, …) is shown as the likely cause, and every
compared pair names what differs between the two plans and devices that moves timings
(``differences``: images requested, cooldown policy, threads, library versions, throttling and
CPU clocks seen by the telemetry), as pyperf refuses to compare results whose metadata differ.

The bootstrap resamples each side's timings with replacement; the median of a resample is drawn
directly from its exact distribution (a binary search over the sorted timings with conditional
binomial counts, ``bootstrap_medians``), which is the same distribution as resampling all n
values and costs O(log n) per resample instead of O(n).
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from edgebench.results import FINGERPRINT_FIELDS, ResultsError, find_run_dirs, run_started
from edgebench.text_table import text_table

from .load import load_results

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CONFIDENCE",
    "MIN_CHANGE",
    "NOISE_FACTOR",
    "bootstrap_medians",
    "changes_since_previous",
    "compare_runs",
    "format_compare",
    "format_history",
    "history_table",
    "load_history",
    "median_ratio_interval",
]

MIN_CHANGE = 0.05
NOISE_FACTOR = 3.0
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
KEY = ["host", "model", "provider", "mode"]


def bootstrap_medians(values, resamples: int = BOOTSTRAP_RESAMPLES, rng=None) -> np.ndarray:
    """The (lower) medians of ``resamples`` bootstrap resamples of ``values``.

    A resample's median is the sorted value of rank K, where K is the first rank whose count of
    resampled values at or below it reaches ceil(n / 2). That count is found by a binary search in
    which each step splits the resample's n draws between the two halves of the current rank
    interval with a binomial draw: exactly the multinomial resampling, without drawing n values."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.size
    if n == 0:
        return np.full(resamples, np.nan)
    rng = rng if rng is not None else np.random.default_rng(0)
    need = (n + 1) // 2
    lo = np.zeros(resamples, dtype=np.int64)  # ranks below lo hold count_lo draws
    hi = np.full(resamples, n, dtype=np.int64)  # ranks below hi hold count_hi draws
    count_lo = np.zeros(resamples, dtype=np.int64)
    count_hi = np.full(resamples, n, dtype=np.int64)
    while True:
        open_ = hi - lo > 1
        if not open_.any():
            break
        mid = (lo + hi) // 2
        share = np.where(open_, (mid - lo) / np.maximum(hi - lo, 1), 0.0)
        count_mid = count_lo + rng.binomial(count_hi - count_lo, share)
        reached = open_ & (count_mid >= need)
        short = open_ & ~reached
        hi = np.where(reached, mid, hi)
        count_hi = np.where(reached, count_mid, count_hi)
        lo = np.where(short, mid, lo)
        count_lo = np.where(short, count_mid, count_lo)
    return ordered[hi - 1]


def median_ratio_interval(
    before, after, confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """``(ratio, low, high)``: the ratio of the medians (after / before) and its bootstrap
    percentile interval at ``confidence``."""
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    rng = np.random.default_rng(seed)
    ratio = _lower_median(after) / _lower_median(before)
    samples = bootstrap_medians(after, resamples, rng) / bootstrap_medians(before, resamples, rng)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(ratio), float(low), float(high)


def _lower_median(values: np.ndarray) -> float:
    ordered = np.sort(values)
    return float(ordered[(ordered.size + 1) // 2 - 1])


@lru_cache(maxsize=4096)
def _steady_infer(path: str, mode: str, mtime: float) -> np.ndarray:
    """Per-image infer_ms of a result (cold: without the first image of each segment)."""
    try:  # pandas' C parser: the runtime's pure-Python reader costs ~10x more at 5000 rows
        frame = pd.read_csv(Path(path) / "timings.csv", usecols=["infer_ms", "segment"], on_bad_lines="skip")
    except (OSError, ValueError):
        return np.zeros(0)
    frame = frame.dropna()
    infer = frame["infer_ms"].to_numpy(dtype=np.float64)
    if mode == "cold" and infer.size:
        segment = frame["segment"].to_numpy()
        first = np.ones(infer.size, dtype=bool)
        first[1:] = segment[1:] != segment[:-1]
        infer = infer[~first]
    return infer


def _timings_of(row: pd.Series) -> np.ndarray:
    path = Path(str(row["path"])) / "timings.csv"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return np.zeros(0)
    return _steady_infer(str(row["path"]), str(row["mode"]), mtime)


def _valid(row: pd.Series) -> str:
    value = row.get("validity")
    return value if value in ("valid", "invalid") else "unknown"


def _differences(prev: pd.Series, cur: pd.Series) -> str:
    """What differs between two results' plans and devices that moves timings."""
    out = []

    def same(a, b) -> bool:
        missing_a = a is None or (isinstance(a, float) and math.isnan(a))
        missing_b = b is None or (isinstance(b, float) and math.isnan(b))
        return (missing_a and missing_b) or a == b

    for column, label in (
        ("images_requested", "images requested"),
        ("cooldown_policy", "cooldown"),
        ("threads", "threads"),
        ("throttled", "throttling seen"),
        ("cpu_mhz_min", "lowest CPU clock (MHz)"),
    ):
        a, b = prev.get(column), cur.get(column)
        if not same(a, b):
            out.append(f"{label} {a} → {b}")
    cause = _cause(prev, cur)
    if cause:
        out.append(cause)
    return "; ".join(out)


def load_history(results_dir: Path, run_dirs=None) -> tuple[pd.DataFrame, list[str]]:
    """The ``runs`` rows of every run under ``results_dir`` (or of ``run_dirs``), with the run's
    start time, and notes for runs that could not be read."""
    run_dirs = list(run_dirs) if run_dirs is not None else find_run_dirs(results_dir)
    frames, notes = [], []
    for run_dir in run_dirs:
        try:
            result = load_results([run_dir])
        except ResultsError as exc:
            notes.append(f"skipped {Path(run_dir).name}: {exc}")
            continue
        runs = result.runs.copy()
        runs["run_started"] = run_started(run_dir)
        runs["run_dir"] = str(Path(run_dir).resolve())
        frames.append(runs)
    if not frames:
        return pd.DataFrame(), notes
    return pd.concat(frames, ignore_index=True), notes


def _se(median, std, n) -> float | None:
    if median is None or std is None or not n or n < 2 or pd.isna(std) or pd.isna(median):
        return None
    return 1.2533 * float(std) / math.sqrt(float(n))


def _cause(prev: pd.Series, cur: pd.Series) -> str:
    changes = []
    for name in FINGERPRINT_FIELDS:
        a, b = prev.get(f"fp_{name}"), cur.get(f"fp_{name}")
        a = None if a is None or (isinstance(a, float) and math.isnan(a)) else a
        b = None if b is None or (isinstance(b, float) and math.isnan(b)) else b
        if a != b:
            if name == "model_sha256":
                changes.append("model file changed (sha256 " + f"{(a or '?')[:8]} → {(b or '?')[:8]})")
            else:
                changes.append(f"{name} {a or 'unknown'} → {b or 'unknown'}")
    return "; ".join(changes)


def _flag_key(group: pd.DataFrame) -> list[dict]:
    """Rows of one key, oldest first, with change against the previous compatible run."""
    out = []
    history: dict[str, list[pd.Series]] = {}
    steps: dict[str, list[float]] = {}
    for _, cur in group.iterrows():
        median = cur["steady_infer_p50"]
        row = {
            "run_id": cur["run_id"],
            "run_started": cur["run_started"],
            "device_type": cur["device_type"],
            "host": cur["host"],
            "model": cur["model"],
            "provider": cur["provider"],
            "mode": cur["mode"],
            "status": cur["status"],
            "validity": _valid(cur),
            "median_ms": median,
            "previous_run": None,
            "previous_ms": None,
            "change_pct": None,
            "ci_low_pct": None,
            "ci_high_pct": None,
            "noise_pct": None,
            "threshold_pct": None,
            "noise_source": None,
            "flag": "",
            "comparable": "",
            "differences": "",
            "likely_cause": "",
        }
        usable = cur["rows"] > 0 and median is not None and not pd.isna(median) and median > 0
        settings = cur["settings_key"]
        earlier = history.get(settings, [])
        if usable and earlier:
            prev = earlier[-1]
            change = (median - prev["steady_infer_p50"]) / prev["steady_infer_p50"]
            past = steps.get(settings, [])
            if len(past) >= 2:
                noise = math.sqrt(sum(s * s for s in past) / len(past))
                source = f"run-to-run, {len(past)} earlier changes"
            else:
                noise = 0.0
                source = "the bootstrap interval (fewer than 3 earlier compatible runs)"
            threshold = max(MIN_CHANGE, NOISE_FACTOR * noise)
            row.update(
                {
                    "previous_run": prev["run_id"],
                    "previous_ms": prev["steady_infer_p50"],
                    "change_pct": change * 100,
                    "noise_pct": noise * 100,
                    "threshold_pct": threshold * 100,
                    "noise_source": source,
                    "differences": _differences(prev, cur),
                }
            )
            invalid = [
                f"{side['run_id']} invalid: {side.get('validity_reasons') or 'see its summary'}"
                for side in (prev, cur)
                if _valid(side) == "invalid"
            ]
            flag = ""
            if invalid:
                flag = "not comparable"
                row["comparable"] = "; ".join(invalid)
            else:
                before, after = _timings_of(prev), _timings_of(cur)
                if before.size and after.size:
                    _ratio, low, high = median_ratio_interval(before, after)
                    row.update({"ci_low_pct": (low - 1) * 100, "ci_high_pct": (high - 1) * 100})
                    if low > 1 + threshold:
                        flag = "regression"
                    elif high < 1 - threshold:
                        flag = "improvement"
                unknown = [side["run_id"] for side in (prev, cur) if _valid(side) == "unknown"]
                if unknown:
                    row["comparable"] = (
                        f"validity unknown for {', '.join(unknown)} (written before the runtime judged it)"
                    )
            row["flag"] = flag
            row["likely_cause"] = _cause(prev, cur) if flag in ("regression", "improvement") else ""
            if not invalid:  # an invalid pair's change is not the key's run-to-run noise
                steps.setdefault(settings, []).append(change)
        elif usable and any(history.values()):
            row["noise_source"] = "no earlier run with the same settings"
        if usable:
            history.setdefault(settings, []).append(cur)
        out.append(row)
    return out


def history_table(
    results_dir: Path | None = None,
    since: str | None = None,
    device: str | None = None,
    model: str | None = None,
    runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per run × host × model × provider × mode: the median, the previous compatible run's
    median, the change, noise, threshold, flag and likely cause. ``since`` (ISO date or time)
    keeps runs started at or after it (earlier runs still serve as the baseline); ``device`` a
    host name or device type; ``model`` a model name."""
    if runs is None:
        if results_dir is None:
            raise ValueError("history_table needs results_dir or runs")
        runs, _ = load_history(results_dir)
    if runs.empty:
        return pd.DataFrame()
    if device:
        runs = runs[(runs["host"] == device) | (runs["device_type"] == device)]
    if model:
        runs = runs[runs["model"] == model]
    runs = runs.sort_values(["run_started", "run_id"], kind="stable")
    rows = []
    for _, group in runs.groupby(KEY, sort=True):
        rows.extend(_flag_key(group))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    if since:
        cutoff = _parse_since(since)
        started = pd.to_datetime(table["run_started"], utc=True, errors="coerce", format="ISO8601")
        table = table[started >= cutoff]
    return table.sort_values(["run_started", *KEY]).reset_index(drop=True)


def _parse_since(since: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(datetime.fromisoformat(since))
    except ValueError as exc:
        raise ValueError(f"--since {since!r} is not a date (YYYY-MM-DD) or ISO 8601 time") from exc
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def changes_since_previous(run_dir: Path, results_dir: Path | None = None) -> pd.DataFrame:
    """The "changes since the previous run" section of a run's report: the history rows of this
    run (each key against its previous compatible run among the runs under ``results_dir``, by
    default the run's parent directory, that started before it)."""
    run_dir = Path(run_dir).resolve()
    results_dir = Path(results_dir) if results_dir else run_dir.parent
    this_start = run_started(run_dir)
    others = [p for p in find_run_dirs(results_dir) if p.resolve() != run_dir and run_started(p) < this_start]
    runs, _ = load_history(results_dir, [*others, run_dir])
    if runs.empty:
        return pd.DataFrame()
    table = history_table(runs=runs)
    return table[(table["run_id"] == run_dir.name) & table["previous_run"].notna()].reset_index(drop=True)


def compare_runs(run_a: Path, run_b: Path) -> pd.DataFrame:
    """Side by side, per host × model × provider × mode present in either run: status, median,
    FPS of A and B, the change of the median with its bootstrap interval, its flag against A (same
    rule as history, with A as the previous run: "not comparable" when either side is invalid),
    what differs between the two plans and devices, and the fingerprint differences."""
    runs, notes = load_history(None, [Path(run_a), Path(run_b)])
    if notes:
        raise ResultsError("; ".join(notes))
    a_id, b_id = Path(run_a).resolve().name, Path(run_b).resolve().name
    if a_id == b_id:
        b_id = runs["run_id"].unique()[-1]
    runs = runs.copy()
    runs["run_started"] = runs["run_id"].map({a_id: "0", b_id: "1"})
    flagged = history_table(runs=runs)
    flagged = flagged[flagged["run_id"] == b_id].set_index(KEY)
    a = runs[runs["run_id"] == a_id].set_index(KEY)
    b = runs[runs["run_id"] == b_id].set_index(KEY)
    keys = sorted(set(a.index) | set(b.index))
    rows = []
    for key in keys:
        ra = a.loc[key] if key in a.index else None
        rb = b.loc[key] if key in b.index else None
        f = flagged.loc[key] if key in flagged.index else None
        rows.append(
            {
                **dict(zip(KEY, key, strict=True)),
                "status_a": ra["status"] if ra is not None else "absent",
                "status_b": rb["status"] if rb is not None else "absent",
                "median_ms_a": ra["steady_infer_p50"] if ra is not None else None,
                "median_ms_b": rb["steady_infer_p50"] if rb is not None else None,
                "fps_a": ra["fps"] if ra is not None else None,
                "fps_b": rb["fps"] if rb is not None else None,
                "change_pct": f["change_pct"] if f is not None else None,
                "ci_low_pct": f["ci_low_pct"] if f is not None else None,
                "ci_high_pct": f["ci_high_pct"] if f is not None else None,
                "flag": f["flag"] if f is not None else "",
                "comparable": f["comparable"] if f is not None else "",
                "differences": f["differences"] if f is not None else "",
                "fingerprint_changes": _cause(ra, rb) if ra is not None and rb is not None else "",
            }
        )
    return pd.DataFrame(rows)


def _num(value, spec=".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _pct(value) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:+.1f} %"


def _interval(low, high) -> str:
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return "-"
    return f"[{low:+.1f}, {high:+.1f}] %"


def format_compare(table: pd.DataFrame, name_a: str = "A", name_b: str = "B") -> str:
    """The side-by-side table as text for the terminal."""
    if table.empty:
        return "no results to compare"
    header = [
        "host",
        "model",
        "run",
        f"{name_a} ms",
        f"{name_b} ms",
        "change",
        "95 % interval",
        "flag",
        f"{name_a} FPS",
        f"{name_b} FPS",
        "status",
        "differences",
    ]
    rows = []
    for r in table.itertuples(index=False):
        status = r.status_a if r.status_a == r.status_b else f"{r.status_a} → {r.status_b}"
        change = _pct(r.change_pct)
        rows.append(
            [
                r.host,
                r.model,
                f"{r.provider}-{r.mode}",
                _num(r.median_ms_a),
                _num(r.median_ms_b),
                change,
                _interval(r.ci_low_pct, r.ci_high_pct),
                r.flag or "",
                _num(r.fps_a, ".1f"),
                _num(r.fps_b, ".1f"),
                status,
                (r.comparable or r.differences or r.fingerprint_changes or "")[:100],
            ]
        )
    return text_table(header, rows)


def format_history(table: pd.DataFrame, all_rows: bool = False) -> str:
    """History as text: per key the runs, the latest median, the last change and any flag; then
    every flagged change with its likely cause (``all_rows``: every run of every key)."""
    if table.empty:
        return "no runs found"
    lines = []
    per_key = []
    for key, group in table.groupby(KEY, sort=True):
        last = group.iloc[-1]
        change = _pct(last["change_pct"])
        medians = " ".join(_num(m, ".1f") for m in group["median_ms"].tolist()[-6:])
        per_key.append(
            [key[0], key[1], f"{key[2]}-{key[3]}", str(len(group)), medians, change, last["flag"] or ""]
        )
    lines.append(
        text_table(["host", "model", "run", "runs", "median ms (last 6)", "last change", "flag"], per_key)
    )
    shown = table if all_rows else table[table["flag"] != ""]
    if not shown.empty:
        lines.append("")
        lines.append("flagged changes:" if not all_rows else "every run:")
        for r in shown.itertuples(index=False):
            change = _pct(r.change_pct)
            cause = f"; likely cause: {r.likely_cause}" if r.likely_cause else ""
            why = f"; {r.comparable}" if r.comparable else ""
            differs = f"; differs: {r.differences}" if r.differences and not r.likely_cause else ""
            lines.append(
                f"  {r.run_id} {r.host} {r.model} {r.provider}-{r.mode}: {r.flag or 'no flag'} "
                f"{change} {_interval(r.ci_low_pct, r.ci_high_pct)} vs {r.previous_run} "
                f"(no-change band ±{_num(r.threshold_pct, '.1f')} %){cause}{why}{differs}"
            )
    return "\n".join(lines)
