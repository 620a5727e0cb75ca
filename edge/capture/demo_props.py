"""Things the demo renderer can draw that are not faces but that a face detector may take for
one: a hand, a patterned shirt, a blurred patch of the corridor. The face check (issue 13)
is tested on them; they are drawn procedurally, so no photo of anyone is needed.

Every function returns a BGR uint8 square of `size` pixels, deterministic for a seed.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.capture.demo import _corridor

SKIN_BGR = (120, 150, 205)


def render_hand(size: int = 96, seed: int = 0) -> np.ndarray:
    """An open hand, palm to the camera, slightly motion-blurred, on a dark coat."""
    rng = np.random.default_rng(seed)
    s = size / 96.0
    img = np.full((size, size, 3), (60, 50, 45), np.uint8)
    skin = tuple(int(c * rng.uniform(0.85, 1.1)) for c in SKIN_BGR)
    cx, cy = size * 0.5, size * 0.62
    cv2.ellipse(img, (int(cx), int(cy)), (int(22 * s), int(26 * s)), 0, 0, 360, skin, -1)
    # four fingers fanning up, a thumb to the side
    for i, angle in enumerate((-18, -6, 6, 18)):
        length = (30, 36, 34, 26)[i] * s
        a = np.radians(angle - 90)
        base = np.array([cx + (i - 1.5) * 10 * s, cy - 18 * s])
        tip = base + length * np.array([np.cos(a), np.sin(a)])
        cv2.line(img, tuple(base.astype(int)), tuple(tip.astype(int)), skin, max(2, int(8 * s)))
        cv2.circle(img, tuple(tip.astype(int)), max(1, int(4 * s)), skin, -1)
    cv2.line(img, (int(cx - 18 * s), int(cy)), (int(cx - 38 * s), int(cy - 16 * s)), skin,
             max(2, int(9 * s)))
    shade = tuple(int(c * 0.8) for c in skin)
    for k in range(3):  # palm creases
        y = int(cy - 6 * s + k * 8 * s)
        cv2.line(img, (int(cx - 14 * s), y), (int(cx + 12 * s), y - int(3 * s)), shade, 1)
    kernel = np.zeros((7, 7), np.float32)
    kernel[3, :] = 1 / 7  # sideways motion blur: a waving hand
    img = cv2.filter2D(img, -1, kernel)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def render_shirt(size: int = 96, seed: int = 0) -> np.ndarray:
    """A patterned (checked, with dots) shirt front with folds and buttons."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    period = size / rng.uniform(5, 8)
    base = np.array(rng.uniform(60, 200, 3), np.float32)
    check = ((np.floor(xs / period) + np.floor(ys / period)) % 2)[..., None]
    img = base * (0.65 + 0.35 * check)
    dots = (np.hypot((xs % period) - period / 2, (ys % period) - period / 2) < period / 6)
    img[dots] = base[::-1]
    folds = 0.85 + 0.15 * np.sin(xs / size * 7 + np.sin(ys / size * 5) * 2)[..., None]
    img = img * folds
    for k in range(3):  # buttons down the placket
        cv2.circle(img, (size // 2, int(size * (0.25 + 0.25 * k))), max(2, size // 24),
                   (230, 230, 230), -1)
    img = cv2.GaussianBlur(img, (0, 0), 0.8)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def blurred_background(size: int = 96, seed: int = 0) -> np.ndarray:
    """A defocused patch of the demo corridor (walls, floor, lights)."""
    rng = np.random.default_rng(seed)
    scene = _corridor((640, 360), rng)
    side = int(rng.uniform(80, 160))
    x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 360 - side))
    patch = cv2.resize(scene[y : y + side, x : x + side], (size, size),
                       interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(patch, (0, 0), rng.uniform(2.0, 3.5))
