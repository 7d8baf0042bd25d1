"""Fleet resilience (issue 6): the real benchmark.yml over real SSH against three simulated hosts,
with faults injected while it runs: a host that vanishes, a runtime killed mid-model, a memory cap
that one model exceeds, a corrupted artifact, the controller's ansible-playbook killed, a disk that
fills up, results that do not check out.

One fleet serves the whole module (provisioning it is the expensive part); every scenario uses its
own run id, and the faults of one playbook run are spread over different hosts:

- rpi-a: plain; vanishes mid-run.
- rpi-b: memory-capped (cgroup v1) so that alexnet does not fit while the small models do.
- rpi-c: a size-capped (tmpfs) home for the disk-full scenario; its runtime is SIGKILLed mid-model.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("simfleet")]

SMALL = ["mobilenet_v3_small", "shufflenet_v2_x0_5"]
BIG = "alexnet"  # 244 MB of weights: about 470 MB resident in ONNX Runtime, the small ones about 105 MB
MEMORY_CAP_MB = 300
COUNT = 150  # images per run: a few seconds per model on a busy 2-core machine
DISK_COUNT = 250  # images per run in the disk-full scenario: the disk fills while the first model runs
HOME_MB = 400  # rpi-c's "SD card": the runtime's venv and wheelhouse take about 280 MB



@pytest.fixture(scope="module")
def sim_fleet_specs():
    return [
        ("rpi-a", "rpis"),
        # Start uncapped (provisioning runs pip); the scenario lowers the cap.
        ("rpi-b", "rpis", {"memory_limit_mb": 8192}),
        ("rpi-c", "rpis", {"home_size_mb": HOME_MB}),
    ]


RUNNING: list[Playbook] = []


@pytest.fixture(autouse=True)
def _no_playbook_left_running():
    """A failed test must not leave its ansible-playbook running into the next one."""
    yield
    while RUNNING:
        playbook = RUNNING.pop()
        if playbook.proc.poll() is None:
            playbook.kill()


# --- running the playbook ------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(
                int(stat.parent.name)
            )
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Playbook:
    """ansible-playbook in the background, its output lines timestamped as they arrive."""

    def __init__(self, fleet, inventory: Path, *args: str):
        env = {
            **os.environ,
            **fleet.env(),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        }
        command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), *args]
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        RUNNING.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait(self, timeout: float = 600) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"ansible-playbook still ran after {timeout} s:\n{self.tail()}")
        self._reader.join(10)
        return rc

    def kill(self) -> None:
        """SIGKILL ansible-playbook, its workers (each in a session of its own) and their ssh clients:
        a laptop that dies."""
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(10)

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def tail(self, size: int = 6000) -> str:
        return self.output[-size:]

    def first(self, pattern: str) -> float | None:
        for stamp, line in self.lines:
            if re.search(pattern, line):
                return stamp
        return None


def message(playbook: Playbook, pattern: str) -> str:
    """The text of the playbook's output that matches (whitespace runs, line wraps included, read as
    one space); printed, so that -s shows the messages a user would read."""
    text = re.sub(r"\s+", " ", playbook.output)
    match = re.search(pattern, text)
    assert match, f"no {pattern!r} in:\n{playbook.tail()}"
    print(f"\n[{playbook.proc.args[3:6]}] ...{text[match.start() : match.start() + 600]}")
    return match.group(0)


def run(fleet, inventory: Path, *args: str, expect: int | None = 0) -> Playbook:
    playbook = Playbook(fleet, inventory, *args)
    rc = playbook.wait()
    if expect is not None and rc != expect:
        pytest.fail(f"ansible-playbook exited {rc}, expected {expect}:\n{playbook.tail()}")
    return playbook


def plan(results: Path, run_id: str, artifacts: Path, **overrides) -> str:
    values = {
        "edgebench_models": SMALL,
        "edgebench_modes": ["warm"],
        "edgebench_image_count": COUNT,
        # Exact row counts: no extension to the validity minimums (issue 11).
        "edgebench_max_images": "{{ edgebench_image_count }}",
        "edgebench_warmup_count": 1,
        "edgebench_threads": 1,
        "edgebench_poll_interval_s": 0.5,
        "edgebench_artifacts_dir": str(artifacts),
        "edgebench_results_dir": str(results),
        "run_id": run_id,
        **overrides,
    }
    return json.dumps({key: value for key, value in values.items() if value is not None})


def write_inventory(fleet, path: Path, host_vars: dict[str, dict]) -> Path:
    """The fleet's inventory with extra variables per host (a plan that differs by host)."""
    data = copy.deepcopy(fleet.inventory)
    for group in data["all"]["children"].values():
        for name, variables in group["hosts"].items():
            variables.update(host_vars.get(name, {}))
    path.write_text(json.dumps(data, indent=1))  # JSON is YAML
    return path


