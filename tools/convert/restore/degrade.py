"""The CCTV degradation model: one module for training and evaluation.

Evaluation presets are fixed so numbers compare across runs. For a factor f: Gaussian blur
sigma = f/2, downscale by f with area interpolation, Gaussian noise sigma = 5 (0..255), JPEG
quality 40 (`x4`, `x8`). Lighting presets sit on top of `x4`: `warm`, `cold` (colour casts),
`low` (dark, more noise), `medium` (dim), `bright` (over-exposed, clipped); `motion` replaces
the Gaussian blur by a linear motion blur before downscaling.

Training degradations (`random_params`) are randomised around and beyond these.
Images are BGR uint8 throughout; the output is the small degraded image (side / factor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class DegradeParams:
    factor: float = 4.0
    blur: str = "gaussian"  # gaussian | motion | defocus | none
    blur_sigma: float = 2.0  # gaussian sigma, or motion length / defocus radius in pixels
    motion_angle: float = 0.0  # degrees
    gain: float = 1.0  # exposure multiplier applied before noise (dark < 1 < bright)
    gamma: float = 1.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel B, G, R multipliers
    noise_sigma: float = 5.0  # Gaussian noise on 0..255
    poisson_peak: float = 0.0  # >0 adds shot noise (photons at full scale)
    jpeg_quality: int = 40  # 0: no JPEG
    double_jpeg_quality: int = 0  # >0: a second compression (re-encoded streams)
    chroma_subsample: bool = False  # 4:2:0-like colour smearing of video codecs
    extra: dict = field(default_factory=dict)


def _eval_preset(f: float, **kw) -> DegradeParams:
    return replace(DegradeParams(factor=f, blur_sigma=f / 2), **kw)


PRESETS: dict[str, DegradeParams] = {
    "x4": _eval_preset(4),
    "x8": _eval_preset(8),
    "warm": _eval_preset(4, cast=(0.75, 0.95, 1.2)),
    "cold": _eval_preset(4, cast=(1.25, 1.0, 0.78)),
    "low": _eval_preset(4, gain=0.25, noise_sigma=10.0),
    "medium": _eval_preset(4, gain=0.55, noise_sigma=7.0),
    "bright": _eval_preset(4, gain=1.8),
    "motion": _eval_preset(4, blur="motion", blur_sigma=9.0, motion_angle=20.0),
}
EVAL_PRESETS = list(PRESETS)


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    n = max(3, int(math.ceil(length)) | 1)
    k = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    for t in np.linspace(-length / 2, length / 2, 4 * n):
        x, y = int(round(c + t * dx)), int(round(c + t * dy))
        if 0 <= x < n and 0 <= y < n:
            k[y, x] = 1.0
    return k / k.sum()


def defocus_kernel(radius: float) -> np.ndarray:
    r = max(1, int(math.ceil(radius)))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    k = ((x * x + y * y) <= radius * radius + 0.5).astype(np.float32)
    return k / k.sum()


def blur(img: np.ndarray, p: DegradeParams) -> np.ndarray:
    if p.blur == "none" or p.blur_sigma <= 0:
        return img
    if p.blur == "gaussian":
        return cv2.GaussianBlur(img, (0, 0), p.blur_sigma, borderType=cv2.BORDER_REFLECT)
    if p.blur == "motion":
        return cv2.filter2D(
            img, -1, motion_kernel(p.blur_sigma, p.motion_angle), borderType=cv2.BORDER_REFLECT
        )
    if p.blur == "defocus":
        return cv2.filter2D(img, -1, defocus_kernel(p.blur_sigma), borderType=cv2.BORDER_REFLECT)
    raise ValueError(f"unknown blur {p.blur!r}")


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def degrade(
    img: np.ndarray, p: DegradeParams | str, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Clean BGR uint8 image -> degraded, downscaled BGR uint8 image."""
    if isinstance(p, str):
        p = PRESETS[p]
    rng = rng if rng is not None else np.random.default_rng(0)
    h, w = img.shape[:2]
    x = blur(img, p)
    lw, lh = max(1, round(w / p.factor)), max(1, round(h / p.factor))
    x = cv2.resize(x, (lw, lh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    # Light and colour act on what the sensor sees, before its noise.
    if p.gain != 1.0 or p.gamma != 1.0:
        x = np.clip(x * p.gain, 0.0, 1.0) ** p.gamma
    if p.cast != (1.0, 1.0, 1.0):
        x = x * np.asarray(p.cast, np.float32)
    x = np.clip(x, 0.0, 1.0)
    if p.poisson_peak > 0:
        x = rng.poisson(x * p.poisson_peak) / p.poisson_peak
    if p.noise_sigma > 0:
        x = x + rng.normal(0.0, p.noise_sigma / 255.0, x.shape)
    out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if p.chroma_subsample and lw >= 2 and lh >= 2:
        ycc = cv2.cvtColor(out, cv2.COLOR_BGR2YCrCb)
        small = cv2.resize(
            ycc[:, :, 1:], (max(1, lw // 2), max(1, lh // 2)), interpolation=cv2.INTER_AREA
        )
        ycc[:, :, 1:] = cv2.resize(small, (lw, lh), interpolation=cv2.INTER_LINEAR)
        out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)
    if p.jpeg_quality > 0:
        out = jpeg(out, p.jpeg_quality)
    if p.double_jpeg_quality > 0:
        out = jpeg(out, p.double_jpeg_quality)
    return out


def random_params(rng: np.random.Generator) -> DegradeParams:
    """Training degradations: around and beyond the evaluation presets."""
    factor = float(rng.uniform(2.0, 10.0))
    kind = rng.choice(
        ["gaussian", "gaussian", "motion", "defocus", "none"], p=[0.35, 0.2, 0.2, 0.15, 0.1]
    )
    if kind == "gaussian":
        sigma = float(rng.uniform(0.3, 0.75) * factor)
    elif kind == "motion":
        sigma = float(rng.uniform(1.0, 3.0) * factor)
    elif kind == "defocus":
        sigma = float(rng.uniform(0.3, 0.7) * factor)
    else:
        sigma = 0.0
    light = rng.random()
    if light < 0.2:
        gain, extra_noise = float(rng.uniform(0.15, 0.45)), float(rng.uniform(3, 10))
    elif light < 0.3:
        gain, extra_noise = float(rng.uniform(1.3, 2.0)), 0.0
    else:
        gain, extra_noise = float(rng.uniform(0.6, 1.2)), 0.0
    cast = (1.0, 1.0, 1.0)
    if rng.random() < 0.35:
        warmth = float(rng.uniform(-0.25, 0.25))
        cast = (1.0 - warmth, 1.0 + float(rng.uniform(-0.05, 0.05)), 1.0 + warmth)
    return DegradeParams(
        factor=factor,
        blur=str(kind),
        blur_sigma=sigma,
        motion_angle=float(rng.uniform(0, 180)),
        gain=gain,
        gamma=float(rng.uniform(0.8, 1.25)),
        cast=cast,
        noise_sigma=float(rng.uniform(0, 10)) + extra_noise,
        poisson_peak=float(rng.choice([0.0, rng.uniform(30, 300)])),
        jpeg_quality=int(rng.choice([0, int(rng.integers(20, 95))], p=[0.1, 0.9])),
        double_jpeg_quality=int(rng.choice([0, int(rng.integers(30, 90))], p=[0.7, 0.3])),
        chroma_subsample=bool(rng.random() < 0.4),
    )
