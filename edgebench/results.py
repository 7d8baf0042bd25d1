"""Reading result trees on the controller: `results/<run_id>/<host>/<model>/<provider>-<mode>/`.

The file formats are the runtime's (see docs/architecture.md, "Result files"); this module only
walks and checks them, so that collection and reporting share one reading of a tree.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "HostCheck",
    "RunRecord",
    "check_host_tree",
    "host_dirs",
    "run_records",
    "summary_rows",
    "write_summary_csv",
]

SUPPORTED_SCHEMA = 1


@dataclass
class RunRecord:
    host: str
    model: str
    provider: str
    mode: str
    path: Path
    summary: dict | None
    rows: int
    problem: str | None = None


@dataclass
class HostCheck:
    host: str
    runs: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)


def _count_rows(timings: Path) -> int:
    if not timings.exists():
        return 0
    with timings.open("rb") as handle:
        lines = handle.read().splitlines()
    # Header first; a torn last line (no trailing newline after a kill) is not a row.
    return max(0, len(lines) - 1)


def _read_summary(path: Path) -> tuple[dict | None, str | None]:
    if not path.exists():
        return None, "summary.json missing"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"summary.json unreadable: {exc}"
    if summary.get("schema_version") != SUPPORTED_SCHEMA:
        return (
            summary,
            f"summary.json schema_version {summary.get('schema_version')!r} is not {SUPPORTED_SCHEMA}",
        )
    return summary, None


def run_records(host_dir: Path) -> list[RunRecord]:
    """Every model x provider x mode result of one host, with its summary and row count."""
    records = []
    for run_dir in sorted(p for p in Path(host_dir).glob("*/*") if p.is_dir()):
        provider, _, mode = run_dir.name.rpartition("-")
        summary, problem = _read_summary(run_dir / "summary.json")
        rows = _count_rows(run_dir / "timings.csv")
        if summary is not None and problem is None and summary.get("status") == "complete":
            measured = (summary.get("images") or {}).get("measured")
            if measured != rows:
                problem = f"timings.csv has {rows} rows but summary.json says {measured} images were measured"
        records.append(
            RunRecord(
                Path(host_dir).name, run_dir.parent.name, provider, mode, run_dir, summary, rows, problem
            )
        )
    return records


def check_host_tree(host_dir: Path) -> HostCheck:
    """Files present, summaries parse, row counts match the summaries."""
    check = HostCheck(Path(host_dir).name)
    if not (Path(host_dir) / "env.json").exists():
        check.problems.append("env.json missing")
    for record in run_records(host_dir):
        check.runs += 1
        check.rows += record.rows
        if record.problem:
            check.problems.append(f"{record.model}/{record.provider}-{record.mode}: {record.problem}")
    return check


def host_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).iterdir() if p.is_dir() and not p.name.startswith("."))


_SUMMARY_COLUMNS = ["host", "model", "provider", "mode", "status", "reason", "images", "pre_ms", "infer_ms",
                    "post_ms", "fps", "fps_e2e", "infer_p50_ms", "infer_p99_ms", "stability", "load_ms",
                    "first_inference_ms"]  # fmt: skip


def _mean(summary: dict, phase: str):
    return ((summary.get("phases") or {}).get(phase) or {}).get("mean")


def summary_rows(run_dir: Path) -> list[dict]:
    """One flat row per host x model x provider x mode of a run."""
    rows = []
    for host_dir in host_dirs(run_dir):
        for record in run_records(host_dir):
            summary = record.summary or {}
            infer = (summary.get("phases") or {}).get("infer_ms") or {}
            rows.append({
                "host": record.host,
                "model": record.model,
                "provider": record.provider,
                "mode": record.mode,
                "status": summary.get("status", "missing"),
                "reason": summary.get("reason") or record.problem or "",
                "images": record.rows,
                "pre_ms": _mean(summary, "pre_ms"),
                "infer_ms": _mean(summary, "infer_ms"),
                "post_ms": _mean(summary, "post_ms"),
                "fps": summary.get("fps"),
                "fps_e2e": summary.get("fps_e2e"),
                "infer_p50_ms": infer.get("p50"),
                "infer_p99_ms": infer.get("p99"),
                "stability": (summary.get("stability") or {}).get("verdict"),
                "load_ms": summary.get("load_ms"),
                "first_inference_ms": summary.get("first_inference_ms"),
            })  # fmt: skip
    return rows


def write_summary_csv(run_dir: Path) -> Path:
    path = Path(run_dir) / "summary.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(summary_rows(run_dir))
    return path