# --- reading results -----------------------------------------------------------------------------


def device_dir(host, run_id: str) -> Path:
    return host.path("edgebench", "results", run_id, host.name)


def indexes(run_dir: Path) -> list[int]:
    """`index` of every complete row of timings.csv (a torn last line is not a row)."""
    text = (run_dir / "timings.csv").read_text()
    lines = text.splitlines(keepends=True)
    complete = [line for line in lines if line.endswith("\n")]
    return [int(row["index"]) for row in csv.DictReader(complete)]


def corrupt(path: Path) -> None:
    """Flip 64 bytes in the middle of a file: same size, different sha256."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(255 - x for x in data[middle : middle + 64])
    path.write_bytes(bytes(data))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def when_rows(playbook: Playbook, actions: list, timeout: float = 120) -> None:
    """For each (run_dir, rows, action): call action as soon as run_dir's timings.csv has rows."""
    pending = list(actions)
    deadline = time.monotonic() + timeout
    while pending:
        for item in list(pending):
            timings = item[0] / "timings.csv"
            if timings.exists() and timings.read_bytes().count(b"\n") > item[1]:
                item[2]()
                pending.remove(item)
        if not pending:
            return
        if playbook.proc.poll() is not None or time.monotonic() > deadline:
            names = [str(item[0]) for item in pending]
            pytest.fail(f"no {pending[0][1]} rows in {names} while the playbook ran:\n{playbook.tail()}")
        time.sleep(0.02)


def wait_for_rows(run_dir: Path, rows: int, playbook: Playbook) -> None:
    when_rows(playbook, [(run_dir, rows, lambda: None)])


def assert_exact(run_dir: Path, count: int = COUNT, segments: int | None = None) -> dict:
    """A complete run with every image index exactly once."""
    data = summary(run_dir)
    assert data["status"] == "complete", (run_dir, data["status"], data.get("reason"))
    assert indexes(run_dir) == list(range(count)), run_dir
    assert data["images"]["measured"] == count
    if segments is not None:
        assert len(data["segments"]) == segments, (run_dir, data["segments"])
    return data


# --- the provisioned fleet -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(request, artifacts_dir, convert_models, tmp_path_factory):
    """The fleet, provisioned, plus what every scenario needs (the first scenario deploys)."""
    convert_models([BIG])
    sim_fleet = request.getfixturevalue("sim_fleet")
    work = tmp_path_factory.mktemp("resilience")
    env = {
        "fleet": sim_fleet,
        "artifacts": artifacts_dir,
        "results": work / "results",
        "work": work,
        "inventory": sim_fleet.inventory_path,
    }
    run(sim_fleet, sim_fleet.inventory_path, "benchmark.yml", "--tags", "provision",
        "-e", plan(env["results"], "provision", artifacts_dir))  # fmt: skip
    return env


