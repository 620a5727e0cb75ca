"""Several frames of one face, registered to one of them: the input of multi-frame restoration.

A track's frames are each aligned by the face's 5 landmarks into the restorer's framing
(`BurstFrame.view`: `MODEL_FRAMING` at `VIEW_SIDE` pixels, twice the network's input side, so
a face the network is used on (eyes <= 9 px apart in the camera) keeps every camera pixel).
Landmarks on a small face are off by a pixel or more, so each view is then registered to the
reference (the published shot) by an affine refinement, sub-pixel, from the identity: corners
of the reference's face region (`cv2.goodFeaturesToTrack`, once per burst) followed into the
frame by Lucas-Kanade (`cv2.calcOpticalFlowPyrLK`) and a robust affine fit (least median of
squares); where too few corners are found or followed (a flat, dark face), ECC (Evangelidis
and Psarakis 2008, `cv2.findTransformECC`) on the face region instead. A frame that
does not register well enough (another person after a track swap, a blink, an occlusion) is
dropped. Whether a frame matches is read after registration, from the correlation of the two
views blurred by `MATCH_BLUR` on the face region: blurred, sensor noise counts less and a
different face (other shapes) counts more. A frame is kept when that correlation reaches
`MIN_CORRELATION` and lies within `RELATIVE_SPREAD` times the burst's typical distance from 1
(a dark, noisy burst correlates less with itself; its frames are judged against each other),
and when the refinement moved the face by at most `MAX_SHIFT_PX`. The thresholds are measured
by `python -m tools.eval.burst_register` (see its docstring).

`average_frames` is the named classical baseline ("frame averaging", as forensic video tools
offer it): the registered views' per-pixel mean (or median).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from edge.enhance.face_frame import face_mask, to_model_matrix
from edge.shots.frame_buffer import BurstFrame

__all__ = ["BurstFrame", "VIEW_SIDE", "face_view", "register_burst", "average_frames"]

# The buffered view: the model's framing at twice its 40 px input.
VIEW_SIDE = 80
# A frame is fused only if, registered, its correlation with the reference (MATCH_BLUR) is at
# least MIN_CORRELATION and 1 - corr <= RELATIVE_SPREAD * (1 - the burst's median corr), and
# the refinement moved the face centre at most MAX_SHIFT_PX view pixels (tools/eval/burst_register.py).
MIN_CORRELATION = 0.8
RELATIVE_SPREAD = 3.0
# ... with the burst's spread taken as at least this: a clean burst that correlates 0.999 with
# itself must not drop a genuine frame at 0.996.
MIN_SPREAD = 0.01
MAX_SHIFT_PX = 6.0
MATCH_BLUR = 3.0
# 30 iterations to 1e-3 gave the same error as 60 to 1e-4 at a third of the time (measured).
ECC_ITERATIONS = 30
ECC_EPS = 1e-3
# The Gaussian ECC applies to both images first: noise and codec blocks do not drive it.
# (ECC on the views shrunk to 40 px took half the time but doubled the registration error:
# x4 median 0.21 against 0.12 camera px, `tools.eval.burst_register`.)
ECC_GAUSS = 5
# (A template cut to the face region's bounding box saved only 3 %: ECC's cost here is mostly
# per call, not per pixel.)
# Lucas-Kanade on corners: 40 corners, a 23 px window, no pyramid (the refinement moves a face
# by a pixel or two of the view; a second level cost 0.1 ms per frame for the same error:
# x4 0.080 / 0.154, x8 0.119 / 0.262, low 0.376 / 0.846 with it). Against ECC
# (`tools.eval.burst_register --faces 200`, median / p95 error in camera pixels): x4 0.08 / 0.15
# against 0.12 / 0.28, x8 0.12 / 0.26 against 0.17 / 0.40, low light 0.38 / 0.85 against
# 0.46 / 1.02, at about 20 % less time per burst (FUSION_MODEL_CARD.md).
LK_CORNERS = 40
LK_QUALITY = 0.01
LK_MIN_DISTANCE = 4
LK_WINDOW = 23
LK_LEVELS = 0
LK_MIN_POINTS = 6


@dataclass(frozen=True, slots=True)
class Registration:
    """`matrix` (2x3) maps reference pixels to frame pixels: warping the frame with it
    (`cv2.WARP_INVERSE_MAP`) lays it over the reference. `correlation`: of the registered
    frame with the reference, blurred, on the face region (1 = identical up to brightness and
    contrast; 0 when ECC did not converge); `shift`: how far the refinement moved the face
    centre, in view pixels; `ok`: fused or dropped, and why."""

    matrix: np.ndarray
    correlation: float
    shift: float
    ok: bool = True
    reason: str = ""


def face_view(image: np.ndarray, landmarks: np.ndarray, side: int = VIEW_SIDE) -> np.ndarray:
    """The face with these 5 landmarks in the restorer's framing at `side` pixels (bicubic,
    border replicated): the same face `FramedRestorer` gives the network, from the frame."""
    return cv2.warpAffine(
        image, to_model_matrix(landmarks, side), (side, side), flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip


_MASKS: dict[int, np.ndarray] = {}


def registration_mask(side: int) -> np.ndarray:
    """uint8 mask of the face region ECC compares: the restorer's face ellipse."""
    if side not in _MASKS:
        _MASKS[side] = (face_mask(side) > 0.5).astype(np.uint8)
    return _MASKS[side]


