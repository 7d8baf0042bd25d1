"""The report: tidy tables of fetched results trees, the thesis's tables and figures, report.html,
and history with regression flags across runs.

Layout: ``load`` reads runs into frames; ``tables`` makes the thesis's tables from them; ``assemble``
computes everything a report shows once, into a ``Report``; ``render_csv``, ``render_markdown`` and
``render_html`` only render that; ``build`` runs the three steps; ``history`` compares runs.

CLI entry points (wired in ``edgebench.cli``):

- ``edgebench report RUN_DIR [RUN_DIR...] [--out DIR] [--format html,md,csv]`` → ``build_report``
- ``edgebench history [--results DIR] [--since DATE] [--device D] [--model M]`` →
  ``history_table`` + ``format_history``
- ``edgebench compare RUN_A RUN_B`` → ``compare_runs`` + ``format_compare``

Errors a user can cause (missing or empty run, no summaries, mixed schema versions) raise
``ResultsError`` with a one-line message.
"""

from edgebench.results import ResultsError

from .assemble import Report, assemble_report
from .build import FORMATS, build_report, parse_formats
from .history import changes_since_previous, compare_runs, format_compare, format_history, history_table
from .load import ResultSet, load_results

__all__ = [
    "FORMATS",
    "Report",
    "ResultSet",
    "ResultsError",
    "assemble_report",
    "build_report",
    "changes_since_previous",
    "compare_runs",
    "format_compare",
    "format_history",
    "history_table",
    "load_results",
    "parse_formats",
]
