"""Provisioning a device that is already provisioned as planned skips the pushes and pip runs (the
stamp in its venv), and provisions again when the stamp no longer matches."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ansible")]
INSTALL_TASKS = (
    "Push the dependency wheels for this platform",
    "Bring the environment's pip up to date from the wheelhouse",
    "Install the runtime's dependencies",
    "Install edgebench itself",
)


def provision(artifacts_dir: Path, work_dir: Path) -> dict[str, str]:
    """Run the provision phase on this machine; return each install task's status for localhost."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"}
    plan = {
        "edgebench_models": ["mobilenet_v3_small"],
        "edgebench_artifacts_dir": str(artifacts_dir),
        "edgebench_work_dir": str(work_dir),
    }
    command = [str(bin_dir / "ansible-playbook"), "benchmark.yml", "--tags", "provision"]
    done = subprocess.run(
        [*command, "-e", json.dumps(plan)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    statuses = {}
    for task in INSTALL_TASKS:
        found = re.search(rf"TASK \[provision : {re.escape(task)}\][^\n]*\n(\w+): \[localhost\]", done.stdout)
        statuses[task] = found.group(1) if found else "absent"
    return statuses


def test_a_provisioned_device_is_not_installed_again_until_its_stamp_differs(artifacts_dir, tmp_path):
    work_dir = tmp_path / "work"
    first = provision(artifacts_dir, work_dir)
    assert "skipping" not in first.values(), first
    stamp = work_dir / "venv" / ".edgebench-provisioned"
    assert re.fullmatch(r"[0-9a-f]{40}\n", stamp.read_text())

    assert set(provision(artifacts_dir, work_dir).values()) == {"skipping"}

    # A stamp from another plan (other wheels, requirements or interpreter) provisions again.
    stamp.write_text("0" * 40 + "\n")
    again = provision(artifacts_dir, work_dir)
    assert "skipping" not in again.values(), again
    assert stamp.read_text() != "0" * 40 + "\n"
