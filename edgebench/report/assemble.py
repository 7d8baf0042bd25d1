"""Assembly: everything a report shows, computed once into a ``Report``.

The CSV, Markdown and HTML writers (``render_csv``, ``render_markdown``, ``render_html``) only
render a ``Report``; none of them computes a table, a warning or a count of its own, so the three
outputs cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from edgebench.results import ResultsError

from .figures import make_figures
from .history import changes_since_previous
from .load import ResultSet
from .tables import (
    device_tables,
    failure_table,
    fingerprint_notes,
    model_facts,
    speedup_table,
    unit_table,
    validity_table,
    warm_cold_table,
)

__all__ = ["CHANGE_COLUMNS", "DEVICE_COLUMNS", "FLEET_COLUMNS", "DeviceTable", "Report", "assemble_report"]

#: The columns of a device table that report.md and report.html show (the CSV keeps every column).
DEVICE_COLUMNS = [
    "model",
    "pre_ms",
    "infer_ms",
    "h2d_ms",
    "gpu_compute_ms",
    "d2h_ms",
    "post_ms",
    "fps",
    "top1",
    "top5",
    "map",
    "map50",
    "map75",
    "p50_ms",
    "p90_ms",
    "p90_es_ms",
    "p99_ms",
    "std_ms",
    "stability",
    "correctness",
    "validity",
    "status",
    "units",
    "unit_hosts",
    "infer_spread_pct",
    "fps_min",
    "fps_max",
]
#: The columns of "changes since the previous run" that report.md and report.html show.
CHANGE_COLUMNS = [
    "host",
    "model",
    "provider",
    "mode",
    "previous_run",
    "previous_ms",
    "median_ms",
    "change_pct",
    "ci_low_pct",
    "ci_high_pct",
    "threshold_pct",
    "flag",
    "comparable",
    "differences",
    "likely_cause",
]
#: The host facts of the overview's Fleet table.
FLEET_COLUMNS = [
    "run_id",
    "host",
    "device_type",
    "board",
    "os",
    "kernel",
    "python",
    "edgebench_runtime",
    "onnxruntime",
    "tensorrt",
    "jetpack",
    "power_mode",
    "cpu_governor",
    "available_providers",
    "results",
]
_FIGURE_GROUPS = (
    ("fps", "FPS per model across devices and providers"),
    ("latency_gflops", "Latency vs GFLOPs"),
    ("boxplot", "Inference time per model (box plots)"),
    ("timeline", "Inference time per image over the run"),
)


@dataclass
class DeviceTable:
    """One of the thesis's per-device tables: a device type (split where units' fingerprints
    differ), a provider and a mode."""

    device_type: str
    provider: str
    mode: str
    table: pd.DataFrame

    @property
    def name(self) -> str:
        """The CSV's file name (without ``.csv``) and the HTML table's id."""
        return f"device-{_slug(self.device_type)}-{self.provider}-{self.mode}"

    @property
    def caption(self) -> str:
        return f"{self.device_type} · {self.provider} · {self.mode}"

    @property
    def shown_columns(self) -> list[str]:
        return [c for c in DEVICE_COLUMNS if c in self.table]


@dataclass
class Report:
    """What report.html, report.md and tables/*.csv show, in the order they show it."""

    title: str
    #: the run directories, as given
    sources: list[str]
    generated: str
    version: str
    #: counts for the overview's cards: hosts, device_types, results, complete, valid,
    #: not_complete, regressions, and ``fastest`` (per device type and provider)
    overview: dict
    #: ``{"level": "warn" | "error", "text": ...}``, the most telling first
    warnings: list[dict]
    #: the tidy per-result rows (results.csv) and per-host rows (hosts.csv) everything comes from
    runs: pd.DataFrame
    hosts: pd.DataFrame
    fleet: pd.DataFrame
    #: one line per distinct run plan, with the hosts that ran it
    plans: list[str]
    status_counts: pd.DataFrame
    changes: pd.DataFrame
    changes_note: str
    devices: list[DeviceTable]
    units: pd.DataFrame
    #: whether several units of one device type ran the same thing (then each unit's own figures show)
    multi_unit: bool
    speedup: pd.DataFrame
    facts: pd.DataFrame
    warm_cold: pd.DataFrame
    failures: pd.DataFrame
    validity: pd.DataFrame
    #: ``{"kind", "title", "path", "src"}``: ``src`` relative to the report folder
    figures: list[dict] = field(default_factory=list)

    @property
    def shown_changes(self) -> pd.DataFrame:
        return self.changes[CHANGE_COLUMNS] if not self.changes.empty else self.changes

    def figure_groups(self) -> list[dict]:
        """The figures by kind, each kind under its heading, kinds without a figure left out."""
        groups = []
        for kind, label in _FIGURE_GROUPS:
            group = [f for f in self.figures if f["kind"] == kind]
            if group:
                groups.append({"title": label, "figures": group})
        return groups


def assemble_report(
    result: ResultSet,
    catalog=None,
    artifacts_dir: Path | None = None,
    history: bool = True,
    history_dir: Path | None = None,
    figures_dir: Path | None = None,
    timelines: bool = True,
) -> Report:
    """Every table, warning, count and figure of the report of ``result``.

    ``history``: compare a single run with the earlier runs under ``history_dir`` (default: the run
    dir's parent). ``figures_dir``: draw the figures there (PNG files the Markdown and HTML link, so
    part of what is assembled); None draws none (a CSV-only report)."""
    runs = result.runs
    run_dirs = result.run_dirs
    facts = model_facts(runs, catalog=catalog, artifacts_dir=artifacts_dir)
    devices = [
        DeviceTable(dtype, provider, mode, _drop_empty(table))
        for (dtype, provider, mode), table in device_tables(runs).items()
        if table.get("units", pd.Series([0])).sum()
    ]
    units = unit_table(runs)
    multi_unit = (
        units.groupby(["device_type", "provider", "mode", "model"])["host"].nunique().max() > 1
        if (not units.empty)
        else False
    )
    changes, changes_note = _changes(run_dirs, history, history_dir)
    figures = []
    if figures_dir is not None:
        figures = make_figures(result, facts, figures_dir, timelines=timelines)
        for fig in figures:
            fig["src"] = f"{Path(figures_dir).name}/{Path(fig['path']).name}"
    return Report(
        title=f"edgebench report: {', '.join(sorted(runs['run_id'].unique()))}",
        sources=[str(p) for p in run_dirs],
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        version=_version(),
        overview=_overview(result, devices, changes),
        warnings=_warnings(result, facts, fingerprint_notes(result.hosts), changes),
        runs=runs,
        hosts=result.hosts,
        fleet=_drop_empty(result.hosts[[c for c in FLEET_COLUMNS if c in result.hosts]]),
        plans=_plans(result.hosts),
        status_counts=runs.groupby(["run_id", "host", "status"]).size().unstack(fill_value=0).reset_index(),
        changes=changes,
        changes_note=changes_note,
        devices=devices,
        units=units,
        multi_unit=bool(multi_unit),
        speedup=speedup_table(runs),
        facts=facts,
        warm_cold=warm_cold_table(runs),
        failures=failure_table(runs),
        validity=validity_table(runs),
        figures=figures,
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", text).strip("_")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("edgebench")
    except Exception:  # not installed (a source checkout)
        return "unknown"


def _drop_empty(table: pd.DataFrame, keep=("model",)) -> pd.DataFrame:
    """Columns without any value (the spread columns of single-unit device types) are left out."""
    if table.empty:
        return table
    cols = [c for c in table.columns if c in keep or c == "fastest" or table[c].notna().any()]
    return table[cols]


def _changes(run_dirs: list[Path], history: bool, history_dir: Path | None) -> tuple[pd.DataFrame, str]:
    """ "Changes since the previous run" (a single run only) and the note that explains them."""
    changes = pd.DataFrame()
    if not history:
        return changes, ""
    if len(run_dirs) != 1:
        return changes, "Shown for a single run only; use edgebench history or edgebench compare."
    try:
        changes = changes_since_previous(run_dirs[0], history_dir)
    except ResultsError as exc:
        return changes, f"history unavailable: {exc}"
    if changes.empty:
        return changes, "No earlier compatible run of these hosts, models, providers and modes."
    changes = changes.sort_values(
        ["flag", "change_pct"],
        ascending=[False, False],
        key=lambda s: (
            s if s.name != "flag" else s.map({"regression": 3, "improvement": 2, "not comparable": 1, "": 0})
        ),
    )
    flagged = int(changes["flag"].isin(["regression", "improvement"]).sum())
    return changes, (
        f"{len(changes)} results compared with their previous compatible run; {flagged} "
        "flagged (a change is called when the 95 % bootstrap interval of the median ratio lies "
        "outside the no-change band ±max(5 %, 3 × run-to-run noise); a pair with an invalid "
        "side is not comparable)."
    )


def _overview(result: ResultSet, devices: list[DeviceTable], changes: pd.DataFrame) -> dict:
    runs = result.runs
    fastest = []
    warm_tables = {(d.device_type, d.provider) for d in devices if d.mode == "warm"}
    for device in devices:
        # The warm table names the fastest model; the cold one only where no warm one exists.
        if device.mode == "warm" or (device.device_type, device.provider) not in warm_tables:
            top = device.table[device.table["fastest"]]
            if not top.empty:
                fastest.append(
                    {
                        "device": device.device_type,
                        "provider": f"{device.provider} {device.mode}",
                        "model": top["model"].iloc[0],
                        "fps": f"{top['fps'].iloc[0]:.1f}",
                    }
                )
    return {
        "hosts": int(result.hosts[["run_id", "host"]].drop_duplicates().shape[0]),
        "device_types": int(result.hosts["device_type"].nunique()),
        "results": len(runs),
        "complete": int((runs["status"] == "complete").sum()),
        "valid": int((runs["validity"] == "valid").sum()),
        "not_complete": int((runs["status"] != "complete").sum()),
        "regressions": int((changes["flag"] == "regression").sum()) if not changes.empty else 0,
        "accuracy": int((runs["accuracy"] == "computed").sum()) if "accuracy" in runs else 0,
        "fastest": fastest,
    }


def _plans(hosts: pd.DataFrame) -> list[str]:
    seen = {}
    for h in hosts.itertuples(index=False):
        plan = h.plan if isinstance(h.plan, dict) else None
        if not plan:
            continue
        text = (
            f"models: {', '.join(plan.get('models') or [])}; "
            f"providers: {', '.join(plan.get('providers') or [])}; "
            f"modes: {', '.join(plan.get('modes') or [])}; {plan.get('count')} images, "
            f"{plan.get('warmup')} warm-up"
        )
        seen.setdefault(text, []).append(h.host)
    return [f"{', '.join(hosts_)}: {text}" for text, hosts_ in seen.items()]


def _spread_text(r) -> str:
    if r.robust_dispersion is not None and not pd.isna(r.robust_dispersion):
        return f"{r.robust_dispersion:.0%} of its median (1.4826 x MAD; CoV {r.cv:.0%})"
    return f"cv {r.cv:.0%}" if r.cv is not None and not pd.isna(r.cv) else "an unknown amount"


def _warnings(result, facts: pd.DataFrame, notes: list[str], changes: pd.DataFrame) -> list[dict]:
    runs = result.runs
    out = []
    # Dispersion warnings from the robust statistic (1.4826 x MAD / median): the CoV beside it
    # (``stability``) is inflated by a single outlier. Results from before it existed use the CoV.
    robust = runs["robust_dispersion"].astype(float)
    noisy = runs[(robust > 0.10) | (robust.isna() & (runs["stability"] == "unstable"))]
    if len(noisy) > 5:
        # One line for many: a list of 78 identical warnings hides the others.
        items = [f"{r.host} {r.model} {r.provider}-{r.mode} ({_spread_text(r)})" for r in noisy.itertuples()]
        more = f" and {len(items) - 20} more" if len(items) > 20 else ""
        out.append(
            {
                "level": "warn",
                "text": f"{len(items)} of {len(runs)} results are unstable (inference time varies by more "
                f"than 10 % of its median; check throttling, background load, frequency scaling): "
                + ", ".join(items[:20])
                + more,
            }
        )
    else:
        for r in noisy.itertuples(index=False):
            out.append(
                {
                    "level": "warn",
                    "text": f"unstable: {r.host} {r.model} {r.provider}-{r.mode}: inference time varies by "
                    f"{_spread_text(r)}",
                }
            )
    invalid = runs[runs["validity"] == "invalid"]
    if len(invalid):
        out.append(
            {
                "level": "warn",
                "text": f"{len(invalid)} of {len(runs)} results are invalid (see Validity): "
                + ", ".join(
                    f"{r.host} {r.model} {r.provider}-{r.mode}" for r in invalid.head(20).itertuples()
                )
                + (f" and {len(invalid) - 20} more" if len(invalid) > 20 else ""),
            }
        )
    # Series.eq compares element by element: None (not known) is neither True nor False.
    for r in runs[runs["throttled"].eq(True)].itertuples(index=False):
        out.append(
            {"level": "warn", "text": f"throttling seen during {r.host} {r.model} {r.provider}-{r.mode}"}
        )
    for r in runs[runs["artifact_verified"].eq(False)].itertuples(index=False):
        out.append({"level": "error", "text": f"artifact not verified for {r.host} {r.model}: {r.reason}"})
    for r in runs[runs["correctness"].isin(["failed", "error"])].itertuples(index=False):
        level = "error" if r.correctness == "failed" else "warn"
        what = (
            "correctness check failed" if r.correctness == "failed" else "correctness check raised an error"
        )
        detail = f": {r.correctness_reason}" if r.correctness_reason else ""
        out.append({"level": level, "text": f"{what}: {r.host} {r.model} {r.provider}-{r.mode}{detail}"})
    if "accuracy" in runs:
        for r in runs[runs["accuracy"] == "unavailable"].itertuples(index=False):
            out.append(
                {
                    "level": "warn",
                    "text": f"accuracy unavailable: {r.host} {r.model} {r.provider}-{r.mode}: "
                    f"{r.accuracy_reason}",
                }
            )
    for r in runs[runs["problem"] != ""].itertuples(index=False):
        out.append(
            {
                "level": "error",
                "text": f"inconsistent result files: {r.host} {r.model} {r.provider}-{r.mode}: {r.problem}",
            }
        )
    if not facts.empty:
        for r in facts[facts["parity"].eq(False)].itertuples(index=False):
            out.append(
                {
                    "level": "error",
                    "text": f"correctness check failed: {r.model}'s ONNX export did not "
                    "match PyTorch within tolerance (artifact manifest parity)",
                }
            )
    for h in result.hosts.itertuples(index=False):
        if h.env_missing:
            out.append(
                {"level": "warn", "text": f"{h.run_id}/{h.host}: env.json missing; device type unknown"}
            )
        if h.state and h.state != "finished":
            out.append(
                {
                    "level": "warn",
                    "text": f"{h.run_id}/{h.host}: the runtime's state is {h.state!r}, "
                    "not finished: results may be incomplete",
                }
            )
    out.extend({"level": "warn", "text": note} for note in notes)
    if not changes.empty:
        for r in changes[changes["flag"] == "regression"].itertuples(index=False):
            cause = f" (likely cause: {r.likely_cause})" if r.likely_cause else ""
            out.append(
                {
                    "level": "error",
                    "text": f"regression: {r.host} {r.model} {r.provider}-{r.mode} "
                    f"{r.change_pct:+.1f} % vs {r.previous_run}{cause}",
                }
            )
    return out