def _gray(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)


def centre_shift(matrix: np.ndarray, side: int) -> float:
    """How far `matrix` moves the view's centre, in pixels."""
    c = np.array([(side - 1) / 2, (side - 1) / 2, 1.0])
    return float(np.linalg.norm(matrix @ c - c[:2]))


def _correlation(reference_blurred: np.ndarray, registered: np.ndarray) -> float:
    """Zero-mean normalised correlation of the two views blurred by MATCH_BLUR, on the face;
    `reference_blurred`: the reference's blurred face pixels, mean removed (prepared once)."""
    m = registration_mask(registered.shape[0]) > 0
    b = cv2.GaussianBlur(_gray(registered), (0, 0), MATCH_BLUR)[m]
    a, b = reference_blurred, b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def warp_onto(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The frame laid over the reference (bicubic; border replicated)."""
    side = frame.shape[0]
    return cv2.warpAffine(
        frame, matrix, (side, side), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PreparedReference:
    """What registration needs of the reference, computed once per burst: its gray view
    (float for ECC, 8-bit for Lucas-Kanade), the corners of its face region, and its blurred
    face pixels for the match correlation."""

    view: np.ndarray
    gray: np.ndarray
    gray_u8: np.ndarray
    corners: np.ndarray | None
    match_blurred: np.ndarray


def prepare_reference(reference: np.ndarray) -> PreparedReference:
    mask = registration_mask(reference.shape[0])
    gray_u8 = cv2.cvtColor(reference, cv2.COLOR_BGR2GRAY)
    gray = gray_u8.astype(np.float32)
    corners = cv2.goodFeaturesToTrack(
        gray_u8, LK_CORNERS, LK_QUALITY, LK_MIN_DISTANCE, mask=mask, blockSize=5
    )
    blurred = cv2.GaussianBlur(gray, (0, 0), MATCH_BLUR)[mask > 0]
    return PreparedReference(reference, gray, gray_u8, corners, blurred - blurred.mean())


def _lucas_kanade(ref: PreparedReference, frame: np.ndarray) -> np.ndarray | None:
    """The affine move of the reference's corners into `frame` (2x3, reference to frame
    pixels), or None where too few corners are found or followed."""
    if ref.corners is None or len(ref.corners) < LK_MIN_POINTS:
        return None
    moved, found, _ = cv2.calcOpticalFlowPyrLK(
        ref.gray_u8, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), ref.corners, None,
        winSize=(LK_WINDOW, LK_WINDOW), maxLevel=LK_LEVELS,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.01),
    )  # fmt: skip
    ok = found[:, 0] == 1
    if ok.sum() < LK_MIN_POINTS:
        return None
    matrix, _ = cv2.estimateAffine2D(ref.corners[ok], moved[ok], method=cv2.LMEDS)
    return None if matrix is None else matrix.astype(np.float32)


def _ecc(ref: PreparedReference, frame: np.ndarray) -> np.ndarray | None:
    """ECC's affine move of `frame` onto the reference, or None when it does not converge."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPS)
    try:
        _, warp = cv2.findTransformECC(
            ref.gray, _gray(frame), np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE,
            criteria, registration_mask(ref.view.shape[0]), ECC_GAUSS,
        )  # fmt: skip
    except cv2.error:
        return None  # a flat or very different image
    return warp