def skip_provision(fleet: dict, run_id: str, *args: str, report: bool = False, **overrides) -> list:
    """Arguments of benchmark.yml on the provisioned fleet: provisioning (idempotent, but half a
    minute) and, unless asked for, the report (seconds of plotting) are skipped; every other phase
    runs. The last two items are ``-e PLAN``; ``[3:]`` are the arguments after the skipped tags."""
    return [
        "benchmark.yml", "--skip-tags", "provision" if report else "provision,report", *args,
        "-e", plan(fleet["results"], run_id, fleet["artifacts"], **overrides),
    ]  # fmt: skip


# --- a vanished host, a killed runtime, an out-of-memory model, a corrupt artifact ---------------


@pytest.fixture(scope="module")
def faulted_run(fleet):
    """One benchmark run with a fault on every host, then the same run id again after repairs."""
    sim_fleet = fleet["fleet"]
    a, b, c = sim_fleet["rpi-a"], sim_fleet["rpi-b"], sim_fleet["rpi-c"]
    run_id = "faults"
    # rpi-b's plan puts the model that does not fit between two that do; the others run SMALL.
    models = {"rpi-a": SMALL, "rpi-b": [SMALL[0], BIG, SMALL[1]], "rpi-c": SMALL}
    inventory = write_inventory(
        sim_fleet, fleet["work"] / "faults.yml", {name: {"edgebench_models": m} for name, m in models.items()}
    )
    b.set_memory_limit(MEMORY_CAP_MB)
    first = Playbook(sim_fleet, inventory, *skip_provision(fleet, run_id, report=True, edgebench_models=None))
    vanished_at = None

    def kill_child() -> None:  # rpi-c: the process measuring its first model is SIGKILLed
        assert c.kill_processes(r"edgebench_runtime _child"), c.processes()

    def power_cut() -> None:  # rpi-a: sshd and every process of the host killed
        nonlocal vanished_at
        vanished_at = time.monotonic()
        a.stop()

    when_rows(first, [(device_dir(c, run_id) / SMALL[0] / "cpu-warm", 5, kill_child),
                      (device_dir(a, run_id) / SMALL[0] / "cpu-warm", 3, power_cut)])  # fmt: skip
    first_rc = first.wait()
    first_state = {
        "c_killed_rows": indexes(device_dir(c, run_id) / SMALL[0] / "cpu-warm"),
        "c_collected": {model: summary(fleet["results"] / run_id / "rpi-c" / model / "cpu-warm")
                        for model in SMALL},
        "b_complete": {model: (device_dir(b, run_id) / model / "cpu-warm" / "timings.csv").read_bytes()
                       for model in SMALL},
        "c_second": (device_dir(c, run_id) / SMALL[1] / "cpu-warm" / "timings.csv").read_bytes(),
        "a_rows": indexes(device_dir(a, run_id) / SMALL[0] / "cpu-warm"),
        "results_after_first": sorted(p.name for p in (fleet["results"] / run_id).iterdir()),
    }  # fmt: skip

    # Repairs: rpi-a comes back; rpi-c's copy of a model is corrupted (same size, bytes flipped).
    a.start()
    corrupt(c.path("edgebench", "artifacts", SMALL[1], "model.onnx"))
    second = run(sim_fleet, inventory, *skip_provision(fleet, run_id, edgebench_models=None))
    return {
        "run_id": run_id, "first": first, "first_rc": first_rc, "vanished_at": vanished_at,
        "second": second, **first_state,
    }  # fmt: skip


def test_a_vanished_host_is_unreachable_within_30_s_and_the_others_finish(fleet, faulted_run):
    first = faulted_run["first"]
    assert faulted_run["first_rc"] == 4, first.tail()  # 4: some host unreachable
    reported = first.first(r"\[rpi-a\].*UNREACHABLE")
    assert reported is not None, first.tail()
    delay = reported - faulted_run["vanished_at"]
    print(f"rpi-a vanished -> UNREACHABLE reported after {delay:.2f} s")
    assert delay < 30
    # The others were measured, collected and reported in the same playbook run.
    assert {"rpi-b", "rpi-c", "summary.csv"} <= set(faulted_run["results_after_first"])
    assert "rpi-a" not in faulted_run["results_after_first"]
    # What rpi-a measured before it vanished stayed on it, and is collected by the rerun below.
    assert 3 <= len(faulted_run["a_rows"]) < COUNT


