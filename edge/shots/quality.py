"""Score how useful a face shot is for recognition.

The parts (each 0..1) describe the shot: sharpness, size, brightness (exposure), frontalness
and blockiness (codec block edges). `overall` is a fitted model of recognisability: a logistic
regression over transformed parts giving the estimated probability that a face recogniser at
its operating point (dlib's ResNet at distance 0.6, used only offline as the judge of the fit)
matches this shot to a clean photo of the same person. The coefficients below come from
`tools/eval/quality_fit.py` (LFW same-person pairs, the B image degraded as a camera would,
found by the project's detector and aligned as the daemon does; fitted on folds 1-5)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

# Where the nose sits between the eye line and the mouth line in a frontal face (template ratio).
_FRONTAL_NOSE_RATIO = 0.494
# Weights of the hand-set score used before the fitted model (issue 13); kept so the tools can
# compare against it (`legacy_overall`).
WEIGHTS = {"sharpness": 0.35, "size": 0.2, "brightness": 0.15, "frontalness": 0.3}

# Codec blocks are 8x8 pixels of the frame, starting at its top-left corner; in the aligned
# crop they are turned and scaled by the alignment.
BLOCK_PX = 8.0
_PHASE_BINS = 16  # half a frame pixel each
_MIN_BLOCK_CROP_PX = 4.0
# block_edge_ratio of a face without codec blocks sits near 1; blockiness rises from 1.1. On the
# fit's 2,163 shots (see tools/eval/quality_fit.py) blockiness averaged 0.009 without JPEG,
# 0.07 at JPEG quality 70-95, 0.24 at 40-69, 0.44 at 20-39 and 0.71 at 10-19.
_BLOCK_RATIO_CLEAN = 1.1
_BLOCK_RATIO_SCALE = 0.5

# The fitted model: logit = INTERCEPT + sum(COEF[k] * features()[k]); overall = sigmoid(logit).
# Produced by: python -m tools.eval.quality_fit --out var/eval/quality --refit --face-check
# (LFW folds 1-5, 1,077 shots; on folds 6-10, 1,086 shots, Spearman with -distance 0.639, the
# hand-weighted score 0.550). frontalness is a prior, not fitted: LFW has too few turned heads
# to measure it (see quality_fit.FIXED).
INTERCEPT = -9.7009
COEF = {
    "log_size": 1.7486,
    "log_sharpness": 0.7827,
    "log_contrast": 1.4092,
    "brightness": 0.8632,
    "blockiness": -1.6534,
    "frontalness": 1.0,
}
# The face check's score as one more part was fitted too (`--face-check`): Spearman 0.643
# against 0.639 without, nothing measurable on faces that are all real; non-faces are the face
# check's own gate, so the model leaves it out.


@dataclass(slots=True)
class Pose:
    yaw: float
    pitch: float
    roll: float

    def as_dict(self) -> dict:
        return {
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 1),
            "roll": round(self.roll, 1),
        }


@dataclass(slots=True)
class Quality:
    sharpness: float
    size: float
    brightness: float
    frontalness: float
    overall: float
    blockiness: float = 0.0

    def as_dict(self) -> dict:
        return {
            "overall": round(self.overall, 4),
            "sharpness": round(self.sharpness, 4),
            "size": round(self.size, 4),
            "brightness": round(self.brightness, 4),
            "frontalness": round(self.frontalness, 4),
            "blockiness": round(self.blockiness, 4),
        }


def estimate_pose(landmarks: np.ndarray) -> Pose:
    """Rough head pose in degrees from the 5 landmarks (enough to rank shots and see turns)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (mouth_l + mouth_r) / 2
    eye_vec = right_eye - left_eye
    eye_dist = float(np.hypot(*eye_vec)) or 1.0
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    x_axis = eye_vec / eye_dist
    y_axis = np.array([-x_axis[1], x_axis[0]])
    # Yaw: sideways offset of the nose from the face's midline, relative to half the eye distance.
    midline_point = (eye_mid + mouth_mid) / 2
    side = float((nose - midline_point) @ x_axis) / (eye_dist / 2)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, side))))
    # Pitch: where the nose falls between eye line and mouth line.
    face_len = float((mouth_mid - eye_mid) @ y_axis) or 1.0
    ratio = float((nose - eye_mid) @ y_axis) / face_len
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, (ratio - _FRONTAL_NOSE_RATIO) * 2))))
    return Pose(yaw=yaw, pitch=pitch, roll=roll)


def laplacian_variance(gray: np.ndarray) -> float:
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def sharpness_score(gray: np.ndarray) -> float:
    """Variance of the Laplacian, squashed to 0..1 (about 0.63 at variance 150)."""
    return 1.0 - math.exp(-laplacian_variance(gray) / 150.0)


def brightness_score(gray: np.ndarray) -> float:
    """1 for a well exposed face (mean near mid-grey, some contrast), falling to 0 when dark or clipped."""
    return _brightness(float(gray.mean()), float(gray.std()))


