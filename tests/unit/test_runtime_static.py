"""The device runtime stays Python 3.6 compatible and never imports the controller."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edgebench_runtime"


def test_vermin_target_36():
    vermin = Path(sys.executable).with_name("vermin")
    command = [str(vermin)] if vermin.exists() else [sys.executable, "-m", "vermin"]
    proc = subprocess.run(
        [*command, "--target=3.6-", "--no-tips", "--violations", str(PACKAGE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout


def test_compiles_with_a_real_python36_when_present(tmp_path):
    candidates = [os.path.expanduser("~/.pyenv/versions/3.6.15/bin/python"), shutil.which("python3.6")]
    python36 = None
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            check = subprocess.run([candidate, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if check.returncode == 0 and b"3.6" in check.stdout:
                python36 = candidate
                break
    if python36 is None:
        pytest.skip("no runnable Python 3.6 interpreter on this machine")
    copy = tmp_path / "edgebench_runtime"
    shutil.copytree(str(PACKAGE), str(copy), ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [python36, "-m", "compileall", "-q", str(copy)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout


def test_never_imports_the_controller():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            assert not any(n == "edgebench" or n.startswith("edgebench.") for n in names), path
