"""Driving the fleet from Python: `benchmark.yml` through ansible-runner with live progress, and the
inventory with each device's probed facts.

The playbooks stay the single place where anything happens on a device; this module only starts
them, watches their event stream and reads the devices' progress out of it: every
``edgebench-runtime start | wait | status`` prints a versioned progress line (PROGRESS_PREFIX) that
holds the device's status.json, whichever task ran it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgebench_runtime.control import PROGRESS_PREFIX

__all__ = ["REPO_ROOT", "FleetRun", "HostProgress", "list_fleet", "run_benchmark"]

REPO_ROOT = Path(__file__).resolve().parent.parent
# ansible-runner's working directories (its `stdout` is the full playbook log), newest kept.
RUNNER_DIR = REPO_ROOT / ".edgebench-local" / "runner"
KEEP_RUNNER_DIRS = 20


@dataclass
class HostProgress:
    host: str
    phase: str = "waiting"
    model: str | None = None
    job: int = 0
    jobs: int = 0
    images_done: int = 0
    images_total: int = 0
    eta_s: float | None = None
    state: str = "ok"  # ok | failed | unreachable
    failure: str | None = None  # the failing task and its message

    def line(self) -> str:
        text = f"{self.host:<16} {self.phase:<10}"
        if self.model:
            text += f" model {self.job}/{self.jobs} {self.model:<28}"
            text += f" {self.images_done}/{self.images_total} images"
            if self.eta_s is not None:
                text += f" ETA {int(self.eta_s // 60)}m{int(self.eta_s % 60):02d}s"
        if self.state != "ok":
            text += f" [{self.state}]"
        return text


@dataclass
class FleetRun:
    rc: int
    status: str
    run_id: str | None
    hosts: dict[str, HostProgress] = field(default_factory=dict)
    results_dir: Path | None = None
    log_path: Path | None = None  # the runner's full playbook output, kept


def _environment() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    # ansible-runner finds ansible-playbook on this process's PATH: the venv may not be activated.
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return {
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"),
    }


def _failure_text(task: str | None, result: dict) -> str:
    """The failing task and what it said: its message, and the end of its stderr (or stdout) when
    the message alone is Ansible's generic one."""
    message = str(result.get("msg") or "").strip()
    tail = ""
    for stream in ("stderr", "stdout", "module_stderr", "module_stdout"):
        text = str(result.get(stream) or "").strip()
        if text:
            tail = "\n".join(text.splitlines()[-8:])
            break
    if tail and tail not in message:
        message = f"{message}\n{tail}" if message else tail
    return f"{task or 'a task'}: {message or 'failed (no message)'}"


