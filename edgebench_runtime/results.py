"""Result files: timings.csv, summary.json, status.json; statistics and the stability verdict.

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
import errno
import json
import math
import os
import tempfile
import time

import numpy as np

__all__ = [
    "PHASES",
    "SCHEMA_VERSION",
    "STABILITY_THRESHOLDS",
    "STATUSES",
    "TIMINGS_COLUMNS",
    "TimingsWriter",
    "atomic_write_json",
    "phase_stats",
    "read_json",
    "read_timings",
    "repair_timings",
    "stability",
    "summarize_rows",
]

SCHEMA_VERSION = 1

#: complete  every requested image measured
#: partial   stopped early without an error of its own (the runtime was interrupted)
#: failed    an exception, a corrupt artifact, a full disk, a crash: ``reason`` says which
#: oom       out of memory: MemoryError/allocation failure in the child, or SIGKILL with OOM evidence
#: timeout   the per-run timeout elapsed; the child was killed
#: skipped   not run: the provider is unavailable here (``reason`` says why)
STATUSES = ("complete", "partial", "failed", "oom", "timeout", "skipped")

PHASES = ("decode_ms", "pre_ms", "infer_ms", "post_ms")
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

#: Coefficient of variation (std/mean) of infer_ms. pyperf warns when the standard deviation is
#: above 10 % of the mean; trtexec reports the coefficient of variance of GPU compute time and
#: flags it as unstable above 1 %, which CPU-only edge devices rarely meet, hence two levels.
STABILITY_THRESHOLDS = {"stable_below": 0.05, "unstable_above": 0.10}


def atomic_write_json(path, data, reserve_fallback=True, reserve_bytes=0):
    """Write JSON to ``path`` via a temporary file + rename (readers never see half a file).

    When the disk is full (ENOSPC/EDQUOT) and ``path`` already exists, the file is rewritten in
    place instead (its blocks are already allocated), so a final status still lands on a full disk.
    ``reserve_bytes`` pads the file with trailing spaces (valid JSON) to hold that space for a
    later, larger rewrite.
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


def read_json(path):
    """Parsed JSON, or None when the file is absent or unreadable (e.g. torn by a crash)."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


class TimingsWriter(object):
    """Appends one row per image to timings.csv: one ``write`` syscall per row (no user-space
    buffer to lose), ``fsync`` at least once a second and on close."""

    def __init__(self, path, fsync_interval=1.0):
        self.path = path
        self.fsync_interval = fsync_interval
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._last_sync = time.time()
        if new:
            self._write(TIMINGS_HEADER.encode("ascii"))

    def _write(self, data):
        written = os.write(self.fd, data)
        if written != len(data):  # a short write: the rest, or the error that stopped it
            view = memoryview(data)[written:]
            while len(view):
                written = os.write(self.fd, view)
                view = view[written:]

    def row(self, index, seq, image, decode_ms, pre_ms, infer_ms, post_ms, segment, when, result):
        self._write(
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
            ).encode("utf-8")
        )
        if when - self._last_sync >= self.fsync_interval:
            os.fsync(self.fd)
            self._last_sync = when

    def close(self):
        if self.fd is not None:
            try:
                os.fsync(self.fd)
            finally:
                os.close(self.fd)
                self.fd = None


def repair_timings(path):
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


def read_timings(path):
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


def phase_stats(values):
    """n, mean, std (sample, ddof=1), min, max, p50, p90, p99 (linear interpolation), in ms."""
    values = np.asarray(values, dtype=np.float64)
    n = int(values.size)
    if n == 0:
        return {
            "n": 0,
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
            "p50": None,
            "p90": None,
            "p99": None,
        }
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "n": n,
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if n > 1 else 0.0,
        "min": float(values.min()),
        "max": float(values.max()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
    }


def stability(infer_stats):
    """Verdict from the coefficient of variation of infer_ms (see STABILITY_THRESHOLDS)."""
    mean, std = infer_stats.get("mean"), infer_stats.get("std")
    verdict = {"metric": "infer_ms", "cv": None, "verdict": "unknown", "thresholds": STABILITY_THRESHOLDS}
    if not mean or std is None or infer_stats.get("n", 0) < 2:
        return verdict
    cv = std / mean
    verdict["cv"] = cv
    if cv < STABILITY_THRESHOLDS["stable_below"]:
        verdict["verdict"] = "stable"
    elif cv <= STABILITY_THRESHOLDS["unstable_above"]:
        verdict["verdict"] = "noisy"
    else:
        verdict["verdict"] = "unstable"
        verdict["warning"] = (
            "infer_ms varies by %.1f %% of its mean (over %.0f %%): results may be unreliable; "
            "check throttling, background load and CPU frequency scaling"
            % (cv * 100, STABILITY_THRESHOLDS["unstable_above"] * 100)
        )
    return verdict


def _fps(mean_ms):
    if mean_ms is None or mean_ms <= 0 or math.isnan(mean_ms):
        return None
    return 1000.0 / mean_ms


def summarize_rows(rows, cold=False):
    """Statistics of the rows (``read_timings`` output): per phase, total (pre+infer+post), e2e
    (decode+...), FPS = 1000 / mean(total), end-to-end FPS = 1000 / mean(e2e), the stability
    verdict; in cold mode also the statistics without the first image of each segment."""
    total = rows["pre_ms"] + rows["infer_ms"] + rows["post_ms"]
    e2e = total + rows["decode_ms"]
    phases = dict((name, phase_stats(rows[name])) for name in PHASES)
    phases["total_ms"] = phase_stats(total)
    phases["e2e_ms"] = phase_stats(e2e)
    out = {
        "phases": phases,
        "fps": _fps(phases["total_ms"]["mean"]),
        "fps_e2e": _fps(phases["e2e_ms"]["mean"]),
        "stability": stability(phases["infer_ms"]),
    }
    if cold and rows["index"].size:
        segments = rows["segment"]
        first = np.ones(segments.size, dtype=bool)
        first[1:] = segments[1:] != segments[:-1]
        keep = ~first
        steady = dict((name, phase_stats(rows[name][keep])) for name in PHASES)
        steady["total_ms"] = phase_stats(total[keep])
        out["phases_excluding_first"] = steady
    return out
