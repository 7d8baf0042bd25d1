"""``openpose_paf``: people from (Lightweight) OpenPose heatmaps and part affinity fields.

Inputs: heatmaps ``(1, 19, h, w)`` (18 keypoints + background) and PAFs ``(1, 38, h, w)`` (19 limbs x
(x, y)) at ``stride`` (8; 32 for the coarse variant), told apart by their channel counts.

1. The keypoint heatmaps are upsampled by ``upsample_ratio`` (bicubic: cv2.resize when OpenCV is
   present, otherwise the same kernel as two cached interpolation matrices, one matmul per axis).
2. Peaks: above ``heatmap_threshold`` and above their 4 neighbours; a peak within ``nms_radius``
   (upsampled pixels) of a stronger peak of the same keypoint is suppressed. All vectorised.
3. Limbs: every pair of peaks whose keypoint types form one of the 19 OpenPose limbs is scored by
   the PAF line integral: ``points_per_limb`` samples (bilinear on the PAF map) of the field's
   projection on the unit vector between the peaks; a pair is valid when more than
   ``min_success_ratio`` of the samples exceed ``paf_min_score``; its score is the mean of those.
4. Greedy matching per limb (best pairs first, each peak used once per limb), then greedy grouping
   along the limbs into people (joining, extending or merging people); a person needs
   ``min_keypoints`` keypoints and a mean score (keypoint + limb scores over keypoints) of at
   least ``min_person_score``.

Geometry: heatmap cell ``c`` is network pixel ``c * stride + stride / 2 - 0.5`` (the cell's centre);
upsampled pixel ``u`` is cell ``(u + 0.5) / ratio - 0.5``.

Result: ``{"people": float32 (P, 18, 3) x, y, score in original pixels (missing: -1, -1, 0),
"scores": float32 (P,)}``, best person first.

Python 3.6 compatible.
"""

from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy as np

from .base import Decoder, register_decoder

try:  # OpenCV is optional on devices.
    import cv2
except ImportError:  # pragma: no cover - depends on the device
    cv2 = None

__all__ = ["LIMBS", "NUM_KEYPOINTS", "PAF_CHANNELS", "OpenPosePAF", "cubic_resize_matrix"]

NUM_KEYPOINTS = 18
# The 19 limbs of OpenPose's COCO model as keypoint pairs, and their (x, y) PAF channels
# (Lightweight OpenPose's BODY_PARTS_KPT_IDS / BODY_PARTS_PAF_IDS), in grouping order.
LIMBS = np.array(
    [
        [1, 2],
        [1, 5],
        [2, 3],
        [3, 4],
        [5, 6],
        [6, 7],
        [1, 8],
        [8, 9],
        [9, 10],
        [1, 11],
        [11, 12],
        [12, 13],
        [1, 0],
        [0, 14],
        [14, 16],
        [0, 15],
        [15, 17],
        [2, 16],
        [5, 17],
    ],
    dtype=np.int64,
)
PAF_CHANNELS = np.array(
    [
        [12, 13],
        [20, 21],
        [14, 15],
        [16, 17],
        [22, 23],
        [24, 25],
        [0, 1],
        [2, 3],
        [4, 5],
        [6, 7],
        [8, 9],
        [10, 11],
        [28, 29],
        [30, 31],
        [34, 35],
        [32, 33],
        [36, 37],
        [18, 19],
        [26, 27],
    ],
    dtype=np.int64,
)

# _LIMB_OF[a, b] = limb index of the keypoint pair (a, b), -1 where none.
_LIMB_OF = np.full((NUM_KEYPOINTS, NUM_KEYPOINTS), -1, dtype=np.int64)
_LIMB_OF[LIMBS[:, 0], LIMBS[:, 1]] = np.arange(len(LIMBS))


