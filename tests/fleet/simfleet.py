"""A simulated fleet of edge devices on this machine, for the fleet tests (see README.md here).

Every simulated host is an sshd on its own loopback address and port, with its own unprivileged
user, home directory, host key, hostname (UTS namespace), process tree (PID namespace), boot id and
power commands (mount namespace), living in its own cgroup. Ansible reaches it over real SSH.

Safety: `become` on a simulated host is real root on this machine. Each host's sshd therefore runs in
a private mount namespace where stand-ins are bind-mounted over shutdown, reboot, poweroff, halt,
systemctl, init and telinit and a per-host file over /proc/sys/kernel/random/boot_id; if any bind
fails, that sshd does not start. The stand-ins can only reboot or power off their own simulated
host, through the fleet's supervisor (`fleetd`): it kills every process of that host (its cgroup),
writes a new boot id, waits the boot delay and starts the host's sshd again.

This file is also run as a script by the fleet itself (supervisor, host boot, stand-ins), by the
system Python, so it uses the standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import pwd
import random
import re
import secrets
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
# Every name a task could use to bring a machine down, and every directory they live in.
POWER_COMMANDS = ("shutdown", "reboot", "poweroff", "halt", "systemctl", "init", "telinit")
BIN_DIRS = ("/sbin", "/usr/sbin", "/bin", "/usr/bin")
LOCAL_SBIN = "/usr/local/sbin"  # first in sudo's secure_path: stand-ins go there too when it is empty
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
SYSRQ_TRIGGER = "/proc/sysrq-trigger"
SUDOERS_DIR = Path("/etc/sudoers.d")
CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_MEMORY = CGROUP_ROOT / "memory"
V1_FREEZER = CGROUP_ROOT / "freezer"
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REQUIRED_TOOLS = ("sshd", "ssh", "ssh-keygen", "sudo", "visudo", "unshare", "mount", "umount",
                  "useradd", "userdel")
DEFAULT_SPECS = (("rpi4-sim", "rpis"), ("nano-sim", "jetsons"), ("xavier-sim", "jetsons"))
SSH_KEEPALIVE_ARGS = "-o ServerAliveInterval=2 -o ServerAliveCountMax=3"
HOST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
PORT_RANGE = (20000, 39999)


class SimFleetError(RuntimeError):
    """The simulated fleet could not do what was asked."""


class SimFleetUnavailable(SimFleetError):
    """This machine cannot run a simulated fleet (not root, a tool or cgroup support missing)."""


# --------------------------------------------------------------------------------------------------
# Small helpers


def find_tool(name: str) -> str | None:
    """A tool's absolute path, looking in the sbin directories too (pytest's PATH may lack them)."""
    path = os.environ.get("PATH", "") + ":" + SBIN_PATH
    return shutil.which(name, path=path)


def _tool(name: str) -> str:
    found = find_tool(name)
    if not found:
        raise SimFleetUnavailable(f"`{name}` is not installed")
    return found


def _run(argv: list[str], *, check: bool = True, timeout: float = 60,
         **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise SimFleetError(f"{shlex.join(argv)} failed (rc {proc.returncode}): {proc.stderr.strip()}")
    return proc


def _write_text(path: Path | str, text: str, mode: int = 0o644) -> None:
    path = Path(path)
    path.write_text(text)
    os.chmod(path, mode)


def _tail(path: Path | str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _mount_ns() -> str:
    return os.readlink("/proc/self/ns/mnt")


def _mounts() -> list[str]:
    """Mount points of this mount namespace (octal escapes decoded)."""
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2:
            points.append(fields[1].encode().decode("unicode_escape"))
    return points


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def ssh_banner(address: str, port: int, timeout: float = 1.0) -> bool:
    """True when an SSH server answers on address:port with its banner."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _free_port(address: str, taken: set[int]) -> int:
    for _ in range(500):
        port = random.randint(*PORT_RANGE)
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((address, port))
            except OSError:
                continue
        return port
    raise SimFleetError(f"no free port on {address}")


def _yaml(data: dict, indent: int = 0) -> str:
    """A small YAML writer for the inventory: nested mappings of JSON scalars (JSON is YAML)."""
    lines = []
    pad = "  " * indent
    for key, value in data.items():
        key_text = key if re.fullmatch(r"[A-Za-z0-9_.-]+", key) else json.dumps(key)
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{key_text}:")
            lines.append(_yaml(value, indent + 1))
        elif isinstance(value, dict):
            lines.append(f"{pad}{key_text}: {{}}")
        else:
            lines.append(f"{pad}{key_text}: {json.dumps(value)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# cgroups: every process of a host lives in its tracking cgroup (v2 preferred: cgroup.kill and
# cgroup.freeze; v1 freezer otherwise) and, when memory-capped, in a v1 memory cgroup.


def _cgroup2_mount() -> Path | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2" and fields[1].startswith(str(CGROUP_ROOT)):
            return Path(fields[1])
    return None


def _probe_tracking(kind: str = "auto") -> tuple[str, Path]:
    """('v2', root) when cgroup v2 has cgroup.kill, else ('v1', freezer root)."""
    cg2 = _cgroup2_mount()
    if kind in ("auto", "v2") and cg2 is not None:
        probe = cg2 / f"ebsim-probe-{os.getpid()}-{secrets.token_hex(2)}"
        try:
            probe.mkdir()
            ok = (probe / "cgroup.kill").exists() and (probe / "cgroup.freeze").exists()
        except OSError:
            ok = False
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()
        if ok:
            return "v2", cg2
    if kind in ("auto", "v1") and (V1_FREEZER / "cgroup.procs").exists():
        return "v1", V1_FREEZER
    raise SimFleetUnavailable("neither cgroup v2 with cgroup.kill nor the cgroup v1 freezer is available")


def _cg_walk(cg: Path) -> list[Path]:
    """The cgroup and its descendants, deepest first."""
    found = []
    for root, _dirs, _files in os.walk(cg, topdown=False):
        found.append(Path(root))
    return found


def cgroup_pids(cg: Path | str) -> list[int]:
    pids: list[int] = []
    cg = Path(cg)
    if not cg.exists():
        return pids
    for sub in _cg_walk(cg):
        with contextlib.suppress(OSError):
            pids.extend(int(x) for x in (sub / "cgroup.procs").read_text().split())
    return sorted(set(pids))


def _cg_join(cg: Path | str, pid: int) -> None:
    Path(cg, "cgroup.procs").write_text(str(pid))


def _cg_populated(kind: str, cg: Path) -> bool:
    if not cg.exists():
        return False
    if kind == "v2":
        with contextlib.suppress(OSError):
            return "populated 1" in (cg / "cgroup.events").read_text()
    return bool(cgroup_pids(cg))


def _cg_freeze(kind: str, cg: Path, frozen: bool, timeout: float = 10) -> None:
    if kind == "v2":
        (cg / "cgroup.freeze").write_text("1" if frozen else "0")
        want = f"frozen {1 if frozen else 0}"
        check = lambda: want in (cg / "cgroup.events").read_text()  # noqa: E731
    else:
        (cg / "freezer.state").write_text("FROZEN" if frozen else "THAWED")
        want = "FROZEN" if frozen else "THAWED"
        check = lambda: (cg / "freezer.state").read_text().strip() == want  # noqa: E731
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SimFleetError(f"cgroup {cg} did not become {want}")
        time.sleep(0.01)


def cgroup_kill(kind: str, cg: Path | str, timeout: float = 15) -> None:
    """SIGKILL every process in the cgroup (and below) and wait until it is empty."""
    cg = Path(cg)
    if not cg.exists():
        return
    deadline = time.monotonic() + timeout
    while _cg_populated(kind, cg):
        if kind == "v2":
            for sub in _cg_walk(cg):
                with contextlib.suppress(OSError):
                    (sub / "cgroup.kill").write_text("1")
        else:
            # v1: freeze so nothing forks while we kill, kill everything, thaw so SIGKILL lands.
            with contextlib.suppress(OSError, SimFleetError):
                _cg_freeze(kind, cg, True, timeout=2)
            for pid in cgroup_pids(cg):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError, SimFleetError):
                _cg_freeze(kind, cg, False, timeout=2)
        if time.monotonic() > deadline:
            raise SimFleetError(f"processes survived in cgroup {cg}: {cgroup_pids(cg)}")
        time.sleep(0.02)


