"""The parent side of ``edgebench-runtime run``: one supervised child per model x provider x mode.

For every run the supervisor decides what to do with its existing files (``resume.py``),
prepares the result directory, waits the cooldown, starts the child (``python -m
edgebench_runtime _child JOB``), samples telemetry of the child, keeps status.json fresh
(``status.py``), enforces the timeout and classifies how the child ended:

* the child wrote its final summary.json: that is the truth (complete, failed, oom via
  MemoryError/allocation failure, skipped);
* killed by SIGKILL: ``oom`` when the kernel's OOM evidence is found (the child's memory cgroup
  ``oom_kill`` counter rose, or /dev/kmsg names the pid, or, where the cgroup files cannot be read,
  the kernel's own oom_kill counter in /proc/vmstat rose while the child ran: ``oom.py``),
  otherwise ``failed``;
* killed by the timeout: ``timeout``; any other death: ``failed`` with the child's log tail.

Python 3.6 compatible.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Optional

from . import resume
from .backends import provider_availability
from .bench import CHILD_EXIT
from .manifest import ArtifactError, load_manifest, verify_artifact
from .oom import OomWatch
from .plan import InputError, Plan, UsageError, validate
from .probe import probe
from .results import (
    SCHEMA_VERSION,
    atomic_write_json,
    iso_time,
    read_json,
    read_timings,
    repair_timings,
    validity,
)
from .status import ProgressBar, RowCounter, StatusFile, current_job
from .summary import compose_summary
from .telemetry import Sampler
from .telemetry_summary import summarize_telemetry
from .vocabulary import BAD_STATUSES

# Plan and its errors live in plan.py; they stay importable here, where `run` used to define them.
__all__ = ["EXIT", "InputError", "Plan", "Supervisor", "UsageError", "run_plan"]

EXIT = {"ok": 0, "internal": 1, "usage": 2, "input": 3, "incomplete": 4, "interrupted": 130}
#: summary.json is first written padded to this size, so that the final summary can be rewritten in
#: place when the disk fills up during the run.
SUMMARY_RESERVE_BYTES = 16384


class Interrupted(Exception):
    pass


# --- one job ----------------------------------------------------------------------------------


def _preexec(memory_limit_mb: Optional[int]) -> Callable[[], None]:
    def apply():
        if memory_limit_mb:
            import resource

            limit = int(memory_limit_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _log_tail(path: str, size: int = 3000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return ""


class Supervisor(object):
    """Runs a validated plan's jobs one after the other, each in its own supervised child."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.results = []
        self.ran_any = False
        self.interrupted = False

    def log(self, text: str) -> None:
        # The log goes to run.log on the device's disk: a full disk must not take the run down.
        with contextlib.suppress(OSError):
            self.plan.log(text)

    def run(self) -> int:
        """Every job of the plan; the exit code (see EXIT)."""
        plan = self.plan
        images = validate(plan)
        jobs = [(m, p, mode) for m in plan.models for p in plan.providers for mode in plan.modes]
        self.status = StatusFile(plan, len(jobs))
        self.status.write()
        self.progress = ProgressBar(plan.progress)
        try:
            atomic_write_json(os.path.join(plan.output_dir, "env.json"), probe())
        except Exception as exc:  # the probe must not stop a run
            self.log("warning: device probe failed: %s" % exc)
        if plan.cooldown.kind == "thermal":
            baseline = plan.cooldown.measure_baseline()
            self.log(
                "thermal cooldown baseline: %s" % ("%.1f C" % baseline if baseline is not None else "none")
            )
        previous = {}
        old_handler = signal.getsignal(signal.SIGTERM)

        def on_term(signum, frame):
            raise KeyboardInterrupt()

        try:
            signal.signal(signal.SIGTERM, on_term)
        except ValueError:  # not the main thread
            old_handler = None
        try:
            for model in plan.models:
                manifest, artifact_error = self._verify(model, previous)
                for provider in plan.providers:
                    ok, reason = provider_availability(provider)
                    for mode in plan.modes:
                        status = self._guarded_job(
                            model, provider, mode, images, manifest, artifact_error, None if ok else reason
                        )
                        self.results.append((model, provider, mode, status))
                        self.status.finish_job(status)
                        self.status.write()
        except KeyboardInterrupt:
            self.interrupted = True
            self.progress.end()
            self.log("interrupted: partial results are kept; rerun to continue")
            self.status.write(state="interrupted", current=None)
            return EXIT["interrupted"]
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
        self.status.write(state="finished", current=None)
        if any(status in BAD_STATUSES or status == "conflict" for _m, _p, _mo, status in self.results):
            return EXIT["incomplete"]
        return EXIT["ok"]

    def _guarded_job(self, model, provider, *args):
        try:
            return self._job(model, provider, *args)
        except (IOError, OSError) as exc:  # e.g. a full disk while preparing: this run fails, not all
            self.log("%s %s: failed: %s" % (model, provider, exc))
            return "failed"

    def _verify(self, model, cache):
        artifact_dir = os.path.join(self.plan.artifacts_dir, model)
        try:
            manifest = load_manifest(artifact_dir)
            verify_artifact(artifact_dir, manifest)
            return manifest, None
        except ArtifactError as exc:
            self.log("%s: artifact check failed: %s" % (model, exc))
            return None, "artifact check failed: %s" % exc

    def _base_job(self, model, provider, mode, images, manifest, result_dir):
        plan = self.plan
        artifact_dir = os.path.join(plan.artifacts_dir, model)
        job = {
            "schema_version": SCHEMA_VERSION,
            "model": model,
            "provider": provider,
            "mode": mode,
            "artifact_dir": artifact_dir,
            "result_dir": result_dir,
            "count": plan.count,
            "warmup": plan.warmup,
            "images_dir": plan.images_dir,
            "source_files": len(images),
            "images": images,
            "use_cv2": plan.use_cv2,
            "fsync_interval": plan.fsync_interval,
            "backend_options": plan.backend_options(provider),
            "segments_before": [],
            "validity_rules": {"min_duration_s": plan.min_duration_s, "max_images": plan.max_images},
            "record_predictions": plan.record_predictions,
        }
        if manifest is not None:
            model_file = manifest.get("model_file", "model.onnx")
            sha = (manifest.get("files", {}).get(model_file) or {}).get("sha256")
            job.update(
                {
                    "manifest": manifest,
                    "task": manifest.get("task"),
                    "decoder": (manifest.get("decoder") or {}).get("name"),
                    "weights": manifest.get("weights"),
                    "artifact": {
                        "dir": os.path.abspath(artifact_dir),
                        "model_file": model_file,
                        "sha256": sha,
                        "verified": True,
                    },
                    "settings": resume.job_settings(plan, provider, sha),
                }
            )
        else:
            job.update(
                {
                    "manifest": None,
                    "artifact": {"dir": os.path.abspath(artifact_dir), "verified": False},
                    "settings": resume.job_settings(plan, provider, None),
                }
            )
        return job

    def _job(self, model, provider, mode, images, manifest, artifact_error, unavailable):
        plan = self.plan
        label = "%s %s-%s" % (model, provider, mode)
        result_dir = os.path.join(plan.output_dir, model, "%s-%s" % (provider, mode))
        if not os.path.isdir(result_dir):
            os.makedirs(result_dir)
        summary_path = os.path.join(result_dir, "summary.json")
        timings_path = os.path.join(result_dir, "timings.csv")
        if plan.force:
            resume.clear_results(result_dir)
        job = self._base_job(model, provider, mode, images, manifest, result_dir)
        existing = read_json(summary_path)
        try:
            rows = repair_timings(timings_path)
        except ValueError as exc:
            self.log("%s: %s; use --force to start over" % (label, exc))
            return "conflict"
        previous_job = read_json(os.path.join(result_dir, "job.json"))
        runnable = not (artifact_error or unavailable)
        decision = resume.decide(rows, existing, previous_job, job["settings"], plan.count, mode, runnable)
        if decision == resume.RECORD:
            status = "failed" if artifact_error else "skipped"
            job["segments_before"] = list((existing or {}).get("segments") or [])
            atomic_write_json(
                summary_path, compose_summary(job, status, reason=artifact_error or unavailable)
            )
            self.log("%s: %s: %s" % (label, status, artifact_error or unavailable))
            return status
        if decision == resume.SKIP:
            # Measured with the artifact as it was then; a copy corrupted since does not undo it.
            if not runnable:
                self.log(
                    "%s: already complete%s"
                    % (label, " (artifact now: %s)" % artifact_error if artifact_error else "")
                )
            else:
                self.log("%s: already complete (%d images)" % (label, rows))
            return "complete"
        if decision == resume.REFUSE:
            self.log(
                "%s: existing rows were measured with other settings (%s vs %s): not mixing them; "
                "use --force to redo"
                % (
                    label,
                    json.dumps(previous_job.get("settings"), sort_keys=True),
                    json.dumps(job["settings"], sort_keys=True),
                )
            )
            return "conflict"
        if decision == resume.COLD_RESTART:
            kept = resume.set_aside(result_dir)
            self.log(
                "%s: the cold run stopped after %d of %d images restarts from scratch (a resumed "
                "process would hold a second first inference); its rows are kept as %s"
                % (label, rows, plan.count, kept)
            )
            rows, existing = 0, None
        job["segments_before"] = list((existing or {}).get("segments") or [])
        if decision == resume.FINISH:
            summary = compose_summary(job, "complete")
            atomic_write_json(summary_path, summary)
            self.log("%s: complete (rows were all written before the interruption)" % label)
            return "complete"
        timings = read_timings(timings_path) if rows else None
        job["start_index"] = rows
        job["seq_start"] = int(timings["seq"][-1]) + 1 if rows else 0
        # A kill of the whole runtime leaves its segment out of the summary; the rows still say it.
        job["segment"] = max(len(job["segments_before"]), int(timings["segment"].max()) + 1 if rows else 0)
        cooldown = None
        if self.ran_any and plan.cooldown.kind != "none":
            self.log("cooldown %s ..." % plan.cooldown.describe())
            cooldown = plan.cooldown.wait()
        self.ran_any = True
        if rows:
            self.log("%s: resuming at image %d of %d" % (label, rows, plan.count))
        # The "in progress" summary: what a crash of everything leaves (a partial result), and the
        # space the final summary reuses on a full disk.
        job_path = os.path.join(result_dir, "job.json")
        try:
            atomic_write_json(
                summary_path,
                compose_summary(job, "partial", reason="in progress"),
                reserve_bytes=SUMMARY_RESERVE_BYTES,
            )
            atomic_write_json(job_path, job)
        except (IOError, OSError) as exc:
            self.log("%s: failed: cannot prepare %s: %s" % (label, result_dir, exc))
            return "failed"
        return self._supervise(job, job_path, label, cooldown)

    def _supervise(self, job, job_path, label, cooldown):
        plan = self.plan
        result_dir = job["result_dir"]
        summary_path = os.path.join(result_dir, "summary.json")
        log_path = os.path.join(result_dir, "child.log")
        command = [*plan.child_prefix, sys.executable, "-m", "edgebench_runtime", "_child", job_path]
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        oom_watch = OomWatch()
        started = time.time()
        with open(log_path, "ab") as log_handle:
            log_handle.write(("--- segment %d %s\n" % (job["segment"], iso_time(started))).encode("utf-8"))
            log_handle.flush()
            child = subprocess.Popen(
                command,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_preexec(plan.memory_limit_mb),
                close_fds=True,
            )
        sampler = None
        if plan.telemetry_interval and plan.telemetry_interval > 0:
            try:
                sampler = Sampler(
                    os.path.join(result_dir, "telemetry.csv"),
                    plan.telemetry_interval,
                    pid=child.pid,
                    segment=job["segment"],
                ).start()
            except (IOError, OSError) as exc:
                self.log("%s: telemetry disabled: %s" % (label, exc))
        counter = RowCounter(os.path.join(result_dir, "timings.csv"))
        timed_out = False
        last_status = 0.0
        first_row_at = None
        rows_at_start = job["start_index"]
        interrupted = None
        try:
            while True:
                try:
                    code = child.poll()
                    if code is not None:
                        break
                    if not oom_watch.follow(child):
                        break
                    now = time.time()
                    if plan.timeout_s and now - started > plan.timeout_s:
                        timed_out = True
                        self._stop_child(child)
                        continue
                    if now - last_status >= plan.status_interval:
                        last_status = now
                        done = counter.rows()
                        if done > rows_at_start and first_row_at is None:
                            first_row_at = (now, done)
                        self._report(job, label, started, done, first_row_at, now, child.pid)
                    time.sleep(0.1 if now - started < 2 else 0.25)
                except KeyboardInterrupt:
                    interrupted = True
                    self._stop_child(child, first=signal.SIGINT)
        finally:
            if child.poll() is None:
                self._stop_child(child)
            if sampler is not None:
                sampler.stop()
            self.progress.end()
        summary = self._classify(job, child, timed_out, interrupted, oom_watch, log_path, started)
        windows = []
        for segment in summary.get("segments") or []:
            if segment.get("measure_started_unix") and segment.get("measure_ended_unix"):
                windows.append(
                    (segment["measure_started_unix"], segment["measure_ended_unix"], segment.get("images", 0))
                )
        telemetry = summarize_telemetry(os.path.join(result_dir, "telemetry.csv"), windows)
        summary["throttling"] = telemetry.pop("throttling")
        summary["energy"] = telemetry.pop("energy")
        telemetry["interval_s"] = plan.telemetry_interval
        telemetry["collector_errors"] = sampler.errors[:20] if sampler is not None else []
        summary["telemetry"] = telemetry
        summary["cooldown"] = cooldown or {"policy": plan.cooldown.describe(), "waited_s": 0.0}
        summary["validity"] = validity(summary, job.get("validity_rules"))  # now with throttling
        try:
            atomic_write_json(summary_path, summary)
        except (IOError, OSError) as exc:
            self.log("%s: cannot write summary.json: %s" % (label, exc))
        status = summary["status"]
        verdict = summary.get("correctness") or {}
        self.log(
            "%s: %s%s (%d/%d images)%s"
            % (
                label,
                status,
                (": " + summary["reason"]) if summary.get("reason") else "",
                summary["images"]["measured"],
                job["count"],
                ("; CORRECTNESS CHECK FAILED: %s" % verdict.get("reason"))
                if verdict.get("passed") is False
                else "",
            )
        )
        if interrupted:
            raise KeyboardInterrupt()
        return status

    def _report(self, job, label, started, done, first_row_at, now, pid):
        current = current_job(job, started, done, first_row_at, now, pid)
        self.status.write(current=current)
        self.progress.show(label, done, job["count"], current["rate_images_per_s"], current["eta_s"])

    def _stop_child(self, child, first=signal.SIGTERM, grace=5.0):
        try:
            child.send_signal(first)
        except OSError:
            return
        deadline = time.time() + grace
        while time.time() < deadline and child.poll() is None:
            time.sleep(0.05)
        if child.poll() is None:
            child.kill()
            child.wait()

    def _classify(self, job, child, timed_out, interrupted, oom_watch, log_path, started):
        code = child.returncode
        summary_path = os.path.join(job["result_dir"], "summary.json")
        written = read_json(summary_path)
        segments = (written or {}).get("segments") or []
        own = segments[-1] if len(segments) == len(job["segments_before"]) + 1 else None
        rows = read_timings(os.path.join(job["result_dir"], "timings.csv"))
        seg_rows = int((rows["segment"] == job["segment"]).sum()) if rows["segment"].size else 0
        if own is not None and own.get("pid") == child.pid and "exit" in own and not timed_out:
            own["images"] = seg_rows
            own["exit_code"] = code
            return written
        segment = (
            own
            if own is not None and own.get("pid") == child.pid
            else {
                "segment": job["segment"],
                "pid": child.pid,
                "start_index": job["start_index"],
                "started": iso_time(started),
            }
        )
        segment.update({"images": seg_rows, "exit_code": code, "finished": iso_time()})
        tail = _log_tail(log_path)
        error = tail[-2000:] or None
        if timed_out:
            status, reason = (
                "timeout",
                "timed out after %g s; %d of %d images measured"
                % (self.plan.timeout_s, int(rows["index"].size), job["count"]),
            )
        elif interrupted:
            status, reason = "partial", "interrupted by the user"
        elif code is not None and code < 0:
            signame = _signal_name(-code)
            evidence = None
            if -code == signal.SIGKILL:
                evidence = oom_watch.evidence(child.pid)
            if evidence:
                status, reason = "oom", "killed by SIGKILL: kernel OOM killer (%s)" % evidence
            else:
                status, reason = (
                    "failed",
                    "killed by %s (no out-of-memory evidence found%s)" % (signame, oom_watch.describe()),
                )
        elif code == CHILD_EXIT["oom"] or "MemoryError" in tail or "bad_alloc" in tail:
            status, reason = "oom", "out of memory (MemoryError in the child; exit %s)" % code
        elif code == CHILD_EXIT["skipped"]:
            status, reason = "skipped", "provider unavailable (see child.log)"
        else:
            status, reason = "failed", "child exited with code %s without a summary" % code
        segment["exit"] = status
        segment.setdefault("measure_ended_unix", time.time())
        job = dict(job)
        return compose_summary(job, status, reason=reason, error=error, segment=segment)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except (ValueError, AttributeError):
        return "signal %d" % number


def run_plan(plan: Plan) -> int:
    """Run a Plan; returns the exit code (see EXIT). Raises UsageError/InputError."""
    return Supervisor(plan).run()
