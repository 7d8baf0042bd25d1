"""``edgebench-runtime probe``: the device fingerprint as JSON (Ansible facts; env.json per run).

Every fact that cannot be read is null. ``EDGEBENCH_PROBE_OVERRIDE`` may name a JSON file whose
keys replace the probed ones (simulated Pis/Jetsons in tests; a board whose model file lies).

Python 3.6 compatible.
"""

import json
import os
import platform
import re
import socket
import subprocess
import sys
from typing import Any, Dict

from . import __version__
from .telemetry import TelemetryState, jetson_rails, thermal_zones
from .vocabulary import PROVIDER_FAMILIES

__all__ = ["SCHEMA_VERSION", "probe"]

SCHEMA_VERSION = 1


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except (IOError, OSError):
        return None


def _module_version(name, attribute="__version__"):
    try:
        module = __import__(name)
    except Exception:
        return None
    value = getattr(module, attribute, None)
    return str(value) if value is not None else "unknown"


def _command(args, timeout=5):
    try:
        output = subprocess.check_output(args, stderr=subprocess.STDOUT, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return output.decode("utf-8", "replace").strip()


def _which(name):
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/usr/bin", "/sbin"]:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK) and os.path.isfile(path):
            return path
    return None


def _os_release(root):
    text = _read(os.path.join(root, "etc/os-release")) or ""
    values = dict(re.findall(r'^([A-Z_]+)="?([^"\n]*)"?$', text, re.M))
    return values.get("PRETTY_NAME") or None


def _cpu_model(root):
    text = _read(os.path.join(root, "proc/cpuinfo")) or ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        match = re.search(r"^%s\s*:\s*(.+)$" % key, text, re.M)
        if match:
            return match.group(1).strip()
    return platform.processor() or None


def _memory_mb(root):
    text = _read(os.path.join(root, "proc/meminfo")) or ""
    match = re.search(r"^MemTotal:\s*(\d+)", text, re.M)
    return int(match.group(1)) // 1024 if match else None


# L4T release -> JetPack (the releases edgebench's devices run).
_JETPACK = {
    "32.4": "4.4",
    "32.5": "4.5",
    "32.6": "4.6",
    "32.7": "4.6.x",
    "35.1": "5.0.2",
    "35.2": "5.1",
    "35.3": "5.1.1",
    "35.4": "5.1.2",
    "35.5": "5.1.3",
    "35.6": "5.1.4",
    "36.2": "6.0 DP",
    "36.3": "6.0",
    "36.4": "6.1/6.2",
}


def _jetson(root):
    text = _read(os.path.join(root, "etc/nv_tegra_release"))
    if not text:
        return {"l4t_release": None, "jetpack": None}
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)", text)
    if not match:
        return {"l4t_release": text.splitlines()[0], "jetpack": None}
    release = "%s.%s" % (match.group(1), match.group(2))
    major_minor = ".".join(release.split(".")[:2])
    return {"l4t_release": release, "jetpack": _JETPACK.get(major_minor)}


def _nvpmodel():
    exe = _which("nvpmodel")
    if not exe:
        return None
    output = _command([exe, "-q"])
    if not output:
        return None
    match = re.search(r"NV Power Mode:\s*(\S+)", output)
    mode = re.search(r"^(\d+)\s*$", output, re.M)
    return {"name": match.group(1) if match else None, "id": int(mode.group(1)) if mode else None}


def _ort_providers():
    try:
        import onnxruntime
    except Exception:
        return None
    return list(onnxruntime.get_available_providers())


def probe(root: str = "/") -> Dict[str, Any]:
    """The probe as a dict; ``root`` lets tests point at a fake filesystem."""
    from .backends import provider_availability
    from .provisioned import installed_packages, optional_packages

    state = TelemetryState(root=root)
    providers = {}
    for provider in PROVIDER_FAMILIES:
        ok, reason = provider_availability(provider)
        providers[provider] = {"available": ok, "reason": reason}
    zones = [{"name": name[5:-2], "temp_c": value} for name, value in thermal_zones(state)]
    rails = [
        {"name": name[6:-3], "mw": value} for name, value in jetson_rails(state) if name != "power_total_mw"
    ]
    governor = _read(os.path.join(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"))
    data = {
        "schema_version": SCHEMA_VERSION,
        "edgebench_runtime": __version__,
        "hostname": socket.gethostname() or None,
        "board_model": _read(os.path.join(root, "proc/device-tree/model")),
        # Boards without a device tree (x86 mini PCs) name themselves in DMI.
        "dmi_product": _dmi_product(root),
        "jetson": _jetson(root),
        "os": _os_release(root),
        "kernel": platform.release() or None,
        "arch": platform.machine() or None,
        "cpu_model": _cpu_model(root),
        "cpu_count": os.cpu_count(),
        "memory_total_mb": _memory_mb(root),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "versions": {
            "numpy": _module_version("numpy"),
            "onnxruntime": _module_version("onnxruntime"),
            "tensorrt": _module_version("tensorrt"),
            "pycuda": _module_version("pycuda", "VERSION_TEXT"),
            "opencv": _module_version("cv2"),
            "pillow": _module_version("PIL"),
        },
        # Every distribution in the runtime's environment, as pip resolved them for this device.
        "packages": installed_packages(),
        "provision": optional_packages(),
        "onnxruntime_providers": _ort_providers(),
        "providers": providers,
        "available_providers": sorted(name for name, item in providers.items() if item["available"]),
        "nvpmodel": _nvpmodel() if root == "/" else None,
        "cpu_governor": governor,
        "thermal_zones": zones,
        "power_rails": rails,
        "rapl": bool(os.path.exists(os.path.join(root, "sys/class/powercap/intel-rapl:0/energy_uj"))),
    }
    override = os.environ.get("EDGEBENCH_PROBE_OVERRIDE")
    if override:
        with open(override) as handle:
            data.update(json.load(handle))
    return data


def _dmi_product(root):
    """``vendor product`` from DMI, or None (absent, or a placeholder the firmware left)."""
    parts = []
    for name in ("sys_vendor", "product_name"):
        value = _read(os.path.join(root, "sys/class/dmi/id", name))
        if value and value.lower() not in ("to be filled by o.e.m.", "default string", "system product name"):
            parts.append(value)
    return " ".join(parts) or None


def main(output=None):
    data = probe()
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if output:
        from .results import atomic_write_json

        atomic_write_json(output, data)
    sys.stdout.write(text)
    return 0
