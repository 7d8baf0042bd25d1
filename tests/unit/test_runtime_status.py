"""status.py: status.json's content and ETA, the row counter of a growing timings.csv, the bar."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

from edgebench_runtime.status import ProgressBar, RowCounter, StatusFile, current_job


def _plan(tmp_path):
    return SimpleNamespace(
        output_dir=str(tmp_path), models=["m"], providers=["cpu"], modes=["warm"], count=100, warmup=5
    )


def test_status_file_counts_jobs_and_estimates_the_remaining_time(tmp_path):
    status = StatusFile(_plan(tmp_path), total_jobs=3)
    status.write()
    data = json.loads((tmp_path / "status.json").read_text())
    assert data["state"] == "running" and data["jobs_total"] == 3 and data["jobs_done"] == 0
    expected_plan = {"models": ["m"], "providers": ["cpu"], "modes": ["warm"], "count": 100, "warmup": 5}
    assert data["plan"] == expected_plan
    assert data["eta_s"] is None and data["eta"] is None
    status.finish_job("complete")
    # One job done, this one needs 10 s more, one more after it estimated at 30 s.
    status.write(current={"eta_s": 10.0, "job_estimate_s": 30.0})
    data = json.loads((tmp_path / "status.json").read_text())
    assert data["jobs_done"] == 1 and data["counts"] == {"complete": 1}
    assert data["eta_s"] == 40.0 and data["eta"]
    status.finish_job("oom")
    status.write(state="finished", current=None)
    data = json.loads((tmp_path / "status.json").read_text())
    assert data["state"] == "finished" and data["counts"] == {"complete": 1, "oom": 1}
    assert data["current"] is None and data["eta_s"] is None


def test_a_status_file_that_cannot_be_written_warns_once_and_never_raises(tmp_path, capsys):
    status = StatusFile(_plan(tmp_path / "missing"), total_jobs=1)
    status.write()
    status.write()
    assert capsys.readouterr().err.count("cannot update") == 1


def test_row_counter_counts_only_complete_lines_after_the_header(tmp_path):
    path = tmp_path / "timings.csv"
    counter = RowCounter(str(path))
    assert counter.rows() == 0  # not there yet
    path.write_text("header\n1\n2")
    assert counter.rows() == 1  # the torn last line is not a row yet
    with path.open("a") as handle:
        handle.write("\n3\n")
    assert counter.rows() == 3


def test_current_job_measures_the_rate_from_the_first_row():
    job = {"count": 100, "model": "m", "provider": "cpu", "mode": "warm"}
    assert current_job(job, 0.0, 0, None, 5.0, 42)["rate_images_per_s"] is None
    current = current_job(job, 0.0, 30, (10.0, 10), 20.0, 42)
    assert current["rate_images_per_s"] == 2.0
    assert current["eta_s"] == 35.0 and current["job_estimate_s"] == 55.0
    assert current["images_done"] == 30 and current["images_total"] == 100 and current["child_pid"] == 42


def test_progress_bar_draws_only_when_enabled():
    stream = io.StringIO()
    bar = ProgressBar(True, stream)
    bar.show("m cpu-warm", 12, 24, 3.0, 65)
    bar.end()
    assert stream.getvalue() == "\rm cpu-warm 12/24 |############            | 3.0 img/s ETA 1:05 \n"
    quiet = io.StringIO()
    ProgressBar(False, quiet).show("m", 1, 2, None, None)
    assert quiet.getvalue() == ""
