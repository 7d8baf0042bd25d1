"""One scheduled fleet run: what the cron entry of `playbooks/schedule.yml` executes.

A lock keeps two runs from overlapping (a start while one runs logs that it skipped), every run
writes its own log file, and old logs beyond a retention count are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["scheduled_run"]


def _log_line(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {text}\n")


def _prune(log_dir: Path, keep: int) -> list[Path]:
    logs = sorted(log_dir.glob("run-*.log"))
    removed = logs[: max(0, len(logs) - keep)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def scheduled_run(
    log_dir: Path,
    keep_logs: int = 30,
    inventory: str | None = None,
    limit: str | None = None,
    extravars: dict | None = None,
    runner=None,
) -> int:
    """Run the whole benchmark once with a new run id, unless another scheduled run holds the lock.

    Returns the benchmark's exit status, or 0 when skipped because a run is in progress.
    """
    from edgebench.fleet import run_benchmark

    runner = runner or run_benchmark
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "schedule.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            _log_line(log_dir / "schedule.log", f"skipped: a scheduled run is still in progress ({holder})")
            return 0
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        log_path = log_dir / f"run-{stamp}.log"
        _log_line(log_dir / "schedule.log", f"started: run log {log_path.name}")
        captured = io.StringIO()

        def progress(hosts) -> None:
            for host in hosts.values():
                captured.write(host.line() + "\n")

        with log_path.open("w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            result = runner(inventory=inventory, limit=limit, extravars=extravars, on_progress=progress)
            log.write(captured.getvalue())
            log.write(f"run id: {result.run_id}\nstatus: {result.status} (rc {result.rc})\n")
        _log_line(log_dir / "schedule.log", f"finished: run id {result.run_id}, rc {result.rc}")
        for removed in _prune(log_dir, keep_logs):
            _log_line(log_dir / "schedule.log", f"removed old log {removed.name}")
        return 0 if result.rc == 0 else 1
