"""The parent side of ``edgebench-runtime run``: one supervised child per model x provider x mode.

For every run the supervisor decides (resume rules), prepares the result directory, waits the
cooldown, starts the child (``python -m edgebench_runtime _child JOB``), samples telemetry of the
child, keeps status.json fresh, enforces the timeout and classifies how the child ended:

* the child wrote its final summary.json: that is the truth (complete, failed, oom via
  MemoryError/allocation failure, skipped);
* killed by SIGKILL: ``oom`` when the kernel's OOM evidence is found (the child's memory cgroup
  ``oom_kill`` counter rose, or /dev/kmsg names the pid, or, where the cgroup files cannot be read,
  the kernel's own oom_kill counter in /proc/vmstat rose while the child ran), otherwise ``failed``;
* killed by the timeout: ``timeout``; any other death: ``failed`` with the child's log tail.

Resume rules (without ``--force``): complete with at least the requested rows -> skipped over
("already complete"); anything else with rows -> continued from the next image (a torn last line
is dropped first); settings that differ from the existing rows' -> refused, the files untouched.
``skipped`` results are re-evaluated. ``--force`` deletes the run's files and redoes it.

Python 3.6 compatible.
"""

import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

from .bench import CHILD_EXIT
from .summary import compose_summary
from .manifest import ArtifactError, load_manifest, verify_artifact
from .plan import InputError, Plan, UsageError, validate
from .results import SCHEMA_VERSION, atomic_write_json, read_json, read_timings, repair_timings, validity
from .telemetry import Sampler, summarize_telemetry
from .vocabulary import BAD_STATUSES

__all__ = [
    "EXIT",
    "InputError",
    "OomWatch",
    "Plan",
    "UsageError",
    "kmsg_oom_evidence",
    "memory_cgroup",
    "oom_kill_count",
    "run_plan",
    "vmstat_oom_kills",
]

EXIT = {"ok": 0, "internal": 1, "usage": 2, "input": 3, "incomplete": 4, "interrupted": 130}
#: summary.json is first written padded to this size, so that the final summary can be rewritten in
#: place when the disk fills up during the run.
SUMMARY_RESERVE_BYTES = 16384


class Interrupted(Exception):
    pass


def _iso(when=None):
    return datetime.datetime.fromtimestamp(
        time.time() if when is None else when, datetime.timezone.utc
    ).isoformat()


class StatusFile(object):
    """status.json at the output root: rewritten atomically; write errors never stop the run."""

    def __init__(self, plan, total_jobs):
        self.path = os.path.join(plan.output_dir, "status.json")
        self.data = {
            "schema_version": SCHEMA_VERSION,
            "state": "running",
            "pid": os.getpid(),
            "started": _iso(),
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

    def finish_job(self, status):
        self.data["jobs_done"] += 1
        self.data["counts"][status] = self.data["counts"].get(status, 0) + 1
        self.data["current"] = None

    def write(self, **changes):
        self.data.update(changes)
        now = time.time()
        self.data["updated"] = _iso(now)
        current = self.data.get("current")
        eta = None
        if current and current.get("eta_s") is not None:
            remaining_jobs = self.data["jobs_total"] - self.data["jobs_done"] - 1
            eta = current["eta_s"] + max(0, remaining_jobs) * (current.get("job_estimate_s") or 0)
        self.data["eta_s"] = eta
        self.data["eta"] = _iso(now + eta) if eta is not None else None
        try:
            atomic_write_json(self.path, self.data)
        except (IOError, OSError) as exc:
            if not self.warned:
                self.warned = True
                sys.stderr.write("edgebench-runtime: cannot update %s: %s\n" % (self.path, exc))


class RowCounter(object):
    """Counts complete lines of a growing timings.csv without rereading it."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.lines = 0

    def rows(self):
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
    def __init__(self, enabled, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.active = False

    def show(self, label, done, total, rate, eta):
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

    def end(self):
        if self.enabled and self.active:
            self.stream.write("\n")
            self.stream.flush()
            self.active = False


# --- out-of-memory evidence ---------------------------------------------------------------------


def memory_cgroup(pid):
    """(version, directory) of the memory cgroup of ``pid``, or None."""
    try:
        with open("/proc/%d/cgroup" % pid) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and "memory" in parts[1].split(","):
            return 1, os.path.join("/sys/fs/cgroup/memory", parts[2].lstrip("/"))
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0] == "0" and parts[1] == "":
            return 2, os.path.join("/sys/fs/cgroup", parts[2].lstrip("/"))
    return None


def oom_kill_count(cgroup):
    if not cgroup:
        return None
    version, directory = cgroup
    name = "memory.oom_control" if version == 1 else "memory.events"
    try:
        with open(os.path.join(directory, name)) as handle:
            text = handle.read()
    except (IOError, OSError):
        return None
    match = re.search(r"^oom_kill (\d+)", text, re.M)
    return int(match.group(1)) if match else None


def kmsg_oom_evidence(pid, limit_bytes=8 << 20):
    """A kernel log line saying the OOM killer killed ``pid``, or None (also when unreadable)."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    pattern = re.compile(
        r"(Killed process %d\b|oom-kill:.*\bpid=%d\b|Memory cgroup out of memory: Killed process %d\b)"
        % (pid, pid, pid)
    )
    found = None
    total = 0
    try:
        while total < limit_bytes:
            try:
                record = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == 32:  # EPIPE: record overwritten while reading; go on
                    continue
                break
            if not record:
                break
            total += len(record)
            text = record.decode("utf-8", "replace")
            if pattern.search(text):
                found = text.split(";", 1)[-1].strip()
    finally:
        os.close(fd)
    return found


