"""tables/*.csv of a ``Report``: every table it holds, plus results.csv (the tidy per-result rows)
and hosts.csv, each with all its columns (report.md and report.html show a selection)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .assemble import Report

__all__ = ["csv_tables", "write_csv"]


def csv_tables(report: Report) -> dict[str, pd.DataFrame]:
    """File name (without ``.csv``) → table, in the order the report's file list shows them."""
    tables = {
        # settings_key is the history's join key (a JSON string of the run settings), not a figure.
        "results": report.runs.drop(columns=["settings_key"]),
        "hosts": report.hosts.assign(
            plan=report.hosts["plan"].map(
                lambda p: json.dumps(p, sort_keys=True) if isinstance(p, dict) else ""
            )
        ),
        "units": report.units,
        "speedup": report.speedup,
        "model_facts": report.facts,
        "warm_cold": report.warm_cold,
        "failures": report.failures,
        "validity": report.validity,
        "changes": report.changes,
    }
    for device in report.devices:
        tables[device.name] = device.table
    return tables


def write_csv(report: Report, tables_dir: Path) -> list[str]:
    """Write every table into ``tables_dir``; returns the paths written, relative to its parent
    (the report folder), as report.html lists them."""
    tables_dir = Path(tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in csv_tables(report).items():
        table.to_csv(tables_dir / f"{name}.csv", index=False)
        written.append(f"{tables_dir.name}/{name}.csv")
    return written