def cubic_resize_matrix(size_in: int, size_out: int, a: float = -0.75) -> np.ndarray:
    """(size_out, size_in) matrix of OpenCV's INTER_CUBIC along one axis (half-pixel alignment,
    replicated border)."""
    scale = size_in / float(size_out)
    src = (np.arange(size_out, dtype=np.float64) + 0.5) * scale - 0.5
    base = np.floor(src)
    t = src - base
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    rows = np.arange(size_out)
    for k in range(-1, 3):
        d = np.abs(t - k)
        w = np.where(
            d <= 1,
            ((a + 2) * d - (a + 3)) * d * d + 1,
            np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0),
        )
        cols = np.clip(base.astype(np.int64) + k, 0, size_in - 1)
        np.add.at(matrix, (rows, cols), w)
    return matrix.astype(np.float32)


def _bilinear(maps, channels, ys, xs):
    """Sample maps[channels, ys, xs] bilinearly (cell coordinates, border clamped)."""
    h, w = maps.shape[1:]
    xs = np.clip(xs, 0.0, w - 1.0)
    ys = np.clip(ys, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(xs).astype(np.int64), w - 2) if w > 1 else np.zeros(xs.shape, np.int64)
    y0 = np.minimum(np.floor(ys).astype(np.int64), h - 2) if h > 1 else np.zeros(ys.shape, np.int64)
    fx = (xs - x0).astype(np.float32)
    fy = (ys - y0).astype(np.float32)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    top = maps[channels, y0, x0] * (1 - fx) + maps[channels, y0, x1] * fx
    bottom = maps[channels, y1, x0] * (1 - fx) + maps[channels, y1, x1] * fx
    return top * (1 - fy) + bottom * fy


