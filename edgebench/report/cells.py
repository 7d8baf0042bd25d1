"""How one value reads in a table of report.md and report.html: the same text in both."""

from __future__ import annotations

import math

__all__ = ["format_cell"]


def format_cell(value) -> str:
    """Empty for a missing value; floats to three significant places or so (``123.4``, ``12.34``,
    ``0.123``); booleans as yes/no; text with Markdown's cell separator escaped and on one line."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|").replace("\n", " ")
