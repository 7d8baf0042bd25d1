"""The Ansible collection edgebench.fleet built from this checkout: what it ships, that it installs,
and that its playbooks resolve their roles inside the collection (not from the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCAL_INVENTORY = REPO / "inventory" / "local.yml"
pytestmark = pytest.mark.xdist_group("ansible")


def _run(*command: str, cwd: Path, **env: str) -> str:
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **env}
    done = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> tuple[Path, Path]:
    """The built tarball and the directory it was installed into."""
    scratch = tmp_path_factory.mktemp("collection")
    galaxy = str(BIN / "ansible-galaxy")
    _run(galaxy, "collection", "build", "--force", "--output-path", str(scratch / "dist"), cwd=REPO)
    (tarball,) = (scratch / "dist").glob("edgebench-fleet-*.tar.gz")
    installed = scratch / "collections"
    _run(galaxy, "collection", "install", "--offline", "-p", str(installed), str(tarball), cwd=scratch)
    return tarball, installed


def test_the_collection_ships_the_checkouts_roles_and_playbooks_and_nothing_private(collection):
    tarball, _ = collection
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    for role in (REPO / "roles").iterdir():
        for task_file in (role / "tasks").glob("*.yml"):
            assert str(task_file.relative_to(REPO)) in names
    for playbook in (REPO / "playbooks").glob("*.yml"):
        assert f"playbooks/{playbook.name}" in names
    # What the playbooks read on the controller, and the sources the device wheel is built from.
    needed = {"models/catalog.yml", "group_vars/all.yml", "playbooks/group_vars", "pyproject.toml"}
    needed |= {"edgebench/wheelhouse.py", "edgebench_runtime/cli.py", "meta/runtime.yml"}
    assert needed <= names
    # Real inventories (inventory/fleet.yml) and local state must never be packaged.
    excluded = {"inventory", "tests", ".venv", ".git", "results", "artifacts", "benchmarks", ".wheelhouse"}
    private = [name for name in names if name.split("/")[0] in excluded]
    assert private == []
    assert not [name for name in names if "__pycache__" in name]


def test_the_installed_benchmark_playbook_uses_the_collections_roles(collection, tmp_path):
    _, installed = collection
    # Run outside the checkout so that its ansible.cfg (roles_path = roles) cannot supply the roles.
    command = [str(BIN / "ansible-playbook"), "edgebench.fleet.benchmark", "-i", str(LOCAL_INVENTORY)]
    listing = _run(*command, "--list-tasks", cwd=tmp_path, ANSIBLE_COLLECTIONS_PATH=str(installed))
    for role in ("validate", "provision", "deploy", "engines", "run", "collect", "report"):
        assert f"edgebench.fleet.{role} : " in listing
    _run(*command, "--syntax-check", cwd=tmp_path, ANSIBLE_COLLECTIONS_PATH=str(installed))


def test_the_installed_playbooks_read_the_collections_group_vars_and_catalog(collection, tmp_path):
    _, installed = collection
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_COLLECTIONS_PATH": str(installed)}
    command = [str(BIN / "ansible-playbook"), "edgebench.fleet.validate", "-i", str(LOCAL_INVENTORY)]
    command += ["-e", f"edgebench_artifacts_dir={tmp_path / 'no-artifacts'}"]
    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    # The quick profile (group_vars/all.yml) resolved against the shipped catalog, then the missing
    # artifacts stop the run with the conversion hint.
    assert done.returncode != 0
    assert "No artifact in" in done.stdout and "edgebench convert --models mobilenet_v3_small" in done.stdout
