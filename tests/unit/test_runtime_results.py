"""results.py: statistics, stability verdict, timings.csv writing/repair, atomic JSON."""

import errno
import json
import os

import numpy as np
import pytest

from edgebench_runtime import results
from edgebench_runtime.results import (
    TIMINGS_HEADER,
    TimingsWriter,
    atomic_write_json,
    phase_stats,
    read_timings,
    repair_timings,
    stability,
    summarize_rows,
)


def write_rows(path, values, segments=None):
    writer = TimingsWriter(str(path))
    for i, v in enumerate(values):
        writer.row(
            i,
            i,
            f"img{i}.jpg",
            v[0],
            v[1],
            v[2],
            v[3],
            (segments or [0] * len(values))[i],
            1e9 + i,
            "1:0.5",
        )
    writer.close()


def test_phase_stats_match_numpy():
    # Percentiles are nearest-rank (LoadGen, trtexec): numpy's inverted_cdf; p99 only from 662 samples.
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, 3.0, size=257)
    stats = phase_stats(values)
    assert stats["n"] == 257
    assert stats["mean"] == pytest.approx(values.mean())
    assert stats["std"] == pytest.approx(values.std(ddof=1))
    assert stats["p50"] == np.percentile(values, 50, method="inverted_cdf")
    assert stats["p90"] == np.percentile(values, 90, method="inverted_cdf")
    assert stats["p90"] in values  # a measured value, never an interpolation
    assert stats["p99"] is None and "at least 662" in stats["p99_reason"]
    many = rng.gamma(2.0, 3.0, size=662)
    assert phase_stats(many)["p99"] == np.percentile(many, 99, method="inverted_cdf")
    assert phase_stats(many)["p99_reason"] is None
    assert phase_stats(many[:661])["p99"] is None
    assert phase_stats([])["mean"] is None
    assert phase_stats([3.0])["std"] == 0.0


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ([10.0, 10.1, 9.9, 10.0], "stable"),
        ([10.0, 11.0, 9.0, 10.0], "noisy"),
        ([5.0, 15.0, 10.0], "unstable"),
    ],
)
def test_stability_verdict(values, verdict):
    result = stability(phase_stats(values))
    assert result["verdict"] == verdict
    assert result["cv"] == pytest.approx(np.std(values, ddof=1) / np.mean(values))
    assert result["thresholds"] == results.STABILITY_THRESHOLDS
    assert ("warning" in result) == (verdict == "unstable")
    assert stability(phase_stats([1.0]))["verdict"] == "unknown"


def test_timings_roundtrip_and_summary(tmp_path):
    path = tmp_path / "timings.csv"
    values = [(1.0 + i, 2.0, 3.0 + 0.1 * i, 0.5) for i in range(6)]
    write_rows(path, values, segments=[0, 0, 0, 1, 1, 1])
    assert path.read_text().startswith(TIMINGS_HEADER)
    rows = read_timings(str(path))
    assert rows["index"].tolist() == list(range(6))
    assert rows["image"][2] == "img2.jpg" and rows["result"][0] == "1:0.5"
    summary = summarize_rows(rows, cold=True)
    total = np.array([v[1] + v[2] + v[3] for v in values])
    assert summary["fps"] == pytest.approx(1000.0 / total.mean())
    assert summary["fps_e2e"] == pytest.approx(1000.0 / (total + [v[0] for v in values]).mean())
    steady = summary["phases_excluding_first"]["infer_ms"]  # first image of each segment dropped
    assert steady["n"] == 4
    assert steady["mean"] == pytest.approx(np.mean([3.1, 3.2, 3.4, 3.5]))


def test_repair_drops_torn_line_and_rejects_foreign_files(tmp_path):
    path = tmp_path / "timings.csv"
    write_rows(path, [(1.0, 1.0, 1.0, 1.0)] * 3)
    with open(str(path), "a") as handle:
        handle.write("1,3,3,img")
    assert repair_timings(str(path)) == 3
    assert path.read_text().endswith("\n")
    assert read_timings(str(path))["index"].size == 3
    assert repair_timings(str(tmp_path / "absent.csv")) == 0
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError):
        repair_timings(str(other))


def test_writer_fsyncs_at_least_once_a_second(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    writer = TimingsWriter(str(tmp_path / "t.csv"), fsync_interval=1.0)
    base = writer._last_sync
    for i in range(5):
        writer.row(i, i, "a", 1, 1, 1, 1, 0, base + 0.3 * i, "")
    assert len(calls) == 1  # at t = +1.2 s
    writer.close()
    assert len(calls) == 2


def test_atomic_write_json_and_full_disk_fallback(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    atomic_write_json(str(path), {"status": "partial", "value": np.float32(1.5)}, reserve_bytes=4096)
    assert path.stat().st_size == 4096
    assert json.loads(path.read_text())["value"] == 1.5

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "rename", full)
    atomic_write_json(str(path), {"status": "failed", "reason": "ENOSPC"})
    assert json.loads(path.read_text()) == {"reason": "ENOSPC", "status": "failed"}
    # The reserve outlives an in-place rewrite: a second, larger one still has its blocks.
    assert path.stat().st_size == 4096
    atomic_write_json(str(path), {"status": "failed", "reason": "ENOSPC", "more": "x" * 3000})
    assert json.loads(path.read_text())["more"] == "x" * 3000 and path.stat().st_size == 4096
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left behind
    with pytest.raises(OSError):
        atomic_write_json(str(tmp_path / "new.json"), {})


def test_read_json_tolerates_torn_files(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"status": "comp')
    assert results.read_json(str(path)) is None
    assert results.read_json(str(tmp_path / "missing.json")) is None