def test_a_killed_run_is_recorded_with_its_rows_and_the_host_moves_on(fleet, faulted_run):
    killed = faulted_run["c_killed_rows"]
    assert 5 <= len(killed) < COUNT and killed == list(range(len(killed)))
    # Collected by the first playbook run: the killed model failed with the images it completed ...
    recorded = faulted_run["c_collected"][SMALL[0]]
    assert recorded["status"] == "failed" and "killed by SIGKILL" in recorded["reason"], recorded
    assert recorded["images"]["measured"] == len(killed)
    # ... and the host went on to its next model.
    assert faulted_run["c_collected"][SMALL[1]]["status"] == "complete"


def test_out_of_memory_is_recorded_for_that_model_and_the_others_complete(fleet, faulted_run):
    host = fleet["results"] / faulted_run["run_id"] / "rpi-b"
    oom = summary(host / BIG / "cpu-warm")
    assert oom["status"] == "oom", oom
    assert "oom_kill" in oom["reason"] or "OOM" in oom["reason"], oom["reason"]
    for model in SMALL:
        assert_exact(host / model / "cpu-warm", segments=1)


def test_a_rerun_with_the_run_id_does_only_the_missing_work(fleet, faulted_run):
    run_id, results = faulted_run["run_id"], fleet["results"] / faulted_run["run_id"]
    sim_fleet = fleet["fleet"]
    # rpi-a (vanished mid-model) and rpi-c (killed mid-model) resume image by image: every index
    # exactly once, the new segment starting where the device had stopped.
    resumed = assert_exact(results / "rpi-a" / SMALL[0] / "cpu-warm")
    assert resumed["segments"][-1]["start_index"] == len(faulted_run["a_rows"]) > 0
    resumed = assert_exact(results / "rpi-c" / SMALL[0] / "cpu-warm", segments=2)
    assert resumed["segments"][1]["start_index"] == len(faulted_run["c_killed_rows"])
    # What was complete is not run again.
    assert_exact(results / "rpi-a" / SMALL[1] / "cpu-warm", segments=1)
    assert_exact(results / "rpi-c" / SMALL[1] / "cpu-warm", segments=1)
    c_second = device_dir(sim_fleet["rpi-c"], run_id) / SMALL[1] / "cpu-warm" / "timings.csv"
    assert c_second.read_bytes() == faulted_run["c_second"]
    for model in SMALL:
        b_run = device_dir(sim_fleet["rpi-b"], run_id) / model / "cpu-warm" / "timings.csv"
        assert b_run.read_bytes() == faulted_run["b_complete"][model]
    # The controller's copies equal the devices'.
    for host in sim_fleet:
        for model in SMALL:
            local = results / host.name / model / "cpu-warm" / "timings.csv"
            assert (
                local.read_bytes()
                == (device_dir(host, run_id) / model / "cpu-warm" / "timings.csv").read_bytes()
            )


def test_a_corrupt_artifact_on_a_device_is_caught_and_pushed_again(fleet, faulted_run):
    second = faulted_run["second"].output
    assert re.search(rf"changed: \[rpi-c\] => \(item={SMALL[1]}/model.onnx\)", second), second[-6000:]
    assert not re.search(r"changed: \[rpi-[ab]\] => \(item=", second)
    pushed = fleet["fleet"]["rpi-c"].path("edgebench", "artifacts", SMALL[1], "model.onnx")
    assert pushed.read_bytes() == (fleet["artifacts"] / SMALL[1] / "model.onnx").read_bytes()


