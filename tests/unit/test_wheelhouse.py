"""The wheelhouse provisioning pushes: complete even when several playbooks fill it at once."""

from __future__ import annotations

import hashlib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edgebench import wheelhouse
from edgebench.wheelhouse import (
    WheelBuildError,
    build_runtime_wheel,
    download_device_wheels,
    download_source_packages,
)

ROOT = Path(__file__).resolve().parents[2]


def _members(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def test_concurrent_builds_each_give_a_complete_identical_wheel(tmp_path):
    dest = tmp_path / "wheelhouse" / "edgebench"
    with ThreadPoolExecutor(max_workers=3) as pool:
        built = list(pool.map(lambda _: build_runtime_wheel(ROOT, dest), range(3)))
    paths = {path for path, _ in built}
    assert len(paths) == 1
    (path,) = paths
    assert sorted(p.name for p in dest.iterdir()) == [path.name]
    members = _members(path)
    for module in ("edgebench_runtime/cli.py", "edgebench_runtime/bench.py", "edgebench/cli.py"):
        assert module in members
    assert "edgebench/report/templates/report.html.j2" in members
    # Test fixtures (the synthetic result trees) live in tests/, never in what devices install.
    assert not [m for m in members if "synthetic" in m]
    # The first build changed the wheelhouse; the ones after found the same bytes.
    assert sorted(changed for _, changed in built) == [False, False, True]


def test_rebuild_of_unchanged_code_keeps_the_file_and_drops_stale_wheels(tmp_path):
    dest = tmp_path / "edgebench"
    path, changed = build_runtime_wheel(ROOT, dest)
    assert changed
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stale = dest / "edgebench-0.0.1-py3-none-any.whl"
    stale.write_bytes(b"old")
    again, changed = build_runtime_wheel(ROOT, dest)
    assert again == path and changed  # the stale wheel went away
    assert hashlib.sha256(again.read_bytes()).hexdigest() == digest
    assert not stale.exists()
    assert build_runtime_wheel(ROOT, dest) == (path, False)


def test_a_directory_that_is_no_checkout_is_refused(tmp_path):
    with pytest.raises(WheelBuildError, match="edgebench_runtime is missing"):
        (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
        (tmp_path / "README.md").write_text("x")
        (tmp_path / "edgebench").mkdir()
        build_runtime_wheel(tmp_path, tmp_path / "out")


def test_an_incomplete_wheel_is_refused_and_not_published(tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "_REQUIRED_MEMBERS", ("edgebench_runtime/not_there.py",))
    dest = tmp_path / "edgebench"
    with pytest.raises(WheelBuildError, match=r"lacks edgebench_runtime/not_there\.py"):
        build_runtime_wheel(ROOT, dest)
    assert list(dest.glob("*.whl")) == []


def test_concurrent_downloads_fill_the_platform_folder_once(tmp_path):
    dest = tmp_path / "aarch64-py3.8"

    def download(_):
        return download_device_wheels(
            dest, machine="aarch64", python="3.8", manylinux_tags=["manylinux2014"],
            requirements=["six==1.16.0"],
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=2) as pool:
        added = list(pool.map(download, range(2)))
    assert sorted(added) == [[], ["six-1.16.0-py2.py3-none-any.whl"]]
    assert sorted(p.name for p in dest.glob("*.whl")) == ["six-1.16.0-py2.py3-none-any.whl"]
    assert download(None) == []


def test_a_repeated_request_asks_no_index_and_a_changed_one_does(tmp_path, monkeypatch):
    dest = tmp_path / "x86_64-py3.6"
    calls = []
    real_pip = wheelhouse._pip
    monkeypatch.setattr(wheelhouse, "_pip", lambda args, **env: calls.append(args) or real_pip(args, **env))

    def download(requirements):
        return download_device_wheels(
            dest, machine="x86_64", python="3.6", manylinux_tags=["manylinux2014"], requirements=requirements
        )

    assert download(["six==1.16.0"]) == ["six-1.16.0-py2.py3-none-any.whl"]
    assert download(["six==1.16.0"]) == [] and len(calls) == 1
    assert download(["six==1.16.0", "pip"]) == ["pip-21.3.1-py3-none-any.whl"]  # the last pip for 3.6
    assert len(calls) == 2


def test_source_packages_come_as_sdists_for_the_device_python(tmp_path):
    dest = tmp_path / "x86_64-py3.6-gpu-sources"
    added = download_source_packages(dest, python="3.6", packages=["six==1.16.0"])
    assert added == ["six-1.16.0.tar.gz"]


def test_a_requirement_with_no_wheel_for_the_platform_names_it(tmp_path):
    with pytest.raises(WheelBuildError, match="pip download failed"):
        download_device_wheels(
            tmp_path / "armv6l-py3.6", machine="armv6l", python="3.6", manylinux_tags=["manylinux2014"],
            requirements=["onnxruntime==1.16.0"],
        )  # fmt: skip
