"""History across runs and regression flags.

Per host × model × provider × mode, the steady-state median inference time of every run (warm:
``phases.infer_ms.p50``; cold: the median without the first image). A run is compared with the
previous *compatible* run of the same key: same run settings (threads, graph level, provider
options, warm-up, memory limit, decode path), a result with measured rows. The change is flagged

    regression   when it is slower by more than  threshold = max(5 %, 3 × noise)
    improvement  when it is faster by more than the same threshold

where ``noise`` is the run-to-run noise of that key: the root mean square of the relative changes
between the earlier consecutive compatible runs when there are at least two such changes, else
(too little history) the standard error of the two medians from their own runs
(1.2533 · std / √n each, combined in quadrature, relative to the previous median). A change of
fingerprint between the two runs (ONNX Runtime / TensorRT / JetPack version, power mode, governor,
kernel, the model file's sha256, …) is shown as the likely cause.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pandas as pd

from edgebench.results import FINGERPRINT_FIELDS, ResultsError, find_run_dirs, run_started

from .tables import load_results

__all__ = [
    "MIN_CHANGE",
    "NOISE_FACTOR",
    "changes_since_previous",
    "compare_runs",
    "format_compare",
    "format_history",
    "history_table",
    "load_history",
]

MIN_CHANGE = 0.05
NOISE_FACTOR = 3.0
KEY = ["host", "model", "provider", "mode"]


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
            "median_ms": median,
            "previous_run": None,
            "previous_ms": None,
            "change_pct": None,
            "noise_pct": None,
            "threshold_pct": None,
            "noise_source": None,
            "flag": "",
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
                se_a = _se(prev["steady_infer_p50"], prev["steady_infer_std"], prev["steady_infer_n"])
                se_b = _se(median, cur["steady_infer_std"], cur["steady_infer_n"])
                noise = (
                    (math.hypot(se_a, se_b) / prev["steady_infer_p50"])
                    if se_a is not None and (se_b is not None)
                    else 0.0
                )
                source = "within-run standard error (fewer than 3 earlier compatible runs)"
            threshold = max(MIN_CHANGE, NOISE_FACTOR * noise)
            flag = ""
            if change > threshold:
                flag = "regression"
            elif change < -threshold:
                flag = "improvement"
            row.update(
                {
                    "previous_run": prev["run_id"],
                    "previous_ms": prev["steady_infer_p50"],
                    "change_pct": change * 100,
                    "noise_pct": noise * 100,
                    "threshold_pct": threshold * 100,
                    "noise_source": source,
                    "flag": flag,
                    "likely_cause": _cause(prev, cur) if flag else "",
                }
            )
            if not flag:
                row["likely_cause"] = ""
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
    FPS of A and B, the change of the median, its flag against A (same rule as history, with A as
    the previous run) and the fingerprint differences."""
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
                "flag": f["flag"] if f is not None else "",
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


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [line.format(*header), line.format(*("-" * w for w in widths))] + [line.format(*row) for row in rows]
    )


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
        "flag",
        f"{name_a} FPS",
        f"{name_b} FPS",
        "status",
        "fingerprint changes",
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
                r.flag or "",
                _num(r.fps_a, ".1f"),
                _num(r.fps_b, ".1f"),
                status,
                (r.fingerprint_changes or "")[:80],
            ]
        )
    return _text_table(header, rows)


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
        _text_table(["host", "model", "run", "runs", "median ms (last 6)", "last change", "flag"], per_key)
    )
    shown = table if all_rows else table[table["flag"] != ""]
    if not shown.empty:
        lines.append("")
        lines.append("flagged changes:" if not all_rows else "every run:")
        for r in shown.itertuples(index=False):
            change = _pct(r.change_pct)
            cause = f"; likely cause: {r.likely_cause}" if r.likely_cause else ""
            lines.append(
                f"  {r.run_id} {r.host} {r.model} {r.provider}-{r.mode}: {r.flag or 'no flag'} "
                f"{change} vs {r.previous_run} (threshold {_num(r.threshold_pct, '.1f')} %)"
                f"{cause}"
            )
    return "\n".join(lines)
