"""report.md of a ``Report``: the sections of report.html as GitHub Markdown, figures linked."""

from __future__ import annotations

import pandas as pd

from .assemble import Report
from .cells import format_cell

__all__ = ["ACCURACY_NOTE", "render_markdown", "to_markdown"]

ACCURACY_NOTE = (
    "Accuracy beside speed, on the labelled set of `edgebench_accuracy_dataset`, scored from each "
    "run's own predictions: `top1` / `top5` (classification) or COCO `map` (IoU 0.50:0.95), "
    "`map50`, `map75` (detection, through pycocotools, at the model's score threshold)."
)


def render_markdown(report: Report) -> str:
    """report.md: the same sections as report.html."""
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
        out += [to_markdown(report.shown_changes), ""]
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
    if overview.get("accuracy"):
        out += [ACCURACY_NOTE, ""]
    for device in report.devices:
        out += [f"### {device.caption}", "", to_markdown(device.table, columns=device.shown_columns), ""]
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


def to_markdown(table: pd.DataFrame, bold: pd.Series | None = None, columns=None) -> str:
    """A GitHub Markdown table; rows where ``bold`` is true are bold (the fastest model)."""
    columns = list(columns or [c for c in table.columns if c != "fastest"])
    if bold is None and "fastest" in table:
        bold = table["fastest"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for position, (_, row) in enumerate(table.iterrows()):
        cells = [format_cell(row[c]) for c in columns]
        if bold is not None and bool(bold.iloc[position]):
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
