"""Align a face to a canonical 5-point template (similarity transform), with a margin of context."""

from __future__ import annotations

import cv2
import numpy as np

# The widely used 112x112 five-point template (ArcFace/InsightFace): eyes, nose, mouth corners.
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def template_for(crop_size: int, margin: float) -> np.ndarray:
    """Template points for a square crop where `margin` (0..0.9) of the side is extra context."""
    scale = crop_size * (1.0 - margin) / 112.0
    offset = crop_size * margin / 2.0
    return TEMPLATE_112 * scale + offset


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping src points onto dst; 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def align_face(
    image: np.ndarray, landmarks: np.ndarray, crop_size: int = 160, margin: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face to the template; returns (crop, 2x3 matrix from frame to crop)."""
    matrix = similarity_transform(landmarks, template_for(crop_size, margin))
    crop = cv2.warpAffine(
        image,
        matrix,
        (crop_size, crop_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,  # black where the camera saw nothing: no invented pixels
    )
    return crop, matrix
