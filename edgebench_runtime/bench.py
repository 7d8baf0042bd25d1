"""The measured loop and the child process that runs one model x provider x mode.

The supervisor writes a job file and starts ``python -m edgebench_runtime _child JOB``; the child
loads the backend (``load_ms``), runs the warm-up (warm mode, on images kept apart from the
measured ones), then streams the measured images one at a time: decode (``decode_ms``),
pre-processing (``pre_ms``), the backend call (``infer_ms``), post-processing (``post_ms``), each
row appended to timings.csv at once. At the end it recomputes the statistics from the whole file
(all segments of a resumed run) and writes summary.json atomically.

Child exit codes (the supervisor reads summary.json first; these are the fallback):
0 complete, 10 failed, 11 oom (MemoryError or allocation failure), 12 skipped (provider
unavailable), 13 failed on a full disk (ENOSPC).

Python 3.6 compatible.
"""

import contextlib
import errno
import math
import os
import sys
import time
import traceback
from typing import Any, Callable, List, Optional, Set, Tuple

from .imaging import ImageDecodeError, decode_image
from .predictions import PREDICTIONS_FILE, PredictionRecorder
from .results import (
    BreakdownWriter,
    TimingsWriter,
    atomic_write_json,
    iso_time,
    read_json,
    read_timings,
    repair_timings,
)
from .summary import compose_summary, job_rules, max_images

__all__ = [
    "CHILD_EXIT",
    "extension_target",
    "is_memory_error",
    "measure",
    "run_child",
    "split_warmup",
]

CHILD_EXIT = {"complete": 0, "failed": 10, "oom": 11, "skipped": 12, "enospc": 13}

if hasattr(time, "perf_counter_ns"):
    _clock = getattr(time, "perf_counter_ns")  # noqa: B009 - Python 3.7+, behind the hasattr check
    _TO_MS = 1e-6
else:  # Python 3.6
    _clock = time.perf_counter
    _TO_MS = 1e3

_MEMORY_TEXT = ("bad_alloc", "failed to allocate", "out of memory", "cannot allocate memory", "memoryerror")


class NoReadableImages(Exception):
    pass


