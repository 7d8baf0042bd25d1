"""edgebench.collect: a fetched results tree is checked and merged run by run, never shortening the
controller's copy."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from edgebench.collect import CollectError, keep_fetched

HEADER = "schema_version,index,seq,image,decode_ms,pre_ms,infer_ms,post_ms,segment,time,result\n"


def make_run(host_dir: Path, name: str, rows: int, status: str = "complete", measured: int | None = None):
    run_dir = host_dir / name
    run_dir.mkdir(parents=True)
    lines = [f"1,{i},{i},a.jpg,1,1,1,1,0,0,\n" for i in range(rows)]
    (run_dir / "timings.csv").write_text(HEADER + "".join(lines))
    measured = rows if measured is None else measured
    summary = {"schema_version": 1, "status": status, "images": {"measured": measured}}
    (run_dir / "summary.json").write_text(json.dumps(summary))


def make_tree(root: Path, host: str, runs: dict[str, int]) -> Path:
    host_dir = root / host
    host_dir.mkdir(parents=True)
    (host_dir / "env.json").write_text("{}")
    for name, rows in runs.items():
        make_run(host_dir, name, rows)
    return host_dir


def pack(root: Path, host: str, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / host, arcname=host)
    return archive


def rows(path: Path) -> int:
    return len((path / "timings.csv").read_text().splitlines()) - 1


def test_a_new_host_is_kept_whole(tmp_path):
    make_tree(tmp_path / "device", "pi", {"m/cpu-warm": 5, "n/cpu-warm": 3})
    message, check = keep_fetched(
        pack(tmp_path / "device", "pi", tmp_path / "pi.tar.gz"), tmp_path / "run", "pi"
    )
    assert message == "kept: pi 2 runs, 8 rows" and not check.problems
    assert rows(tmp_path / "run" / "pi" / "m" / "cpu-warm") == 5


def test_a_shorter_fetched_run_never_replaces_the_controller_copy(tmp_path):
    make_tree(tmp_path / "old", "pi", {"m/cpu-warm": 5, "only-here/cpu-warm": 2})
    keep_fetched(pack(tmp_path / "old", "pi", tmp_path / "old.tar.gz"), tmp_path / "run", "pi")
    # The device lost rows of m, has more of n, and no longer has only-here.
    make_tree(tmp_path / "device", "pi", {"m/cpu-warm": 2, "n/cpu-warm": 4})
    message, check = keep_fetched(tmp_path / "device", tmp_path / "run", "pi")  # a fetched directory
    host = tmp_path / "run" / "pi"
    assert rows(host / "m" / "cpu-warm") == 5
    assert rows(host / "n" / "cpu-warm") == 4
    assert rows(host / "only-here" / "cpu-warm") == 2
    assert "kept the controller's copy of m/cpu-warm (5 rows, fetched 2)" in message
    assert "kept the controller's copy of only-here/cpu-warm (2 rows, not on the device)" in message
    assert any(
        "m/cpu-warm: the device has 2 rows, fewer than the controller's 5" in p for p in check.problems
    )


def test_a_longer_fetched_run_replaces_the_controller_copy(tmp_path):
    make_tree(tmp_path / "old", "pi", {"m/cpu-warm": 2})
    keep_fetched(tmp_path / "old", tmp_path / "run", "pi")
    make_tree(tmp_path / "device", "pi", {"m/cpu-warm": 6})
    message, check = keep_fetched(tmp_path / "device", tmp_path / "run", "pi")
    assert message == "kept: pi 1 runs, 6 rows" and not check.problems
    assert rows(tmp_path / "run" / "pi" / "m" / "cpu-warm") == 6


def test_mismatched_rows_are_reported_and_a_sound_copy_of_equal_length_wins(tmp_path):
    make_tree(tmp_path / "old", "pi", {"m/cpu-warm": 4})
    keep_fetched(tmp_path / "old", tmp_path / "run", "pi")
    device = tmp_path / "device"
    (device / "pi").mkdir(parents=True)
    (device / "pi" / "env.json").write_text("{}")
    make_run(device / "pi", "m/cpu-warm", 4, measured=9)
    _message, check = keep_fetched(device, tmp_path / "run", "pi")
    assert check.problems == [
        "m/cpu-warm: timings.csv has 4 rows but summary.json says 9 images were measured"
    ]
    kept = json.loads((tmp_path / "run" / "pi" / "m" / "cpu-warm" / "summary.json").read_text())
    assert kept["images"]["measured"] == 4


def test_an_unreadable_archive_is_an_error_and_changes_nothing(tmp_path):
    make_tree(tmp_path / "old", "pi", {"m/cpu-warm": 3})
    keep_fetched(tmp_path / "old", tmp_path / "run", "pi")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tar")
    with pytest.raises(CollectError, match="unreadable"):
        keep_fetched(broken, tmp_path / "run", "pi")
    assert rows(tmp_path / "run" / "pi" / "m" / "cpu-warm") == 3


def test_collect_check_records_the_inventory_label_beside_the_merged_results(tmp_path, capsys):
    from edgebench.cli import main
    from edgebench.results import read_device_label

    make_tree(tmp_path / "device", "pi", {"m/cpu-warm": 5})
    archive = pack(tmp_path / "device", "pi", tmp_path / "pi.tar.gz")
    argv = ["collect-check", str(archive), "--run-dir", str(tmp_path / "run"), "--host", "pi"]
    assert main([*argv, "--device-label", "Raspberry Pi 4 4GB"]) == 0
    assert read_device_label(tmp_path / "run" / "pi") == "Raspberry Pi 4 4GB"
    # Results that do not check out (rows != measured) are still merged run by run, and the label
    # is what the inventory says now.
    bad = tmp_path / "bad"
    (bad / "pi").mkdir(parents=True)
    (bad / "pi" / "env.json").write_text("{}")
    make_run(bad / "pi", "m/cpu-warm", 5, measured=9)
    assert main(["collect-check", str(bad), "--run-dir", str(tmp_path / "run"), "--host", "pi",
                 "--device-label", "Raspberry Pi 4 8GB"]) == 1  # fmt: skip
    assert read_device_label(tmp_path / "run" / "pi") == "Raspberry Pi 4 8GB"
    capsys.readouterr()
