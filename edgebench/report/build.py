"""``build_report``: one or more runs → a self-contained report folder.

<out>/report.html      overview, warnings, changes since the previous run, tables, figures
<out>/report.md        the same tables in Markdown, figures linked
<out>/tables/*.csv     every table, plus results.csv (the tidy per-result table) and hosts.csv
<out>/figures/*.png
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from edgebench.results import ResultsError

from .figures import make_figures
from .history import changes_since_previous
from .html import html_table, render_html
from .tables import (
    device_tables,
    failure_table,
    fingerprint_notes,
    load_results,
    model_facts,
    speedup_table,
    to_markdown,
    unit_table,
    warm_cold_table,
)

__all__ = ["FORMATS", "build_report", "parse_formats"]

FORMATS = ("html", "md", "csv")

_DEVICE_COLUMNS = [
    "model",
    "pre_ms",
    "infer_ms",
    "h2d_ms",
    "gpu_compute_ms",
    "d2h_ms",
    "post_ms",
    "fps",
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
_CHANGE_COLUMNS = [
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
_FLEET_COLUMNS = [
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


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``"html,md,csv"`` → a tuple; raises ValueError for an unknown format."""
    if not text:
        return FORMATS
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(
            f"unknown report format {', '.join(unknown) or text!r}; choose from {', '.join(FORMATS)}"
        )
    return chosen


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", text).strip("_")


def _drop_empty(table: pd.DataFrame, keep=("model",)) -> pd.DataFrame:
    """Columns without any value (the spread columns of single-unit device types) are left out."""
    if table.empty:
        return table
    cols = [c for c in table.columns if c in keep or c == "fastest" or table[c].notna().any()]
    return table[cols]


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
    for r in runs[runs["throttled"] == True].itertuples(index=False):  # noqa: E712 - None is "unknown"
        out.append(
            {"level": "warn", "text": f"throttling seen during {r.host} {r.model} {r.provider}-{r.mode}"}
        )
    for r in runs[runs["artifact_verified"] == False].itertuples(index=False):  # noqa: E712
        out.append({"level": "error", "text": f"artifact not verified for {r.host} {r.model}: {r.reason}"})
    for r in runs[runs["correctness"].isin(["failed", "error"])].itertuples(index=False):
        level = "error" if r.correctness == "failed" else "warn"
        what = (
            "correctness check failed" if r.correctness == "failed" else "correctness check raised an error"
        )
        detail = f": {r.correctness_reason}" if r.correctness_reason else ""
        out.append({"level": level, "text": f"{what}: {r.host} {r.model} {r.provider}-{r.mode}{detail}"})
    for r in runs[runs["problem"] != ""].itertuples(index=False):
        out.append(
            {
                "level": "error",
                "text": f"inconsistent result files: {r.host} {r.model} {r.provider}-{r.mode}: {r.problem}",
            }
        )
    if not facts.empty:
        for r in facts[facts["parity"] == False].itertuples(index=False):  # noqa: E712
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


def _spread_text(r) -> str:
    if r.robust_dispersion is not None and not pd.isna(r.robust_dispersion):
        return f"{r.robust_dispersion:.0%} of its median (1.4826 x MAD; CoV {r.cv:.0%})"
    return f"cv {r.cv:.0%}" if r.cv is not None and not pd.isna(r.cv) else "an unknown amount"


_VALIDITY_COLUMNS = [
    "run_id",
    "host",
    "model",
    "provider",
    "mode",
    "validity",
    "images_measured",
    "validity_reasons",
]


def validity_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every result's verdict with its reasons, invalid ones first."""
    if runs.empty:
        return pd.DataFrame(columns=_VALIDITY_COLUMNS)
    order = runs["validity"].map({"invalid": 0, "unknown": 1, "valid": 2})
    return (
        runs.assign(_order=order)
        .sort_values(["_order", "host", "model", "provider", "mode"])[_VALIDITY_COLUMNS]
        .reset_index(drop=True)
    )


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


