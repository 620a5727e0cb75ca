"""Synthetic bursts: several camera frames of one face, for training and evaluating
multi-frame restoration (torch-free; the evaluation and the tests use it too).

A burst is made from one clean face in the restorer's framing (`side` x `side`, LFW-like, as
`tools.convert.restore.data.frame_face` or LFW give it). Frame 0 is the reference: the clean
face degraded by `degrade` as it is. Every other frame first moves the clean face by a small
random similarity about the face's centre -- what the landmark alignment of a small face
gets wrong from frame to frame: a sub-pixel to ~1 camera-pixel shift (`max_shift_lr`, in
pixels of the degraded image), rotation (`max_rot_deg`) and scale (`max_scale`) -- then
degrades it with the same camera settings and independent noise and codec. With
`outlier` given (another face), one frame is that face instead: a track swap.

`to_views` resizes each degraded frame to the buffered view side (`edge.enhance.burst.VIEW_SIDE`),
bicubic, as the daemon's landmark alignment resamples the camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from edge.enhance.burst import VIEW_SIDE
from tools.convert.restore.degrade import DegradeParams, degrade


@dataclass(frozen=True, slots=True)
class BurstMotion:
    max_shift_lr: float = 1.0  # camera pixels
    max_rot_deg: float = 3.0
    max_scale: float = 0.03


def similarity_about_centre(side: int, dx: float, dy: float, rot_deg: float, scale: float):
    c = ((side - 1) / 2, (side - 1) / 2)
    m = cv2.getRotationMatrix2D(c, rot_deg, scale)
    m[:, 2] += (dx, dy)
    return m


@dataclass(frozen=True, slots=True)
class Burst:
    frames: list[np.ndarray]  # degraded BGR, side / factor
    moves: list[np.ndarray]  # 2x3 clean-frame moves (identity for the reference)
    outlier_index: int | None


def make_burst(
    clean: np.ndarray,
    params: DegradeParams,
    k: int,
    rng: np.random.Generator,
    motion: BurstMotion = BurstMotion(),
    outlier: np.ndarray | None = None,
) -> Burst:
    """`k` degraded frames of `clean` (square BGR uint8); frame 0 unmoved."""
    side = clean.shape[0]
    frames, moves = [], []
    outlier_index = int(rng.integers(1, k)) if outlier is not None and k > 1 else None
    for i in range(k):
        if i == 0:
            m = np.eye(2, 3)
        else:
            dx, dy = rng.uniform(-1, 1, 2) * motion.max_shift_lr * params.factor
            rot = float(rng.uniform(-1, 1) * motion.max_rot_deg)
            scale = 1.0 + float(rng.uniform(-1, 1) * motion.max_scale)
            m = similarity_about_centre(side, float(dx), float(dy), rot, scale)
        src = outlier if i == outlier_index else clean
        moved = src if i == 0 else cv2.warpAffine(
            src, m, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
        )  # fmt: skip
        # The same camera (blur, light, codec quality), an independent noise draw per frame;
        # motion blur changes direction a little between frames.
        p = params
        if params.blur == "motion" and i:
            p = replace(params, motion_angle=params.motion_angle + float(rng.uniform(-15, 15)))
        frames.append(degrade(moved, p, rng))
        moves.append(m)
    return Burst(frames, moves, outlier_index)


def to_view(frame: np.ndarray, side: int = VIEW_SIDE) -> np.ndarray:
    """A degraded frame resized to the buffered view (bicubic up, area down)."""
    interp = cv2.INTER_AREA if frame.shape[0] > side else cv2.INTER_CUBIC
    return cv2.resize(frame, (side, side), interpolation=interp)


def to_views(burst: Burst, side: int = VIEW_SIDE) -> list[np.ndarray]:
    return [to_view(f, side) for f in burst.frames]