def _runner_dir() -> Path:
    RUNNER_DIR.mkdir(parents=True, exist_ok=True)
    old = sorted(path for path in RUNNER_DIR.iterdir() if path.is_dir())
    for path in old[: max(0, len(old) - KEEP_RUNNER_DIRS + 1)]:
        shutil.rmtree(path, ignore_errors=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RUNNER_DIR / f"{stamp}-{os.getpid()}"
    path.mkdir()
    return path


def _apply_status(progress: HostProgress, stdout: str) -> None:
    """Take the device's progress from the last progress line of a task's output, if any."""
    lines = [line for line in stdout.splitlines() if line.startswith(PROGRESS_PREFIX)]
    if not lines:
        return
    try:
        status = json.loads(lines[-1][len(PROGRESS_PREFIX) :]).get("status") or {}
    except (ValueError, AttributeError):
        return
    current = status.get("current") or {}
    progress.model = current.get("model")
    progress.job = int(status.get("jobs_done") or 0) + (1 if current else 0)
    progress.jobs = int(status.get("jobs_total") or 0)
    progress.images_done = int(current.get("images_done") or 0)
    progress.images_total = int(current.get("images_total") or 0)
    progress.eta_s = current.get("eta_s")


def run_benchmark(
    inventory: str | None = None,
    limit: str | None = None,
    run_id: str | None = None,
    tags: str | None = None,
    extravars: dict | None = None,
    on_progress: Callable[[dict[str, HostProgress]], None] | None = None,
    private_data_dir: str | None = None,
) -> FleetRun:
    """Run benchmark.yml with ansible-runner; per-host progress goes to ``on_progress``."""
    import ansible_runner

    hosts: dict[str, HostProgress] = {}
    extravars = dict(extravars or {})
    if run_id:
        extravars["run_id"] = run_id
    seen_run_id: list[str] = []

    def handle(event: dict) -> bool:
        data = event.get("event_data") or {}
        host = data.get("host")
        if not host:
            return True
        progress = hosts.setdefault(host, HostProgress(host))
        role = data.get("role")
        if role:
            progress.phase = role
        kind = event.get("event")
        result = data.get("res") or {}
        if kind == "runner_on_unreachable":
            progress.state = "unreachable"
            progress.failure = _failure_text(data.get("task"), result)
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            progress.state = "failed"
            if progress.failure is None:  # the first failure is the cause; later ones follow from it
                progress.failure = _failure_text(data.get("task"), result)
        elif kind in ("runner_retry", "runner_on_ok") and PROGRESS_PREFIX in str(result.get("stdout", "")):
            _apply_status(progress, result.get("stdout", ""))
        if not seen_run_id and isinstance(result.get("ansible_facts"), dict):
            facts_run_id = result["ansible_facts"].get("run_id")
            if facts_run_id:
                seen_run_id.append(facts_run_id)
        if on_progress is not None:
            on_progress(hosts)
        return True

    # Kept after the run: its artifacts/<id>/stdout is the whole playbook log.
    runner_dir = Path(private_data_dir) if private_data_dir else _runner_dir()
    runner = ansible_runner.run(
        private_data_dir=str(runner_dir),
        project_dir=str(REPO_ROOT),
        playbook="benchmark.yml",
        inventory=str(Path(inventory).resolve()) if inventory else str(REPO_ROOT / "inventory" / "local.yml"),
        limit=limit,
        tags=tags,
        extravars=extravars,
        envvars=_environment(),
        event_handler=handle,
        quiet=True,
    )
    resolved = run_id or (seen_run_id[0] if seen_run_id else None)
    results = Path(extravars.get("edgebench_results_dir", REPO_ROOT / "results"))
    log_path = Path(runner.config.artifact_dir) / "stdout"
    return FleetRun(
        rc=runner.rc,
        status=runner.status,
        run_id=resolved,
        hosts=hosts,
        results_dir=results / resolved if resolved else None,
        log_path=log_path if log_path.is_file() else None,
    )


def _latest_env(results_dir: Path, host: str) -> tuple[str | None, dict | None]:
    """The newest collected env.json of a host: (run id, facts)."""
    candidates = sorted(Path(results_dir).glob(f"*/{host}/env.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(candidates):
        try:
            return path.parent.parent.name, json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return None, None


def list_fleet(inventory: str | None = None, results_dir: Path | None = None) -> list[dict]:
    """Inventory hosts with their groups, label and the facts their last collected run probed
    (None for a host that has not run yet); no device is contacted."""
    import ansible_runner

    inventory = str(Path(inventory).resolve()) if inventory else str(REPO_ROOT / "inventory" / "local.yml")
    listing, error = ansible_runner.get_inventory(
        action="list", inventories=[inventory], response_format="json", envvars=_environment(), quiet=True
    )
    if not isinstance(listing, dict):
        raise RuntimeError(f"cannot read inventory {inventory}: {error or listing}")
    groups: dict[str, list[str]] = {}
    for group, body in listing.items():
        if isinstance(body, dict) and group not in ("_meta", "all", "ungrouped"):
            for host in body.get("hosts", []):
                groups.setdefault(host, []).append(group)
    for host in listing.get("ungrouped", {}).get("hosts", []):
        groups.setdefault(host, [])
    host_vars = listing.get("_meta", {}).get("hostvars", {})
    rows = []
    for host in sorted(groups):
        run_id, facts = _latest_env(results_dir or REPO_ROOT / "results", host)
        rows.append({
            "host": host,
            "groups": sorted(groups[host]),
            "label": host_vars.get(host, {}).get("edgebench_device_label"),
            "address": host_vars.get(host, {}).get("ansible_host"),
            "probed_in_run": run_id,
            "facts": facts,
        })  # fmt: skip
    return rows
