"""report.html of a ``Report``, from the Jinja2 templates in ``templates/``: a self-contained folder
(the HTML, its PNGs under figures/, its CSVs under tables/) that opens from disk without a server."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .assemble import Report
from .cells import format_cell

__all__ = ["html_table", "render_html", "write_html"]

TEMPLATES = Path(__file__).with_name("templates")


def html_table(table: pd.DataFrame, columns=None, bold=None, numeric_right: bool = True) -> dict:
    """A table for the template: header, rows of (text, is_number) cells, and the bold flags."""
    if table is None or table.empty:
        return {"columns": [], "rows": [], "bold": []}
    columns = list(columns or [c for c in table.columns if c != "fastest"])
    if bold is None and "fastest" in table:
        bold = table["fastest"].tolist()
    rows = []
    for _, row in table.iterrows():
        rows.append(
            [
                (
                    format_cell(row[c]),
                    numeric_right and isinstance(row[c], (int, float)) and not isinstance(row[c], bool),
                )
                for c in columns
            ]
        )
    return {"columns": columns, "rows": rows, "bold": list(bold) if bold is not None else [False] * len(rows)}


def render_html(report: Report, files: list[str]) -> str:
    """The page; ``files``: the report folder's other files, as its Files section lists them."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    context = {
        "title": report.title,
        "generated": report.generated,
        "version": report.version,
        "sources": report.sources,
        "overview": report.overview,
        "fleet": html_table(report.fleet),
        "plans": report.plans,
        "status_counts": html_table(report.status_counts),
        "warnings": report.warnings,
        "changes": html_table(report.shown_changes),
        "changes_note": report.changes_note,
        "device_tables": [
            {"id": d.name, "caption": d.caption, "table": html_table(d.table, d.shown_columns)}
            for d in report.devices
        ],
        "units": html_table(report.units) if report.multi_unit else None,
        "speedup": html_table(report.speedup),
        "facts": html_table(report.facts),
        "warm_cold": html_table(report.warm_cold),
        "failures": html_table(report.failures),
        "validity": html_table(report.validity),
        "figure_groups": report.figure_groups(),
        "files": files,
    }
    return env.get_template("report.html.j2").render(**context)


def write_html(report: Report, out_path: Path, files: list[str]) -> Path:
    out_path = Path(out_path)
    out_path.write_text(render_html(report, files))
    return out_path