def test_collection_is_verified_and_never_shortens_the_controller_copy(fleet, faulted_run):
    sim_fleet, run_id = fleet["fleet"], faulted_run["run_id"]
    results = fleet["results"] / run_id
    # rpi-a's device copy loses rows (a damaged card): its summary says complete with COUNT images.
    damaged = device_dir(sim_fleet["rpi-a"], run_id) / SMALL[0] / "cpu-warm" / "timings.csv"
    lines = damaged.read_text().splitlines(keepends=True)
    damaged.write_text("".join(lines[:11]))
    before = (results / "rpi-a" / SMALL[0] / "cpu-warm" / "timings.csv").read_bytes()
    collect = run(
        sim_fleet, fleet["inventory"], "benchmark.yml", "--tags", "collect",
        "-e", plan(fleet["results"], run_id, fleet["artifacts"]), expect=2,
    )  # fmt: skip
    out = collect.output
    message(
        collect,
        rf"rpi-a: the results fetched from \S*{run_id}/rpi-a do not check out:.*"
        rf"{SMALL[0]}/cpu-warm: timings.csv has 10 rows but summary.json says {COUNT}",
    )
    message(collect, rf"{SMALL[0]}/cpu-warm: the device has 10 rows, fewer than the controller's {COUNT}")
    assert re.search(r"fatal: \[rpi-a\]", out) and not re.search(r"fatal: \[rpi-[bc]\]", out)
    assert "kept: rpi-b" in out and "kept: rpi-c" in out
    # The controller keeps its longer copy.
    assert (results / "rpi-a" / SMALL[0] / "cpu-warm" / "timings.csv").read_bytes() == before
    assert indexes(results / "rpi-a" / SMALL[0] / "cpu-warm") == list(range(COUNT))


# --- the controller goes away --------------------------------------------------------------------


def test_killing_the_controller_leaves_the_devices_measuring_and_a_rerun_reattaches(fleet):
    sim_fleet, run_id = fleet["fleet"], "detached"
    hosts = [sim_fleet["rpi-a"], sim_fleet["rpi-c"]]
    # A cooldown between the models keeps every benchmark alive for a while after the kill.
    args = skip_provision(fleet, run_id, "-l", "rpi-a,rpi-c", edgebench_cooldown="fixed:5")
    first = Playbook(sim_fleet, fleet["inventory"], *args)
    for host in hosts:
        wait_for_rows(device_dir(host, run_id) / SMALL[0] / "cpu-warm", 3, first)
    first.kill()
    at_kill = {host.name: len(indexes(device_dir(host, run_id) / SMALL[0] / "cpu-warm")) for host in hosts}
    assert all(rows < COUNT for rows in at_kill.values()), at_kill
    for host in hosts:
        assert any("edgebench-runtime run" in cmd for cmd in host.processes().values()), host.name

    again = run(sim_fleet, fleet["inventory"], "benchmark.yml", "--tags", "run,collect",
                *args[3:])  # fmt: skip
    for host in hosts:
        assert f"{host.name}: attached to the benchmark already running" in again.output, again.tail()
        for model in SMALL:
            # Measured once, in one segment: the benchmark never stopped.
            assert_exact(fleet["results"] / run_id / host.name / model / "cpu-warm", segments=1)


# --- the device's disk fills up ------------------------------------------------------------------


