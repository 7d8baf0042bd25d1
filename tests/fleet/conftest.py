"""Fixtures for tests that run Ansible over real SSH against a simulated fleet (see README.md here).

- `sim_fleet`: a module-scoped fleet of `sim_fleet_specs` (override that fixture in a test module
  to change the hosts, and `sim_fleet_options` for SimFleet keyword arguments such as boot_delay).
  While it lives, ANSIBLE_SSH_CONTROL_PATH_DIR points at the fleet's own directory.
- `sim_fleet_factory`: `make(specs, **options)` starts more fleets (memory caps, small disks);
  they are torn down at the end of the module, or earlier by `fleet.close()`.

The fleet needs root, sshd, sudo and unshare. Without them the tests skip with the reason, except
where CI or EDGEBENCH_REQUIRE_SIMFLEET=1 is set: there a missing piece is a failure, never a skip.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import simfleet

REQUIRE_ENV = "EDGEBENCH_REQUIRE_SIMFLEET"
# One test module's fleets at a time on this machine, whatever the test scheduler does: two fleets
# at once share 2 cores, and a module whose tests were split over two workers would otherwise run
# its scenarios side by side. (xdist_group("simfleet") asks the same of pytest-xdist; this holds
# even where that mark is ignored, as pytest 9 with pytest-xdist 3.8 does.)
REPO = Path(__file__).resolve().parents[2]
MACHINE_LOCK = Path(os.environ.get("EDGEBENCH_SIMFLEET_LOCK", "/tmp/edgebench-simfleet.lock"))


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1" or os.environ.get("CI"):
        pytest.fail(f"simulated fleet required here but unavailable: {reason}", pytrace=False)
    pytest.skip(f"simulated fleet unavailable: {reason}")


@pytest.fixture(scope="module")
def sim_fleet_specs():
    """Hosts of `sim_fleet`: (name, group) pairs, "name:group" strings or simfleet.HostSpec."""
    return simfleet.DEFAULT_SPECS


@pytest.fixture(scope="module")
def sim_fleet_options() -> dict:
    """Keyword arguments for simfleet.SimFleet (boot_delay, shutdown_grace, fleet_vars, ...)."""
    return {}


@pytest.fixture(scope="module")
def sim_fleet_factory():
    reason = simfleet.check_requirements()
    if reason:
        _unavailable(reason)
    lock = open(MACHINE_LOCK, "a")  # noqa: SIM115 - held until the module's fleets are gone
    fcntl.flock(lock, fcntl.LOCK_EX)
    fleets: list[simfleet.SimFleet] = []

    def make(specs=simfleet.DEFAULT_SPECS, **options) -> simfleet.SimFleet:
        fleet = simfleet.SimFleet(specs, **options)
        fleets.append(fleet)
        try:
            return fleet.start()
        except simfleet.SimFleetUnavailable as exc:
            _unavailable(str(exc))
            raise

    try:
        yield make
    finally:
        errors = []
        for fleet in reversed(fleets):
            try:
                fleet.close()
            except simfleet.SimFleetError as exc:
                errors.append(str(exc))
        lock.close()
    if errors:
        pytest.fail("; ".join(errors), pytrace=False)


@pytest.fixture(scope="module")
def sim_fleet(sim_fleet_factory, sim_fleet_specs, sim_fleet_options):
    fleet = sim_fleet_factory(sim_fleet_specs, **sim_fleet_options)
    env = fleet.env()
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield fleet
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
