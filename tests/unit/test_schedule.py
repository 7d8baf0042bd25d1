from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys

import pytest

from edgebench.fleet import FleetRun
from edgebench.schedule import scheduled_run

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _runner(calls):
    def run(**kwargs):
        calls.append(kwargs)
        print("PLAY RECAP from the fake runner")
        return FleetRun(rc=0, status="successful", run_id=f"run{len(calls)}")

    return run


def test_each_run_gets_its_own_log_and_old_logs_are_pruned(tmp_path):
    calls = []
    for index in range(4):
        (tmp_path / f"run-2000010{index}T000000Z.log").write_text("old")
    assert scheduled_run(tmp_path, keep_logs=3, inventory="inv.yml", limit="rpis", runner=_runner(calls)) == 0
    assert calls[0]["inventory"] == "inv.yml" and calls[0]["limit"] == "rpis"
    logs = sorted(tmp_path.glob("run-*.log"))
    assert len(logs) == 3
    newest = logs[-1].read_text()
    assert "PLAY RECAP from the fake runner" in newest and "run id: run1" in newest
    journal = (tmp_path / "schedule.log").read_text()
    assert "started" in journal and "finished: run id run1, rc 0" in journal and "removed old log" in journal


def test_a_second_start_while_one_runs_is_skipped_and_logged(tmp_path):
    calls = []
    with (tmp_path / "schedule.lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242")
        held.flush()
        assert scheduled_run(tmp_path, runner=_runner(calls)) == 0
    assert calls == []
    assert (
        "skipped: a scheduled run is still in progress (pid 4242)" in (tmp_path / "schedule.log").read_text()
    )
    assert not list(tmp_path.glob("run-*.log"))


@pytest.mark.skipif(shutil.which("crontab") is None, reason="crontab (Debian package cron) is not installed")
def test_schedule_playbook_installs_and_removes_the_cron_entry(tmp_path):
    cron_file = tmp_path / "edgebench.cron"
    base = [
        str(REPO / ".venv/bin/ansible-playbook")
        if (REPO / ".venv/bin/ansible-playbook").exists()
        else shutil.which("ansible-playbook"),
        "playbooks/schedule.yml",
        "-e",
        f"schedule_cron_file={cron_file}",
    ]
    env = {"PATH": f"{sys.prefix}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ANSIBLE_NOCOLOR": "1"}
    subprocess.run(
        [*base, "-e", "schedule_hour=3", "-e", "schedule_limit=jetsons"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    entry = cron_file.read_text()
    assert "0 3 * * *" in entry and "scheduled-run" in entry and "-l jetsons" in entry
    again = subprocess.run(
        [*base, "-e", "schedule_hour=3", "-e", "schedule_limit=jetsons"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "changed=0" in again.stdout
    subprocess.run([*base, "-e", "schedule_state=absent"], cwd=REPO, env=env, check=True, capture_output=True)
    assert not cron_file.exists() or "scheduled-run" not in cron_file.read_text()
