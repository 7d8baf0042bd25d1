"""The collection and execution environment definitions agree with pyproject.toml, their one source
of versions and dependency ranges."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _requirements(extra: str) -> dict[str, Requirement]:
    return {
        Requirement(text).name.lower(): Requirement(text)
        for text in _pyproject()["optional-dependencies"][extra]
    }


def _ee() -> dict:
    return yaml.safe_load((REPO / "execution-environment.yml").read_text())


def test_galaxy_version_is_the_package_version():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert galaxy["version"] == _pyproject()["version"]


def test_required_ansible_is_the_controller_range():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    assert SpecifierSet(runtime["requires_ansible"]) == _requirements("controller")["ansible-core"].specifier


def test_ee_python_packages_are_the_report_and_controller_extras():
    wanted = {**_requirements("report"), **_requirements("controller")}
    ansible = {name: wanted.pop(name) for name in ("ansible-core", "ansible-runner")}
    dependencies = _ee()["dependencies"]
    listed = {Requirement(text).name.lower(): Requirement(text) for text in dependencies["python"]}
    assert listed == wanted
    assert Requirement(dependencies["ansible_core"]["package_pip"]) == ansible["ansible-core"]
    assert Requirement(dependencies["ansible_runner"]["package_pip"]) == ansible["ansible-runner"]