def _cg_remove(cg: Path | str | None) -> None:
    if not cg or not Path(cg).exists():
        return
    for sub in _cg_walk(Path(cg)):
        for _ in range(50):
            try:
                sub.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SimFleetError(f"cannot remove cgroup {sub}")


def _own_cgroup(kind: str, pid: int | str = "self") -> str | None:
    """The pid's path in the tracking hierarchy, as /proc/<pid>/cgroup shows it."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        _hid, controllers, path = line.split(":", 2)
        if (kind == "v2" and controllers == "") or (kind == "v1" and "freezer" in controllers.split(",")):
            return path
    return None


def _set_memory_limit(cg: Path, mb: int) -> None:
    value = str(int(mb) * 1024 * 1024)
    limit, memsw = cg / "memory.limit_in_bytes", cg / "memory.memsw.limit_in_bytes"
    # memsw (memory + swap) must stay >= the limit: write them in the order the change allows.
    order = [limit, memsw]
    with contextlib.suppress(OSError, ValueError):
        if memsw.exists() and int(value) > int(memsw.read_text()):
            order = [memsw, limit]
    for path in order:
        if path.exists():
            path.write_text(value)


# --------------------------------------------------------------------------------------------------
# Host and fleet descriptions


@dataclasses.dataclass
class HostSpec:
    """What a simulated host should be: its name, inventory groups and optional caps."""

    name: str
    groups: tuple[str, ...] = ("rpis",)
    label: str | None = None
    memory_limit_mb: int | None = None
    home_size_mb: int | None = None
    host_vars: dict = dataclasses.field(default_factory=dict)
    # pyenv versions ("3.6.15") reachable inside the host at their own prefix (JetPack's Pythons).
    pythons: tuple[str, ...] = ()
    # Hide /sys/fs/cgroup and /dev/kmsg from the host, as a device in a container or network
    # namespace does: out-of-memory evidence must then come from /proc/vmstat.
    hide_cgroups: bool = False
    # A foreign userland: a root filesystem tarball (build_rootfs) that the host's sessions run in
    # under qemu-user (ChrootDirectory); its architecture is what uname and Ansible report.
    rootfs: str | None = None

    @classmethod
    def coerce(cls, item) -> HostSpec:
        """Accepts a HostSpec, "name:group[:label]", (name, group[, {options}]) or a dict."""
        if isinstance(item, HostSpec):
            spec = item
        elif isinstance(item, str):
            parts = item.split(":", 2)
            groups = (parts[1],) if len(parts) > 1 else ("rpis",)
            spec = cls(parts[0], groups, parts[2] if len(parts) > 2 else None)
        elif isinstance(item, dict):
            spec = cls(**item)
        else:
            name, group, *rest = item
            groups = (group,) if isinstance(group, str) else tuple(group)
            spec = cls(name, groups, **(rest[0] if rest else {}))
        if isinstance(spec.groups, str):
            spec.groups = (spec.groups,)
        if not HOST_NAME_RE.match(spec.name):
            raise ValueError(f"host name {spec.name!r}: use lowercase letters, digits and '-' (max 31)")
        return spec


@dataclasses.dataclass
class HostConfig:
    """Everything about one host that the fleet's own processes need; saved as host.json."""

    name: str
    groups: list
    label: str
    user: str
    uid: int
    gid: int
    home: str
    address: str
    port: int
    state_dir: str
    base_dir: str
    fleet_id: str
    python: str
    lib: str
    sshd: str
    unshare: str
    mount: str
    cg_kind: str
    cg_track: str
    cg_memory: str | None
    memory_limit_mb: int | None
    home_size_mb: int | None
    boot_delay: float
    shutdown_grace: float
    machine_mnt_ns: str
    client_key: str
    known_hosts: str
    host_vars: dict
    pythons: dict = dataclasses.field(default_factory=dict)  # version -> prefix on this machine
    hide_cgroups: bool = False
    rootfs: str | None = None  # the host's unpacked root filesystem (a foreign userland)

    def p(self, name: str) -> Path:
        return Path(self.state_dir, name)

    @property
    def sshd_config(self) -> Path:
        return self.p("sshd_config")

    @property
    def host_key(self) -> Path:
        return self.p("ssh_host_ed25519_key")

    @property
    def boot_id_file(self) -> Path:
        return self.p("boot_id")

    @property
    def bin_dir(self) -> Path:
        return self.p("bin")

    @property
    def standin(self) -> Path:
        return self.bin_dir / "standin"

    @property
    def fleetd_socket(self) -> Path:
        return Path(self.base_dir, "fleetd.sock")

    def save(self) -> None:
        _write_text(self.p("host.json"), json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: str | Path) -> HostConfig:
        return cls(**json.loads(Path(state_dir, "host.json").read_text()))


