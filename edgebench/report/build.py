"""``build_report``: one or more runs → a self-contained report folder, in three steps: load the
results (``load``), assemble everything the report shows once (``assemble``), render it
(``render_csv``, ``render_markdown``, ``render_html``).

<out>/report.html      overview, warnings, changes since the previous run, tables, figures
<out>/report.md        the same tables in Markdown, figures linked
<out>/tables/*.csv     every table, plus results.csv (the tidy per-result table) and hosts.csv
<out>/figures/*.png
"""

from __future__ import annotations

from pathlib import Path

from .assemble import assemble_report
from .load import load_results
from .render_csv import write_csv
from .render_html import write_html
from .render_markdown import render_markdown

__all__ = ["FORMATS", "build_report", "parse_formats"]

FORMATS = ("html", "md", "csv")


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
    out_dir = Path(out_dir) if out_dir is not None else _default_out_dir(run_dirs)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    # Only the Markdown and the HTML show figures: a CSV-only report draws none.
    draws_figures = "html" in formats or "md" in formats
    report = assemble_report(
        result,
        catalog=catalog,
        artifacts_dir=artifacts_dir,
        history=history,
        history_dir=history_dir,
        figures_dir=out_dir / "figures" if draws_figures else None,
        timelines=timelines,
    )
    written: list[str] = []
    if "csv" in formats:
        written += write_csv(report, out_dir / "tables")
    md_path = out_dir / "report.md"
    if "md" in formats:
        md_path.write_text(render_markdown(report))
        written.append("report.md")
    if "html" in formats:
        return write_html(report, out_dir / "report.html", files=written)
    return md_path if "md" in formats else out_dir / "tables"


def _default_out_dir(run_dirs: list[Path]) -> Path:
    if len(run_dirs) == 1:
        return run_dirs[0] / "report"
    return run_dirs[0].resolve().parent / ("report-" + "+".join(p.resolve().name for p in run_dirs))