def vmstat_oom_kills(path="/proc/vmstat"):
    """The kernel's count of out-of-memory kills since boot (Linux 4.13+), or None.

    Any user can read it on any kernel, whatever cgroup files and kernel log a device hides: it is
    the evidence of last resort. It counts every OOM kill on the device, so it is read only
    around one child's life and only consulted for a child that died by SIGKILL.
    """
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (IOError, OSError, ValueError):
        return None
    return None


def _is_root_cgroup(cgroup):
    return os.path.normpath(cgroup[1]) in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup")


class OomWatch(object):
    """Where the kernel would count an out-of-memory kill of a child, and the count before it ran.

    The child starts in this process's memory cgroup, so that counter is read before the child
    exists: a child killed before the first poll can no longer be asked for its own. A prefix
    (``--child-prefix``) may move the child elsewhere; ``follow`` picks that up while it runs.
    """

    def __init__(self, cgroup=None, vmstat="/proc/vmstat"):
        self.cgroup = cgroup or memory_cgroup(os.getpid())
        self.before = oom_kill_count(self.cgroup)
        self.vmstat = vmstat
        self.kernel_before = vmstat_oom_kills(vmstat)

    def follow(self, child):
        """Track the cgroup of a running ``child``; False when it was found ended (``child.poll()`` set)."""
        seen = memory_cgroup(child.pid)
        # An exiting process (PF_EXITING: from the start of its exit, through the freeing of its
        # memory, until it is a zombie and after) reports the root cgroup of a v1 hierarchy. A
        # child being killed by the OOM killer is exactly such a process, so the root is never
        # adopted: a prefix moves a child into a cgroup, not out to the root.
        if seen is None or seen == self.cgroup or _is_root_cgroup(seen):
            return True
        count = oom_kill_count(seen)
        if child.poll() is not None:  # only a read that the child outlived is trusted
            return False
        self.cgroup, self.before = seen, count
        return True

    def describe(self):
        """Where the evidence was looked for, for a reason that says no OOM kill was seen."""
        kernel = "; %s oom_kill %s -> %s" % (self.vmstat, self.kernel_before, vmstat_oom_kills(self.vmstat))
        if not self.cgroup:
            return ": no memory cgroup readable" + kernel
        return ": memory cgroup %s oom_kill %s -> %s%s" % (
            self.cgroup[1],
            self.before,
            oom_kill_count(self.cgroup),
            kernel,
        )

    def evidence(self, pid):
        """Why the SIGKILL of ``pid`` was the OOM killer's, or None."""
        after = oom_kill_count(self.cgroup)
        if after is not None and self.before is not None and after > self.before:
            return "memory cgroup %s oom_kill %d -> %d" % (self.cgroup[1], self.before, after)
        if after and self.before is None:
            return "memory cgroup %s oom_kill = %d" % (self.cgroup[1], after)
        found = kmsg_oom_evidence(pid)
        if found or after is not None:
            # A readable cgroup counter that did not rise is a no: the kernel counts every OOM
            # kill, global or not, in the victim's cgroup. The global counter is for a device that
            # hides its cgroups, where it is the only evidence there is.
            return found
        kernel_after = vmstat_oom_kills(self.vmstat)
        if kernel_after is not None and self.kernel_before is not None and kernel_after > self.kernel_before:
            return "the kernel counted %d out-of-memory kill(s) while it ran (%s oom_kill %d -> %d)" % (
                kernel_after - self.kernel_before,
                self.vmstat,
                self.kernel_before,
                kernel_after,
            )
        return None


# --- one job ----------------------------------------------------------------------------------