def register(
    reference: np.ndarray | PreparedReference, frame: np.ndarray
) -> tuple[Registration, np.ndarray]:
    """Registers `frame` onto `reference` (same-size BGR views, or a prepared reference):
    (registration, the frame laid over the reference). Nothing is decided here (see
    `register_burst`)."""
    ref = reference if isinstance(reference, PreparedReference) else prepare_reference(reference)
    side = ref.view.shape[0]
    if frame.shape != ref.view.shape:
        raise ValueError(f"frame {frame.shape} and reference {ref.view.shape} differ in shape")
    warp = _lucas_kanade(ref, frame)
    if warp is None:
        warp = _ecc(ref, frame)
    if warp is None:  # not fusable
        return Registration(np.eye(2, 3, dtype=np.float32), 0.0, 0.0, False, "no match"), frame
    laid = warp_onto(frame, warp)
    corr = _correlation(ref.match_blurred, laid)
    return Registration(warp, corr, centre_shift(warp, side)), laid


def accept(regs: list[Registration]) -> list[Registration]:
    """The registrations with `ok` and `reason` decided by the burst-level rule."""
    if not regs:
        return []
    typical = 1.0 - float(np.median([r.correlation for r in regs]))
    floor = max(MIN_CORRELATION, 1.0 - RELATIVE_SPREAD * max(typical, MIN_SPREAD))
    out = []
    for r in regs:
        if not r.ok:
            out.append(r)
        elif r.correlation < floor:
            out.append(
                replace(r, ok=False, reason=f"correlation {r.correlation:.3f} < {floor:.3f}")
            )
        elif r.shift > MAX_SHIFT_PX:
            out.append(replace(r, ok=False, reason=f"moved {r.shift:.1f} px"))
        else:
            out.append(r)
    return out


@dataclass(frozen=True, slots=True)
class RegisteredBurst:
    """The reference first, then every frame that registered, laid over it; `used`: the
    indices (0 = reference, i = others[i - 1]) of the views kept; `registrations`: one per
    other frame, in order."""

    views: list[np.ndarray]
    used: list[int]
    registrations: list[Registration]


def register_burst(reference: np.ndarray, others: list[np.ndarray]) -> RegisteredBurst:
    """`reference` and `others` registered onto it; frames that do not match are dropped."""
    prepared = prepare_reference(reference)
    pairs = [register(prepared, f) for f in others]
    regs = accept([r for r, _ in pairs])
    views, used = [reference], [0]
    for i, (reg, (_, laid)) in enumerate(zip(regs, pairs, strict=True), start=1):
        if reg.ok:
            views.append(laid)
            used.append(i)
    return RegisteredBurst(views, used, regs)


def average_frames(views: list[np.ndarray], method: str = "mean") -> np.ndarray:
    """Frame averaging: the per-pixel mean (or median) of registered views."""
    if not views:
        raise ValueError("no views to average")
    stack = np.stack(views).astype(np.float32)
    if method == "mean":
        out = stack.mean(0)
    elif method == "median":
        out = np.median(stack, 0)
    else:
        raise ValueError(f"unknown averaging {method!r}: use mean or median")
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
