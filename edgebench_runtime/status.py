"""Progress of ``edgebench-runtime run`` as the supervisor reports it: status.json at the output
root (rewritten atomically; what ``edgebench run`` and a person on the device read), the count of
rows a running child has written, and the progress bar on a terminal.

Python 3.6 compatible.
"""

import os
import sys
import time
from typing import Any, Dict, Optional, TextIO, Tuple

from .results import SCHEMA_VERSION, atomic_write_json, iso_time

__all__ = ["ProgressBar", "RowCounter", "StatusFile", "current_job"]


class StatusFile(object):
    """status.json at the output root: rewritten atomically; write errors never stop the run."""

    def __init__(self, plan: Any, total_jobs: int) -> None:
        self.path = os.path.join(plan.output_dir, "status.json")
        self.data = {
            "schema_version": SCHEMA_VERSION,
            "state": "running",
            "pid": os.getpid(),
            "started": iso_time(),
            "updated": None,
            "output_dir": os.path.abspath(plan.output_dir),
            "plan": {
                "models": plan.models,
                "providers": plan.providers,
                "modes": plan.modes,
                "count": plan.count,
                "warmup": plan.warmup,
            },
            "jobs_total": total_jobs,
            "jobs_done": 0,
            "counts": {},
            "current": None,
            "eta_s": None,
            "eta": None,
            "errors": [],
        }
        self.warned = False

    def finish_job(self, status: str) -> None:
        """Count one finished run by its status."""
        self.data["jobs_done"] += 1
        self.data["counts"][status] = self.data["counts"].get(status, 0) + 1
        self.data["current"] = None

    def write(self, **changes: Any) -> None:
        """Apply ``changes``, recompute the ETA and rewrite the file (a failure warns once)."""
        self.data.update(changes)
        now = time.time()
        self.data["updated"] = iso_time(now)
        current = self.data.get("current")
        eta = None
        if current and current.get("eta_s") is not None:
            remaining_jobs = self.data["jobs_total"] - self.data["jobs_done"] - 1
            eta = current["eta_s"] + max(0, remaining_jobs) * (current.get("job_estimate_s") or 0)
        self.data["eta_s"] = eta
        self.data["eta"] = iso_time(now + eta) if eta is not None else None
        try:
            atomic_write_json(self.path, self.data)
        except (IOError, OSError) as exc:
            if not self.warned:
                self.warned = True
                sys.stderr.write("edgebench-runtime: cannot update %s: %s\n" % (self.path, exc))


class RowCounter(object):
    """Counts complete lines of a growing timings.csv without rereading it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def rows(self) -> int:
        """Rows written so far (complete lines after the header)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except (IOError, OSError):
            return max(0, self.lines - 1)
        end = data.rfind(b"\n") + 1
        self.lines += data[:end].count(b"\n")
        self.offset += end
        return max(0, self.lines - 1)


class ProgressBar(object):
    """One self-overwriting line on stderr per run, when enabled (``--progress``)."""

    def __init__(self, enabled: bool, stream: Optional[TextIO] = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.active = False

    def show(self, label: str, done: int, total: int, rate: Optional[float], eta: Optional[float]) -> None:
        if not self.enabled:
            return
        width = 24
        filled = int(width * done / float(total)) if total else 0
        eta_text = "%d:%02d" % (eta // 60, eta % 60) if eta is not None else "?"
        self.stream.write(
            "\r%s %d/%d |%s%s| %.1f img/s ETA %s "
            % (label, done, total, "#" * filled, " " * (width - filled), rate or 0.0, eta_text)
        )
        self.stream.flush()
        self.active = True

    def end(self) -> None:
        if self.enabled and self.active:
            self.stream.write("\n")
            self.stream.flush()
            self.active = False


def current_job(
    job: Dict[str, Any],
    started: float,
    done: int,
    first_row_at: Optional[Tuple[float, int]],
    now: float,
    pid: int,
) -> Dict[str, Any]:
    """status.json's ``current``: the running job, its rate (from its first row on, so the load and
    warm-up do not count) and its ETA; ``first_row_at`` is ``(time, rows)`` when rows first grew."""
    total = job["count"]
    rate = eta = None
    if first_row_at is not None and now > first_row_at[0] and done > first_row_at[1]:
        rate = (done - first_row_at[1]) / (now - first_row_at[0])
        eta = (total - done) / rate if rate > 0 else None
    estimate = (now - started) + (eta or 0) if eta is not None else None
    return {
        "child_pid": pid,
        "model": job["model"],
        "provider": job["provider"],
        "mode": job["mode"],
        "images_done": done,
        "images_total": total,
        "started": iso_time(started),
        "rate_images_per_s": rate,
        "eta_s": eta,
        "job_estimate_s": estimate,
    }
