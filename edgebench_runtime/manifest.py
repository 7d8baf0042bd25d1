"""Reading an artifact's manifest and checking its files before use.

Python 3.6 compatible.
"""

import hashlib
import json
import os
from typing import Any, Dict, Optional

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "ArtifactError",
    "load_manifest",
    "sha256_file",
    "verify_artifact",
]

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
_CHUNK = 1 << 20


class ArtifactError(Exception):
    """An artifact is missing, unreadable, of an unknown schema, or fails its checksums."""


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(artifact_dir: str) -> Dict[str, Any]:
    """The parsed ``manifest.json`` of ``artifact_dir``; raises ArtifactError with the path."""
    path = os.path.join(str(artifact_dir), MANIFEST_NAME)
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except IOError as exc:
        raise ArtifactError("cannot read manifest %s: %s" % (path, exc)) from exc
    except ValueError as exc:
        raise ArtifactError("manifest %s is not valid JSON: %s" % (path, exc)) from exc
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ArtifactError(
            "manifest %s has schema_version %r; this runtime reads %d" % (path, version, SCHEMA_VERSION)
        )
    return manifest


def verify_artifact(artifact_dir: str, manifest: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Check size and sha256 of every file the manifest lists; return the manifest.

    Raises ArtifactError naming the first file that is missing or differs.
    """
    if manifest is None:
        manifest = load_manifest(artifact_dir)
    for name, expected in sorted(manifest.get("files", {}).items()):
        path = os.path.join(str(artifact_dir), name)
        if not os.path.isfile(path):
            raise ArtifactError("%s is missing (listed in the manifest)" % path)
        size = os.path.getsize(path)
        if size != expected["size"]:
            raise ArtifactError(
                "%s has %d bytes, the manifest says %d: corrupt or truncated" % (path, size, expected["size"])
            )
        actual = sha256_file(path)
        if actual != expected["sha256"]:
            raise ArtifactError(
                "%s sha256 %s does not match the manifest's %s: corrupt artifact"
                % (path, actual[:16], expected["sha256"][:16])
            )
    return manifest
