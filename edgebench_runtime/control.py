"""``edgebench-runtime start | wait | status``: the seam between the run role and the runtime.

The benchmark runs detached from the SSH session that starts it, so a dropped connection or a
sleeping laptop does not stop it; the next playbook run finds it again by its pid file. Files in
the device's working directory:

* ``run.pid``: ``<pid> <boot id>`` of the detached benchmark; a pid from an earlier boot (reused
  after a reboot) does not count as running;
* ``run.rc``: ``none`` while it runs (and when it was killed), its exit code once it ended (written
  in place, so that it lands even on a disk that filled up meanwhile);
* ``run.log``: its output.

Every command prints one progress line, ``edgebench-progress/1 {json}``, which the run role reads
and ``edgebench run`` shows (it looks for the prefix, not for a task name)::

    {"state": "running" | "stopped", "pid": 123, "rc": 0 | 4 | null, "started": true | false,
     "status": <status.json of the output directory, or null>, "free_bytes": 123456,
     "disk_full": ["model/cpu-warm", "run.log"]}

``rc`` is null while running, and when the benchmark was killed (no exit status); ``started`` says
whether ``start`` started one (false: it attached to the one already running, or refused to start);
``need_bytes`` is what ``start --need-bytes`` asked for: when the free space is below it, nothing is
started (``started`` false, ``state`` stopped), so that the play can say so before anything runs;
``disk_full`` names the runs (and the log) that reported a full disk.

Python 3.6 compatible; imports nothing that is slow to import (it runs on every poll).
"""

import errno
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

__all__ = ["PROGRESS_PREFIX", "is_running", "progress", "start", "wait"]

PROGRESS_PREFIX = "edgebench-progress/1 "
_DISK_FULL_TEXT = ("ENOSPC", "No space left on device")
# The shell wrapper writes the exit code over "none" in place (1<>: no truncation, no new inode).
_WRAPPER = '"$@"; printf "%-4s\\n" "$?" 1<> run.rc'


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return ""


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (ended, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            return False
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[-1].split()[0]
    except (IOError, OSError, IndexError):
        return True
    return state != "Z"


def is_running(work_dir: str) -> Optional[int]:
    """The pid of the benchmark running from ``work_dir`` in this boot, else None."""
    try:
        with open(os.path.join(work_dir, "run.pid")) as handle:
            fields = handle.read().split()
    except (IOError, OSError):
        return None
    if len(fields) != 2 or not fields[0].isdigit() or fields[1] != _boot_id():
        return None
    pid = int(fields[0])
    return pid if pid != os.getpid() and _pid_alive(pid) else None


def _exit_code(work_dir: str) -> Optional[int]:
    try:
        with open(os.path.join(work_dir, "run.rc")) as handle:
            text = handle.read().strip()
    except (IOError, OSError):
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def _free_bytes(path: str) -> Optional[int]:
    """Free space for an unprivileged writer where ``path`` is (or would be created)."""
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        stat = os.statvfs(path or "/")
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def _mentions_full_disk(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return False
    return any(marker in text for marker in _DISK_FULL_TEXT)


def _disk_full(work_dir: str, output_dir: str) -> List[str]:
    found = []
    if os.path.isdir(output_dir):
        for model in sorted(os.listdir(output_dir)):
            model_dir = os.path.join(output_dir, model)
            if not os.path.isdir(model_dir):
                continue
            for run in sorted(os.listdir(model_dir)):
                if _mentions_full_disk(os.path.join(model_dir, run, "summary.json")):
                    found.append("%s/%s" % (model, run))
    if _mentions_full_disk(os.path.join(work_dir, "run.log")):
        found.append("run.log")
    return found


def _status_file(output_dir: str) -> Optional[Dict[str, Any]]:
    try:
        with open(os.path.join(output_dir, "status.json")) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def progress(
    work_dir: str, output_dir: str, started: bool = False, need_bytes: Optional[int] = None
) -> Dict[str, Any]:
    """The progress record of the benchmark of ``work_dir`` writing to ``output_dir``."""
    pid = is_running(work_dir)
    record = {
        "state": "running" if pid else "stopped",
        "pid": pid,
        "rc": None if pid else _exit_code(work_dir),
        "started": started,
        "need_bytes": need_bytes,
        "status": _status_file(output_dir),
        "free_bytes": _free_bytes(output_dir),
        "disk_full": [] if pid else _disk_full(work_dir, output_dir),
    }
    return record


def _print(record: Dict[str, Any]) -> None:
    sys.stdout.write(PROGRESS_PREFIX + json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


def _runtime_command() -> List[str]:
    """``edgebench-runtime`` of this environment (so that ``ps`` on the device names the benchmark),
    or the module through this interpreter where the script is missing."""
    script = os.path.join(os.path.dirname(sys.executable), "edgebench-runtime")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "edgebench_runtime"]


def start(
    work_dir: str, output_dir: str, run_arguments: List[str], need_bytes: Optional[int] = None
) -> int:
    """Start ``edgebench-runtime run RUN_ARGUMENTS`` detached, unless one already runs (then attach
    to it) or the output directory has less than ``need_bytes`` free (then start nothing); print the
    progress line. Returns 0, or 3 when the working directory is unusable."""
    free = _free_bytes(output_dir)
    if is_running(work_dir) is None and need_bytes and free is not None and free < need_bytes:
        _print(progress(work_dir, output_dir, need_bytes=need_bytes))
        return 0
    if is_running(work_dir) is None:
        command = ["sh", "-c", _WRAPPER, "edgebench-run", *_runtime_command(), "run"]
        command.extend(run_arguments)
        command.extend(["--progress", "never"])
        try:
            with open(os.path.join(work_dir, "run.rc"), "w") as handle:
                handle.write("none\n")
            with open(os.path.join(work_dir, "run.log"), "wb") as log:
                child = subprocess.Popen(
                    command,
                    cwd=work_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own session: the SSH session's hangup never reaches it
                )
            with open(os.path.join(work_dir, "run.pid"), "w") as handle:
                handle.write("%d %s\n" % (child.pid, _boot_id()))
        except (IOError, OSError) as exc:
            sys.stderr.write("edgebench-runtime start: cannot start in %s: %s\n" % (work_dir, exc))
            return 3
        _print(progress(work_dir, output_dir, started=True, need_bytes=need_bytes))
        return 0
    _print(progress(work_dir, output_dir, need_bytes=need_bytes))
    return 0


def wait(work_dir: str, output_dir: str, seconds: float, interval: float = 0.5) -> int:
    """Wait up to ``seconds`` for the benchmark to stop, then print the progress line (a poll that
    returns as soon as the benchmark ends, so the play learns of the end without a delay)."""
    deadline = time.time() + max(0.0, seconds)
    while is_running(work_dir) is not None and time.time() < deadline:
        time.sleep(max(0.0, min(interval, deadline - time.time())))
    _print(progress(work_dir, output_dir))
    return 0
