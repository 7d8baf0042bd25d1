"""`edgebench run` as a user meets it when a phase fails: real ansible-playbook on this machine
(the validate phase only, a few seconds), its message shown, the runner's log kept, the catalog and
a comma list of models passed on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from edgebench.catalog import load_catalog


def edgebench_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgebench.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def log_path(stdout: str) -> Path:
    line = next(line for line in stdout.splitlines() if line.startswith("full log: "))
    return Path(line.removeprefix("full log: "))


def test_failing_phase_shows_the_task_message_and_keeps_the_log():
    done = edgebench_run("run", "--models", "mobilenet_v3_small,no_such_model", "--tags", "validate")
    assert done.returncode == 1
    assert (
        "localhost [failed] Check that every model is in the catalog: edgebench_models names models the "
        "catalog lacks: no_such_model." in done.stderr
    )
    assert "results:" not in done.stdout  # no results directory exists for this run
    assert "no results were collected" in done.stdout
    log = log_path(done.stdout)
    assert log.is_file() and "no_such_model" in log.read_text()


def test_extra_vars_models_as_a_comma_list():
    done = edgebench_run(
        "run", "-e", "edgebench_models=mobilenet_v3_small,no_such_model", "--tags", "validate"
    )
    # As a list: only the unknown name is reported (a string would be split into characters).
    assert "the catalog lacks: no_such_model." in done.stderr


def test_catalog_is_passed_on_to_the_playbook(tmp_path):
    data = yaml.safe_load(Path(load_catalog().path).read_text())
    data["models"] = [m for m in data["models"] if m["name"] == "mobilenet_v3_small"]
    data["profiles"] = {"quick": ["mobilenet_v3_small"]}
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(yaml.safe_dump(data))
    done = edgebench_run(
        "--catalog", str(catalog), "run", "--models", "mobilenet_v3_small,alexnet", "--tags", "validate"
    )
    assert "the catalog lacks: alexnet." in done.stderr  # alexnet is only in the default catalog
