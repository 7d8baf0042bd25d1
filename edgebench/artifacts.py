"""Artifact directories: build hashes, cache decisions, manifests and atomic publication."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from edgebench.catalog import ModelEntry
from edgebench_runtime.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    ArtifactError,
    load_manifest,
    sha256_file,
    verify_artifact,
)

__all__ = [
    "DEFAULT_ARTIFACTS_DIR",
    "artifact_name",
    "build_hash",
    "cached_manifest",
    "file_record",
    "library_versions",
    "publish",
    "staging_dir",
]

DEFAULT_ARTIFACTS_DIR = Path("artifacts")
_PACKAGE_DIR = Path(__file__).resolve().parent
# Source files whose change changes what the converter produces.
_CONVERTER_SOURCES = (
    _PACKAGE_DIR / "sources.py",
    _PACKAGE_DIR / "onnx_tools.py",
    _PACKAGE_DIR / "verify.py",
    _PACKAGE_DIR / "convert.py",
    _PACKAGE_DIR / "artifacts.py",
    _PACKAGE_DIR / "labels.py",
    _PACKAGE_DIR.parent / "edgebench_runtime" / "imaging.py",
)
_VERSIONED = ("edgebench", "torch", "torchvision", "onnx", "onnxruntime", "numpy")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def artifact_name(entry: ModelEntry, opset: int | None) -> str:
    """``<model>``, or ``<model>-opset<N>`` when an opset override differs from the catalog's."""
    if opset is None or opset == entry.opset:
        return entry.name
    return f"{entry.name}-opset{opset}"


def _builder_file(entry: ModelEntry) -> Path | None:
    if entry.source_kind != "builder":
        return None
    module = entry.source["builder"].partition(":")[0]
    if module.startswith("edgebench."):
        return _PACKAGE_DIR.parent.joinpath(*module.split(".")).with_suffix(".py")
    return None


def build_hash(entry: ModelEntry, opset: int, weights_policy: str, source_file: Path | None) -> str:
    """sha256 over everything that determines the artifact: entry, opset, weights policy,
    library versions, converter sources, the builder's own file and a custom ONNX file."""
    digest = hashlib.sha256()
    recipe = {
        "entry": entry.as_dict(),
        "opset": opset,
        "weights_policy": weights_policy,
        "versions": {k: v for k, v in library_versions().items() if k != "python"},
        "manifest_schema": SCHEMA_VERSION,
    }
    digest.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    files = [*_CONVERTER_SOURCES, _builder_file(entry), source_file]
    for path in files:
        if path is not None and Path(path).exists():
            digest.update(Path(path).name.encode())
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def cached_manifest(artifact_dir: Path, expected_hash: str) -> dict | None:
    """The existing manifest when it was built from the same recipe and its files verify."""
    if not (artifact_dir / MANIFEST_NAME).exists():
        return None
    try:
        manifest = load_manifest(artifact_dir)
        if manifest.get("build_hash") != expected_hash:
            return None
        return verify_artifact(artifact_dir, manifest)
    except ArtifactError:
        return None


def file_record(path: Path) -> dict:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def staging_dir(artifacts_dir: Path, name: str) -> Path:
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=artifacts_dir))
    staging.chmod(0o755)  # mkdtemp makes it private; artifacts are pushed to devices as they are
    return staging


def publish(staging: Path, manifest: dict, target: Path) -> None:
    """Write the manifest last, then swap the staging directory into place in one rename, so a
    reader sees either the old complete artifact or the new complete one, never a mixture."""
    manifest_path = staging / MANIFEST_NAME
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    with manifest_path.open("rb") as handle:
        os.fsync(handle.fileno())
    retired = None
    if target.exists():
        retired = target.with_name(f".retired-{target.name}-{os.getpid()}")
        os.replace(target, retired)
    os.replace(staging, target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
