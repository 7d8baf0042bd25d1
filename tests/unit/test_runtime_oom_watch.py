"""OomWatch: a SIGKILL is called an out-of-memory kill only on the kernel's evidence, also when the
child dies between two polls (a zombie reports the root memory cgroup, which must not be adopted)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from edgebench_runtime import oom
from edgebench_runtime.oom import OomWatch

V1_MEMORY = Path("/sys/fs/cgroup/memory")


@pytest.fixture
def capped_group():
    """A fresh cgroup v1 memory group capped at 40 MiB, removed afterwards."""
    group = V1_MEMORY / f"edgebench-oomwatch-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(40 << 20))
    except OSError as exc:
        pytest.skip(f"no writable cgroup v1 memory controller here: {exc}")
    yield group
    for _ in range(50):
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_child_killed_between_polls_is_still_called_oom(capped_group):
    watch = OomWatch(cgroup=(1, str(capped_group)))
    assert watch.before == 0
    hog = (
        f"import os, time; open({str(capped_group / 'cgroup.procs')!r}, 'w').write(str(os.getpid())); "
        "time.sleep(0.3); block = bytearray(400 << 20); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", hog])
    try:
        deadline = time.monotonic() + 20
        while _state(child.pid) != "Z":  # killed, not yet reaped: the window between two polls
            assert time.monotonic() < deadline, "the child was not OOM-killed"
            time.sleep(0.005)
        watch.follow(child)  # the zombie reports the root memory cgroup, which is not adopted
        assert watch.cgroup == (1, str(capped_group))
        assert child.wait() == -9
        assert watch.evidence(child.pid) == f"memory cgroup {capped_group} oom_kill 0 -> 1"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_plain_sigkill_has_no_evidence(capped_group):
    watch = OomWatch(cgroup=(1, str(capped_group)))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    (capped_group / "cgroup.procs").write_text(str(child.pid))
    assert watch.follow(child) is True
    child.kill()
    child.wait()
    assert watch.evidence(child.pid) is None
    described = watch.describe()
    assert described.startswith(f": memory cgroup {capped_group} oom_kill 0 -> 0; /proc/vmstat oom_kill ")


def test_where_cgroups_are_hidden_the_kernel_counter_is_the_evidence(capped_group, monkeypatch):
    # The child really is OOM-killed in a capped cgroup, but the watch cannot read any cgroup file
    # nor the kernel log, as on a device whose /sys/fs/cgroup is hidden from its user.
    monkeypatch.setattr(oom, "kmsg_oom_evidence", lambda pid: None)
    watch = OomWatch(cgroup=(1, "/nonexistent/memory/device"))
    assert watch.before is None and watch.kernel_before is not None
    hog = (
        f"import os, time; open({str(capped_group / 'cgroup.procs')!r}, 'w').write(str(os.getpid())); "
        "block = bytearray(400 << 20); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", hog])
    assert child.wait(timeout=60) == -9
    evidence = watch.evidence(child.pid)
    assert evidence and evidence.startswith("the kernel counted ") and "/proc/vmstat oom_kill" in evidence


def test_the_kernel_counter_does_not_overrule_a_readable_cgroup(capped_group, tmp_path):
    vmstat = tmp_path / "vmstat"
    vmstat.write_text("nr_free_pages 1\noom_kill 5\n")
    watch = OomWatch(cgroup=(1, str(capped_group)), vmstat=str(vmstat))
    vmstat.write_text("nr_free_pages 1\noom_kill 6\n")  # another process's OOM kill elsewhere
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    child.kill()
    child.wait()
    assert watch.evidence(child.pid) is None


class _Running:
    """A child that is still running as far as poll() can tell (as one in the middle of exiting)."""

    pid = 4242

    def poll(self):
        return None


def test_an_exiting_child_reporting_the_root_cgroup_is_not_followed(monkeypatch):
    # From the start of its exit until it is reaped, a process shows "memory:/" in a v1 hierarchy,
    # and a process freeing hundreds of MiB after an OOM kill stays there long enough to be polled.
    monkeypatch.setattr(oom, "memory_cgroup", lambda pid: (1, "/sys/fs/cgroup/memory/"))
    monkeypatch.setattr(oom, "oom_kill_count", lambda cgroup: 7 if "host" in cgroup[1] else 0)
    watch = OomWatch(cgroup=(1, "/sys/fs/cgroup/memory/fleet/host"))
    assert watch.follow(_Running()) is True
    assert watch.cgroup == (1, "/sys/fs/cgroup/memory/fleet/host") and watch.before == 7


def test_a_child_moved_by_a_prefix_is_followed(monkeypatch):
    monkeypatch.setattr(oom, "memory_cgroup", lambda pid: (1, "/sys/fs/cgroup/memory/bench"))
    monkeypatch.setattr(oom, "oom_kill_count", lambda cgroup: 3 if cgroup[1].endswith("bench") else 0)
    watch = OomWatch(cgroup=(1, "/sys/fs/cgroup/memory/fleet/host"))
    assert watch.follow(_Running()) is True
    assert watch.cgroup == (1, "/sys/fs/cgroup/memory/bench") and watch.before == 3
