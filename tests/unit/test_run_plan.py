"""The run plan (edgebench_runtime/plan.py): its check names every problem and the setting behind
it, a plan file narrows to one unit of work, and the engines phase and the run read the same
TensorRT settings from it, so a run finds the engine the engines phase built (the defect of a
non-default workspace that made every run rebuild its engine)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_tensorrt_engines import _artifact
from test_tensorrt_fakes import install

from edgebench import cli as controller_cli
from edgebench.plan_check import check_plans
from edgebench_runtime import cli, plan
from edgebench_runtime.backends import create_backend
from edgebench_runtime.plan import UsageError, check_plan, load_plan, tensorrt_options

REPO = Path(__file__).resolve().parents[2]


def _plan(tmp_path, **changes):
    data = {
        "schema_version": 1,
        "run_id": "r1",
        "models": ["alpha", "beta"],
        "providers": ["cpu", "tensorrt-fp16"],
        "modes": ["warm", "cold"],
        "images": {"source": None, "count": 8, "warmup": 1},
        "predictions": False,
        "validity": {"min_duration_s": 0.0, "max_images": 8},
        "threads": None,
        "timeout_s": 60,
        "cooldown": "none",
        "reboot_policy": "never",
        "tensorrt": {"workspace_mb": 256, "calibration_images": None},
        "paths": {"artifacts": str(tmp_path), "output": str(tmp_path / "out")},
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            data[section][name] = value
        else:
            data[section] = value
    return data


def _write(tmp_path, data):
    path = tmp_path / "plan-r1.json"
    path.write_text(json.dumps(data))
    return path


def test_the_documented_plan_file_is_a_sound_plan():
    doc = plan.__doc__
    example = doc[doc.index("::") + 2 : doc.index("Providers carry")]
    assert check_plan(json.loads(example)) == []


def test_a_sound_plan_has_no_problems(tmp_path):
    assert check_plan(_plan(tmp_path)) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"providers": ["cpu", "gpu"]}, "providers is [\"cpu\", \"gpu\"]; it must be provider names"),
        ({"providers": ["tensorrt"]}, "TensorRT named with one of its precisions"),
        ({"providers": ["tensorrt-fp8"]}, "'tensorrt-fp8' is not"),
        ({"providers": ["cpu-fp16"]}, "'cpu-fp16' is not one"),
        ({"modes": ["hot"]}, "modes out of warm, cold; hot unknown"),
        ({"images__count": 0}, "images.count is 0; it must be a whole number above 0"),
        ({"images__warmup": -1}, "images.warmup is -1"),
        ({"images__count": True}, "images.count is true"),
        ({"cooldown": "fixed:soon"}, "cooldown is \"fixed:soon\"; it must be cooldown policy"),
        ({"reboot_policy": "sometimes"}, "reboot_policy is \"sometimes\"; it must be one of never"),
        ({"tensorrt__workspace_mb": 0}, "tensorrt.workspace_mb is 0"),
        ({"schema_version": 2}, "schema_version is 2; it must be 1"),
        ({"models": []}, "models is []; it must be a non-empty list"),
        ({"predictions": "yes"}, 'predictions is "yes"; it must be true or false'),
    ],
)
def test_every_problem_names_its_setting(tmp_path, changes, problem):
    problems = check_plan(_plan(tmp_path, **changes))
    assert len(problems) == 1 and problem in problems[0], problems


def test_an_unknown_or_missing_setting_is_named_with_the_closest_one(tmp_path):
    data = _plan(tmp_path)
    data["tensorrt"]["workspace"] = data["tensorrt"].pop("workspace_mb")
    data["modez"] = data.pop("modes")
    problems = check_plan(data)
    assert "modez is not a plan setting (did you mean modes?)" in problems
    assert "tensorrt.workspace is not a plan setting (did you mean tensorrt.workspace_mb?)" in problems
    assert "modes is missing" in problems and "tensorrt.workspace_mb is missing" in problems
    assert check_plan([1, 2]) == ["the plan must be a mapping, not list"]


def test_the_controller_check_names_the_variable_behind_each_problem(tmp_path):
    answer = check_plans({"pi": _plan(tmp_path, images__count=0), "nano": _plan(tmp_path)})
    assert answer["problems"]["nano"] == []
    assert answer["problems"]["pi"] == [
        "images.count is 0; it must be a whole number above 0 (set by edgebench_image_count)"
    ]
    assert answer["vocabulary"]["modes"] == ["warm", "cold"]
    assert answer["vocabulary"]["provider_families"] == ["cpu", "cuda", "tensorrt"]


def test_plan_check_command_exit_codes(tmp_path, capsys):
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"pi": _plan(tmp_path)}))
    assert controller_cli.main(["plan-check", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == {"pi": []}
    path.write_text(json.dumps({"pi": _plan(tmp_path, modes=["hot"])}))
    assert controller_cli.main(["plan-check", str(path)]) == 1
    path.write_text("{")
    assert controller_cli.main(["plan-check", str(path)]) == 2


def test_a_plan_file_narrows_to_one_unit_of_work(tmp_path):
    path = _write(tmp_path, _plan(tmp_path))
    whole = load_plan(str(path), progress=False)
    assert whole.models == ["alpha", "beta"] and whole.modes == ["warm", "cold"]
    assert whole.count == 8 and whole.max_images == 8 and whole.timeout_s == 60
    assert whole.record_predictions is False
    assert load_plan(str(_write(tmp_path, _plan(tmp_path, predictions=True)))).record_predictions is True
    assert whole.output_dir == str(tmp_path / "out")
    unit = load_plan(str(path), models=["beta"], providers=["cpu"], modes=["cold"], progress=False)
    assert (unit.models, unit.providers, unit.modes) == (["beta"], ["cpu"], ["cold"])
    with pytest.raises(UsageError, match=r"--models gamma: not in the plan's models \(alpha, beta\)"):
        load_plan(str(path), models=["gamma"])
    path.write_text(json.dumps(_plan(tmp_path, images__count=0)))
    with pytest.raises(UsageError, match=r"images\.count is 0"):
        load_plan(str(path))
    path.write_text("not json")
    with pytest.raises(UsageError, match="is not JSON"):
        load_plan(str(path))


def test_int8_calibrates_on_the_given_folder_else_on_the_benchmark_images(tmp_path):
    assert tensorrt_options(_plan(tmp_path))["calibration_images"] == str(tmp_path / "images")
    given = _plan(tmp_path, images__source="/data/coco", tensorrt__calibration_images="/data/calib")
    assert tensorrt_options(given)["calibration_images"] == "/data/calib"
    benchmark_images = _plan(tmp_path, images__source="/data/coco")
    assert tensorrt_options(benchmark_images)["calibration_images"] == "/data/coco"


def test_the_run_finds_the_engine_the_engines_phase_built_with_a_non_default_workspace(
    monkeypatch, tmp_path, capsys
):
    _trt, _cuda, state = install(monkeypatch, "10.3.0")
    directory, manifest = _artifact(tmp_path, "alpha")
    path = _write(tmp_path, _plan(tmp_path, models=["alpha"], providers=["tensorrt-fp16"]))
    assert cli.main(["engines", "--plan", str(path)]) == 0
    assert "alpha tensorrt-fp16: built" in capsys.readouterr().out
    assert state["workspace_bytes"] == 256 << 20 and state["builds"] == 1
    run = load_plan(str(path), progress=False)
    backend = create_backend("tensorrt-fp16", run.backend_options("tensorrt-fp16"))
    try:
        assert backend.prepare_engine(str(directory), manifest)["status"] == "cached"
    finally:
        backend.close()
    assert state["builds"] == 1
    # What the run did before the plan file: the default workspace, another key, a rebuild.
    default = create_backend("tensorrt-fp16", {"provider_options": {}})
    try:
        assert default.prepare_engine(str(directory), manifest)["status"] == "built"
    finally:
        default.close()


def test_the_run_role_reads_the_progress_line_the_runtime_prints():
    from edgebench_runtime.control import PROGRESS_PREFIX

    text = (REPO / "roles" / "run" / "vars" / "main.yml").read_text()
    assert re.search(r'^run_progress_prefix: "(.*)"$', text, re.M).group(1) == PROGRESS_PREFIX