def build_report(
    run_dirs,
    out_dir: Path | None = None,
    history_dir: Path | None = None,
    formats=FORMATS,
    catalog=None,
    artifacts_dir: Path | None = None,
    history: bool = True,
    timelines: bool = True,
) -> Path:
    """Build the report of one or more runs (``results/<run_id>/`` directories) and return the
    path of report.html (report.md, or the tables folder, when HTML is not among ``formats``).

    ``out_dir``: default ``<run_dir>/report`` for one run, ``<parent>/report-<a>+<b>`` for several.
    ``history_dir``: where earlier runs live for "changes since the previous run" (default: the
    parent of the last run dir; ``history=False`` leaves the section out).
    Raises ResultsError (missing / empty run, no summaries, mixed schema versions)."""
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    run_dirs = [Path(p) for p in run_dirs]
    if isinstance(formats, str):
        formats = parse_formats(formats)
    result = load_results(run_dirs)
    if out_dir is None:
        if len(run_dirs) == 1:
            out_dir = run_dirs[0] / "report"
        else:
            out_dir = run_dirs[0].resolve().parent / (
                "report-" + "+".join(p.resolve().name for p in run_dirs)
            )
    out_dir = Path(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    runs = result.runs

    facts = model_facts(runs, catalog=catalog, artifacts_dir=artifacts_dir)
    devices = {
        k: _drop_empty(t) for k, t in device_tables(runs).items() if t.get("units", pd.Series([0])).sum()
    }
    units = unit_table(runs)
    multi_unit = (
        units.groupby(["device_type", "provider", "mode", "model"])["host"].nunique().max() > 1
        if (not units.empty)
        else False
    )
    speedup = speedup_table(runs)
    warm_cold = warm_cold_table(runs)
    failures = failure_table(runs)
    validity = validity_table(runs)
    notes = fingerprint_notes(result.hosts)

    changes = pd.DataFrame()
    changes_note = ""
    if history and len(run_dirs) == 1:
        try:
            changes = changes_since_previous(run_dirs[0], history_dir)
        except ResultsError as exc:
            changes_note = f"history unavailable: {exc}"
        if changes.empty and not changes_note:
            changes_note = "No earlier compatible run of these hosts, models, providers and modes."
        elif not changes.empty:
            changes = changes.sort_values(
                ["flag", "change_pct"],
                ascending=[False, False],
                key=lambda s: (
                    s
                    if s.name != "flag"
                    else s.map({"regression": 3, "improvement": 2, "not comparable": 1, "": 0})
                ),
            )
            flagged = int(changes["flag"].isin(["regression", "improvement"]).sum())
            changes_note = (
                f"{len(changes)} results compared with their previous compatible run; {flagged} "
                "flagged (a change is called when the 95 % bootstrap interval of the median ratio lies "
                "outside the no-change band ±max(5 %, 3 × run-to-run noise); a pair with an invalid "
                "side is not comparable)."
            )
    elif history:
        changes_note = "Shown for a single run only; use edgebench history or edgebench compare."

    written: list[str] = []
    tables_out = {
        "results": runs.drop(columns=["settings_key"]),
        "hosts": result.hosts.assign(
            plan=result.hosts["plan"].map(
                lambda p: json.dumps(p, sort_keys=True) if isinstance(p, dict) else ""
            )
        ),
        "units": units,
        "speedup": speedup,
        "model_facts": facts,
        "warm_cold": warm_cold,
        "failures": failures,
        "validity": validity,
        "changes": changes,
    }
    for (dtype, provider, mode), table in devices.items():
        tables_out[f"device-{_slug(dtype)}-{provider}-{mode}"] = table
    if "csv" in formats:
        for name, table in tables_out.items():
            path = out_dir / "tables" / f"{name}.csv"
            table.to_csv(path, index=False)
            written.append(f"tables/{name}.csv")

    figures = []
    if "html" in formats or "md" in formats:
        figures = make_figures(result, facts, out_dir / "figures", timelines=timelines)
    for fig in figures:
        fig["src"] = f"figures/{Path(fig['path']).name}"

    warnings = _warnings(result, facts, notes, changes)
    title_runs = ", ".join(sorted(runs["run_id"].unique()))
    title = f"edgebench report: {title_runs}"
    fastest = []
    for (dtype, provider, mode), table in devices.items():
        if mode == "warm" or not any(k[:2] == (dtype, provider) and k[2] == "warm" for k in devices):
            top = table[table["fastest"]]
            if not top.empty:
                fastest.append(
                    {
                        "device": dtype,
                        "provider": f"{provider} {mode}",
                        "model": top["model"].iloc[0],
                        "fps": f"{top['fps'].iloc[0]:.1f}",
                    }
                )
    status_counts = runs.groupby(["run_id", "host", "status"]).size().unstack(fill_value=0).reset_index()
    overview = {
        "hosts": int(result.hosts[["run_id", "host"]].drop_duplicates().shape[0]),
        "device_types": int(result.hosts["device_type"].nunique()),
        "results": len(runs),
        "complete": int((runs["status"] == "complete").sum()),
        "valid": int((runs["validity"] == "valid").sum()),
        "not_complete": int((runs["status"] != "complete").sum()),
        "regressions": int((changes["flag"] == "regression").sum()) if not changes.empty else 0,
        "fastest": fastest,
    }

    md_path = out_dir / "report.md"
    if "md" in formats:
        sections = SimpleNamespace(
            title=title, overview=overview, warnings=warnings, changes=changes, changes_note=changes_note,
            devices=devices, units=units, multi_unit=multi_unit, speedup=speedup, facts=facts,
            warm_cold=warm_cold, failures=failures, figures=figures, validity=validity,
        )  # fmt: skip
        md_path.write_text(_markdown(sections))
        written.append("report.md")

    if "html" in formats:
        fig_groups = []
        for kind, label in (
            ("fps", "FPS per model across devices and providers"),
            ("latency_gflops", "Latency vs GFLOPs"),
            ("boxplot", "Inference time per model (box plots)"),
            ("timeline", "Inference time per image over the run"),
        ):
            group = [f for f in figures if f["kind"] == kind]
            if group:
                fig_groups.append({"title": label, "figures": group})
        context = {
            "title": title,
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "version": _version(),
            "sources": [str(p) for p in run_dirs],
            "overview": overview,
            "fleet": html_table(_drop_empty(result.hosts[[c for c in _FLEET_COLUMNS if c in result.hosts]])),
            "plans": _plans(result.hosts),
            "status_counts": html_table(status_counts),
            "warnings": warnings,
            "changes": html_table(changes[_CHANGE_COLUMNS] if not changes.empty else changes),
            "changes_note": changes_note,
            "device_tables": [
                {
                    "id": f"device-{_slug(d)}-{p}-{m}",
                    "caption": f"{d} · {p} · {m}",
                    "table": html_table(t, [c for c in _DEVICE_COLUMNS if c in t]),
                }
                for (d, p, m), t in devices.items()
            ],
            "units": html_table(units) if multi_unit else None,
            "speedup": html_table(speedup),
            "facts": html_table(facts),
            "warm_cold": html_table(warm_cold),
            "failures": html_table(failures),
            "validity": html_table(validity),
            "figure_groups": fig_groups,
            "files": written,
        }
        return render_html(context, out_dir / "report.html")
    return md_path if "md" in formats else out_dir / "tables"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("edgebench")
    except Exception:  # not installed (a source checkout)
        return "unknown"


def _markdown(report: SimpleNamespace) -> str:
    """report.md: the same sections as the HTML report, from what build_report assembled."""
    overview = report.overview
    out = [
        f"# {report.title}",
        "",
        f"{overview['hosts']} hosts, {overview['device_types']} device types; {overview['complete']}/"
        f"{overview['results']} results complete, {overview['valid']}/{overview['results']} valid; "
        f"{len(report.warnings)} warnings; {overview['regressions']} regressions since the previous run.",
        "",
    ]
    if report.warnings:
        out += ["## Warnings", ""] + [f"- {w['text']}" for w in report.warnings] + [""]
    out += ["## Changes since the previous run", "", report.changes_note, ""]
    if not report.changes.empty:
        out += [to_markdown(report.changes, columns=_CHANGE_COLUMNS), ""]
    out += [
        "## Validity",
        "",
        "Valid only from at least 64 measured images over the minimum duration, with the robust "
        "dispersion within 10 %, no throttling seen and the correctness check passed "
        "(docs/architecture.md, Validity).",
        "",
        to_markdown(report.validity) if not report.validity.empty else "None.",
        "",
    ]
    out += ["## Per device type and provider", ""]
    for (d, p, m), t in report.devices.items():
        out += [
            f"### {d} · {p} · {m}",
            "",
            to_markdown(t, columns=[c for c in _DEVICE_COLUMNS if c in t]),
            "",
        ]
    if report.multi_unit:
        out += ["## Each unit's own figures", "", to_markdown(report.units), ""]
    for name, table in (
        ("Speed-up against CPU", report.speedup),
        ("Model facts", report.facts),
        ("Warm vs cold", report.warm_cold),
        ("Failures", report.failures),
    ):
        out += [f"## {name}", "", to_markdown(table) if not table.empty else "None.", ""]
    if report.figures:
        out += ["## Figures", ""] + [f"![{f['title']}]({f['src']})" for f in report.figures]
    return "\n".join(out) + "\n"