def split_warmup(paths: List[str], warmup: int) -> Tuple[List[str], List[str], bool]:
    """``(measured, warmup_images, disjoint)``: warm-up images are the last ones of the sorted set,
    kept apart from the measured ones; with a single image both must share it."""
    if warmup <= 0:
        return list(paths), [], True
    if len(paths) < 2:
        return list(paths), list(paths), False
    keep = min(warmup, max(1, len(paths) // 5))
    return list(paths[:-keep]), list(paths[-keep:]), True


def is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = ("%s %s" % (type(exc).__name__, exc)).lower()
    return any(marker in text for marker in _MEMORY_TEXT)


def _csv_safe(text):
    return str(text).replace(",", "_").replace("\n", " ").replace("\r", " ")


def measure(
    backend: Any,
    pipeline: Any,
    images: List[str],
    writer: TimingsWriter,
    start_index: int,
    count: int,
    seq: int,
    segment: int,
    decode: Callable[[str], Any] = decode_image,
    on_row: Optional[Callable[..., Any]] = None,
    unreadable: Optional[Set[str]] = None,
    breakdown: Optional[BreakdownWriter] = None,
    recorder: Optional[PredictionRecorder] = None,
) -> int:
    """Measure images ``start_index .. count-1``; the image of position ``seq`` is
    ``images[seq % len(images)]``. Unreadable images are skipped (not counted as measured) and
    their names added to ``unreadable``. ``breakdown`` (a BreakdownWriter) receives the backend's
    ``last_breakdown`` of every image where it has one. ``recorder`` keeps each image's first
    result, after the image's timed phases and its row. Returns the next ``seq``."""
    n = len(images)
    names = [_csv_safe(os.path.basename(path)) for path in images]
    files = [os.path.basename(path) for path in images]
    pre = pipeline.preprocess
    post = pipeline.postprocess
    brief = pipeline.brief
    infer = backend.infer
    row = writer.row
    clock = _clock
    now = time.time
    to_ms = _TO_MS
    bad = set()
    index = start_index
    while index < count:
        slot = seq % n
        if slot in bad:
            seq += 1
            continue
        t0 = clock()
        try:
            image = decode(images[slot])
        except ImageDecodeError:
            bad.add(slot)
            if unreadable is not None:
                unreadable.add(names[slot])
            if len(bad) >= n:
                raise NoReadableImages("none of the %d images could be decoded" % n) from None
            seq += 1
            continue
        t1 = clock()
        feeds, geometry = pre(image)
        t2 = clock()
        outputs = infer(feeds)
        t3 = clock()
        result = post(outputs, geometry)
        t4 = clock()
        row(
            index,
            seq,
            names[slot],
            (t1 - t0) * to_ms,
            (t2 - t1) * to_ms,
            (t3 - t2) * to_ms,
            (t4 - t3) * to_ms,
            segment,
            now(),
            _csv_safe(brief(result)),
        )
        if breakdown is not None and backend.last_breakdown is not None:
            breakdown.stages(index, backend.last_breakdown, now())
        if recorder is not None:
            recorder.record(files[slot], result)
        index += 1
        seq += 1
        if on_row is not None:
            on_row(index)
    return seq


def _warmup(backend, pipeline, images, count, decode=decode_image, recorder=None):
    """Untimed warm-up passes; returns (first_inference_ms, mean infer_ms). ``recorder`` keeps
    the results of these images, which the measured loop never sees when they are kept apart."""
    times = []
    done = 0
    position = 0
    misses = 0
    while done < count:
        path = images[position % len(images)]
        position += 1
        try:
            image = decode(path)
        except ImageDecodeError:
            misses += 1
            if misses >= len(images):
                message = "none of the %d warm-up images could be decoded" % len(images)
                raise NoReadableImages(message) from None
            continue
        feeds, geometry = pipeline.preprocess(image)
        t0 = _clock()
        outputs = backend.infer(feeds)
        times.append((_clock() - t0) * _TO_MS)
        result = pipeline.postprocess(outputs, geometry)
        if recorder is not None:
            recorder.record(os.path.basename(path), result, "warmup")
        done += 1
    return times[0] if times else None, (sum(times) / len(times)) if times else None


def _peak_rss_mb():
    try:
        import resource

        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return value / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)
    except Exception:
        return None


def extension_target(
    measured: int, measured_s: float, requested: int, min_images: int, min_duration_s: float, cap: int
) -> int:
    """How many images the run should have measured in all to meet the minimum count and duration
    (estimated from the time per image so far, with a 10 % margin), never beyond ``cap`` and never
    fewer than ``requested``; equal to ``measured`` when nothing more is needed."""
    target = max(int(requested), int(min_images))
    if measured >= target and measured_s >= min_duration_s:
        return measured
    if measured > 0 and measured_s < min_duration_s:
        per_image = measured_s / float(measured)
        needed = math.ceil(min_duration_s / per_image * 1.1) if per_image > 0 else cap
        target = max(target, needed, measured + 1)
    return max(measured, min(target, int(cap)))


def _measured_seconds(job):
    rows = read_timings(os.path.join(job["result_dir"], "timings.csv"))
    e2e = rows["decode_ms"] + rows["pre_ms"] + rows["infer_ms"] + rows["post_ms"]
    return int(rows["index"].size), float(e2e.sum()) / 1000.0


def _check_correctness(backend, pipeline, job):
    """The provider's verdict against the artifact's stored reference outputs (never raises except
    MemoryError; a failing provider is still timed, and flagged in summary.json)."""
    from .correctness import safe_check

    return safe_check(
        backend,
        job["manifest"],
        job["artifact_dir"],
        job["provider"],
        pipeline,
        images_dir=job.get("reference_images_dir"),
        use_cv2=job.get("use_cv2"),
    )


def _first_infer_of_segment(job, segment):
    """Cold mode: the first measured image of a segment is the process's first inference."""
    try:
        rows = read_timings(os.path.join(job["result_dir"], "timings.csv"))
    except Exception:
        return None
    hits = (rows["segment"] == segment).nonzero()[0]
    return float(rows["infer_ms"][hits[0]]) if hits.size else None


def run_child(job_path: str) -> int:
    """Entry point of the child process. Returns its exit code."""
    job = read_json(job_path)
    if job is None:
        sys.stderr.write("edgebench-runtime child: cannot read job file %s\n" % job_path)
        return CHILD_EXIT["failed"]
    started = time.time()
    segment = {
        "segment": job["segment"],
        "pid": os.getpid(),
        "start_index": job["start_index"],
        "started": iso_time(started),
        "load_ms": None,
        "first_inference_ms": None,
        "unreadable_files": [],
    }
    summary_path = os.path.join(job["result_dir"], "summary.json")
    backend = writer = breakdown = recorder = None
    unreadable = set()
    status, reason, error, code = "complete", None, None, CHILD_EXIT["complete"]
    try:
        from .backends import ProviderUnavailable, create_backend
        from .tasks import Pipeline

        try:
            backend = create_backend(job["provider"], job.get("backend_options"))
            t0 = _clock()
            backend.load(job["artifact_dir"], job["manifest"])
            segment["load_ms"] = (_clock() - t0) * _TO_MS
        except ProviderUnavailable as exc:
            segment["backend"] = backend.details() if backend is not None else None
            segment["finished"] = iso_time(time.time())
            atomic_write_json(summary_path, compose_summary(job, "skipped", reason=str(exc), segment=segment))
            return CHILD_EXIT["skipped"]
        segment["backend"] = backend.details()
        pipeline = Pipeline(job["manifest"], input_names=backend.input_names, use_cv2=job.get("use_cv2"))
        images = job["images"]
        measured, warm_images, disjoint = split_warmup(images, job["warmup"] if job["mode"] == "warm" else 0)
        segment["warmup_disjoint"] = disjoint
        if job["mode"] != "cold":
            # Before timing; in cold mode after it, so that the first measured image stays the
            # process's first inference.
            segment["correctness"] = _check_correctness(backend, pipeline, job)
        if job.get("record_predictions"):
            recorder = PredictionRecorder(os.path.join(job["result_dir"], PREDICTIONS_FILE), job["manifest"])
        if job["mode"] == "warm" and job["warmup"] > 0:
            # Only images kept apart from the measured ones are recorded from the warm-up: the
            # others are recorded on their first measured pass.
            first, mean = _warmup(
                backend, pipeline, warm_images, job["warmup"], recorder=recorder if disjoint else None
            )
            segment["first_inference_ms"] = first
            segment["warmup_infer_ms_mean"] = mean
        writer = TimingsWriter(os.path.join(job["result_dir"], "timings.csv"), job.get("fsync_interval", 1.0))
        if backend.measures_breakdown:  # TensorRT with CUDA events: trtexec's breakdown
            breakdown = BreakdownWriter(
                os.path.join(job["result_dir"], "gpu_timings.csv"), job.get("fsync_interval", 1.0)
            )
        segment["measure_started_unix"] = time.time()
        seq = measure(
            backend,
            pipeline,
            measured,
            writer,
            job["start_index"],
            job["count"],
            job["seq_start"],
            job["segment"],
            unreadable=unreadable,
            breakdown=breakdown,
            recorder=recorder,
        )
        # The run extends itself (cycling the image set) to the validity minimums, up to the cap.
        rules = job_rules(job)
        done = job["count"]
        while True:
            rows_now, seconds = _measured_seconds(job)
            target = extension_target(
                rows_now,
                seconds,
                job["count"],
                rules["min_images"],
                rules["min_duration_s"],
                max_images(job),
            )
            if target <= rows_now:
                break
            seq = measure(
                backend,
                pipeline,
                measured,
                writer,
                rows_now,
                target,
                seq,
                job["segment"],
                unreadable=unreadable,
                recorder=recorder,
            )
            done = target
        segment["extended_to"] = done
        segment["measure_ended_unix"] = time.time()
        writer.close()
        writer = None
        if breakdown is not None:
            breakdown.close()
            breakdown = None
        if recorder is not None:
            recorder.close()
            recorder = None
        if job["mode"] == "cold":
            segment["correctness"] = _check_correctness(backend, pipeline, job)
    except BaseException as exc:  # classify everything, including MemoryError and KeyboardInterrupt
        code = CHILD_EXIT["failed"]
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            status, reason = "partial", "interrupted (%s)" % type(exc).__name__
        elif is_memory_error(exc):
            status, reason, code = (
                "oom",
                "out of memory in the child: %s: %s" % (type(exc).__name__, exc),
                CHILD_EXIT["oom"],
            )
        elif isinstance(exc, (IOError, OSError)) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            status, code = "failed", CHILD_EXIT["enospc"]
            reason = "disk full (ENOSPC) writing results: %s; rows written so far are kept" % exc
        else:
            status, reason = "failed", "%s: %s" % (type(exc).__name__, exc)
        error = "".join(traceback.format_exception(type(exc), exc, sys.exc_info()[2])[-6:])[-2000:]
        segment["measure_ended_unix"] = time.time()
        for handle in (writer, breakdown, recorder):
            if handle is not None:
                with contextlib.suppress(IOError, OSError):
                    handle.close()
    finally:
        if backend is not None:
            backend.close()
    if status == "complete" and repair_timings(os.path.join(job["result_dir"], "timings.csv")) < job["count"]:
        status, reason = "failed", "fewer rows than requested after the loop (a concurrent writer?)"
    segment["unreadable_files"] = sorted(unreadable)
    if job["mode"] == "cold" and segment["first_inference_ms"] is None and status != "skipped":
        segment["first_inference_ms"] = _first_infer_of_segment(job, job["segment"])
    segment["peak_rss_mb"] = _peak_rss_mb()
    segment["finished"] = iso_time(time.time())
    segment["exit"] = status
    try:
        atomic_write_json(summary_path, compose_summary(job, status, reason, error, segment))
    except (IOError, OSError) as exc:
        sys.stderr.write("edgebench-runtime child: cannot write %s: %s\n" % (summary_path, exc))
        if code == CHILD_EXIT["complete"]:
            code = CHILD_EXIT["enospc"] if exc.errno == errno.ENOSPC else CHILD_EXIT["failed"]
    if status == "partial":
        code = CHILD_EXIT["failed"]
    return code
