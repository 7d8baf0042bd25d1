"""One image through a converted artifact on the controller: the device's own pipeline (decode,
pre-processing, ONNX Runtime on the CPU, the manifest's decoder), its result as plain data in
original-image pixels, and a drawing of it. For seeing that a decode is right before benchmarking a
fleet with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PredictError", "draw", "find_artifact", "predict", "result_as_data", "result_text"]


class PredictError(RuntimeError):
    """The model has no usable artifact, or the image cannot be read."""


def find_artifact(name: str, artifacts_dir: Path, catalog=None) -> Path:
    """``artifacts_dir/<name>`` when it holds a manifest; otherwise a PredictError saying what to do
    (an unknown name gets the catalog's did-you-mean through CatalogError)."""
    target = Path(artifacts_dir) / name
    if (target / "manifest.json").is_file():
        return target
    if catalog is not None:
        catalog.get(name)  # CatalogError for a name the catalog does not know
        raise PredictError(
            f"{name} has no artifact in {artifacts_dir}: run `edgebench convert --models {name}` first"
        )
    raise PredictError(f"no artifact {target} (expected {target / 'manifest.json'})")


def predict(artifact_dir: Path, image_path: Path) -> tuple[dict, Any, np.ndarray, float]:
    """(manifest, decoded result, the RGB image, inference ms) for one image."""
    import time

    from edgebench_runtime.backends import create_backend
    from edgebench_runtime.imaging import ImageDecodeError, decode_image
    from edgebench_runtime.manifest import ArtifactError, verify_artifact
    from edgebench_runtime.tasks import Pipeline

    try:
        manifest = verify_artifact(artifact_dir)
    except ArtifactError as exc:
        raise PredictError(f"artifact check failed: {exc}") from exc
    try:
        image = decode_image(image_path)
    except ImageDecodeError as exc:
        raise PredictError(str(exc)) from exc
    backend = create_backend("cpu")
    backend.load(str(artifact_dir), manifest)
    try:
        pipeline = Pipeline(manifest, backend.input_names)
        feeds, geometry = pipeline.preprocess(image)
        started = time.perf_counter()
        outputs = backend.infer(feeds)
        infer_ms = (time.perf_counter() - started) * 1000.0
        result = pipeline.postprocess(outputs, geometry)
    finally:
        backend.close()
    return manifest, result, image, infer_ms


def result_as_data(manifest: dict, result: Any) -> dict:
    """The decoded result as JSON-ready data, coordinates in original-image pixels: the runtime's
    one definition (``edgebench_runtime.predictions``), which devices write to predictions.jsonl."""
    from edgebench_runtime.predictions import UnknownResult
    from edgebench_runtime.predictions import result_as_data as runtime_result_as_data

    try:
        return runtime_result_as_data(manifest, result)
    except UnknownResult as exc:
        raise PredictError(f"predict cannot show it: {exc}") from exc


def result_text(model: str, data: dict, infer_ms: float) -> str:
    lines = [f"{model}: inference {infer_ms:.1f} ms (ONNX Runtime CPU)"]
    for box in data.get("boxes", []):
        x1, y1, x2, y2 = box["box"]
        lines.append(f"  {box['label']:<20} {box['score']:.3f}  [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")
    if "boxes" in data and not data["boxes"]:
        lines.append("  no boxes above the score threshold")
    for top in data.get("top", []):
        lines.append(f"  {top['label']:<30} {top['score']:.4f}")
    for index, person in enumerate(data.get("people", [])):
        lines.append(f"  person {index}: score {person['score']:.3f}, {len(person['keypoints'])} keypoints")
    for item in data.get("classes", []):
        lines.append(f"  {item['label']:<20} {item['fraction']:.1%} of the pixels")
    if "note" in data:
        lines.append(f"  {data['note']}")
    return "\n".join(lines)


_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def draw(image: np.ndarray, manifest: dict, result: Any, data: dict, path: Path) -> None:
    """The result drawn on the image (boxes and labels, top classes, keypoints, a class overlay)."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    if "classes" in data and result is not None and "mask" in result:
        mask = result["mask"]
        palette = np.array([(0, 0, 0)] + _COLOURS * 50, dtype=np.uint8)
        overlay = palette[np.minimum(mask.astype(np.int64), len(palette) - 1)]
        blended = np.where(mask[..., None] > 0, (image * 0.5 + overlay * 0.5).astype(np.uint8), image)
        canvas = Image.fromarray(blended)
    pen = ImageDraw.Draw(canvas)
    for index, box in enumerate(data.get("boxes", [])):
        colour = _COLOURS[index % len(_COLOURS)]
        pen.rectangle(box["box"], outline=colour, width=3)
        pen.text((box["box"][0] + 4, box["box"][1] + 2), f"{box['label']} {box['score']:.2f}", fill=colour)
    for row, top in enumerate(data.get("top", [])[:5]):
        pen.text((6, 6 + 14 * row), f"{top['label']} {top['score']:.3f}", fill=(255, 255, 0))
    for index, person in enumerate(data.get("people", [])):
        colour = _COLOURS[index % len(_COLOURS)]
        for x, y, _confidence in person["keypoints"].values():
            pen.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    canvas.save(str(path))
