"""What summary.json reports from a run's telemetry.csv: the throttling seen while images were
measured (Raspberry Pi firmware flags, x86 thermal throttle counters, clocks), the energy from the
power rails or RAPL, and the ranges of the sampled values.

Reads only the file ``telemetry.py``'s Sampler writes; imports nothing of the runtime.

Python 3.6 compatible.
"""

import contextlib
import re
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["PI_NOW_MASK", "PI_SINCE_BOOT_MASK", "read_telemetry", "summarize_telemetry"]

# Raspberry Pi get_throttled bits: 0 under-voltage, 1 ARM frequency capped, 2 throttled,
# 3 soft temperature limit; 16-19 the same "has occurred since boot".
PI_NOW_MASK = 0xF
PI_SINCE_BOOT_MASK = 0xF0000


def read_telemetry(path: str) -> List[Dict[str, float]]:
    """telemetry.csv (and rotated telemetry.N.csv are ignored) as a list of dicts of floats."""
    rows = []
    try:
        with open(path) as handle:
            header = handle.readline().rstrip("\n").split(",")
            for line in handle:
                if not line.endswith("\n"):
                    break
                parts = line.rstrip("\n").split(",")
                if len(parts) != len(header):
                    continue
                row = {}
                for key, value in zip(header, parts):  # noqa: B905 - strict= is Python 3.10+
                    if value != "":
                        with contextlib.suppress(ValueError):
                            row[key] = float(value)
                rows.append(row)
    except (IOError, OSError):
        pass
    return rows


def summarize_telemetry(
    path: str, windows: Optional[List[Tuple[float, float, int]]] = None
) -> Dict[str, Any]:
    """What the summary reports from telemetry.csv.

    ``windows``: list of (start, end, images) unix-time intervals of measured images per segment,
    for the energy per image (trapezoidal integral of ``power_total_mw`` over each window).
    """
    rows = read_telemetry(path)
    out = {
        "samples": len(rows),
        "max_temp_c": None,
        "cpu_mhz_min": None,
        "cpu_mhz_max": None,
        "rss_max_sampled_mb": None,
        "throttling": None,
        "energy": None,
    }
    if not rows:
        out["throttling"] = {"seen": None, "evidence": [], "reason": "no telemetry samples"}
        out["energy"] = {"mj_per_image": None, "reason": "no telemetry samples"}
        return out
    temps = [v for row in rows for k, v in row.items() if k.startswith("temp_")]
    clocks = [v for row in rows for k, v in row.items() if re.match(r"cpu\d+_mhz$", k)]
    rss = [row[k] for row in rows for k in ("rss_peak_mb", "rss_mb") if k in row]
    out["max_temp_c"] = max(temps) if temps else None
    out["cpu_mhz_min"] = min(clocks) if clocks else None
    out["cpu_mhz_max"] = max(clocks) if clocks else None
    out["rss_max_sampled_mb"] = max(rss) if rss else None
    # Throttling: only hard evidence counts (Pi firmware flags, x86 throttle counters).
    evidence = []
    sources = 0
    pi = [row for row in rows if "pi_throttled" in row]
    if pi:
        sources += 1
        if any(row.get("pi_throttled_now") for row in pi):
            evidence.append("Raspberry Pi firmware reported throttling/capping during the run")
        before, after = int(pi[0]["pi_throttled"]), int(pi[-1]["pi_throttled"])
        if (after & ~before) & PI_SINCE_BOOT_MASK:
            evidence.append("new since-boot throttle flags 0x%x -> 0x%x" % (before, after))
    counts = [row["throttle_count"] for row in rows if "throttle_count" in row]
    if counts:
        sources += 1
        if counts[-1] > counts[0]:
            evidence.append("%d x86 thermal throttle events" % (counts[-1] - counts[0]))
    if sources:
        out["throttling"] = {"seen": bool(evidence), "evidence": evidence}
    else:
        out["throttling"] = {
            "seen": None,
            "evidence": [],
            "reason": "no throttle source on this device (Pi firmware flags, x86 counters)",
        }
    power = [
        (row["time"], row["power_total_mw"]) for row in rows if "power_total_mw" in row and "time" in row
    ]
    if not power:
        out["energy"] = {"mj_per_image": None, "reason": "no readable power source (INA3221 rails, RAPL)"}
        return out
    joules = 0.0
    images = 0
    for start, end, count in windows or []:
        inside = [(t, p) for t, p in power if start <= t <= end]
        if len(inside) < 2 or count <= 0:
            continue
        for (t0, p0), (t1, p1) in zip(inside, inside[1:]):  # noqa: B905, RUF007 - 3.6
            joules += (p0 + p1) / 2.0 / 1000.0 * (t1 - t0)
        images += count * (inside[-1][0] - inside[0][0]) / max(end - start, 1e-9)
    mean_power = sum(p for _t, p in power) / len(power) / 1000.0
    out["energy"] = {
        "mean_power_w": mean_power,
        "mj_per_image": (joules / images * 1000.0) if images else None,
        "reason": None if images else "measured window shorter than two power samples",
        "source": "power_total_mw",
    }
    return out