def fill(path: Path) -> None:
    """Write to ``path`` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (1 << 20, 1 << 12, 1):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while os.write(fd, chunk):
                    pass
    finally:
        os.close(fd)


def test_a_full_disk_stops_the_phase_with_host_path_and_space_and_loses_nothing(fleet):
    sim_fleet, run_id = fleet["fleet"], "diskfull"
    host = sim_fleet["rpi-c"]
    args = skip_provision(fleet, run_id, "-l", "rpi-c", edgebench_image_count=DISK_COUNT)
    filler = host.path("filler.bin")
    try:
        first = Playbook(sim_fleet, fleet["inventory"], *args)
        measuring = device_dir(host, run_id) / SMALL[0] / "cpu-warm"
        wait_for_rows(measuring, 5, first)
        fill(filler)
        assert first.wait() == 2, first.tail()
        message(
            first,
            rf"rpi-c: the disk filled up during the run: {re.escape(str(device_dir(host, run_id)))} has "
            r"[0-9.]+ MiB free; this unit of work needs about [0-9.]+ MiB",
        )
        # The rows measured before the disk filled are intact on the device and were collected.
        failed = summary(measuring)
        assert failed["status"] == "failed" and "ENOSPC" in failed["reason"], failed
        measured = indexes(measuring)
        assert 5 <= len(measured) < DISK_COUNT and measured == list(range(len(measured)))
        collected = fleet["results"] / run_id / "rpi-c" / SMALL[0] / "cpu-warm"
        assert indexes(collected) == measured
        assert summary(collected)["status"] == "failed"

        # While the disk is full, deploy refuses a model that does not fit and pushes nothing...
        deploy = run(sim_fleet, fleet["inventory"], "benchmark.yml", "--tags", "deploy", "-l", "rpi-c",
                     "-e", plan(fleet["results"], run_id, fleet["artifacts"], edgebench_models=[BIG]),
                     expect=2)  # fmt: skip
        message(
            deploy,
            rf"rpi-c: not enough disk space in {re.escape(str(host.path('edgebench', 'artifacts')))}: the 3 "
            rf"files to push \({BIG}/manifest.json, {BIG}/model.onnx, {BIG}/reference.npz\) need [0-9.]+ MiB",
        )
        assert not host.path("edgebench", "artifacts", BIG).exists()
        # ... and the run phase does not start what it has no room for.
        refused = run(sim_fleet, fleet["inventory"], "benchmark.yml", "--tags", "run", *args[3:], expect=2)
        message(
            refused,
            rf"rpi-c: not enough disk space in {re.escape(str(device_dir(host, run_id)))}: "
            rf"2 runs of {DISK_COUNT} images need about [0-9.]+ MiB and [0-9.]+ MiB are free",
        )
        assert indexes(measuring) == measured
    finally:
        filler.unlink(missing_ok=True)

    # Space again: the rerun finishes what is missing, image by image.
    run(sim_fleet, fleet["inventory"], *args)
    results = fleet["results"] / run_id / "rpi-c"
    resumed = assert_exact(results / SMALL[0] / "cpu-warm", count=DISK_COUNT, segments=2)
    assert resumed["segments"][1]["start_index"] == len(measured)
    assert_exact(results / SMALL[1] / "cpu-warm", count=DISK_COUNT)


# --- a bad controller copy -----------------------------------------------------------------------


def test_a_corrupt_controller_copy_is_refused_before_anything_is_pushed(fleet):
    sim_fleet = fleet["fleet"]
    bad = fleet["work"] / "bad-artifacts"
    for name in (SMALL[0], "images"):
        shutil.copytree(fleet["artifacts"] / name, bad / name)
    corrupt(bad / SMALL[0] / "model.onnx")
    device_copy = sim_fleet["rpi-a"].path("edgebench", "artifacts", SMALL[0], "model.onnx")
    before = device_copy.read_bytes() if device_copy.exists() else None
    deploy = run(
        sim_fleet, fleet["inventory"], "benchmark.yml", "--tags", "deploy", "-l", "rpi-a",
        "-e", plan(fleet["results"], "badcopy", bad, edgebench_models=[SMALL[0]]), expect=2,
    )  # fmt: skip
    message(
        deploy,
        rf"The controller's copy of an artifact does not match its manifest, so nothing was pushed: "
        rf"{re.escape(str(bad / SMALL[0]))}: CORRUPT: .*model.onnx.*edgebench convert --force",
    )
    assert (device_copy.read_bytes() if device_copy.exists() else None) == before
