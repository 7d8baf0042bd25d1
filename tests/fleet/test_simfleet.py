"""The simulated fleet itself: real SSH, real ansible CLI and ansible-runner, real reboot module.

The safety tests matter most: `become` on a simulated host is real root on this machine, so no
power command run there may touch this machine."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import simfleet

pytestmark = pytest.mark.xdist_group("simfleet")

REPO = Path(__file__).resolve().parents[2]
MACHINE_BOOT_ID = Path(simfleet.BOOT_ID_PATH).read_text().strip()
BIN = Path(sys.executable).parent


def ansible_env(fleet) -> dict:
    return {**os.environ, **fleet.env(), "ANSIBLE_CONFIG": str(fleet.ansible_cfg_path),
            "ANSIBLE_NOCOLOR": "1"}


def adhoc(fleet, pattern: str, module: str, args: str | None = None, *, become: bool = False,
          timeout: float = 120) -> tuple[int, dict]:
    """Run the real `ansible` CLI; returns (rc, per-host results read from the tree callback)."""
    tree = Path(tempfile.mkdtemp(prefix="simfleet-tree-"))
    try:
        argv = [str(BIN / "ansible"), pattern, "-i", str(fleet.inventory_path), "-m", module]
        if args:
            argv += ["-a", args]
        if become:
            argv.append("--become")
        env = {**ansible_env(fleet), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
               "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree", "ANSIBLE_CALLBACK_TREE_DIR": str(tree)}
        proc = subprocess.run(argv, cwd=fleet.base_dir, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        results = {path.name: json.loads(path.read_text()) for path in tree.iterdir()}
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    if not results:
        pytest.fail(f"ansible gave no results (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, results


def playbook(fleet, tmp_path: Path, text: str):
    """Run a playbook through ansible-runner; returns the runner."""
    import ansible_runner

    path = tmp_path / "play.yml"
    path.write_text(text)
    env = {key: value for key, value in ansible_env(fleet).items()
           if key.startswith("ANSIBLE_") or key == "PATH"}
    env["ANSIBLE_STDOUT_CALLBACK"] = "default"
    (tmp_path / "runner").mkdir()  # ansible-runner insists that private_data_dir exists
    return ansible_runner.run(private_data_dir=str(tmp_path / "runner"), playbook=str(path),
                              inventory=str(fleet.inventory_path), envvars=env, quiet=True, timeout=180)


def snapshot(fleet) -> dict:
    return {host.name: (host.boot_id, host.sshd_pid()) for host in fleet}


def test_ping_all_hosts_over_ssh(sim_fleet):
    rc, results = adhoc(sim_fleet, "all", "ping")
    assert rc == 0, results
    assert set(results) == {"rpi4-sim", "nano-sim", "xavier-sim"}
    assert all(result["ping"] == "pong" for result in results.values())


def test_inventory_groups_and_variables(sim_fleet):
    inventory = sim_fleet.inventory["all"]["children"]
    assert set(inventory["rpis"]["hosts"]) == {"rpi4-sim"}
    assert set(inventory["jetsons"]["hosts"]) == {"nano-sim", "xavier-sim"}
    nano = inventory["jetsons"]["hosts"]["nano-sim"]
    assert nano["edgebench_simulated"] is True
    # become stays off unless a play asks; an inventory ansible_become would override `become: true`
    assert "ansible_become" not in nano
    assert nano["ansible_python_interpreter"] == "/usr/bin/python3"
    assert "ServerAliveInterval=2" in nano["ansible_ssh_common_args"]
    assert f"UserKnownHostsFile={sim_fleet.known_hosts_path}" in nano["ansible_ssh_common_args"]
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(sim_fleet.inventory_path), "--list"],
                          capture_output=True, text=True, check=True, env=ansible_env(sim_fleet))
    listed = json.loads(proc.stdout)
    assert listed["_meta"]["hostvars"]["nano-sim"]["ansible_port"] == sim_fleet["nano-sim"].port
    assert listed["rpis"]["hosts"] == ["rpi4-sim"]


def test_each_host_has_its_own_hostname_user_home_and_boot_id(sim_fleet):
    rc, results = adhoc(sim_fleet, "all", "shell",
                           'echo "$(hostname) $(id -un) $HOME $(cat /proc/sys/kernel/random/boot_id)"')
    assert rc == 0, results
    boot_ids = set()
    for name, result in results.items():
        host = sim_fleet[name]
        hostname, user, home, boot_id = result["stdout"].split()
        assert (hostname, user, home) == (name, host.user, str(host.home))
        assert boot_id == host.boot_id != MACHINE_BOOT_ID
        boot_ids.add(boot_id)
    assert len(boot_ids) == 3
    assert len({host.address for host in sim_fleet}) == 3
    assert os.uname().nodename not in {host.name for host in sim_fleet}


def test_become_works(sim_fleet):
    rc, results = adhoc(sim_fleet, "all", "command", "id -u", become=True)
    assert rc == 0, results
    assert {result["stdout"] for result in results.values()} == {"0"}


def test_standins_are_bound_inside_the_host_only(sim_fleet):
    host = sim_fleet["rpi4-sim"]
    paths = simfleet.power_command_paths()
    assert "/usr/sbin/shutdown" in paths and "/usr/bin/systemctl" in paths
    out = host.ssh("stat -L -c '%d:%i' " + " ".join(paths) + f" {host.cfg.standin}"
                   "; grep -c -e ' /proc/sys/kernel/random/boot_id ' -e ' /usr/bin/systemctl ' "
                   "/proc/self/mountinfo; systemctl status; echo rc=$?; systemctl reboot; echo rc=$?").stdout
    lines = out.splitlines()
    inodes = lines[: len(paths) + 1]
    assert len(set(inodes)) == 1, dict(zip([*paths, "standin"], inodes, strict=True))
    assert int(lines[len(paths) + 1]) >= 2  # the binds show in the host's mount table
    assert "stand-in" in out and "rc=0" in out
    assert "rc=1" in out  # `systemctl reboot` without root is refused, as on a real device
    # This machine is untouched: its power commands are not the stand-in, its boot id its own.
    standin = os.stat(host.cfg.standin)
    for path in paths:
        assert os.stat(path).st_ino != standin.st_ino or os.stat(path).st_dev != standin.st_dev
    assert Path(simfleet.BOOT_ID_PATH).read_text().strip() == MACHINE_BOOT_ID
    assert simfleet.BOOT_ID_PATH not in simfleet._mounts()
    assert host.boot_id == host.ssh("cat /proc/sys/kernel/random/boot_id").stdout.strip()


@pytest.mark.parametrize(
    ("target", "bystander", "task"),
    [
        ("rpi4-sim", "nano-sim", "ansible.builtin.reboot:"),
        ("nano-sim", "xavier-sim", "ansible.builtin.reboot:\n        reboot_command: "
         '"{{ edgebench_reboot_command }}"\n        boot_time_command: "{{ edgebench_boot_time_command }}"'),
    ],
    ids=["default-module-args", "inventory-commands"],
)
def test_reboot_module_reboots_only_its_host(sim_fleet, tmp_path, target, bystander, task):
    target_host, bystander_host = sim_fleet[target], sim_fleet[bystander]
    target_host.start_process("exec sleep 3601")
    bystander_host.start_process("exec sleep 3602")
    before = snapshot(sim_fleet)
    started = time.monotonic()
    runner = playbook(sim_fleet, tmp_path, f"""
