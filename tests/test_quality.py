"""The shot quality score (issue 13): the codec blockiness part and the fitted overall score,
on a real face photo (edge/assets)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR
from edge.shots import quality as Q
from edge.shots.align import align_face
from edge.shots.quality import Quality, blockiness_score, estimate_pose, score_shot

# Landmarks of the astronaut's face in edge/assets/astronaut.jpg (512x512), as in test_shots.
ASTRONAUT_LM = np.array([[204, 101], [248, 104], [225, 129], [201, 139], [246, 143]], np.float32)
FACE_PX = 110.0  # the INT8 detector's box height on the full photo


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def shot(
    frame: np.ndarray, scale: float = 1.0, with_matrix: bool = True, jpeg_quality: int = 0
) -> Quality:
    """The frame shrunk by `scale` (the camera further away), JPEG-compressed at that size
    when `jpeg_quality` is given, then the shot as the daemon makes it."""
    if scale != 1.0:
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if jpeg_quality:
        frame = jpeg(frame, jpeg_quality)
    lm = ASTRONAUT_LM * scale
    crop, m = align_face(frame, lm, 160, 0.35)
    return score_shot(crop, FACE_PX * scale, estimate_pose(lm), matrix=m if with_matrix else None)


def test_blockiness_near_zero_on_natural_crops(astronaut):
    for scale in (1.0, 0.5, 0.25, 0.15):
        for with_matrix in (True, False):
            assert shot(astronaut, scale, with_matrix).blockiness < 0.1, (scale, with_matrix)
    face = cv2.cvtColor(astronaut[60:200, 150:300], cv2.COLOR_BGR2GRAY)
    assert blockiness_score(face) < 0.1
    assert blockiness_score(cv2.GaussianBlur(face, (0, 0), 2)) < 0.1
    # Whole photos at their own scale, grid phase guessed or given (blocks from pixel 0).
    for name in ("astronaut.jpg", "grace_hopper.jpg"):
        gray = cv2.imread(str(ASSETS_DIR / name), cv2.IMREAD_GRAYSCALE)
        assert blockiness_score(gray) < 0.1, name
        assert blockiness_score(gray, np.array([[1.0, 0, 0], [0, 1.0, 0]])) < 0.1, name
        blocky = cv2.cvtColor(jpeg(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), 10), cv2.COLOR_BGR2GRAY)
        assert blockiness_score(blocky) > 0.3, name


def test_blockiness_rises_after_strong_jpeg(astronaut):
    for scale in (1.0, 0.5, 0.25, 0.15):
        clean, blocky = shot(astronaut, scale), shot(astronaut, scale, jpeg_quality=10)
        assert blocky.blockiness > 0.3, scale
        assert blocky.blockiness > clean.blockiness + 0.25, scale
    # At the frame's own scale, grid phase unknown (a crop of a frame starting mid-block).
    face = cv2.cvtColor(astronaut[61:203, 147:301], cv2.COLOR_BGR2GRAY)
    small = cv2.cvtColor(jpeg(astronaut, 10)[61:203, 147:301], cv2.COLOR_BGR2GRAY)
    assert blockiness_score(small) > blockiness_score(face) + 0.25
    # Without the alignment matrix the crop's grid is unknown: not measured.
    assert shot(astronaut, 1.0, False, 10).blockiness == 0.0


def test_overall_prefers_sharp_big_frontal_well_exposed(astronaut):
    good = shot(astronaut)
    blurred = shot(cv2.GaussianBlur(astronaut, (0, 0), 2.5))
    small = shot(astronaut, 0.3)
    dark = shot((astronaut * 0.12).astype(np.uint8))
    blocky = shot(astronaut, jpeg_quality=10)
    for worse in (blurred, small, dark, blocky):
        assert worse.overall < good.overall
    assert blurred.sharpness < good.sharpness
    assert dark.brightness < good.brightness
    # A head turned about 50 degrees (nose moved towards one eye) scores lower.
    crop, m = align_face(astronaut, ASTRONAUT_LM, 160, 0.35)
    turned = ASTRONAUT_LM.copy()
    turned[2, 0] += 18
    tpose = estimate_pose(turned)
    assert abs(tpose.yaw) > 35
    t = score_shot(crop, FACE_PX, tpose, matrix=m)
    assert t.frontalness < good.frontalness and t.overall < good.overall
    # More of a bad thing, lower still.
    assert shot(astronaut, 0.2).overall < small.overall
    assert shot(cv2.GaussianBlur(astronaut, (0, 0), 5)).overall <= blurred.overall


def test_overall_is_a_probability(astronaut):
    crop, m = align_face(astronaut, ASTRONAUT_LM, 160, 0.35)
    pose = estimate_pose(ASTRONAUT_LM)
    rng = np.random.default_rng(0)
    crops = [
        crop,
        np.zeros_like(crop),
        np.full_like(crop, 255),
        rng.integers(0, 256, crop.shape, dtype=np.uint8),
        np.tile((np.arange(160) // 8 % 2 * 255).astype(np.uint8)[None, :, None], (160, 1, 3)),
    ]
    for c in crops:
        for h in (1.0, 12.0, 60.0, 400.0, 5000.0):
            for mat in (m, None):
                q = score_shot(c, h, pose, matrix=mat)
                values = [q.overall, q.sharpness, q.size, q.brightness, q.frontalness]
                values.append(q.blockiness)
                assert all(0.0 <= v <= 1.0 and math.isfinite(v) for v in values)


def test_quality_fields_and_backwards_compatibility(astronaut):
    crop, _ = align_face(astronaut, ASTRONAUT_LM, 160, 0.35)
    pose = estimate_pose(ASTRONAUT_LM)
    q = score_shot(crop, 60, pose)  # the old positional call, no matrix
    d = q.as_dict()
    assert set(d) == {"overall", "sharpness", "size", "brightness", "frontalness", "blockiness"}
    assert Quality(0.8, 0.8, 0.8, 0.8, 0.8).blockiness == 0.0  # old positional construction
    # The legacy weighted score stays available to the tools.
    assert 0.0 <= Q.legacy_overall(q) <= 1.0
