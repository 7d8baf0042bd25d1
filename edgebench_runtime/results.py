"""Result files: timings.csv, gpu_timings.csv, summary.json, status.json; their schema, atomic
writes and the timings' reading, writing and repair. The statistics over the rows are in
``statistics.py``; what goes into summary.json in ``summary.py``.

Layout under the output directory (``results/<run_id>/<host>/`` when driven by Ansible)::

    env.json                              device probe (probe.py), schema_version
    status.json                           progress, rewritten atomically at least every 2 s
    <model>/<provider>-<mode>/
        timings.csv                       one row per measured image, appended and flushed
        telemetry.csv                     sampled by the supervisor while the child runs
        summary.json                      status, counts, statistics, errors; atomic

Every file carries ``schema_version`` (the CSVs as their first column).

Python 3.6 compatible.
"""

import contextlib
import datetime
import errno
import json
import os
import tempfile
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np

from .statistics import (
    PHASES,
    STABILITY_THRESHOLDS,
    VALIDITY_RULES,
    dispersion,
    early_stopping_estimate,
    early_stopping_minimum,
    early_stopping_overlatency,
    nearest_rank,
    phase_stats,
    stability,
    summarize_rows,
    validity,
)
from .vocabulary import STATUSES

# The statistics and STATUSES are re-exported: the controller, the benchmarks and the tests read
# them from here, the module that writes and reads the files they describe.
__all__ = [
    "BREAKDOWN_STAGES",
    "PHASES",
    "SCHEMA_VERSION",
    "STABILITY_THRESHOLDS",
    "STATUSES",
    "TIMINGS_COLUMNS",
    "VALIDITY_RULES",
    "AppendFile",
    "BreakdownWriter",
    "TimingsWriter",
    "atomic_write_json",
    "dispersion",
    "early_stopping_estimate",
    "early_stopping_minimum",
    "early_stopping_overlatency",
    "iso_time",
    "nearest_rank",
    "phase_stats",
    "read_breakdown",
    "read_json",
    "read_timings",
    "repair_timings",
    "stability",
    "summarize_rows",
    "validity",
]

SCHEMA_VERSION = 1


TIMINGS_COLUMNS = (
    "schema_version",
    "index",
    "seq",
    "image",
    "decode_ms",
    "pre_ms",
    "infer_ms",
    "post_ms",
    "segment",
    "time",
    "result",
)
TIMINGS_HEADER = ",".join(TIMINGS_COLUMNS) + "\n"

#: gpu_timings.csv: trtexec's per-image breakdown where the backend times it (TensorRT, CUDA
#: events), one row per measured image beside timings.csv's row of the same ``index``.
BREAKDOWN_STAGES = ("h2d_ms", "gpu_compute_ms", "d2h_ms")
BREAKDOWN_COLUMNS = ("schema_version", "index", *BREAKDOWN_STAGES)
BREAKDOWN_HEADER = ",".join(BREAKDOWN_COLUMNS) + "\n"


def iso_time(when: Optional[float] = None) -> str:
    """A Unix time (now when None) as the result files write it: ISO 8601 in UTC."""
    moment = time.time() if when is None else when
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).isoformat()


def atomic_write_json(path: str, data: Any, reserve_fallback: bool = True, reserve_bytes: int = 0) -> None:
    """Write JSON to ``path`` via a temporary file + rename (readers never see half a file).

    When the disk is full (ENOSPC/EDQUOT) and ``path`` already exists, the file is rewritten in
    place instead (its blocks are already allocated), so a final status still lands on a full disk.
    ``reserve_bytes`` pads the file with trailing spaces (valid JSON) to hold that space for a
    later, larger rewrite; an in-place rewrite keeps the file at least as large as it was, so the
    reserve outlives it (the child's final summary, then the supervisor's larger one, both land).
    """
    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default)
    text += " " * max(0, reserve_bytes - len(text) - 1) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise
    except (IOError, OSError) as exc:
        if not (reserve_fallback and exc.errno in (errno.ENOSPC, errno.EDQUOT) and os.path.exists(path)):
            raise
        held = os.path.getsize(path)
        if len(text) < held:
            text = text[:-1] + " " * (held - len(text)) + "\n"
        with open(path, "r+") as handle:
            handle.write(text)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())


