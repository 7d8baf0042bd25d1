"""Helpers shared by the decoder tests and benchmarks/bench_postprocess.py: planted pose maps and
small exported models. Importable as ``synthetic`` (tests/ is on sys.path under pytest; the
benchmark puts it there itself)."""

from __future__ import annotations

import numpy as np

from edgebench_runtime.tasks.pose import LIMBS, PAF_CHANNELS

__all__ = ["SKELETON", "export_session", "render_people"]

# A standing person, (x, y) offsets in network pixels from the nose, OpenPose keypoint order.
SKELETON = np.array(
    [
        (0, 0),
        (0, 12),
        (-10, 12),
        (-14, 28),
        (-16, 44),
        (10, 12),
        (14, 28),
        (16, 44),
        (-6, 44),
        (-7, 66),
        (-8, 88),
        (6, 44),
        (7, 66),
        (8, 88),
        (-3, -3),
        (3, -3),
        (-6, -1),
        (6, -1),
    ],
    np.float32,
)


def render_people(people, size=256, stride=8, sigma=1.0, rng=None):
    """Heatmaps with a Gaussian per keypoint and PAFs with the unit limb vector within one cell of
    each limb, at the decoder's convention: cell c is network pixel c * stride + stride / 2 - 0.5.
    Keypoints given as NaN are left out. With ``rng``, the maps start from low noise (as a trained
    network's are) instead of zeros, and the background channel is left as noise."""
    cells = size // stride
    if rng is None:
        heat = np.zeros((1, 19, cells, cells), np.float32)
        pafs = np.zeros((1, 38, cells, cells), np.float32)
    else:
        heat = rng.uniform(0, 0.05, (1, 19, cells, cells)).astype(np.float32)
        pafs = rng.normal(0, 0.02, (1, 38, cells, cells)).astype(np.float32)
    gy, gx = np.mgrid[0:cells, 0:cells].astype(np.float32)
    for keypoints in people:
        cell_xy = (keypoints - (stride / 2 - 0.5)) / stride
        for k, (x, y) in enumerate(cell_xy):
            if np.isnan(x):
                continue
            heat[0, k] = np.maximum(heat[0, k], np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * sigma**2)))
        for (a, b), (cx, cy) in zip(LIMBS, PAF_CHANNELS):  # noqa: B905 - numpy arrays of equal length
            pa, pb = cell_xy[a], cell_xy[b]
            if np.isnan(pa).any() or np.isnan(pb).any():
                continue
            v = pb - pa
            length = np.linalg.norm(v)
            u = v / length
            t = np.clip(((gx - pa[0]) * u[0] + (gy - pa[1]) * u[1]) / length, 0, 1)
            near = np.hypot(gx - (pa[0] + t * v[0]), gy - (pa[1] + t * v[1])) <= 1.0
            pafs[0, cx][near] = u[0]
            pafs[0, cy][near] = u[1]
    if rng is None:
        heat[0, 18] = 1 - heat[0, :18].max(0)
    return heat, pafs


def export_session(module, size, path, outputs):
    """Export ``module`` (input ``images``, 1x3xHxW) at opset 13 and open it in ONNX Runtime, 1 thread."""
    import onnxruntime as ort
    import torch

    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module,
            torch.zeros(1, 3, *size),
            str(path),
            input_names=["images"],
            output_names=list(outputs),
            opset_version=13,
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
