"""``edgebench-runtime start | wait | status`` (control.py): a detached benchmark found again by its
pid file in this boot only, its exit code read back, a full disk named, and one versioned progress
line per command."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from test_run_plan import _plan, _write

from edgebench_runtime import cli, control
from edgebench_runtime.control import PROGRESS_PREFIX


def _records(text):
    lines = [line for line in text.splitlines() if line.startswith(PROGRESS_PREFIX)]
    assert len(lines) == 1, text
    return json.loads(lines[0][len(PROGRESS_PREFIX) :])


def _boot_id():
    with open("/proc/sys/kernel/random/boot_id") as handle:
        return handle.read().strip()


def test_start_detaches_a_run_and_wait_reads_how_it_ended(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    # No artifacts where the plan says: the runtime refuses it (exit 3, input error).
    plan = _write(tmp_path, _plan(tmp_path / "missing"))
    assert cli.main(["start", "--plan", str(plan), "--work-dir", str(work), "--models", "alpha"]) == 0
    started = _records(capsys.readouterr().out)
    assert started["started"] is True and started["state"] in ("running", "stopped")
    pid, boot = (work / "run.pid").read_text().split()
    assert int(pid) > 0 and boot == _boot_id()
    assert cli.main(["wait", "--plan", str(plan), "--work-dir", str(work), "--for", "60"]) == 0
    ended = _records(capsys.readouterr().out)
    assert ended["state"] == "stopped" and ended["rc"] == 3 and ended["pid"] is None
    assert "artifacts directory" in (work / "run.log").read_text()
    assert ended["free_bytes"] > 0 and ended["disk_full"] == []


def test_a_running_benchmark_is_attached_to_not_started_again(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    plan = _write(tmp_path, _plan(tmp_path))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (work / "run.pid").write_text(f"{sleeper.pid} {_boot_id()}\n")
        assert control.is_running(str(work)) == sleeper.pid
        assert cli.main(["start", "--plan", str(plan), "--work-dir", str(work)]) == 0
        record = _records(capsys.readouterr().out)
        assert record["started"] is False and record["pid"] == sleeper.pid and record["rc"] is None
        assert not (work / "run.log").exists()
        began = time.monotonic()
        assert cli.main(["wait", "--plan", str(plan), "--work-dir", str(work), "--for", "0.3"]) == 0
        assert _records(capsys.readouterr().out)["state"] == "running"
        assert time.monotonic() - began < 10
    finally:
        sleeper.kill()
        sleeper.wait()
    # The same pid from another boot (reused after a reboot) is not the benchmark.
    (work / "run.pid").write_text(f"{sleeper.pid} 00000000-another-boot\n")
    assert control.is_running(str(work)) is None


def test_status_names_a_killed_run_and_the_runs_that_filled_the_disk(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    data = _plan(tmp_path)
    plan = _write(tmp_path, data)
    out = tmp_path / "out"
    (out / "alpha" / "cpu-warm").mkdir(parents=True)
    full = '{"reason": "[Errno 28] No space left on device"}'
    (out / "alpha" / "cpu-warm" / "summary.json").write_text(full)
    (out / "alpha" / "cpu-cold").mkdir()
    (out / "alpha" / "cpu-cold" / "summary.json").write_text('{"status": "complete"}')
    (out / "status.json").write_text('{"state": "finished", "jobs_done": 2}')
    (work / "run.rc").write_text("none\n")  # what start writes; the end never overwrote it
    assert cli.main(["status", "--plan", str(plan), "--work-dir", str(work)]) == 0
    record = _records(capsys.readouterr().out)
    assert record["state"] == "stopped" and record["rc"] is None
    assert record["disk_full"] == ["alpha/cpu-warm"]
    assert record["status"] == {"state": "finished", "jobs_done": 2}
    (work / "run.rc").write_text("4   \n")
    assert cli.main(["status", "--plan", str(plan), "--work-dir", str(work)]) == 0
    assert _records(capsys.readouterr().out)["rc"] == 4


def test_a_bad_plan_is_refused_with_usage_exit(tmp_path, capsys):
    path = tmp_path / "plan.json"
    path.write_text("{}")
    assert cli.main(["status", "--plan", str(path)]) == 2
    assert "run_id is missing" in capsys.readouterr().err


def test_start_refuses_to_start_without_the_space_asked_for(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    plan = _write(tmp_path, _plan(tmp_path / "missing"))
    huge = str(1 << 62)
    assert cli.main(["start", "--plan", str(plan), "--work-dir", str(work), "--need-bytes", huge]) == 0
    record = _records(capsys.readouterr().out)
    assert record["started"] is False and record["state"] == "stopped"
    assert record["need_bytes"] == 1 << 62 and record["free_bytes"] < record["need_bytes"]
    assert not (work / "run.pid").exists() and not (work / "run.log").exists()
