"""Controller side of the collect phase: unpack a device's fetched results, check them, and keep
them only if they hold at least as much as the copy already here."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from edgebench.results import HostCheck, check_host_tree

__all__ = ["CollectError", "keep_fetched"]


class CollectError(RuntimeError):
    """A fetched archive is unreadable or does not hold the host's results tree."""


def _unpack(archive: Path, staging: Path, host: str) -> Path:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise CollectError(f"{host}: fetched archive {archive} is unreadable: {exc}") from exc
    tree = staging / host
    if not tree.is_dir():
        raise CollectError(f"{host}: fetched archive {archive} has no {host}/ directory")
    return tree


def keep_fetched(archive: Path, run_dir: Path, host: str) -> tuple[str, HostCheck]:
    """Unpack ``archive`` (a tar of ``<host>/``) into ``run_dir/<host>`` unless the copy already
    there has more measured rows; return what happened and the check of the fetched tree."""
    run_dir.mkdir(parents=True, exist_ok=True)
    staging = run_dir / ".incoming" / f"{host}.unpacked"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        fetched = _unpack(archive, staging, host)
        check = check_host_tree(fetched)
        target = run_dir / host
        if target.exists():
            existing = check_host_tree(target)
            if existing.rows > check.rows:
                return (
                    f"not kept: {host} fetched {check.rows} rows, the controller already has {existing.rows}"
                ), check
            retired = run_dir / ".incoming" / f"{host}.previous"
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(target, retired)
            os.replace(fetched, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(fetched, target)
        return f"kept: {host} {check.runs} runs, {check.rows} rows", check
    finally:
        shutil.rmtree(staging, ignore_errors=True)
