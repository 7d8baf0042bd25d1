"""What provisioning could and could not install on this device (``edgebench-provision.json``).

The provision phase writes the file into the runtime's environment (``sys.prefix``). Optional GPU
packages that are absent (pycuda not built, no onnxruntime-gpu wheel) are named there with the
reason, so that a skipped provider says what is missing and how to supply it.
"""

import json
import os
import sys
from typing import Any, Dict, Iterable, List, Optional

__all__ = ["PROVISION_FILE", "absent_reasons", "installed_packages", "optional_packages"]

PROVISION_FILE = "edgebench-provision.json"


def _load(prefix=None):
    path = os.path.join(prefix or sys.prefix, PROVISION_FILE)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def optional_packages(prefix: Optional[str] = None) -> Dict[str, Any]:
    """``{package: {"installed": bool, "reason": str or None}}`` as provisioning recorded it."""
    optional = _load(prefix).get("optional")
    return optional if isinstance(optional, dict) else {}


def absent_reasons(packages: Iterable[str], prefix: Optional[str] = None) -> List[str]:
    """``"package: reason"`` for each of ``packages`` that provisioning could not install."""
    notes = []
    for name, note in sorted(optional_packages(prefix).items()):
        if name in packages and isinstance(note, dict) and not note.get("installed"):
            notes.append("%s: %s" % (name, note.get("reason") or "not installed"))
    return notes


def installed_packages() -> Dict[str, str]:
    """``{distribution: version}`` of this environment, or None where it cannot be listed."""
    try:
        from importlib import metadata  # novermin - guarded: 3.6 and 3.7 take pkg_resources below
    except ImportError:
        metadata = None
    try:
        if metadata is not None:
            found = {}
            for dist in metadata.distributions():
                name = dist.metadata["Name"]
                if name:
                    found[name] = dist.version
            return dict(sorted(found.items(), key=lambda item: item[0].lower()))
        import pkg_resources  # Python 3.6 and 3.7: setuptools is in every venv

        found = {dist.project_name: dist.version for dist in pkg_resources.working_set}
        return dict(sorted(found.items(), key=lambda item: item[0].lower()))
    except Exception:  # metadata must never stop a probe
        return None