def _settings(plan, provider, manifest_sha):
    return {
        "backend_options": plan.backend_options(provider),
        "warmup": plan.warmup,
        "model_sha256": manifest_sha,
        "use_cv2": plan.use_cv2,
        "memory_limit_mb": plan.memory_limit_mb,
    }


_RESULT_FILES = ("timings.csv", "gpu_timings.csv", "summary.json")


def _clear(result_dir):
    for name in os.listdir(result_dir):
        if name in (*_RESULT_FILES, "job.json", "child.log") or name.startswith("telemetry"):
            os.unlink(os.path.join(result_dir, name))


def _set_aside(result_dir):
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


def _preexec(memory_limit_mb):
    def apply():
        if memory_limit_mb:
            import resource

            limit = int(memory_limit_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _log_tail(path, size=3000):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return ""


class Supervisor(object):
    def __init__(self, plan):
        self.plan = plan
        self.results = []
        self.ran_any = False
        self.interrupted = False

    def log(self, text):
        # The log goes to run.log on the device's disk: a full disk must not take the run down.
        with contextlib.suppress(OSError):
            self.plan.log(text)

    def run(self):
        plan = self.plan
        images = validate(plan)
        jobs = [(m, p, mode) for m in plan.models for p in plan.providers for mode in plan.modes]
        self.status = StatusFile(plan, len(jobs))
        self.status.write()
        self.progress = ProgressBar(plan.progress)
        try:
            from .probe import probe

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
                    from .backends import provider_availability

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
                    "settings": _settings(plan, provider, sha),
                }
            )
        else:
            job.update(
                {
                    "manifest": None,
                    "artifact": {"dir": os.path.abspath(artifact_dir), "verified": False},
                    "settings": _settings(plan, provider, None),
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
            _clear(result_dir)
        job = self._base_job(model, provider, mode, images, manifest, result_dir)
        existing = read_json(summary_path)
        try:
            rows = repair_timings(timings_path)
        except ValueError as exc:
            self.log("%s: %s; use --force to start over" % (label, exc))
            return "conflict"
        if artifact_error or unavailable:
            status = "failed" if artifact_error else "skipped"
            if existing and existing.get("status") == "complete" and rows >= plan.count:
                # Measured with the artifact as it was then; a copy corrupted since does not undo it.
                self.log(
                    "%s: already complete%s"
                    % (label, " (artifact now: %s)" % artifact_error if artifact_error else "")
                )
                return "complete"
            job["segments_before"] = list((existing or {}).get("segments") or [])
            atomic_write_json(
                summary_path, compose_summary(job, status, reason=artifact_error or unavailable)
            )
            self.log("%s: %s: %s" % (label, status, artifact_error or unavailable))
            return status
        previous_job = read_json(os.path.join(result_dir, "job.json"))
        if rows and previous_job and previous_job.get("settings") != job["settings"]:
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
        if existing and existing.get("status") == "complete" and rows >= plan.count:
            self.log("%s: already complete (%d images)" % (label, rows))
            return "complete"
        if rows and rows < plan.count and job["mode"] == "cold":
            # A resumed process would hold a second first inference: cold runs restart from scratch.
            kept = _set_aside(result_dir)
            self.log(
                "%s: the cold run stopped after %d of %d images restarts from scratch (a resumed "
                "process would hold a second first inference); its rows are kept as %s"
                % (label, rows, plan.count, kept)
            )
            rows, existing = 0, None
        job["segments_before"] = list((existing or {}).get("segments") or [])
        if rows >= plan.count:
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
            log_handle.write(("--- segment %d %s\n" % (job["segment"], _iso(started))).encode("utf-8"))
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
        total = job["count"]
        rate = eta = None
        if first_row_at is not None and now > first_row_at[0] and done > first_row_at[1]:
            rate = (done - first_row_at[1]) / (now - first_row_at[0])
            eta = (total - done) / rate if rate > 0 else None
        estimate = (now - started) + (eta or 0) if eta is not None else None
        current = {
            "child_pid": pid,
            "model": job["model"],
            "provider": job["provider"],
            "mode": job["mode"],
            "images_done": done,
            "images_total": total,
            "started": _iso(started),
            "rate_images_per_s": rate,
            "eta_s": eta,
            "job_estimate_s": estimate,
        }
        self.status.write(current=current)
        self.progress.show(label, done, total, rate, eta)

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
                "started": _iso(started),
            }
        )
        segment.update({"images": seg_rows, "exit_code": code, "finished": _iso()})
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


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except (ValueError, AttributeError):
        return "signal %d" % number


def run_plan(plan):
    """Run a Plan; returns the exit code (see EXIT). Raises UsageError/InputError."""
    return Supervisor(plan).run()
