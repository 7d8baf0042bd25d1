"""Controller side of the collect phase: check a device's fetched results tree and merge it into the
controller's copy so that nothing measured is ever lost.

The fetched tree (a tar of ``<host>/`` or a directory holding ``<host>/``) is checked (files present,
summaries parse, row counts match summaries) and merged run by run (``<model>/<provider>-<mode>``):
the fetched copy of a run replaces the controller's unless the controller's holds more rows, or as
many rows and the fetched one has a problem the controller's lacks; runs only the controller has are
kept. A fetched run shorter than the controller's is reported as a problem.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from edgebench.results import HostCheck, RunRecord, check_host_tree, run_records

__all__ = ["CollectError", "keep_fetched"]


class CollectError(RuntimeError):
    """A fetched archive is unreadable or does not hold the host's results tree."""


def _stage(source: Path, staging: Path, host: str) -> Path:
    """Put the fetched ``<host>/`` tree under ``staging`` (unpacking an archive, copying a directory)."""
    if source.is_dir():
        tree = source / host
        if not tree.is_dir():
            raise CollectError(f"{host}: fetched directory {source} has no {host}/ directory")
        shutil.copytree(tree, staging / host, symlinks=True)
    else:
        try:
            with tarfile.open(source) as tar:
                tar.extractall(staging, filter="data")
        except (OSError, tarfile.TarError) as exc:
            raise CollectError(f"{host}: fetched archive {source} is unreadable: {exc}") from exc
    tree = staging / host
    if not tree.is_dir():
        raise CollectError(f"{host}: fetched archive {source} has no {host}/ directory")
    return tree


def _key(record: RunRecord) -> str:
    return f"{record.model}/{record.provider}-{record.mode}"


def _controller_wins(ours: RunRecord, theirs: RunRecord) -> bool:
    if ours.rows != theirs.rows:
        return ours.rows > theirs.rows
    return theirs.problem is not None and ours.problem is None


def keep_fetched(source: Path, run_dir: Path, host: str) -> tuple[str, HostCheck]:
    """Check the fetched ``source`` (archive or directory) and merge it into ``run_dir/<host>``.

    Returns a report (first line ``kept: ...``, then one ``kept the controller's ...`` line per run
    where the controller's copy won) and the check of the fetched tree, whose ``problems`` also name
    every fetched run that was shorter than the controller's.
    """
    source, run_dir = Path(source), Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    incoming = run_dir / ".incoming"
    staging = incoming / f"{host}.unpacked"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        merged = _stage(source, staging, host)
        check = check_host_tree(merged)
        target = run_dir / host
        notes = []
        if target.exists():
            fetched = {_key(record): record for record in run_records(merged)}
            for ours in run_records(target):
                key = _key(ours)
                theirs = fetched.get(key)
                if theirs is not None and not _controller_wins(ours, theirs):
                    continue
                if theirs is not None:
                    shutil.rmtree(theirs.path)
                    if theirs.rows < ours.rows:
                        check.problems.append(
                            f"{key}: the device has {theirs.rows} rows, fewer than the controller's "
                            f"{ours.rows}; the controller's copy is kept"
                        )
                notes.append(
                    f"kept the controller's copy of {key} ({ours.rows} rows"
                    + (f", fetched {theirs.rows})" if theirs is not None else ", not on the device)")
                )
                shutil.copytree(ours.path, merged / key, symlinks=True)
            for name in ("env.json", "status.json"):
                if not (merged / name).exists() and (target / name).exists():
                    shutil.copy2(target / name, merged / name)
            retired = incoming / f"{host}.previous"
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(target, retired)
            os.replace(merged, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(merged, target)
        final = check_host_tree(target)
        lines = [f"kept: {host} {final.runs} runs, {final.rows} rows", *notes]
        return "\n".join(lines), check
    finally:
        shutil.rmtree(staging, ignore_errors=True)