def _host_lock(cfg: HostConfig):
    """A cross-process lock around killing and booting one host."""

    @contextlib.contextmanager
    def locked():
        with open(cfg.p("lock"), "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    return locked()


def host_is_running(cfg: HostConfig) -> bool:
    return _cg_populated(cfg.cg_kind, Path(cfg.cg_track))


def kill_host(cfg: HostConfig) -> None:
    """Kill every process of the host (as a power cut would) and forget its pid file."""
    cgroup_kill(cfg.cg_kind, Path(cfg.cg_track))
    with contextlib.suppress(FileNotFoundError):
        cfg.p("sshd.pid").unlink()


def spawn_boot(cfg: HostConfig) -> int:
    """Start the host's boot chain (_enter -> unshare -> _inner -> sshd -D); returns the anchor pid.

    The caller must be the process that reaps it (fleetd)."""
    cfg.boot_id_file.write_text(str(uuid.uuid4()) + "\n")  # in place: the bind follows the inode
    with contextlib.suppress(FileNotFoundError):
        cfg.p("sshd.pid").unlink()
    boot_log = str(cfg.p("boot.log"))
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, boot_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    env = {"PATH": SBIN_PATH, "LANG": "C.UTF-8"}
    argv = [cfg.python, cfg.lib, "_enter", cfg.state_dir]
    return os.posix_spawn(cfg.python, argv, env, file_actions=actions, setsid=True)


# --------------------------------------------------------------------------------------------------
# Inside a host: namespace set-up (runs as the host's PID 1 before it becomes sshd)


def _enter_main(state_dir: str) -> None:
    """Join the host's cgroups, then unshare mount, UTS and PID namespaces and run _inner."""
    cfg = HostConfig.load(state_dir)
    _cg_join(cfg.cg_track, os.getpid())
    if cfg.cg_memory:
        _cg_join(cfg.cg_memory, os.getpid())
    argv = [cfg.unshare, "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
            "--propagation", "private", "--", cfg.python, cfg.lib, "_inner", state_dir]
    os.execv(cfg.unshare, argv)


def power_command_paths() -> list[str]:
    """Every path of a power command on this machine (BIN_DIRS x POWER_COMMANDS) that exists."""
    return [f"{d}/{n}" for d in BIN_DIRS for n in POWER_COMMANDS if os.path.lexists(f"{d}/{n}")]


def _bind(cfg: HostConfig, source: Path | str, target: str) -> None:
    proc = subprocess.run([cfg.mount, "--bind", str(source), target], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SimFleetError(f"bind {source} over {target} failed: {proc.stderr.strip()}")


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def protect_namespace(cfg: HostConfig) -> None:
    """Bind the stand-ins and per-host identity files in this (private) mount namespace; verify."""
    if _mount_ns() == cfg.machine_mnt_ns:
        raise SimFleetError("refusing to bind stand-ins: still in this machine's mount namespace")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if "shared:" in line.split(" - ")[0]:
            raise SimFleetError(f"a mount would propagate to the machine: {line}")
    targets = []
    for path in power_command_paths():
        real = os.path.realpath(path)
        if os.path.exists(real) and real not in targets:
            targets.append(real)
    for real in targets:
        _bind(cfg, cfg.standin, real)
    if os.path.isdir(LOCAL_SBIN) and not os.listdir(LOCAL_SBIN):
        _bind(cfg, cfg.bin_dir, LOCAL_SBIN)
    _bind(cfg, cfg.boot_id_file, BOOT_ID_PATH)
    if os.path.exists(SYSRQ_TRIGGER):
        _bind(cfg, "/dev/null", SYSRQ_TRIGGER)
    for name, target in (("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"),
                         ("machine-id", "/etc/machine-id")):
        if os.path.exists(target):
            _bind(cfg, cfg.p(name), target)
    # Verify: every power command resolves to the stand-in and the boot id is the host's own.
    wrong = [p for p in power_command_paths() if os.path.exists(p) and not _same_file(p, cfg.standin)]
    if wrong:
        raise SimFleetError(f"stand-ins not in place over: {wrong}")
    if Path(BOOT_ID_PATH).read_text() != cfg.boot_id_file.read_text():
        raise SimFleetError(f"{BOOT_ID_PATH} is not the host's own boot id")


def _blocking_ancestor(path: str) -> str | None:
    """The first directory above ``path`` that others cannot traverse (root's home, mode 700)."""
    current = "/"
    for part in Path(path).parts[1:-1]:
        current = os.path.join(current, part)
        if not os.stat(current).st_mode & 0o001:
            return current
    return None


def expose_pythons(cfg: HostConfig) -> None:
    """Make pyenv's interpreters reachable at their own prefix, in this namespace only.

    pyenv keeps them in root's home (mode 700) and their RUNPATH points there, so the prefix has to
    stay the same path: each prefix is bound aside, a world-traversable tmpfs covers the blocking
    directory (here, not on the machine), and the prefixes are bound back at their paths. Nothing
    on the machine changes mode."""
    if not cfg.pythons:
        return
    staging = cfg.p("pythons")
    blocked = {}
    for version, prefix in cfg.pythons.items():
        aside = staging / version
        aside.mkdir(parents=True, exist_ok=True)
        _bind(cfg, prefix, str(aside))
        ancestor = _blocking_ancestor(prefix)
        if ancestor:
            blocked.setdefault(ancestor, []).append((prefix, aside))
    for ancestor, prefixes in blocked.items():
        _run([cfg.mount, "-t", "tmpfs", "-o", "mode=0755,size=1m", "ebsim-pythons", ancestor])
        for prefix, aside in prefixes:
            os.makedirs(prefix, mode=0o755, exist_ok=True)
            _bind(cfg, aside, prefix)
    for version, prefix in cfg.pythons.items():
        if _blocking_ancestor(prefix) is not None:
            raise SimFleetError(f"python {version} at {prefix} is still not reachable")


# A simulated device has no GPU, so it must not find this machine's CUDA toolkit either (machines
# of this kind carry one for the controller's PyTorch): provisioning would build pycuda against it.
CUDA_TOOLKIT_GLOBS = ("/usr/local/cuda", "/usr/local/cuda-*", "/opt/nvidia")


def hide_cuda(cfg: HostConfig) -> None:
    """An empty read-only tmpfs over every CUDA toolkit directory of this machine, in this namespace."""
    hidden = set()
    for pattern in CUDA_TOOLKIT_GLOBS:
        for path in glob.glob(pattern):
            real = os.path.realpath(path)
            if os.path.isdir(real) and real not in hidden:
                _run([cfg.mount, "-t", "tmpfs", "-o", "ro,mode=0755,size=1k", "ebsim-nocuda", real])
                hidden.add(real)
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        raise SimFleetError("this machine's CUDA toolkit is still visible inside the host")


def hide_cgroups(cfg: HostConfig) -> None:
    """An empty read-only tmpfs over /sys/fs/cgroup and /dev/null over /dev/kmsg, in this namespace:
    the host's processes stay in their (capped) cgroups, they only cannot read them."""
    _run([cfg.mount, "-t", "tmpfs", "-o", "ro,mode=0755,size=1k", "ebsim-nocgroup", str(CGROUP_ROOT)])
    if os.path.exists("/dev/kmsg"):
        _bind(cfg, "/dev/null", "/dev/kmsg")


# Where a host's foreign root filesystem is mounted in its namespace: sshd's ChrootDirectory wants
# every component root-owned and not writable by others, which a fleet under /tmp is not.
CHROOT_MOUNTPOINT = "/run/edgebench-simfleet-root"
# What an aarch64 board's /proc/cpuinfo says (a Cortex-A72, as on a Raspberry Pi 4). onnxruntime
# reads it at import and crashes under qemu-user on this machine's x86 one.
AARCH64_CPUINFO = (
    "processor\t: {index}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
    "CPU revision\t: 3\n\n"
)


def _resolve_inside(root: str, path: str) -> str:
    """``path`` with its symlinks followed inside ``root`` (absolute targets are root-relative)."""
    for _ in range(40):
        full = root + path
        if not os.path.islink(full):
            return path
        target = os.readlink(full)
        if not target.startswith("/"):
            target = os.path.join(os.path.dirname(path), target)
        path = os.path.normpath(target)
    raise SimFleetError(f"symlink loop at {root}{path}")


def prepare_rootfs(cfg: HostConfig) -> None:
    """Mount the foreign userland with this host's identity and stand-ins inside it; verify.

    The machine's own sshd (outside) authenticates and then chroots each session into it; every
    binary there runs under qemu-user. The fleet directory is bound at its own path inside, so
    homes, stand-ins and fleetd's socket keep their paths."""
    root = CHROOT_MOUNTPOINT
    _bind(cfg, cfg.rootfs, root)
    _run([cfg.mount, "-t", "proc", "proc", f"{root}/proc"])
    _run([cfg.mount, "--rbind", "/dev", f"{root}/dev"])
    _run([cfg.mount, "--rbind", "/sys", f"{root}/sys"])
    _bind(cfg, cfg.p("cpuinfo"), f"{root}/proc/cpuinfo")
    _bind(cfg, cfg.boot_id_file, f"{root}{BOOT_ID_PATH}")
    if os.path.exists(f"{root}{SYSRQ_TRIGGER}"):
        _bind(cfg, "/dev/null", f"{root}{SYSRQ_TRIGGER}")
    _bind(cfg, cfg.base_dir, f"{root}{cfg.base_dir}")
    for name, target in (("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"),
                         ("machine-id", "/etc/machine-id")):
        _bind(cfg, cfg.p(name), f"{root}{target}")
    if cfg.hide_cgroups:
        _run([cfg.mount, "-t", "tmpfs", "-o", "ro,mode=0755,size=1k", "ebsim-nocgroup",
              f"{root}{CGROUP_ROOT}"])
    targets = []
    for directory in BIN_DIRS:
        for name in POWER_COMMANDS:
            if os.path.lexists(f"{root}{directory}/{name}"):
                real = _resolve_inside(root, f"{directory}/{name}")
                if os.path.exists(root + real) and real not in targets:
                    targets.append(real)
    for real in targets:
        _bind(cfg, cfg.standin, root + real)
    local_sbin = root + LOCAL_SBIN
    if os.path.isdir(local_sbin) and not os.listdir(local_sbin):
        _bind(cfg, cfg.bin_dir, local_sbin)
    wrong = [f"{d}/{n}" for d in BIN_DIRS for n in POWER_COMMANDS
             if os.path.exists(f"{root}{d}/{n}") and not _same_file(f"{root}{d}/{n}", cfg.standin)]
    if wrong:
        raise SimFleetError(f"stand-ins not in place inside the root filesystem over: {wrong}")
    if Path(f"{root}{BOOT_ID_PATH}").read_text() != cfg.boot_id_file.read_text():
        raise SimFleetError(f"{BOOT_ID_PATH} inside the root filesystem is not the host's own boot id")


def _inner_main(state_dir: str) -> None:
    cfg = HostConfig.load(state_dir)
    try:
        socket.sethostname(cfg.name)
        protect_namespace(cfg)
        hide_cuda(cfg)
        expose_pythons(cfg)
        if cfg.hide_cgroups:
            hide_cgroups(cfg)
        if cfg.rootfs:
            prepare_rootfs(cfg)
    except Exception as exc:  # fail closed: no sshd without every stand-in in place
        print(f"simfleet: host {cfg.name} NOT started: {exc}", file=sys.stderr, flush=True)
        os._exit(3)
    os.execv(cfg.sshd, [cfg.sshd, "-D", "-f", str(cfg.sshd_config), "-E", str(cfg.p("sshd.log"))])


# --------------------------------------------------------------------------------------------------
# The stand-in for shutdown & co. (runs inside a host, usually as root through become)

STANDIN_SCRIPT = """#!/bin/sh
# edgebench simfleet stand-in for shutdown/reboot/poweroff/halt/systemctl/init/telinit on the
# simulated host {name}. It can only reboot or power off that simulated host, never this machine.
exec {python} {lib} standin {state_dir} "${{0##*/}}" "$@"
"""


def classify_power_command(name: str, args: list[str]) -> tuple[str | None, float]:
    """('reboot' | 'poweroff' | 'cancel' | None, delay in seconds) for a power command line."""
    words = [a for a in args if not a.startswith("-")]
    flags = {a for a in args if a.startswith("-")}
    if flags & {"--help", "--version", "-h"} and name != "shutdown":
        return None, 0.0
    if name == "shutdown":
        if flags & {"--help", "--version"} or "-k" in flags:
            return None, 0.0
        if "-c" in flags:
            return "cancel", 0.0
        delay = 0.0
        if words and re.fullmatch(r"\+?\d+", words[0]):
            delay = 60.0 * int(words[0].lstrip("+"))
        return ("reboot" if flags & {"-r", "--reboot"} else "poweroff"), delay
    if name == "reboot":
        return ("poweroff" if flags & {"-p", "--poweroff"} else "reboot"), 0.0
    if name in ("poweroff", "halt"):
        return ("reboot" if "--reboot" in flags else "poweroff"), 0.0
    if name == "systemctl":
        verb = words[0] if words else ""
        unit = words[1] if len(words) > 1 else ""
        if verb in ("reboot", "kexec", "soft-reboot") or (verb in ("start", "isolate") and unit.startswith(
                ("reboot.target", "kexec.target"))):
            return "reboot", 0.0
        if verb in ("poweroff", "halt") or (verb in ("start", "isolate") and unit.startswith(
                ("poweroff.target", "halt.target"))):
            return "poweroff", 0.0
        return None, 0.0
    if name in ("init", "telinit", "systemd"):
        if words[:1] == ["6"]:
            return "reboot", 0.0
        if words[:1] == ["0"]:
            return "poweroff", 0.0
    return None, 0.0


def _standin_main(state_dir: str, name: str, args: list[str]) -> int:
    cfg = HostConfig.load(state_dir)
    tag = f"simfleet stand-in for {name} on simulated host {cfg.name}"
    action, delay = classify_power_command(name, args)
    if action is None:
        print(f"{tag}: `{shlex.join([name, *args])}` does nothing on a simulated host")
        return 0
    if action == "cancel":
        print(f"{tag}: nothing scheduled to cancel")
        return 0
    if os.geteuid() != 0:
        print(f"{tag}: must be root to {action} (use become / sudo)", file=sys.stderr)
        return 1
    try:
        fleetd_request(cfg.fleetd_socket, {"op": "power", "host": cfg.name, "action": action, "delay": delay})
    except SimFleetError as exc:
        print(f"{tag}: {action} refused: {exc}", file=sys.stderr)
        return 1
    when = "now" if delay == 0 else f"in {delay:.0f} s"
    print(f"{tag}: the simulated host {cfg.name} will {action} {when}")
    return 0


# --------------------------------------------------------------------------------------------------
# fleetd: the fleet's supervisor. It boots hosts (so sshd descends from it), reaps orphans (a child
# subreaper: PID 1 here does not reap), and carries out the stand-ins' reboots outside the hosts.


def fleetd_request(sock_path: Path | str, request: dict, timeout: float = 60) -> dict:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(sock_path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise SimFleetError(f"fleet supervisor at {sock_path} unreachable: {exc}") from exc
    if not data:
        raise SimFleetError("fleet supervisor closed the connection")
    reply = json.loads(data)
    if not reply.get("ok"):
        raise SimFleetError(reply.get("error", "unknown error"))
    return reply


class _FleetDaemon:
    def __init__(self, base_dir: str):
        self.base = Path(base_dir)
        state = json.loads((self.base / "fleet.json").read_text())
        self.ctl_cgroup = state["cg_ctl"]
        self.hosts = {Path(d).name: HostConfig.load(d) for d in state["host_dirs"]}
        self.locks = {name: threading.RLock() for name in self.hosts}
        self.exited: dict[int, int] = {}
        self.cond = threading.Condition()
        self.anchors: set[int] = set()
        self.quit = False
        self.closing = False
        self.closing_event = threading.Event()

    def anchors_alive(self) -> bool:
        with self.cond:
            return bool(self.anchors - set(self.exited))

    def log(self, message: str) -> None:
        print(time.strftime("%H:%M:%S"), message, flush=True)

    def run(self) -> None:
        _cg_join(self.ctl_cgroup, os.getpid())
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        path = self.base / "fleetd.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(64)
        selector = selectors.DefaultSelector()
        selector.register(server, selectors.EVENT_READ)
        self.log(f"fleetd up, pid {os.getpid()}")
        while not self.quit:
            for _key, _mask in selector.select(timeout=0.1):
                conn, _ = server.accept()
                threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
            self.reap()
        server.close()
        self.log("fleetd down")

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            with self.cond:
                self.exited[pid] = status
                self.cond.notify_all()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(30)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
                pid, uid, _gid = struct.unpack("3i", creds)
                reply = {"ok": True, **self.dispatch(json.loads(data), pid, uid)}
            except Exception as exc:
                reply = {"ok": False, "error": str(exc)}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")

    def _host_of(self, pid: int) -> str | None:
        for name, cfg in self.hosts.items():
            path = _own_cgroup(cfg.cg_kind, pid)
            if path and cfg.cg_track.endswith(path) and path != "/":
                return name
        return None

    def dispatch(self, request: dict, peer_pid: int, peer_uid: int) -> dict:
        op = request.get("op")
        if peer_uid != 0:
            raise SimFleetError("only root may talk to the fleet supervisor")
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "shutdown":
            # Teardown: no more boots, kill every host here so that this process reaps them all.
            self.closing = True
            self.closing_event.set()
            for name, cfg in self.hosts.items():
                with self.locks[name]:
                    kill_host(cfg)
            deadline = time.monotonic() + 5
            while self.anchors_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.quit = True
            return {}
        name = request.get("host")
        if name not in self.hosts:
            raise SimFleetError(f"no simulated host {name!r} in this fleet")
        caller_host = self._host_of(peer_pid)
        if caller_host is not None and caller_host != name:
            raise SimFleetError(f"a process of simulated host {caller_host} cannot control {name}")
        if op == "boot":
            return self.boot(name)
        if op == "stop":
            with self.locks[name]:
                kill_host(self.hosts[name])
            self.log(f"{name}: stopped")
            return {}
        if op == "power":
            action, delay = request.get("action"), float(request.get("delay", 0))
            if action not in ("reboot", "poweroff"):
                raise SimFleetError(f"unknown power action {action!r}")
            self.log(f"{name}: {action} requested by pid {peer_pid} (host {caller_host or '-'})")
            threading.Thread(target=self.power_cycle, args=(name, action, delay), daemon=True).start()
            return {"scheduled": action}
        raise SimFleetError(f"unknown request {op!r}")

    def boot(self, name: str) -> dict:
        cfg = self.hosts[name]
        with self.locks[name], _host_lock(cfg):
            if self.closing:
                raise SimFleetError("the fleet is shutting down")
            if host_is_running(cfg):
                return {"already_running": True}
            started = time.monotonic()
            anchor = spawn_boot(cfg)
            with self.cond:
                self.anchors.add(anchor)
            deadline = time.monotonic() + 20
            while not ssh_banner(cfg.address, cfg.port, timeout=0.5):
                with self.cond:
                    if anchor in self.exited:
                        raise SimFleetError(f"simulated host {name} did not boot:\n{_tail(cfg.p('boot.log'))}"
                                            f"\n{_tail(cfg.p('sshd.log'))}")
                    self.cond.wait(0.05)
                if time.monotonic() > deadline:
                    kill_host(cfg)
                    raise SimFleetError(f"sshd of simulated host {name} did not answer in 20 s:\n"
                                        f"{_tail(cfg.p('boot.log'))}\n{_tail(cfg.p('sshd.log'))}")
        self.log(f"{name}: booted in {time.monotonic() - started:.2f} s, "
                 f"boot id {cfg.boot_id_file.read_text().strip()}")
        return {"boot_id": cfg.boot_id_file.read_text().strip()}

    def power_cycle(self, name: str, action: str, delay: float) -> None:
        cfg = self.hosts[name]
        try:
            # Let the SSH command that asked return first, as a real shutdown does.
            if self.closing_event.wait(cfg.shutdown_grace + delay):
                return
            with self.locks[name], _host_lock(cfg):
                kill_host(cfg)
            self.log(f"{name}: powered off ({action})")
            if action == "reboot" and not self.closing_event.wait(cfg.boot_delay):
                self.boot(name)
        except Exception as exc:
            self.log(f"{name}: {action} failed: {exc}")


# --------------------------------------------------------------------------------------------------
# The controller-side API


class SimHost:
    """One simulated host, as the tests see it."""

    def __init__(self, cfg: HostConfig):
        self.cfg = cfg

    def __repr__(self) -> str:
        return f"SimHost({self.name!r}, {self.address}:{self.port}, user={self.user!r})"

    name = property(lambda self: self.cfg.name)
    user = property(lambda self: self.cfg.user)
    address = property(lambda self: self.cfg.address)
    port = property(lambda self: self.cfg.port)
    groups = property(lambda self: list(self.cfg.groups))
    home = property(lambda self: Path(self.cfg.home))
    state_dir = property(lambda self: Path(self.cfg.state_dir))
    boot_id_file = property(lambda self: self.cfg.boot_id_file)
    reboot_command = property(lambda self: f"{self.cfg.bin_dir}/shutdown -r now")
    boot_time_command = property(lambda self: f"cat {self.cfg.boot_id_file}")

    @property
    def boot_id(self) -> str:
        return self.cfg.boot_id_file.read_text().strip()

    def path(self, *parts: str) -> Path:
        """A path in the host's home directory."""
        return Path(self.cfg.home, *parts)

    # -- power
    def _fleetd(self, request: dict, timeout: float = 60) -> dict:
        return fleetd_request(self.cfg.fleetd_socket, {"host": self.name, **request}, timeout=timeout)

    def start(self) -> None:
        """Boot the host (no-op when it runs): new boot id, sshd on the same address, port and keys."""
        self._fleetd({"op": "boot"})

    def stop(self) -> None:
        """Kill the host's sshd and every process in it ("host vanished" / power cut)."""
        self._fleetd({"op": "stop"})

    def reboot(self, wait: bool = True, timeout: float = 30) -> None:
        """Reboot the host from the controller side, as its stand-in shutdown -r would."""
        previous = self.boot_id
        self._fleetd({"op": "power", "action": "reboot", "delay": 0})
        if wait:
            self.wait_for_boot(previous, timeout)

    def is_running(self) -> bool:
        return host_is_running(self.cfg)

    def wait_for_boot(self, previous_boot_id: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not (self.boot_id != previous_boot_id and ssh_banner(self.address, self.port)):
            if time.monotonic() > deadline:
                raise SimFleetError(f"{self.name} did not come back within {timeout} s")
            time.sleep(0.1)

    def wait_until_stopped(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() > deadline:
                raise SimFleetError(f"{self.name} still runs after {timeout} s")
            time.sleep(0.05)

    # -- processes
    def pids(self) -> list[int]:
        """Pids (as this machine sees them) of every process of the host."""
        return cgroup_pids(self.cfg.cg_track)

    def processes(self) -> dict[int, str]:
        return {pid: cmd for pid in self.pids() if (cmd := _cmdline(pid))}

    def sshd_pid(self) -> int | None:
        """The host's listening sshd (the host's PID 1), as this machine sees it."""
        for pid, cmd in self.processes().items():
            # The listener's title: "sshd: /usr/sbin/sshd -D -f <config> ... [listener] ..."
            if f"-D -f {self.cfg.sshd_config}" in cmd and " -R" not in cmd:
                return pid
        return None

    def kill_processes(self, pattern: str, sig: int = signal.SIGKILL) -> list[int]:
        """Signal the host's processes whose command line matches the regex; returns their pids."""
        killed = []
        for pid, cmd in self.processes().items():
            if re.search(pattern, cmd):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                    killed.append(pid)
        return killed

    def freeze(self) -> None:
        """Freeze every process of the host (a hung device: TCP connects, nothing answers)."""
        _cg_freeze(self.cfg.cg_kind, Path(self.cfg.cg_track), True)

    def thaw(self) -> None:
        _cg_freeze(self.cfg.cg_kind, Path(self.cfg.cg_track), False)

    def set_memory_limit(self, mb: int) -> None:
        """Cap the host's memory (cgroup v1 memory controller), moving its processes in."""
        if not self.cfg.cg_memory:
            raise SimFleetError(f"{self.name} has no memory cgroup (start it with memory_limit_mb)")
        _set_memory_limit(Path(self.cfg.cg_memory), mb)
        self.cfg.memory_limit_mb = mb
        self.cfg.save()

    # -- SSH, for tests that want to act on a host without Ansible
    def ssh_argv(self, command: str, connect_timeout: float = 5) -> list[str]:
        return [find_tool("ssh") or "ssh", "-i", self.cfg.client_key, "-p", str(self.port),
                "-o", f"UserKnownHostsFile={self.cfg.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ControlPath=none",
                "-o", f"ConnectTimeout={int(max(1, connect_timeout))}",
                "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3",
                f"{self.user}@{self.address}", command]

    def ssh(self, command: str, *, timeout: float = 30, check: bool = True,
            connect_timeout: float = 5) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.ssh_argv(command, connect_timeout), capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise SimFleetError(
                f"{self.name}: `{command}` failed (rc {proc.returncode}): {proc.stderr.strip()}")
        return proc

    def start_process(self, command: str) -> int:
        """Start a detached long-running command on the host; returns its pid inside the host."""
        out = self.ssh(f"nohup sh -c {shlex.quote(command)} >/dev/null 2>&1 </dev/null & echo $!")
        return int(out.stdout.strip())

    def python(self, version: str) -> str:
        """The path of pyenv's CPython ``version`` inside this host (HostSpec.pythons)."""
        return f"{self.cfg.pythons[version]}/bin/python{'.'.join(version.split('.')[:2])}"

    def inventory_vars(self) -> dict:
        common = (f"-o UserKnownHostsFile={shlex.quote(self.cfg.known_hosts)} -o IdentitiesOnly=yes "
                  + SSH_KEEPALIVE_ARGS)
        return {
            "ansible_host": self.address,
            "ansible_port": self.port,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": self.cfg.client_key,
            "ansible_ssh_common_args": common,
            "ansible_python_interpreter": SYSTEM_PYTHON,
            # No `ansible_become` here: become is off unless a play asks, and an inventory
            # `ansible_become: false` would override `become: true` in every play and task.
            "edgebench_simulated": True,
            "edgebench_device_label": self.cfg.label,
            "edgebench_reboot_command": self.reboot_command,
            "edgebench_boot_time_command": self.boot_time_command,
            **self.cfg.host_vars,
        }


def check_requirements() -> str | None:
    """Why this machine cannot run a simulated fleet, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "simulated fleet needs Linux"
    if os.geteuid() != 0:
        return "simulated fleet needs root (it creates users, sshds, mounts and cgroups)"
    missing = [tool for tool in REQUIRED_TOOLS if not find_tool(tool)]
    if missing:
        return f"simulated fleet needs {', '.join(missing)} (apt-get install openssh-server sudo)"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"simulated fleet needs {SYSTEM_PYTHON} (the managed hosts' interpreter)"
    try:
        _probe_tracking()
    except SimFleetUnavailable as exc:
        return str(exc)
    return None


class SimFleet:
    """N simulated hosts on this machine; use as a context manager or start()/close()."""

    def __init__(self, specs: Iterable = DEFAULT_SPECS, base_dir: str | Path | None = None, *,
                 boot_delay: float = 1.0, shutdown_grace: float = 0.5, fleet_vars: dict | None = None,
                 first_address: int = 11, cgroup: str = "auto"):
        self.specs = [HostSpec.coerce(item) for item in specs]
        names = [spec.name for spec in self.specs]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"host names must be unique and non-empty: {names}")
        self.requested_base = Path(base_dir) if base_dir else None
        self.boot_delay = boot_delay
        self.shutdown_grace = shutdown_grace
        self.fleet_vars = dict(fleet_vars or {})
        self.first_address = first_address
        self.cgroup_kind = cgroup
        self.fleet_id = "ebsim" + secrets.token_hex(3)
        self.hosts: dict[str, SimHost] = {}
        self.base_dir: Path | None = None
        self.state: dict = {}
        self._fleetd: subprocess.Popen | None = None

    # -- paths
    inventory_path = property(lambda self: self.base_dir / "inventory.yml")
    known_hosts_path = property(lambda self: self.base_dir / "known_hosts")
    client_key_path = property(lambda self: self.base_dir / "ssh" / "id_ed25519")
    control_path_dir = property(lambda self: self.base_dir / "cp")
    ansible_cfg_path = property(lambda self: self.base_dir / "ansible.cfg")

    def __getitem__(self, name: str) -> SimHost:
        return self.hosts[name]

    def __iter__(self) -> Iterator[SimHost]:
        return iter(self.hosts.values())

    def __enter__(self) -> SimFleet:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def env(self) -> dict[str, str]:
        """Environment for ansible / ansible-runner against this fleet: its own ControlMaster
        directory (a master left from an earlier run would ignore new SSH arguments) and a PATH
        where this interpreter's ansible-playbook comes first."""
        env = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_path_dir)}
        bin_dir = str(Path(sys.executable).parent)
        path = os.environ.get("PATH", "")
        if (Path(bin_dir) / "ansible-playbook").exists() and bin_dir not in path.split(":"):
            env["PATH"] = f"{bin_dir}:{path}"
        return env

    @property
    def inventory(self) -> dict:
        groups: dict[str, dict] = {}
        for host in self:
            for group in host.groups:
                groups.setdefault(group, {"hosts": {}})["hosts"][host.name] = host.inventory_vars()
        inventory: dict = {"all": {"children": groups}}
        if self.fleet_vars:
            inventory["all"]["vars"] = dict(self.fleet_vars)
        return inventory

    # -- lifecycle
    def _save(self) -> None:
        _write_text(self.base_dir / "fleet.json", json.dumps(self.state, indent=2))

    def start(self) -> SimFleet:
        reason = check_requirements()
        if reason:
            raise SimFleetUnavailable(reason)
        try:
            self._create()
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise
        return self

    def _create(self) -> None:
        if self.requested_base:
            base = self.requested_base
            owns = not base.exists()
            if base.exists() and any(base.iterdir()):
                raise SimFleetError(f"{base} is not empty")
            base.mkdir(parents=True, exist_ok=True)
        else:
            base, owns = Path(tempfile.mkdtemp(prefix="edgebench-simfleet-")), True
        self.base_dir = base.resolve()
        os.chmod(self.base_dir, 0o755)  # host users traverse it to their homes and the stand-ins
        kind, cg_root = _probe_tracking(self.cgroup_kind)
        memory = any(spec.memory_limit_mb for spec in self.specs)
        if memory and not (V1_MEMORY / "memory.limit_in_bytes").exists():
            raise SimFleetUnavailable("memory_limit_mb needs the cgroup v1 memory controller")
        self.state = {
            "fleet_id": self.fleet_id, "base_dir": str(self.base_dir), "owns_base_dir": owns,
            "cg_kind": kind, "cg_fleet": str(cg_root / self.fleet_id),
            "cg_ctl": str(cg_root / self.fleet_id / "_ctl"),
            "cg_memory_fleet": str(V1_MEMORY / self.fleet_id) if memory else None,
            "sudoers_file": str(SUDOERS_DIR / self.fleet_id), "host_dirs": [], "users": {},
            "homes": [], "fleetd_pid": None,
        }
        self._save()
        Path(self.state["cg_ctl"]).mkdir(parents=True)
        if memory:
            Path(self.state["cg_memory_fleet"]).mkdir()
        lib = self.base_dir / "lib" / "simfleet.py"
        lib.parent.mkdir(mode=0o755)
        shutil.copyfile(__file__, lib)
        os.chmod(lib, 0o644)
        for sub, mode in (("ssh", 0o700), ("cp", 0o700), ("hosts", 0o755), ("homes", 0o755)):
            (self.base_dir / sub).mkdir(mode=mode)
            os.chmod(self.base_dir / sub, mode)
        _run([_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", f"ansible@{self.fleet_id}",
              "-f", str(self.client_key_path)])
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory

        taken: set[int] = set()
        for index, spec in enumerate(self.specs):
            cfg = self._create_host(spec, index, kind, cg_root, lib, taken)
            self.hosts[spec.name] = SimHost(cfg)
        self._write_sudoers()
        known = "".join(f"[{h.address}]:{h.port} " + " ".join(
            Path(f"{h.cfg.host_key}.pub").read_text().split()[:2]) + "\n" for h in self)
        _write_text(self.known_hosts_path, known)
        _write_text(self.inventory_path, "# Simulated fleet " + self.fleet_id + " (tests/fleet/simfleet.py)\n"
                    + _yaml(self.inventory) + "\n")
        _write_text(self.ansible_cfg_path, (
            "# For trying the simulated fleet by hand: ANSIBLE_CONFIG=<this file> ansible all -m ping\n"
            f"[defaults]\ninventory = {self.inventory_path}\nhost_key_checking = True\n"
            "retry_files_enabled = False\ngathering = explicit\ntimeout = 10\nforks = 20\n\n"
            f"[ssh_connection]\npipelining = True\ncontrol_path_dir = {self.control_path_dir}\n"
            "ssh_args = -o ControlMaster=auto -o ControlPersist=60s\n"))
        self._start_fleetd()
        self._boot_all()

    def _create_host(self, spec: HostSpec, index: int, kind: str, cg_root: Path, lib: Path,
                     taken: set[int]) -> HostConfig:
        user = f"{self.fleet_id}-{spec.name}"[:32]
        state_dir = self.base_dir / "hosts" / spec.name
        home = self.base_dir / "homes" / spec.name
        state_dir.mkdir(mode=0o755)
        (state_dir / "bin").mkdir(mode=0o755)
        home.mkdir(mode=0o755)
        self.state["host_dirs"].append(str(state_dir))
        self.state["users"][user] = str(home)
        self._save()
        _useradd(user, home, spec.name)
        entry = pwd.getpwnam(user)
        if spec.home_size_mb:
            self.state["homes"].append(str(home))
            self._save()
            _run([_tool("mount"), "-t", "tmpfs", "-o",
                  f"size={int(spec.home_size_mb)}m,mode=0755,uid={entry.pw_uid},gid={entry.pw_gid},nosuid,nodev",
                  f"ebsim-{spec.name}", str(home)])
        os.chown(home, entry.pw_uid, entry.pw_gid)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        keys = ssh_dir / "authorized_keys"
        _write_text(keys, Path(f"{self.client_key_path}.pub").read_text(), 0o600)
        for path in (ssh_dir, keys):
            os.chown(path, entry.pw_uid, entry.pw_gid)

        address = f"127.0.0.{self.first_address + index}"
        port = _free_port(address, taken)
        taken.add(port)
        cg_memory = None
        if spec.memory_limit_mb:
            cg_memory = str(Path(self.state["cg_memory_fleet"]) / spec.name)
            Path(cg_memory).mkdir()
            _set_memory_limit(Path(cg_memory), spec.memory_limit_mb)
        track = cg_root / self.fleet_id / spec.name
        track.mkdir()
        pythons = {version: pyenv_prefix(version) for version in spec.pythons}
        rootfs = None
        if spec.rootfs:
            rootfs = str(state_dir / "rootfs")
            _unpack_rootfs(spec.rootfs, Path(rootfs), self.base_dir, entry, spec.name)
        cfg = HostConfig(
            name=spec.name, groups=list(spec.groups), label=spec.label or spec.name, user=user,
            uid=entry.pw_uid, gid=entry.pw_gid, home=str(home), address=address, port=port,
            state_dir=str(state_dir), base_dir=str(self.base_dir), fleet_id=self.fleet_id,
            python=SYSTEM_PYTHON, lib=str(lib), sshd=_tool("sshd"), unshare=_tool("unshare"),
            mount=_tool("mount"), cg_kind=kind, cg_track=str(track), cg_memory=cg_memory,
            memory_limit_mb=spec.memory_limit_mb, home_size_mb=spec.home_size_mb,
            boot_delay=self.boot_delay, shutdown_grace=self.shutdown_grace,
            machine_mnt_ns=_mount_ns(), client_key=str(self.client_key_path),
            known_hosts=str(self.known_hosts_path), host_vars=dict(spec.host_vars), pythons=pythons,
            hide_cgroups=spec.hide_cgroups, rootfs=rootfs)
        if rootfs:
            os.makedirs(CHROOT_MOUNTPOINT, mode=0o755, exist_ok=True)
            cpus = range(os.cpu_count() or 1)
            _write_text(cfg.p("cpuinfo"), "".join(AARCH64_CPUINFO.format(index=i) for i in cpus))
        _run([_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", f"root@{spec.name}",
              "-f", str(cfg.host_key)])
        _write_text(cfg.boot_id_file, str(uuid.uuid4()) + "\n")
        _write_text(cfg.p("hostname"), spec.name + "\n")
        _write_text(cfg.p("machine-id"), uuid.uuid4().hex + "\n", 0o444)
        original_hosts = ""
        with contextlib.suppress(OSError):
            original_hosts = Path("/etc/hosts").read_text()
        _write_text(cfg.p("hosts"), f"127.0.1.1\t{spec.name}\n{original_hosts}")
        script = STANDIN_SCRIPT.format(name=spec.name, python=SYSTEM_PYTHON, lib=lib, state_dir=state_dir)
        for name in ("standin", *POWER_COMMANDS):
            _write_text(cfg.bin_dir / name, script, 0o755)
        _write_sshd_config(cfg)
        cfg.save()
        return cfg

    def _boot_all(self) -> None:
        errors: list[BaseException] = []

        def boot(host: SimHost) -> None:
            try:
                host.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=boot, args=(host,)) for host in self]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _write_sudoers(self) -> None:
        lines = [f"# edgebench simulated fleet {self.fleet_id}: passwordless sudo so `become` works\n"]
        lines += [f"{host.user} ALL=(ALL:ALL) NOPASSWD: ALL\n" for host in self]
        target = Path(self.state["sudoers_file"])
        staging = target.with_name(target.name + ".new")  # sudo skips names with a dot
        _write_text(staging, "".join(lines), 0o440)
        try:
            _run([_tool("visudo"), "-cqf", str(staging)])
            os.replace(staging, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()

    def _start_fleetd(self) -> None:
        log = open(self.base_dir / "fleetd.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._fleetd = subprocess.Popen(
                [SYSTEM_PYTHON, str(self.base_dir / "lib" / "simfleet.py"), "_fleetd", str(self.base_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={"PATH": SBIN_PATH, "LANG": "C.UTF-8"})
        finally:
            log.close()
        self.state["fleetd_pid"] = self._fleetd.pid
        self._save()
        deadline = time.monotonic() + 10
        while True:
            try:
                fleetd_request(self.base_dir / "fleetd.sock", {"op": "ping"}, timeout=2)
                return
            except SimFleetError:
                if self._fleetd.poll() is not None or time.monotonic() > deadline:
                    raise SimFleetError("fleet supervisor did not start:\n"
                                        + _tail(self.base_dir / "fleetd.log")) from None
                time.sleep(0.05)

    @classmethod
    def attach(cls, base_dir: str | Path) -> SimFleet:
        """The fleet started earlier in base_dir (by scripts/simfleet up, or a crashed test)."""
        base = Path(base_dir).resolve()
        state = json.loads((base / "fleet.json").read_text())
        fleet = cls.__new__(cls)
        fleet.fleet_id, fleet.base_dir, fleet.state, fleet._fleetd = state["fleet_id"], base, state, None
        fleet.fleet_vars = {}
        fleet.hosts = {}
        for state_dir in state["host_dirs"]:
            with contextlib.suppress(FileNotFoundError):
                cfg = HostConfig.load(state_dir)
                fleet.hosts[cfg.name] = SimHost(cfg)
        return fleet

    def close(self) -> None:
        """Tear down everything this fleet created; safe to call twice and after a failed start."""
        if not self.state or self.state.get("closed"):
            return
        errors: list[str] = []

        def attempt(what: str, func, *args) -> None:
            try:
                func(*args)
            except Exception as exc:
                errors.append(f"{what}: {exc}")

        kind = self.state["cg_kind"]
        # 1. The supervisor kills every host (and reaps them: PID 1 here does not) and exits; then
        #    whatever is left, supervisor first so that no pending reboot brings a host back.
        with contextlib.suppress(SimFleetError, OSError):
            fleetd_request(Path(self.state["base_dir"], "fleetd.sock"), {"op": "shutdown"}, timeout=30)
        if self._fleetd is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._fleetd.wait(timeout=5)
        attempt("stop fleetd", cgroup_kill, kind, self.state["cg_ctl"])
        if self._fleetd is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._fleetd.wait(timeout=5)
        for state_dir in self.state["host_dirs"]:
            track = Path(self.state["cg_fleet"], Path(state_dir).name)
            attempt(f"kill {track.name}", cgroup_kill, kind, track)
        # 2. cgroups, sudoers, users, mounts, files.
        attempt("remove cgroups", _cg_remove, self.state["cg_fleet"])
        attempt("remove memory cgroups", _cg_remove, self.state.get("cg_memory_fleet"))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.state["sudoers_file"])
        for user, home in self.state["users"].items():
            attempt(f"userdel {user}", _userdel, user, home)
        for home in self.state["homes"]:
            if home in _mounts():
                attempt(f"umount {home}", _run, [_tool("umount"), home])
        base = Path(self.state["base_dir"])
        leftover = [m for m in _mounts() if m == str(base) or m.startswith(str(base) + "/")]
        if leftover:
            errors.append(f"mounts left under {base}, not deleting it: {leftover}")
        elif base.exists():
            if self.state["owns_base_dir"]:
                shutil.rmtree(base, ignore_errors=True)
            else:
                for child in base.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink()
        self.state["closed"] = True
        if errors:
            raise SimFleetError("simulated fleet teardown incomplete: " + "; ".join(errors))


def pyenv_prefix(version: str) -> str:
    """Where pyenv installed CPython ``version`` (every machine of this kind has 3.6 to 3.13)."""
    pyenv = find_tool("pyenv") or os.path.expanduser("~/.pyenv/bin/pyenv")
    proc = _run([pyenv, "prefix", version], check=False) if os.path.exists(pyenv) else None
    if proc is None or proc.returncode != 0:
        raise SimFleetUnavailable(f"CPython {version} is not installed by pyenv here (pyenv versions)")
    return proc.stdout.strip()


# The foreign userland: Debian's own packages for the architecture, what a Raspberry Pi OS 64-bit
# (bookworm) image has for Python. qemu-user-static runs it; mmdebstrap builds it.
ROOTFS_PACKAGES = ("python3-venv", "sudo", "procps", "libgomp1")
ROOTFS_CACHE = Path("/var/cache/edgebench-simfleet")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_ARCH = {"arm64": "aarch64"}


def ensure_binfmt(debian_arch: str = "arm64") -> None:
    """Register qemu-user for the architecture with the credentials flag.

    Debian registers it without 'C', and setuid sudo inside the userland then runs with the
    caller's credentials ("effective uid is not 0"). This changes only binfmt_misc's entry for that
    foreign architecture; x86-64 programs are untouched."""
    qemu = QEMU_ARCH[debian_arch]
    if not (BINFMT_DIR / "register").exists():
        _run([_tool("mount"), "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)])
    entry = BINFMT_DIR / f"qemu-{qemu}"
    if entry.exists() and "flags: POCF" in entry.read_text():
        return
    spec_file = Path(f"/usr/share/binfmts/qemu-{qemu}")
    if not spec_file.exists():
        raise SimFleetUnavailable(f"no qemu-user for {qemu} (apt-get install qemu-user-static)")
    fields = dict(line.split(" ", 1) for line in spec_file.read_text().splitlines() if " " in line)
    if entry.exists():
        entry.write_text("-1")
    offset, magic, mask = fields.get("offset", "0"), fields["magic"], fields["mask"]
    rule = f":qemu-{qemu}:M:{offset}:{magic}:{mask}:{fields['interpreter']}:POCF"
    (BINFMT_DIR / "register").write_text(rule)


def build_rootfs(debian_arch: str = "arm64", suite: str = "bookworm") -> Path:
    """A cached tarball of a minimal Debian userland for ``debian_arch``, built with mmdebstrap
    from the mirror apt uses here (about two minutes once; then reused)."""
    ensure_binfmt(debian_arch)
    key = hashlib.sha256(f"{debian_arch}/{suite}/{','.join(ROOTFS_PACKAGES)}".encode()).hexdigest()[:12]
    target = ROOTFS_CACHE / f"{suite}-{debian_arch}-{key}.tar.zst"
    if target.exists():
        return target
    mmdebstrap = find_tool("mmdebstrap")
    if not mmdebstrap:
        raise SimFleetUnavailable("a foreign userland needs mmdebstrap (apt-get install mmdebstrap)")
    ROOTFS_CACHE.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".{os.getpid()}.partial.tar.zst")
    proc = _run([mmdebstrap, f"--arch={debian_arch}", "--variant=minbase",
                 f"--include={','.join(ROOTFS_PACKAGES)}", suite, str(partial), _debian_mirror()],
                check=False, timeout=900)
    if proc.returncode != 0:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise SimFleetError(f"mmdebstrap failed: {proc.stderr.strip()[-2000:]}")
    os.replace(partial, target)
    return target


def _debian_mirror() -> str:
    """The Debian mirror apt is configured with here (deb822 or one-line sources)."""
    candidates = [*sorted(Path("/etc/apt/sources.list.d").glob("*")), Path("/etc/apt/sources.list")]
    for path in candidates:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                match = re.match(r"^\s*(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", line)
                if match and "security" not in match.group(1):
                    return match.group(1)
    return "http://deb.debian.org/debian"


def _unpack_rootfs(tarball: str, root: Path, base_dir: Path, entry, host: str) -> None:
    """Unpack the userland for one host and give it this host's user, sudo rule and mount points."""
    root.mkdir(mode=0o755)
    _run([_tool("tar"), "--zstd", "-xpf", str(tarball), "-C", str(root)], timeout=300)
    os.chmod(root, 0o755)
    (root / str(base_dir).lstrip("/")).mkdir(parents=True, exist_ok=True)
    for name in ("hosts", "hostname", "machine-id"):  # mount points for the host's own files
        (root / "etc" / name).touch()
    group = f"{entry.pw_name}:x:{entry.pw_gid}:\n"
    passwd = (f"{entry.pw_name}:x:{entry.pw_uid}:{entry.pw_gid}:edgebench simulated host {host}:"
              f"{entry.pw_dir}:/bin/bash\n")
    with open(root / "etc/passwd", "a") as handle:
        handle.write(passwd)
    with open(root / "etc/group", "a") as handle:
        handle.write(group)
    with open(root / "etc/shadow", "a") as handle:  # sudo's PAM account check reads it
        handle.write(f"{entry.pw_name}:*:19000:0:99999:7:::\n")
    _write_text(root / "etc/sudoers.d/edgebench-simfleet",
                f'Defaults env_keep += "QEMU_CPU"\n{entry.pw_name} ALL=(ALL:ALL) NOPASSWD: ALL\n', 0o440)


def _useradd(user: str, home: Path, host: str) -> None:
    argv = [_tool("useradd"), "--home-dir", str(home), "--no-create-home", "--shell", "/bin/bash",
            "--user-group", "--password", "*", "--comment", f"edgebench simulated host {host}", user]
    for _ in range(50):  # useradd fails rather than waits when another fleet holds /etc/passwd's lock
        proc = _run(argv, check=False)
        if proc.returncode == 0:
            return
        if "lock" not in proc.stderr:
            break
        time.sleep(0.1 + random.random() * 0.2)
    raise SimFleetError(f"useradd {user} failed: {proc.stderr.strip()}")


def _userdel(user: str, home: str) -> None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return
    if entry.pw_dir != home:  # never delete an account that is not ours
        raise SimFleetError(f"user {user} has home {entry.pw_dir}, not {home}: left alone")
    for _ in range(50):
        proc = _run([_tool("userdel"), user], check=False)
        if proc.returncode in (0, 6):
            return
        time.sleep(0.1 + random.random() * 0.2)
    raise SimFleetError(f"userdel {user} failed: {proc.stderr.strip()}")


def _write_sshd_config(cfg: HostConfig) -> None:
    lines = [
        f"# sshd of simulated host {cfg.name} (edgebench simfleet {cfg.fleet_id})",
        f"ListenAddress {cfg.address}:{cfg.port}",
        "AddressFamily inet",
        f"HostKey {cfg.host_key}",
        f"PidFile {cfg.p('sshd.pid')}",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        f"AllowUsers {cfg.user}",
        "UsePAM no",
        "StrictModes yes",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "MaxStartups 100:30:200",
        "MaxSessions 100",
        "LoginGraceTime 30",
        "Subsystem sftp internal-sftp",
        "PerSourcePenalties no",  # OpenSSH >= 9.8 would penalise the many aborted test connections
    ]
    if cfg.rootfs:
        # Sessions run in the foreign userland; a Cortex-A72 model emulates faster than qemu's
        # default (SVE) CPU, and sudo keeps the setting (see the sudoers file inside).
        lines += [f"ChrootDirectory {CHROOT_MOUNTPOINT}", "SetEnv QEMU_CPU=cortex-a72"]
    _write_text(cfg.sshd_config, "\n".join(lines) + "\n")
    proc = _run([cfg.sshd, "-t", "-f", str(cfg.sshd_config)], check=False)
    if proc.returncode != 0 and "PerSourcePenalties" in proc.stderr:
        lines.remove("PerSourcePenalties no")
        _write_text(cfg.sshd_config, "\n".join(lines) + "\n")
        proc = _run([cfg.sshd, "-t", "-f", str(cfg.sshd_config)], check=False)
    if proc.returncode != 0:
        raise SimFleetError(f"sshd config of {cfg.name} rejected: {proc.stderr.strip()}")


def _main(argv: list[str]) -> int:
    """Entry points the fleet runs itself: _fleetd, _enter, _inner, standin."""
    if not argv:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "_fleetd":
        _FleetDaemon(rest[0]).run()
        return 0
    if command == "_enter":
        _enter_main(rest[0])
    if command == "_inner":
        _inner_main(rest[0])
    if command == "standin":
        return _standin_main(rest[0], rest[1], rest[2:])
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
