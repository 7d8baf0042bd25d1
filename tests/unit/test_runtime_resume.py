"""resume.py: what a rerun does with a run's existing files, decided from the files alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edgebench_runtime import resume
from edgebench_runtime.resume import decide

SETTINGS = {"warmup": 5, "model_sha256": "abc"}
COMPLETE = {"status": "complete"}


@pytest.mark.parametrize(
    ("rows", "existing", "previous", "mode", "expected"),
    [
        (0, None, None, "warm", resume.CONTINUE),  # a fresh run starts
        (40, {"status": "partial"}, {"settings": SETTINGS}, "warm", resume.CONTINUE),  # resumes
        (100, COMPLETE, {"settings": SETTINGS}, "warm", resume.SKIP),
        (120, COMPLETE, {"settings": SETTINGS}, "cold", resume.SKIP),  # extended past the count
        (100, {"status": "partial"}, {"settings": SETTINGS}, "warm", resume.FINISH),
        (100, None, None, "warm", resume.FINISH),  # every row written, the summary lost
        (40, {"status": "partial"}, {"settings": SETTINGS}, "cold", resume.COLD_RESTART),
        (40, {"status": "partial"}, {"settings": {"warmup": 9}}, "warm", resume.REFUSE),
        (100, COMPLETE, {"settings": {"warmup": 9}}, "warm", resume.REFUSE),  # before "complete"
        (40, COMPLETE, {"settings": SETTINGS}, "warm", resume.CONTINUE),  # complete but short
        (0, {"status": "skipped"}, {"settings": {"warmup": 9}}, "warm", resume.CONTINUE),  # no rows
    ],
)
def test_decide_on_a_runnable_run(rows, existing, previous, mode, expected):
    assert decide(rows, existing, previous, SETTINGS, 100, mode) == expected


def test_a_run_that_cannot_run_here_keeps_a_complete_result_and_records_anything_else():
    other = {"settings": {"other": 1}}
    assert decide(100, COMPLETE, other, SETTINGS, 100, "warm", runnable=False) == resume.SKIP
    assert decide(40, {"status": "partial"}, None, SETTINGS, 100, "warm", runnable=False) == resume.RECORD
    assert decide(0, None, None, SETTINGS, 100, "cold", runnable=False) == resume.RECORD


def test_every_decision_is_named():
    assert set(resume.DECISIONS) == {"skip", "refuse", "cold-restart", "finish", "continue", "record"}


def test_job_settings_are_what_the_rows_depend_on():
    plan = SimpleNamespace(
        backend_options=lambda provider: {"provider": provider},
        warmup=3,
        use_cv2=False,
        memory_limit_mb=None,
    )
    assert resume.job_settings(plan, "cpu", "sha") == {
        "backend_options": {"provider": "cpu"},
        "warmup": 3,
        "model_sha256": "sha",
        "use_cv2": False,
        "memory_limit_mb": None,
    }


def test_set_aside_renames_result_files_with_the_next_free_number(tmp_path):
    (tmp_path / "interrupted-1.timings.csv").write_text("old")
    for name in ("timings.csv", "gpu_timings.csv", "summary.json", "telemetry.csv", "job.json", "child.log"):
        (tmp_path / name).write_text(name)
    assert resume.set_aside(str(tmp_path)) == "interrupted-2.timings.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "child.log",
        "interrupted-1.timings.csv",
        "interrupted-2.gpu_timings.csv",
        "interrupted-2.summary.json",
        "interrupted-2.telemetry.csv",
        "interrupted-2.timings.csv",
        "job.json",
    ]
    assert (tmp_path / "interrupted-2.timings.csv").read_text() == "timings.csv"


def test_clear_results_deletes_the_run_files_and_keeps_what_was_set_aside(tmp_path):
    names = ("timings.csv", "summary.json", "job.json", "child.log", "telemetry-1.csv")
    names += ("interrupted-1.timings.csv",)
    for name in names:
        (tmp_path / name).write_text("x")
    resume.clear_results(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["interrupted-1.timings.csv"]
