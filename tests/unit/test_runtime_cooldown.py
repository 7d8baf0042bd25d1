"""cooldown.py: policy parsing, fixed waits and thermal waits with a fake clock."""

import pytest

from edgebench_runtime.cooldown import CooldownPolicy, hottest_zone_c, parse_policy


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_parse():
    assert parse_policy("none").kind == "none"
    assert parse_policy("fixed:600").seconds == 600
    policy = parse_policy("thermal:2:120")
    assert (policy.kind, policy.delta_c, policy.cap_s) == ("thermal", 2.0, 120.0)
    assert parse_policy("thermal").describe() == "thermal:3:600"
    for bad in ("fixed", "fixed:x", "sometimes", "thermal:1:2:3", "fixed:-1"):
        with pytest.raises(ValueError):
            parse_policy(bad)


def test_fixed_waits_the_seconds():
    clock = FakeClock()
    record = CooldownPolicy("fixed", seconds=5, sleep=clock.sleep, clock=clock).wait()
    assert record == {"policy": "fixed:5", "waited_s": 5.0}


def test_thermal_waits_until_near_baseline():
    clock = FakeClock()
    temps = iter([40.0, 40.0, 40.0, 55.0, 50.0, 44.0, 42.0])
    policy = CooldownPolicy(
        "thermal", delta_c=3, cap_s=100, read_temp=lambda: next(temps), sleep=clock.sleep, clock=clock
    )
    assert policy.measure_baseline(samples=3, interval=0) == 40.0
    record = policy.wait(poll=1.0)
    assert record["reached"] is True and record["end_c"] == 42.0 and record["start_c"] == 55.0
    assert record["waited_s"] == 3.0 and record["target_c"] == 43.0


def test_thermal_cap_and_no_sensor():
    clock = FakeClock()
    policy = CooldownPolicy(
        "thermal", delta_c=1, cap_s=10, read_temp=lambda: 80.0, sleep=clock.sleep, clock=clock
    )
    policy.baseline_c = 40.0
    record = policy.wait(poll=1.0)
    assert record["reached"] is False and record["waited_s"] == 10.0
    none = CooldownPolicy("thermal", read_temp=lambda: None, sleep=clock.sleep, clock=clock)
    none.measure_baseline(interval=0)
    record = none.wait()
    assert record["reached"] is None and "no readable thermal zone" in record["reason"]


def test_hottest_zone(tmp_path):
    for index, value in enumerate(("41000", "57500")):
        zone = tmp_path / (f"sys/class/thermal/thermal_zone{index}")
        zone.mkdir(parents=True)
        (zone / "temp").write_text(value)
        (zone / "type").write_text(f"zone{index}")
    assert hottest_zone_c(str(tmp_path)) == 57.5
    assert hottest_zone_c(str(tmp_path / "none")) is None