def _unlink(path):
    with contextlib.suppress(OSError):
        os.unlink(path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError("not JSON serialisable: %r" % (value,))


def read_json(path: str) -> Any:
    """Parsed JSON, or None when the file is absent or unreadable (e.g. torn by a crash)."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


class AppendFile(object):
    """A file written only at its end: whole writes (a short write is finished, so no line is left
    half-written by the writer), ``fsync`` on close. ``fd`` is None once closed."""

    fd = None  # type: Optional[int]

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while len(view):
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.fsync(self.fd)
            finally:
                os.close(self.fd)
                self.fd = None


class TimingsWriter(AppendFile):
    """Appends one row per image to timings.csv: one ``write`` syscall per row (no user-space
    buffer to lose), ``fsync`` at least once a second and on close."""

    header = TIMINGS_HEADER

    def __init__(self, path: str, fsync_interval: float = 1.0) -> None:
        self.path = path
        self.fsync_interval = fsync_interval
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._last_sync = time.time()
        if new:
            self._write(self.header.encode("ascii"))

    def row(
        self,
        index: int,
        seq: int,
        image: str,
        decode_ms: float,
        pre_ms: float,
        infer_ms: float,
        post_ms: float,
        segment: int,
        when: float,
        result: str,
    ) -> None:
        self._append(
            (
                "%d,%d,%d,%s,%.4f,%.4f,%.4f,%.4f,%d,%.3f,%s\n"
                % (
                    SCHEMA_VERSION,
                    index,
                    seq,
                    image,
                    decode_ms,
                    pre_ms,
                    infer_ms,
                    post_ms,
                    segment,
                    when,
                    result,
                )
            ).encode("utf-8"),
            when,
        )

    def _append(self, data: bytes, when: float) -> None:
        """One row, synced when a second has passed since the last sync."""
        self._write(data)
        if when - self._last_sync >= self.fsync_interval:
            os.fsync(self.fd)
            self._last_sync = when

class BreakdownWriter(TimingsWriter):
    """Appends one row per image to gpu_timings.csv (same durability as timings.csv)."""

    header = BREAKDOWN_HEADER

    def stages(self, index: int, stages: Sequence[Optional[float]], when: float) -> None:
        line = "%d,%d,%.4f,%.4f,%.4f\n" % ((SCHEMA_VERSION, index, *tuple(stages)))
        self._append(line.encode("ascii"), when)


def read_breakdown(path: str) -> Optional[Dict[str, np.ndarray]]:
    """gpu_timings.csv as ``{index, h2d_ms, gpu_compute_ms, d2h_ms}`` arrays (None when absent);
    rows of an index measured twice (a resumed segment) keep the last."""
    if not os.path.exists(path):
        return None
    rows = {}
    with open(path) as handle:
        if handle.readline() != BREAKDOWN_HEADER:
            return None
        for line in handle:
            parts = line.rstrip("\n").split(",")
            if not line.endswith("\n") or len(parts) != len(BREAKDOWN_COLUMNS):
                continue
            rows[int(parts[1])] = [float(value) for value in parts[2:]]
    order = sorted(rows)
    out = {"index": np.array(order, dtype=np.int64)}
    for position, name in enumerate(BREAKDOWN_STAGES):
        out[name] = np.array([rows[i][position] for i in order], dtype=np.float64)
    return out


def repair_timings(path: str) -> int:
    """Drop a torn last line (a crash or full disk mid-write). Returns the number of complete
    rows. Raises ValueError if the file is not an edgebench timings.csv of this schema."""
    if not os.path.exists(path):
        return 0
    with open(path, "rb+") as handle:
        data = handle.read()
        if not data:
            return 0
        end = data.rfind(b"\n") + 1
        if end < len(data):
            handle.truncate(end)
            data = data[:end]
    if not data:
        return 0
    header = data[: data.find(b"\n") + 1].decode("utf-8", "replace")
    if header != TIMINGS_HEADER:
        raise ValueError("%s has header %r, expected %r" % (path, header.strip(), TIMINGS_HEADER.strip()))
    return data.count(b"\n") - 1


def read_timings(path: str) -> Dict[str, Any]:
    """The rows of a timings.csv as a dict of numpy arrays (phases float64 for statistics) plus
    lists for the text columns. A torn last line is ignored."""
    columns = dict((name, []) for name in TIMINGS_COLUMNS)
    if os.path.exists(path):
        with open(path) as handle:
            handle.readline()
            for line in handle:
                if not line.endswith("\n"):
                    break
                parts = line.rstrip("\n").split(",", len(TIMINGS_COLUMNS) - 1)
                if len(parts) != len(TIMINGS_COLUMNS):
                    continue
                for name, value in zip(TIMINGS_COLUMNS, parts):  # noqa: B905 - strict= is Python 3.10+
                    columns[name].append(value)
    out = {}
    for name in ("schema_version", "index", "seq", "segment"):
        out[name] = np.array(columns[name], dtype=np.int64)
    for name in (*PHASES, "time"):
        out[name] = np.array(columns[name], dtype=np.float64)
    out["image"] = columns["image"]
    out["result"] = columns["result"]
    return out
