"""report.html from the Jinja2 templates in ``templates/``: a self-contained folder (the HTML, its
PNGs under figures/, its CSVs under tables/) that opens from disk without a server."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .tables import _fmt

__all__ = ["html_table", "render_html"]

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
                    _fmt(row[c]),
                    numeric_right and isinstance(row[c], (int, float)) and not isinstance(row[c], bool),
                )
                for c in columns
            ]
        )
    return {"columns": columns, "rows": rows, "bold": list(bold) if bold is not None else [False] * len(rows)}


def render_html(context: dict, out_path: Path) -> Path:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    out_path = Path(out_path)
    out_path.write_text(env.get_template("report.html.j2").render(**context))
    return out_path
