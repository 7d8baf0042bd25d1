"""Cooldown between runs: ``none``, ``fixed:SECONDS`` or ``thermal[:DELTA_C[:CAP_S]]``.

``thermal`` waits until the hottest thermal zone is within DELTA_C (default 3 °C) of the idle
baseline measured when the run started, for at most CAP_S seconds (default 600). On a device with
no readable thermal zone it waits nothing and says so. What happened is recorded in each
summary's ``cooldown`` block.

Python 3.6 compatible.
"""

import time
from typing import Any, Callable, Dict, Optional

from .telemetry import TelemetryState, thermal_zones

__all__ = ["CooldownPolicy", "hottest_zone_c", "parse_policy"]


def hottest_zone_c(root: str = "/") -> Optional[float]:
    values = [value for _name, value in thermal_zones(TelemetryState(root=root))]
    return max(values) if values else None


def parse_policy(text: Optional[str]) -> "CooldownPolicy":
    """``"fixed:600"`` -> CooldownPolicy; raises ValueError with the accepted forms."""
    text = (text or "none").strip().lower()
    parts = text.split(":")
    try:
        if parts[0] in ("none", "0") and len(parts) == 1:
            return CooldownPolicy("none")
        if parts[0] == "fixed" and len(parts) == 2:
            return CooldownPolicy("fixed", seconds=float(parts[1]))
        if parts[0] == "thermal" and len(parts) <= 3:
            delta = float(parts[1]) if len(parts) > 1 and parts[1] else 3.0
            cap = float(parts[2]) if len(parts) > 2 and parts[2] else 600.0
            return CooldownPolicy("thermal", delta_c=delta, cap_s=cap)
    except ValueError:
        pass
    raise ValueError("cooldown policy %r: use none, fixed:SECONDS or thermal[:DELTA_C[:CAP_S]]" % text)


class CooldownPolicy(object):
    def __init__(
        self,
        kind: str,
        seconds: float = 0.0,
        delta_c: float = 3.0,
        cap_s: float = 600.0,
        read_temp: Optional[Callable[[], Optional[float]]] = None,
        sleep: Optional[Callable[[float], None]] = None,
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        if kind not in ("none", "fixed", "thermal"):
            raise ValueError("unknown cooldown kind %r" % kind)
        if seconds < 0 or cap_s < 0:
            raise ValueError("cooldown seconds must be >= 0")
        self.kind = kind
        self.seconds = float(seconds)
        self.delta_c = float(delta_c)
        self.cap_s = float(cap_s)
        self.read_temp = read_temp or hottest_zone_c
        self.sleep = sleep or time.sleep
        self.clock = clock or time.time
        self.baseline_c = None

    def describe(self) -> str:
        if self.kind == "fixed":
            return "fixed:%g" % self.seconds
        if self.kind == "thermal":
            return "thermal:%g:%g" % (self.delta_c, self.cap_s)
        return "none"

    def measure_baseline(self, samples: int = 3, interval: float = 0.5) -> Optional[float]:
        """Idle baseline: the median of a few readings of the hottest zone (at run start)."""
        if self.kind != "thermal":
            return None
        readings = []
        for index in range(samples):
            value = self.read_temp()
            if value is not None:
                readings.append(value)
            if index + 1 < samples:
                self.sleep(interval)
        self.baseline_c = sorted(readings)[len(readings) // 2] if readings else None
        return self.baseline_c

    def wait(self, poll: float = 1.0, should_stop: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
        """Wait per the policy; returns the record for summary.json."""
        record = {"policy": self.describe(), "waited_s": 0.0}
        start = self.clock()
        if self.kind == "fixed":
            end = start + self.seconds
            while self.clock() < end and not (should_stop and should_stop()):
                self.sleep(min(poll, end - self.clock()))
        elif self.kind == "thermal":
            record["baseline_c"] = self.baseline_c
            record["start_c"] = current = self.read_temp()
            if current is None or self.baseline_c is None:
                record["reached"] = None
                record["reason"] = "no readable thermal zone: no thermal cooldown possible"
            else:
                target = self.baseline_c + self.delta_c
                record["target_c"] = target
                while current is not None and current > target and self.clock() - start < self.cap_s:
                    if should_stop and should_stop():
                        break
                    self.sleep(min(poll, max(0.0, self.cap_s - (self.clock() - start))))
                    current = self.read_temp()
                record["end_c"] = current
                record["reached"] = current is not None and current <= target
        record["waited_s"] = round(self.clock() - start, 3)
        return record