@register_decoder("openpose_paf")
class OpenPosePAF(Decoder):
    parameters: ClassVar[dict] = {
        "stride": "number",
        "upsample_ratio": "int",
        "heatmap_threshold": "number",
        "paf_min_score": "number",
        "min_keypoints": "int",
        "min_person_score": "number",
        "nms_radius": "number",
        "points_per_limb": "int",
        "min_success_ratio": "number",
    }

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        Decoder.__init__(self, manifest, params)
        p = self.params
        self.stride = float(p.get("stride", 8))
        self.ratio = int(p.get("upsample_ratio", 4))
        self.heatmap_threshold = float(p.get("heatmap_threshold", 0.1))
        self.paf_min_score = float(p.get("paf_min_score", 0.05))
        self.min_keypoints = int(p.get("min_keypoints", 3))
        self.min_person_score = float(p.get("min_person_score", 0.2))
        self.nms_radius = float(p.get("nms_radius", 6.0))
        self.points_per_limb = int(p.get("points_per_limb", 10))
        self.min_success_ratio = float(p.get("min_success_ratio", 0.8))
        self._matrices = {}

    # -- stages --------------------------------------------------------------------------------

    def upsample(self, heatmaps: np.ndarray) -> np.ndarray:
        """(K, h, w) -> (h * ratio, w * ratio, K), bicubic (OpenCV when present, else the same
        kernel as two cached interpolation matrices, one matmul per axis)."""
        k, h, w = heatmaps.shape
        if self.ratio == 1:
            return np.ascontiguousarray(heatmaps.transpose(1, 2, 0))
        if cv2 is not None and k <= 512:
            hwc = np.ascontiguousarray(heatmaps.transpose(1, 2, 0))
            up = cv2.resize(hwc, (w * self.ratio, h * self.ratio), interpolation=cv2.INTER_CUBIC)
            return up.reshape(h * self.ratio, w * self.ratio, k)
        key = (h, w)
        if key not in self._matrices:
            self._matrices = {
                key: (
                    cubic_resize_matrix(h, h * self.ratio),
                    np.ascontiguousarray(cubic_resize_matrix(w, w * self.ratio).T),
                )
            }
        my, mx_t = self._matrices[key]
        return np.ascontiguousarray(np.matmul(np.matmul(my, heatmaps), mx_t).transpose(1, 2, 0))

    def find_peaks(self, up: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(types, ys, xs, scores) of the suppressed local maxima of (H, W, K) maps: above the
        threshold, above the left/top neighbours and not below the right/bottom ones (outside the
        map counts as 0); a peak within ``nms_radius`` of a stronger one of its type is dropped."""
        height, width, kinds = up.shape
        flat_map = up.reshape(-1)
        flat = np.flatnonzero(flat_map > np.float32(self.heatmap_threshold))
        scores = flat_map[flat]
        types = flat % kinds
        cell = flat // kinds
        xs = cell % width
        ys = cell // width
        zero = np.float32(0.0)
        last = flat_map.shape[0] - 1
        row = width * kinds
        left = np.where(xs > 0, flat_map[np.maximum(flat - kinds, 0)], zero)
        right = np.where(xs < width - 1, flat_map[np.minimum(flat + kinds, last)], zero)
        top = np.where(ys > 0, flat_map[np.maximum(flat - row, 0)], zero)
        bottom = np.where(ys < height - 1, flat_map[np.minimum(flat + row, last)], zero)
        peak = (scores > left) & (scores >= right) & (scores > top) & (scores >= bottom)
        types, ys, xs, scores = types[peak], ys[peak], xs[peak], scores[peak]
        if types.shape[0] > 1:
            same = types[:, None] == types[None, :]
            dist2 = (ys[:, None] - ys[None, :]) ** 2 + (xs[:, None] - xs[None, :]) ** 2
            index = np.arange(types.shape[0])
            stronger = (scores[None, :] > scores[:, None]) | (
                (scores[None, :] == scores[:, None]) & (index[None, :] < index[:, None])
            )
            suppressed = (same & (dist2 <= self.nms_radius**2) & stronger).any(axis=1)
            keep = ~suppressed
            types, ys, xs, scores = types[keep], ys[keep], xs[keep], scores[keep]
        return types, ys, xs, scores

    def score_limbs(self, types: np.ndarray, cy: np.ndarray, cx: np.ndarray, pafs: np.ndarray) -> Any:
        """Candidate connections (limb, peak a, peak b, score) over all limbs at once."""
        limb = _LIMB_OF[types[:, None], types[None, :]]
        pa, pb = np.nonzero(limb >= 0)
        if pa.shape[0] == 0:
            return pa, pa, pa, np.zeros(0, np.float32)
        limb = limb[pa, pb]
        dx = cx[pb] - cx[pa]
        dy = cy[pb] - cy[pa]
        norm = np.sqrt(dx * dx + dy * dy)
        ok = norm > 1e-6
        limb, pa, pb, dx, dy, norm = limb[ok], pa[ok], pb[ok], dx[ok], dy[ok], norm[ok]
        ux, uy = (dx / norm).astype(np.float32), (dy / norm).astype(np.float32)
        steps = np.linspace(0.0, 1.0, self.points_per_limb)
        xs = cx[pa][:, None] + dx[:, None] * steps
        ys = cy[pa][:, None] + dy[:, None] * steps
        chans = PAF_CHANNELS[limb]
        fx = _bilinear(pafs, chans[:, 0:1], ys, xs)
        fy = _bilinear(pafs, chans[:, 1:2], ys, xs)
        dots = fx * ux[:, None] + fy * uy[:, None]
        passed = dots > np.float32(self.paf_min_score)
        count = passed.sum(axis=1)
        score = np.where(passed, dots, 0).sum(axis=1) / (count + 1e-6)
        valid = (count > self.min_success_ratio * self.points_per_limb) & (score > 0)
        return limb[valid], pa[valid], pb[valid], score[valid].astype(np.float32)

    def group(
        self, limb: Any, pa: Any, pb: Any, conn_score: Any, types: np.ndarray, peak_scores: np.ndarray
    ) -> Any:
        """Greedy matching per limb, then people along the limbs. Returns (slots (P, 18), scores)."""
        order = np.lexsort((-conn_score, limb))  # by limb, best first
        used = set()
        owner = {}
        people = []  # [slots list, score]
        for k in order.tolist():
            lk, a, b = int(limb[k]), int(pa[k]), int(pb[k])
            if (lk, 0, a) in used or (lk, 1, b) in used:
                continue
            used.add((lk, 0, a))
            used.add((lk, 1, b))
            s = float(conn_score[k])
            ta, tb = int(types[a]), int(types[b])
            oa, ob = owner.get(a), owner.get(b)
            if oa is None and ob is None:
                slots = [-1] * NUM_KEYPOINTS
                slots[ta], slots[tb] = a, b
                owner[a] = owner[b] = len(people)
                people.append([slots, float(peak_scores[a] + peak_scores[b]) + s])
            elif ob is None:
                person = people[oa]
                if person[0][tb] == -1:
                    person[0][tb] = b
                    owner[b] = oa
                    person[1] += float(peak_scores[b]) + s
            elif oa is None:
                person = people[ob]
                if person[0][ta] == -1:
                    person[0][ta] = a
                    owner[a] = ob
                    person[1] += float(peak_scores[a]) + s
            elif oa != ob:
                first, second = people[oa], people[ob]
                if first is None or second is None:
                    continue
                if all(x == -1 or y == -1 for x, y in zip(first[0], second[0])):  # noqa: B905 - 3.6
                    for t, peak in enumerate(second[0]):
                        if peak != -1:
                            first[0][t] = peak
                            owner[peak] = oa
                    first[1] += second[1] + s
                    people[ob] = None
        slots, scores = [], []
        for person in people:
            if person is None:
                continue
            count = sum(1 for x in person[0] if x != -1)
            if count >= self.min_keypoints and person[1] / count >= self.min_person_score:
                slots.append(person[0])
                scores.append(person[1])
        return np.asarray(slots, dtype=np.int64).reshape(-1, NUM_KEYPOINTS), np.asarray(scores, np.float32)

    # -- decoder -------------------------------------------------------------------------------

    def __call__(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Dict[str, Any]:
        heatmaps = pafs = None
        for output in outputs:
            channels = output.shape[1]
            if channels in (NUM_KEYPOINTS, NUM_KEYPOINTS + 1) and heatmaps is None:
                heatmaps = output[0]
            elif channels == 2 * len(LIMBS):
                pafs = output[0]
        if heatmaps is None or pafs is None:
            raise ValueError("openpose_paf expects heatmaps (1, 19, h, w) and PAFs (1, 38, h, w)")
        heatmaps = np.asarray(heatmaps[:NUM_KEYPOINTS], dtype=np.float32)
        pafs = np.asarray(pafs, dtype=np.float32)
        up = self.upsample(heatmaps)
        types, ys, xs, peak_scores = self.find_peaks(up)
        # Peak positions in heatmap-cell coordinates.
        cy = (ys + 0.5) / self.ratio - 0.5
        cx = (xs + 0.5) / self.ratio - 0.5
        limb, pa, pb, conn_score = self.score_limbs(types, cy, cx, pafs)
        slots, scores = self.group(limb, pa, pb, conn_score, types, peak_scores)
        order = np.argsort(-scores, kind="stable")
        slots, scores = slots[order], scores[order]
        people = np.zeros((slots.shape[0], NUM_KEYPOINTS, 3), dtype=np.float32)
        people[:, :, :2] = -1.0
        present = slots >= 0
        peaks = slots[present]
        half = self.stride / 2.0 - 0.5
        net_x = cx[peaks] * self.stride + half
        net_y = cy[peaks] * self.stride + half
        scale = geometry.get("scale", (1.0, 1.0)) if geometry else (1.0, 1.0)
        offset = geometry.get("offset", (0.0, 0.0)) if geometry else (0.0, 0.0)
        people[present, 0] = (net_x - offset[1]) / scale[1]
        people[present, 1] = (net_y - offset[0]) / scale[0]
        people[present, 2] = peak_scores[peaks]
        return {"people": people, "scores": scores}

    def brief(self, result: Dict[str, Any]) -> str:
        return "%d people" % len(result["people"])