def _brightness(mean: float, std: float) -> float:
    exposure = max(0.0, 1.0 - abs(mean / 255.0 - 0.5) * 2.2)
    contrast = min(1.0, std / 40.0)
    return exposure * (0.5 + 0.5 * contrast)


@lru_cache(maxsize=16)
def _step_grid(h: int, w: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y (in the image's pixel coordinates) of the steps `_line_steps` takes."""
    if axis == 0:
        return np.arange(w - 1, dtype=np.float64) + 0.5, np.arange(0, h, 2, dtype=np.float64)
    return np.arange(0, w, 2, dtype=np.float64), np.arange(h - 1, dtype=np.float64) + 0.5


def _line_steps(g: np.ndarray, axis: int) -> np.ndarray:
    """|steps| between neighbours along x (axis 0, every other row) or y (axis 1, every other
    column)."""
    if axis == 0:
        return cv2.absdiff(g[::2, 1:], g[::2, :-1])
    return cv2.absdiff(g[1:, ::2], g[:-1, ::2])


def _block_bins(m: np.ndarray, axis: int, h: int, w: int) -> np.ndarray:
    """Phase bin (0.._PHASE_BINS-1, half a frame pixel each) of each step's frame coordinate
    along the frame's `axis`, + 1 bin: the edge between a block's last frame pixel (7) and the
    next block's first (8) is then bins 0 and 1."""
    xs, ys = _step_grid(h, w, axis)
    per_bin = _PHASE_BINS / BLOCK_PX
    # Kept positive so truncation floors; the mask wraps it into the block.
    f0 = (float(m[axis, 2]) + 1.0) * per_bin + _PHASE_BINS * 4096
    pos = np.add.outer(ys * (float(m[axis, 1]) * per_bin) + f0, xs * (float(m[axis, 0]) * per_bin))
    return pos.astype(np.int32) & (_PHASE_BINS - 1)


def block_edge_ratio(
    gray: np.ndarray,
    to_frame: np.ndarray | None = None,
    block: float = BLOCK_PX,
    angle_deg: float = 0.0,
) -> float:
    """Mean step across codec block edges over the mean step inside the blocks (about 1 when
    there are none; larger the stronger the edges). `gray`: uint8.

    The frame's codec grid has BLOCK_PX-pixel blocks starting at frame pixel 0. `to_frame`: 2x3
    matrix from `gray`'s pixel coordinates to the frame's (the inverse of the alignment), which
    places the grid exactly. Without it the grid has blocks of `block` pixels of `gray` (8 when
    `gray` is at the frame's scale), turned by `angle_deg`, at an unknown phase: the phase with
    the strongest edges is taken (which reads a little above 1 on a clean face). Steps between
    neighbours along the crop's rows and columns (every other line: plenty) are sorted by
    where they fall in the frame's block along the grid's axis nearest to them (the grid is
    only turned by the roll); the edge is the frame-pixel step from one block to the next."""
    g = np.ascontiguousarray(gray, dtype=np.uint8)
    if g.ndim != 2 or min(g.shape) < 4:
        return 1.0
    known = to_frame is not None
    if to_frame is None:
        t = math.radians(angle_deg)
        k = BLOCK_PX / block
        to_frame = np.array(
            [[k * math.cos(t), k * math.sin(t), 0.0], [-k * math.sin(t), k * math.cos(t), 0.0]]
        )
    m = np.asarray(to_frame, np.float64)
    edge_sum = edge_n = all_sum = all_n = 0.0
    h, w = g.shape
    for axis in (0, 1):
        grad = _line_steps(g, axis)
        bins = _block_bins(m, axis, h, w)
        if known:
            mask = (bins < 2).view(np.uint8)
            n = cv2.countNonZero(mask)
            es = cv2.mean(grad, mask=mask)[0] * n if n else 0.0
        else:
            b = bins.ravel()
            s = np.bincount(b, weights=grad.ravel(), minlength=_PHASE_BINS).tolist()
            c = np.bincount(b, minlength=_PHASE_BINS).tolist()
            mean = [si / ci if ci else 0.0 for si, ci in zip(s, c, strict=True)]
            k = max(range(_PHASE_BINS), key=lambda i: mean[i] + mean[(i + 1) % _PHASE_BINS])
            k2 = (k + 1) % _PHASE_BINS
            es, n = s[k] + s[k2], c[k] + c[k2]
        edge_sum += es
        edge_n += n
        all_sum += cv2.sumElems(grad)[0]
        all_n += grad.size
    in_n = all_n - edge_n
    if edge_n == 0 or in_n == 0:
        return 1.0
    return (edge_sum / edge_n) / max((all_sum - edge_sum) / in_n, 1e-3)


def blockiness_score(
    gray: np.ndarray,
    to_frame: np.ndarray | None = None,
    block: float = BLOCK_PX,
    angle_deg: float = 0.0,
) -> float:
    """Codec block edges, 0 (none) .. 1 (strong): `block_edge_ratio` above what a clean face
    shows, squashed. Arguments as for `block_edge_ratio`."""
    r = block_edge_ratio(gray, to_frame, block, angle_deg)
    return 1.0 - math.exp(-max(0.0, r - _BLOCK_RATIO_CLEAN) / _BLOCK_RATIO_SCALE)


def features(
    face_height_px: float,
    lap_var_half: float,
    std: float,
    brightness: float,
    frontalness: float,
    blockiness: float,
) -> dict[str, float]:
    """The fitted model's inputs. `lap_var_half`: Laplacian variance of the inner face at half
    resolution (cv2.pyrDown), `std`: its grey-level standard deviation.

    - log_size: log of the face's height in the frame;
    - log_sharpness: the half-resolution Laplacian variance relative to the contrast (std^2):
      detail that survives noise, whatever the exposure;
    - log_contrast: log std;
    - brightness, frontalness, blockiness: the parts.

    The half-resolution detail is the sharpness the model uses: at full resolution, sensor
    noise reads as detail."""
    log_std = math.log(max(std, 1.0))
    return {
        "log_size": math.log(max(face_height_px, 1.0)),
        "log_sharpness": math.log1p(max(lap_var_half, 0.0)) - 2.0 * log_std,
        "log_contrast": log_std,
        "brightness": brightness,
        "frontalness": frontalness,
        "blockiness": blockiness,
    }


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def recognisability(feats: dict[str, float]) -> float:
    """The fitted probability (0..1) that the shot is matched to a clean photo of the person."""
    return _sigmoid(INTERCEPT + sum(c * feats[k] for k, c in COEF.items()))


def legacy_overall(q: Quality) -> float:
    """The hand-weighted score used before the fitted model."""
    return sum(w * getattr(q, k) for k, w in WEIGHTS.items())


def measure(
    crop_bgr: np.ndarray,
    face_height_px: float,
    pose: Pose,
    full_size_px: float = 112.0,
    matrix: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """The parts (Quality's fields but overall) and the model's features of an aligned crop."""
    h, w = crop_bgr.shape[:2]
    # Judge sharpness, light and blocks on the inner face, not the margin.
    y0, x0 = h // 5, w // 5
    inner = crop_bgr[y0 : h - h // 8, x0 : w - w // 5]
    gray = cv2.cvtColor(inner, cv2.COLOR_BGR2GRAY)
    lap_var = laplacian_variance(gray)
    lap_var_half = laplacian_variance(cv2.pyrDown(gray))
    sharp = 1.0 - math.exp(-lap_var / 150.0)
    size = min(1.0, face_height_px / full_size_px)
    mean, std = (float(v.item()) for v in cv2.meanStdDev(gray))
    bright = _brightness(mean, std)
    frontal = max(0.0, math.cos(math.radians(pose.yaw)) * math.cos(math.radians(pose.pitch)))
    frontal = frontal**2  # a 30 degree turn costs a quarter, 60 degrees three quarters
    blocky = 0.0
    if matrix is not None:
        # Where the frame's codec grid lies in the crop. Without the matrix it is not measured
        # (0): its phase cannot be guessed on a face a few blocks wide, nor its scale read
        # closely enough from the face height (boxes vary by +-10 % against the landmarks).
        (a, b, tx), (c, d, ty) = np.asarray(matrix, np.float64).tolist()
        det = a * d - b * c
        if det != 0.0:
            # Crop -> frame (the inverse), starting at the inner region's corner (x0, y0).
            ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
            ox, oy = x0 - tx, y0 - ty
            to_frame = np.array(
                [[ia, ib, ia * ox + ib * oy], [ic, id_, ic * ox + id_ * oy]], np.float64
            )
            # Below a few crop pixels a block is no longer resolved by the crop's sampling.
            if BLOCK_PX * math.sqrt(abs(det)) >= _MIN_BLOCK_CROP_PX:
                blocky = blockiness_score(gray, to_frame)
    parts = {
        "sharpness": sharp,
        "size": size,
        "brightness": bright,
        "frontalness": frontal,
        "blockiness": blocky,
    }
    return parts, features(face_height_px, lap_var_half, std, bright, frontal, blocky)


def score_shot(
    crop_bgr: np.ndarray,
    face_height_px: float,
    pose: Pose,
    full_size_px: float = 112.0,
    *,
    matrix: np.ndarray | None = None,
) -> Quality:
    """Quality of an aligned crop. `face_height_px` is the face's height in the frame.
    `matrix`: the 2x3 frame-to-crop alignment (`align_face`'s): it places the frame's codec
    grid in the crop; without it blockiness is not measured (0) and overall is then blind to
    compression."""
    parts, feats = measure(crop_bgr, face_height_px, pose, full_size_px, matrix)
    return Quality(overall=recognisability(feats), **parts)
