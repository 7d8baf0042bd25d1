"""The report: tidy tables of fetched results trees, the thesis's tables and figures, report.html,
and history with regression flags across runs.

CLI entry points (wired in ``edgebench.cli``):

- ``edgebench report RUN_DIR [RUN_DIR...] [--out DIR] [--format html,md,csv]`` → ``build_report``
- ``edgebench history [--results DIR] [--since DATE] [--device D] [--model M]`` →
  ``history_table`` + ``format_history``
- ``edgebench compare RUN_A RUN_B`` → ``compare_runs`` + ``format_compare``

Errors a user can cause (missing or empty run, no summaries, mixed schema versions) raise
``ResultsError`` with a one-line message.
"""

from edgebench.results import ResultsError

from .build import FORMATS, build_report, parse_formats
from .history import changes_since_previous, compare_runs, format_compare, format_history, history_table
from .tables import ResultSet, load_results

__all__ = [
    "FORMATS",
    "ResultSet",
    "ResultsError",
    "build_report",
    "changes_since_previous",
    "compare_runs",
    "format_compare",
    "format_history",
    "history_table",
    "load_results",
    "parse_formats",
]
