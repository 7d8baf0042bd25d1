"""The default image set: scikit-image's bundled colour photos as JPEG files, so devices need
neither scikit-image nor a data set download to run a benchmark."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from edgebench_runtime.manifest import ArtifactError, sha256_file, verify_artifact

__all__ = ["DEFAULT_PHOTOS", "IMAGES_DIR_NAME", "ensure_default_images", "image_paths"]

IMAGES_DIR_NAME = "images"
# Colour photos shipped inside the scikit-image wheel (no download needed).
DEFAULT_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")
_JPEG_QUALITY = 95


def image_paths(images_dir: Path) -> list[Path]:
    return sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def ensure_default_images(artifacts_dir: Path) -> Path:
    """Write ``artifacts/images/`` (JPEGs + manifest.json) unless a verified copy is already there."""
    target = Path(artifacts_dir) / IMAGES_DIR_NAME
    try:
        verify_artifact(target)
        return target
    except ArtifactError:
        pass
    Path(artifacts_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".images-", dir=artifacts_dir))
    staging.chmod(0o755)
    try:
        files = {}
        for name, pixels in _photos().items():
            path = staging / f"{name}.jpg"
            pixels.save(path, quality=_JPEG_QUALITY)
            files[path.name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        manifest = {"schema_version": 1, "name": IMAGES_DIR_NAME, "source": "skimage.data", "files": files}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _photos():
    from PIL import Image
    from skimage import data

    left, right, _disparity = data.stereo_motorcycle()
    arrays = {
        "astronaut": data.astronaut(),
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "motorcycle_left": left,
        "motorcycle_right": right,
    }
    return {name: Image.fromarray(arrays[name]).convert("RGB") for name in DEFAULT_PHOTOS}
