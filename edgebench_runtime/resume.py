"""Resume decisions: what ``edgebench-runtime run`` does with the files a run already has.

Without ``--force``:

* complete with at least the requested rows -> skipped over ("already complete"), also when the
  artifact is now corrupt or the provider now unavailable (it was measured as it was then);
* rows measured with other settings than this run's -> refused, the files untouched;
* a cold run that stopped part-way -> restarted from scratch, its files set aside (a resumed
  process would hold a second first inference);
* every requested row written but no final summary -> finished (the summary composed);
* anything else -> continued from the next image (a torn last line is dropped first), or started.

``skipped`` results are re-evaluated. ``--force`` clears the run's files and redoes it.

Python 3.6 compatible.
"""

import os
from typing import Any, Dict, Optional

__all__ = [
    "COLD_RESTART",
    "CONTINUE",
    "DECISIONS",
    "FINISH",
    "RECORD",
    "REFUSE",
    "SKIP",
    "clear_results",
    "decide",
    "job_settings",
    "set_aside",
]

SKIP = "skip"  # already complete: nothing to do
REFUSE = "refuse"  # existing rows were measured with other settings: not mixed
COLD_RESTART = "cold-restart"  # set the stopped cold run's files aside, then start again
FINISH = "finish"  # every row is there, only the summary is missing
CONTINUE = "continue"  # measure from the next image (the first, for a run without rows)
RECORD = "record"  # cannot run here (corrupt artifact, provider unavailable): record why
DECISIONS = (SKIP, REFUSE, COLD_RESTART, FINISH, CONTINUE, RECORD)

# predictions.jsonl belongs to the rows it was recorded with: cleared and set aside with them.
_RESULT_FILES = ("timings.csv", "gpu_timings.csv", "summary.json", "predictions.jsonl")


def job_settings(plan: Any, provider: str, manifest_sha: Optional[str]) -> Dict[str, Any]:
    """What the rows of a run depend on besides the model and provider; rows measured with other
    settings are never mixed with these."""
    return {
        "backend_options": plan.backend_options(provider),
        "warmup": plan.warmup,
        "model_sha256": manifest_sha,
        "use_cv2": plan.use_cv2,
        "memory_limit_mb": plan.memory_limit_mb,
    }


def decide(
    rows: int,
    existing: Optional[Dict[str, Any]],
    previous_job: Optional[Dict[str, Any]],
    settings: Dict[str, Any],
    count: int,
    mode: str,
    runnable: bool = True,
) -> str:
    """One of DECISIONS for a run with ``rows`` rows in timings.csv, its summary.json ``existing``
    and job.json ``previous_job`` (None when absent), that now asks for ``count`` images with
    ``settings`` in ``mode``; ``runnable`` False when its artifact or provider fails it here."""
    complete = bool(existing) and existing.get("status") == "complete" and rows >= count
    if not runnable:
        return SKIP if complete else RECORD
    if rows and previous_job and previous_job.get("settings") != settings:
        return REFUSE
    if complete:
        return SKIP
    if rows and rows < count and mode == "cold":
        return COLD_RESTART
    if rows >= count:
        return FINISH
    return CONTINUE


def clear_results(result_dir: str) -> None:
    """``--force``: delete the run's result files (its set-aside files stay)."""
    for name in os.listdir(result_dir):
        if name in (*_RESULT_FILES, "job.json", "child.log") or name.startswith("telemetry"):
            os.unlink(os.path.join(result_dir, name))


def set_aside(result_dir: str) -> str:
    """Rename an interrupted run's files to ``interrupted-<n>.<name>`` (nothing measured is deleted;
    the prefix keeps them out of what readers of ``timings.csv`` / ``telemetry*.csv`` pick up);
    returns the new timings file's name."""
    number = 1
    while os.path.exists(os.path.join(result_dir, "interrupted-%d.timings.csv" % number)):
        number += 1
    for name in sorted(os.listdir(result_dir)):
        if name in _RESULT_FILES or name.startswith("telemetry"):
            target = os.path.join(result_dir, "interrupted-%d.%s" % (number, name))
            os.rename(os.path.join(result_dir, name), target)
    return "interrupted-%d.timings.csv" % number
