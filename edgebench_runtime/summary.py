"""summary.json of one run, composed from its job, its segments and its files: the statistics are
recomputed from the whole timings.csv (all segments of a resumed run), the GPU breakdown from
gpu_timings.csv, then the validity verdict under the job's rules.

Used by the child at the end of a run (``bench.py``) and by the supervisor when the child could
not write it (killed, timed out, crashed).

Python 3.6 compatible.
"""

import os
import platform
import socket
import time
from typing import Any, Dict, List, Optional

from . import __version__
from .correctness import not_checked
from .results import BREAKDOWN_STAGES, SCHEMA_VERSION, iso_time, read_breakdown, read_timings
from .statistics import VALIDITY_RULES, phase_stats, summarize_rows, validity

__all__ = ["DEFAULT_MAX_IMAGES", "compose_summary", "job_rules", "max_images"]

#: The cap on a run that extends itself to the validity minimums (``edgebench_max_images``): at
#: 0.3 ms an image, 10000 images stop short of a 3 s minimum and the verdict says so.
DEFAULT_MAX_IMAGES = 10000


def compose_summary(
    job: Dict[str, Any],
    status: str,
    reason: Optional[str] = None,
    error: Optional[str] = None,
    segment: Optional[Dict[str, Any]] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """summary.json for ``job``: the statistics are recomputed from timings.csv (all segments)."""
    timings = os.path.join(job["result_dir"], "timings.csv")
    rows = read_timings(timings)
    segments = list(job.get("segments_before") or [])
    if segment is not None:
        segments.append(segment)
    first = segments[0] if segments else {}
    unreadable = set()
    for item in segments:
        unreadable.update(item.get("unreadable_files") or [])
    summary = {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "reason": reason,
        "error": error,
        "model": job["model"],
        "provider": job["provider"],
        "mode": job["mode"],
        "task": job.get("task"),
        "decoder": job.get("decoder"),
        "weights": job.get("weights"),
        "artifact": job.get("artifact"),
        "settings": job.get("settings"),
        "backend": (segment or {}).get("backend") or first.get("backend"),
        "images": {
            "requested": job["count"],
            "measured": int(rows["index"].size),
            "warmup": job["warmup"] if job["mode"] == "warm" else 0,
            "source": job.get("images_dir"),
            "source_files": job.get("source_files"),
            "unreadable": len(unreadable),
            "unreadable_files": sorted(unreadable)[:50],
            "minimum": job_rules(job)["min_images"],
            "cap": max_images(job),
            "extended": max(0, int(rows["index"].size) - int(job["count"])),
        },
        "load_ms": first.get("load_ms"),
        "first_inference_ms": first.get("first_inference_ms"),
        "correctness": _correctness_of(segments, status, reason),
        "segments": segments,
        "started": segments[0].get("started") if segments else None,
        "finished": iso_time(time.time()),
        "peak_rss_mb": max([s["peak_rss_mb"] for s in segments if s.get("peak_rss_mb")] or [None]),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "runtime_version": __version__,
    }
    summary.update(summarize_rows(rows, cold=job["mode"] == "cold"))
    stages = read_breakdown(os.path.join(job["result_dir"], "gpu_timings.csv"))
    if stages is not None and stages["index"].size:
        for name in BREAKDOWN_STAGES:
            summary["phases"][name] = phase_stats(stages[name])
        summary["gpu_breakdown"] = {
            "source": "CUDA events on the inference stream",
            "n": int(stages["index"].size),
        }
    if extra:
        summary.update(extra)
    summary["validity"] = validity(summary, job_rules(job))
    return summary


def job_rules(job: Dict[str, Any]) -> Dict[str, Any]:
    """The validity rules of this job: VALIDITY_RULES with the plan's minimum duration."""
    rules = dict(VALIDITY_RULES)
    rules.update(dict((k, v) for k, v in (job.get("validity_rules") or {}).items() if v is not None))
    return rules


def max_images(job: Dict[str, Any]) -> int:
    cap = (job.get("validity_rules") or {}).get("max_images")
    return int(cap) if cap is not None else max(DEFAULT_MAX_IMAGES, int(job["count"]))


def _correctness_of(segments: List[Dict[str, Any]], status: str, reason: Optional[str]) -> Dict[str, Any]:
    """The latest segment's verdict; a run that never got to the check says why."""
    for item in reversed(segments):
        if item.get("correctness"):
            return item["correctness"]
    if status == "complete":
        return not_checked("no check was recorded for this run")
    return not_checked("the run ended %s before the check%s" % (status, (": %s" % reason) if reason else ""))
