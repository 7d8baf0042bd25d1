"""The controller's wheelhouse: the edgebench wheel and the device platforms' dependency wheels.

Several playbooks may provision at once from one checkout (two terminals, a scheduled run beside a
manual one, parallel tests). setuptools builds in the source tree's ``build/`` directory, and two
builds sharing it can zip a wheel with packages missing; two downloads into one folder can leave a
half-written file that a third playbook pushes. So every change to a wheelhouse folder happens under
a lock on it, is built or downloaded in a private scratch folder, checked, and moved in whole.
A rebuilt wheel that is byte-identical leaves the old file alone, so devices see no change.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["WheelBuildError", "build_runtime_wheel", "download_device_wheels", "download_source_packages"]

# What the build needs from the checkout; everything else (venv, artifacts, results) stays out.
_SOURCE_ITEMS = ("pyproject.toml", "README.md", "edgebench", "edgebench_runtime")
# A device cannot run without these, so a wheel lacking one is refused rather than pushed.
_REQUIRED_MEMBERS = ("edgebench_runtime/__init__.py", "edgebench_runtime/cli.py", "edgebench/__init__.py")
# Fixed zip timestamps: the wheel is byte-identical while the code is.
_SOURCE_DATE_EPOCH = "315532800"


class WheelBuildError(RuntimeError):
    """The wheel could not be built, or came out incomplete."""


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(args: list[str], **env: str) -> None:
    command = [sys.executable, "-m", "pip", *args]
    environment = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", **env)
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        raise WheelBuildError(f"pip {args[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_sources(source_root: Path, into: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for item in _SOURCE_ITEMS:
        source = source_root / item
        if not source.exists():
            raise WheelBuildError(f"{source_root} is not an edgebench checkout: {item} is missing")
        if source.is_dir():
            shutil.copytree(source, into / item, ignore=ignore)
        else:
            shutil.copy2(source, into / item)


def _check_members(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [member for member in _REQUIRED_MEMBERS if member not in names]
    if missing:
        raise WheelBuildError(f"the built wheel {wheel.name} lacks {', '.join(missing)}")


def build_runtime_wheel(source_root: Path, dest_dir: Path) -> tuple[Path, bool]:
    """Build the wheel of ``source_root`` into ``dest_dir``; return its path and whether it changed.

    ``dest_dir`` ends up holding exactly one ``edgebench-*.whl``.
    """
    source_root, dest_dir = Path(source_root).resolve(), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with (
        _locked(dest_dir.parent / f".{dest_dir.name}.lock"),
        tempfile.TemporaryDirectory(prefix=".wheel-build-", dir=dest_dir.parent) as scratch,
    ):
        sources, built = Path(scratch) / "src", Path(scratch) / "dist"
        sources.mkdir()
        _copy_sources(source_root, sources)
        build = ["wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(built)]
        _pip([*build, str(sources)], SOURCE_DATE_EPOCH=_SOURCE_DATE_EPOCH)
        wheels = sorted(built.glob("edgebench-*.whl"))
        if len(wheels) != 1:
            raise WheelBuildError(f"pip wheel produced {len(wheels)} edgebench wheels, expected one")
        new = wheels[0]
        _check_members(new)

        target = dest_dir / new.name
        changed = not (target.exists() and _sha256(target) == _sha256(new))
        if changed:
            staged = dest_dir / f".{new.name}.partial"
            shutil.copyfile(new, staged)
            os.replace(staged, target)
        for stale in dest_dir.glob("edgebench-*.whl"):
            if stale != target:
                stale.unlink()
                changed = True
        return target, changed


def _fetch(dest_dir: Path, pip_args: list[str], fingerprint: dict, kind: str) -> list[str]:
    """Run ``pip download`` into a scratch folder under the lock and move new files into ``dest_dir``.

    A ``.resolved-<kind>.json`` stamp remembers what the folder was filled for: the same request
    again (every rerun of a scheduled benchmark) returns at once without asking the index.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = dest_dir / f".resolved-{kind}.json"
    wanted = json.dumps(fingerprint, sort_keys=True)
    with (
        _locked(dest_dir.parent / f".{dest_dir.name}.lock"),
        tempfile.TemporaryDirectory(prefix=".download-", dir=dest_dir.parent) as scratch,
    ):
        if stamp.exists() and stamp.read_text() == wanted:
            return []
        # pip skips what --find-links already offers, so only missing files are fetched.
        _pip(["download", "--quiet", "--find-links", str(dest_dir), "--dest", scratch, *pip_args])
        added = []
        for fetched in sorted(Path(scratch).iterdir()):
            target = dest_dir / fetched.name
            if not target.exists():
                os.replace(fetched, target)
                added.append(fetched.name)
        staged = dest_dir / f".resolved-{kind}.json.partial"
        staged.write_text(wanted)
        os.replace(staged, stamp)
        return added


def _target(machine: str, python: str, manylinux_tags: list[str]) -> list[str]:
    platforms = [f"--platform={tag}_{machine}" for tag in manylinux_tags]
    return ["--implementation", "cp", "--python-version", python, *platforms]


def download_device_wheels(
    dest_dir: Path, *, machine: str, python: str, manylinux_tags: list[str], requirements: list[str]
) -> list[str]:
    """Download binary wheels of ``requirements`` for one device platform into ``dest_dir``.

    ``machine`` is the device's architecture (``aarch64``, ``x86_64``), ``python`` its ``X.Y``:
    pip picks, for each requirement, the newest version with a wheel for that interpreter (numpy
    1.19.5 and onnxruntime 1.10.0 for Python 3.6). Returns the names of the wheels that were not
    there before.
    """
    target = _target(machine, python, manylinux_tags)
    fingerprint = {"binary": requirements, "target": target}
    return _fetch(dest_dir, ["--only-binary=:all:", *target, *requirements], fingerprint, "binary")


def download_source_packages(dest_dir: Path, *, python: str, packages: list[str]) -> list[str]:
    """Download the source distributions of ``packages`` (no dependencies) for a device's ``python``.

    For packages that PyPI has no wheels of (pycuda): the device builds them against its own
    libraries. pip still honours each release's Requires-Python for the device's interpreter.
    """
    fingerprint = {"source": packages, "python": python}
    # Only the named packages come as sources; --no-build-isolation reads their metadata with the
    # controller's own setuptools and numpy instead of building numpy from source for it.
    args = ["--no-deps", "--no-build-isolation", "--python-version", python]
    args += [f"--no-binary={_project_name(package)}" for package in packages]
    return _fetch(dest_dir, [*args, *packages], fingerprint, "source")


def _project_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
