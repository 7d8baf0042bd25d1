"""Out-of-memory evidence: whether a child killed by SIGKILL was the kernel OOM killer's victim.

The evidence, in the order it is trusted: the child's memory cgroup ``oom_kill`` counter rose (v1
``memory.oom_control``, v2 ``memory.events``); /dev/kmsg names the pid; where the cgroup files
cannot be read, the kernel's own ``oom_kill`` counter in /proc/vmstat rose while the child ran.
A SIGKILL without any of these is not called an OOM kill.

Python 3.6 compatible.
"""

import os
import re
from typing import Any, Optional, Tuple

__all__ = ["OomWatch", "kmsg_oom_evidence", "memory_cgroup", "oom_kill_count", "vmstat_oom_kills"]


def memory_cgroup(pid: int) -> Optional[Tuple[int, str]]:
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


def oom_kill_count(cgroup: Optional[Tuple[int, str]]) -> Optional[int]:
    """The ``oom_kill`` counter of a memory cgroup, or None when unreadable."""
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


def kmsg_oom_evidence(pid: int, limit_bytes: int = 8 << 20) -> Optional[str]:
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


def vmstat_oom_kills(path: str = "/proc/vmstat") -> Optional[int]:
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


def _is_root_cgroup(cgroup: Tuple[int, str]) -> bool:
    return os.path.normpath(cgroup[1]) in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup")


class OomWatch(object):
    """Where the kernel would count an out-of-memory kill of a child, and the count before it ran.

    The child starts in this process's memory cgroup, so that counter is read before the child
    exists: a child killed before the first poll can no longer be asked for its own. A prefix
    (``--child-prefix``) may move the child elsewhere; ``follow`` picks that up while it runs.
    """

    def __init__(self, cgroup: Optional[Tuple[int, str]] = None, vmstat: str = "/proc/vmstat") -> None:
        self.cgroup = cgroup or memory_cgroup(os.getpid())
        self.before = oom_kill_count(self.cgroup)
        self.vmstat = vmstat
        self.kernel_before = vmstat_oom_kills(vmstat)

    def follow(self, child: Any) -> bool:
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

    def describe(self) -> str:
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

    def evidence(self, pid: int) -> Optional[str]:
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