- hosts: {target}
  become: true
  tasks:
    - name: Reboot the simulated host
      {task}
""")
    elapsed = time.monotonic() - started
    assert runner.rc == 0, runner.stdout.read()
    assert runner.stats["changed"] == {target: 1}
    after = snapshot(sim_fleet)
    assert after[target][0] != before[target][0] and after[target][1] != before[target][1]
    assert after[bystander] == before[bystander]
    assert not any("sleep 3601" in cmd for cmd in target_host.processes().values())  # killed by reboot
    assert any("sleep 3602" in cmd for cmd in bystander_host.processes().values())
    assert bystander_host.kill_processes(r"sleep 3602")
    assert Path(simfleet.BOOT_ID_PATH).read_text().strip() == MACHINE_BOOT_ID
    assert elapsed < 30


def _power(sim_fleet, command: str, via_ansible: bool) -> None:
    host = sim_fleet["xavier-sim"]
    others = {h.name: (h.boot_id, h.sshd_pid()) for h in sim_fleet if h is not host}
    previous = host.boot_id
    if via_ansible:
        rc, results = adhoc(sim_fleet, host.name, "shell", command, become=True)
        assert rc == 0, results
        assert "stand-in" in results[host.name]["stdout"]
    else:
        host.ssh(f"sudo -n {command}")
    name, *args = command.split()
    if simfleet.classify_power_command(name.rsplit("/", 1)[-1], args)[0] == "reboot":
        host.wait_for_boot(previous, timeout=20)
    else:
        host.wait_until_stopped(timeout=10)
        assert not simfleet.ssh_banner(host.address, host.port)
        host.start()
    assert {h.name: (h.boot_id, h.sshd_pid()) for h in sim_fleet if h is not host} == others
    assert Path(simfleet.BOOT_ID_PATH).read_text().strip() == MACHINE_BOOT_ID


@pytest.mark.parametrize("command", ["shutdown -r now", "reboot", "systemctl reboot", "poweroff",
                                     "/sbin/shutdown -h now"])
def test_power_commands_with_become_only_touch_their_simulated_host(sim_fleet, command):
    _power(sim_fleet, command, via_ansible=True)


@pytest.mark.parametrize("command", ["halt", "init 6", "telinit 0", "/usr/sbin/reboot -f",
                                     "systemctl start reboot.target"])
def test_more_power_commands_over_ssh_with_sudo(sim_fleet, command):
    _power(sim_fleet, command, via_ansible=False)


def test_host_does_not_start_when_a_bind_fails(sim_fleet):
    host = sim_fleet["rpi4-sim"]
    standin = host.cfg.standin
    host.stop()
    standin.rename(standin.with_name("standin.off"))
    try:
        with pytest.raises(simfleet.SimFleetError, match="NOT started"):
            host.start()
        assert not host.is_running() and not simfleet.ssh_banner(host.address, host.port)
    finally:
        standin.with_name("standin.off").rename(standin)
    host.start()
    assert host.ssh("true").returncode == 0


def test_a_host_cannot_reboot_another_host(sim_fleet):
    rpi4, nano = sim_fleet["rpi4-sim"], sim_fleet["nano-sim"]
    before = snapshot(sim_fleet)
    proc = rpi4.ssh(f"sudo -n {nano.reboot_command}", check=False)
    assert proc.returncode == 1 and "cannot control nano-sim" in proc.stderr
    time.sleep(nano.cfg.shutdown_grace + 0.3)
    assert snapshot(sim_fleet) == before


def test_stopped_host_is_unreachable_quickly_while_others_succeed(sim_fleet):
    host = sim_fleet["xavier-sim"]
    host.stop()
    assert not host.is_running() and host.sshd_pid() is None
    started = time.monotonic()
    rc, results = adhoc(sim_fleet, "all", "ping")
    assert time.monotonic() - started < 30
    assert rc == 4
    assert results["xavier-sim"].get("unreachable") is True
    assert results["rpi4-sim"]["ping"] == results["nano-sim"]["ping"] == "pong"
    host.start()
    rc, results = adhoc(sim_fleet, "xavier-sim", "ping")
    assert rc == 0, results


def test_freeze_hangs_a_host_and_thaw_brings_it_back(sim_fleet):
    host = sim_fleet["nano-sim"]
    host.freeze()
    try:
        proc = subprocess.run(host.ssh_argv("true", connect_timeout=2), capture_output=True, timeout=20,
                              check=False, stdin=subprocess.DEVNULL)
        assert proc.returncode == 255
    finally:
        host.thaw()
    assert host.ssh("true").returncode == 0


def test_kill_processes_by_pattern(sim_fleet):
    host = sim_fleet["rpi4-sim"]
    host.start_process("exec sleep 3700")
    time.sleep(0.2)
    assert len(host.kill_processes(r"^sleep 3700$")) == 1
    time.sleep(0.2)
    assert not any("sleep 3700" in cmd for cmd in host.processes().values())
    assert host.sshd_pid() is not None
    assert host.path("x", "y") == host.home / "x" / "y"


def test_memory_cap_and_small_disk(sim_fleet_factory):
    fleet = sim_fleet_factory([("cap-sim", "rpis", {"memory_limit_mb": 64, "home_size_mb": 8})])
    host = fleet["cap-sim"]
    memory = Path(host.cfg.cg_memory)
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(64 * 1024 * 1024)
    # Every process of the host is in its memory cgroup. A process starts in the tracking cgroup and
    # joins the memory one a moment later, so a snapshot may catch one in between: look again.
    deadline = time.monotonic() + 10
    while not set(host.pids()) <= set(simfleet.cgroup_pids(memory)):
        assert time.monotonic() < deadline, (host.pids(), simfleet.cgroup_pids(memory))
        time.sleep(0.1)
    assert host.sshd_pid() in host.pids()
    assert str(host.home) in simfleet._mounts()
    full = host.ssh("head -c 20M /dev/zero > ~/big", check=False)
    assert full.returncode != 0 and "No space left on device" in full.stderr
    oom = host.ssh("python3 -c 'b = bytearray(300 * 1024 * 1024)'; echo rc=$?")
    assert oom.stdout.strip() == "rc=137"  # SIGKILLed by the cgroup's OOM killer
    assert host.is_running() and host.ssh("true").returncode == 0
    fleet.close()


def test_teardown_leaves_nothing_behind(sim_fleet_factory):
    fleet = sim_fleet_factory([("gone-sim", "rpis", {"memory_limit_mb": 64, "home_size_mb": 4})],
                              boot_delay=30)
    host = fleet["gone-sim"]
    host.start_process("exec sleep 3800")
    pids = host.pids()
    assert host.ssh("sudo -n reboot").returncode == 0  # a reboot still pending at teardown
    time.sleep(host.cfg.shutdown_grace + 0.2)
    base, state = fleet.base_dir, dict(fleet.state)
    fleet.close()
    time.sleep(0.3)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    for path in (state["cg_fleet"], state["cg_memory_fleet"], state["sudoers_file"], base):
        assert not Path(path).exists(), path
    with pytest.raises(KeyError):
        pwd.getpwnam(host.user)
    assert not [m for m in simfleet._mounts() if m.startswith(str(base))]
    assert not simfleet.ssh_banner(host.address, host.port)
    ours = [pid for pid in os.listdir("/proc") if pid.isdigit() and str(base) in simfleet._cmdline(int(pid))]
    assert ours == []


def test_script_up_and_down():
    script = REPO / "scripts" / "simfleet"
    # Not under pytest's tmp_path: that is 0700 and the host users must reach their homes.
    target = Path("/tmp") / f"edgebench-simfleet-script-{os.getpid()}-{time.monotonic_ns()}"
    up = subprocess.run([sys.executable, str(script), "up", "--hosts", "hand-a:rpis,hand-b:jetsons",
                         "--dir", str(target)], capture_output=True, text=True, timeout=60, check=False)
    assert up.returncode == 0, up.stderr
    inventory = Path(up.stdout.strip().splitlines()[-1])
    assert inventory == target / "inventory.yml" and inventory.exists()
    fleet = simfleet.SimFleet.attach(target)
    assert {h.name for h in fleet} == {"hand-a", "hand-b"} and all(h.is_running() for h in fleet)
    down = subprocess.run([sys.executable, str(script), "down", "--dir", str(target)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert not target.exists()
    with pytest.raises(KeyError):
        pwd.getpwnam(fleet["hand-a"].user)
