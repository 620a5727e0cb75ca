"""Tracking, alignment, quality and best-shot policy on a real face photo (edge/assets)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR
from edge.enhance import EnhancementStage
from edge.settings import (
    BestShotSettings,
    DenoiseSettings,
    EnhanceSettings,
    LowLightSettings,
    RestoreSettings,
    TrackerSettings,
)
from edge.shots.align import align_face, similarity_transform, template_for
from edge.shots.best_shot import BestShotSelector
from edge.shots.quality import estimate_pose, score_shot
from edge.track import Tracker
from edge.types import Detection, Frame

# Landmarks of the astronaut's face in edge/assets/astronaut.jpg (512x512), as the FP32 detector
# finds them: eyes, nose, mouth corners.
ASTRONAUT_LM = np.array([[204, 101], [248, 104], [225, 129], [201, 139], [246, 143]], np.float32)

SHOT_SETTINGS = {
    "publish_interval_s": 2.0,
    "first_shot_after_s": 0.5,
    "pose_change_deg": 25.0,
    "min_quality": 0.0,
    "min_face_px": 10,
    "crop_size": 160,
    "margin": 0.35,
}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))


def test_similarity_transform_recovers_known_transform():
    src = template_for(112, 0.0)
    angle, scale, t = np.radians(17), 1.7, np.array([30.0, -12.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
    dst = src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-6)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-6)


def test_aligned_crop_puts_landmarks_on_template(astronaut):
    crop, m = align_face(astronaut, ASTRONAUT_LM, 160, 0.35)
    assert crop.shape == (160, 160, 3)
    mapped = np.hstack([ASTRONAUT_LM, np.ones((5, 1))]) @ m.T
    # 5 hand-placed points cannot fit a similarity exactly; a few pixels is alignment.
    assert np.abs(mapped - template_for(160, 0.35)).max() < 6


def test_quality_prefers_sharp_bright_frontal(astronaut):
    crop, _ = align_face(astronaut, ASTRONAUT_LM, 160, 0.35)
    pose = estimate_pose(ASTRONAUT_LM)
    assert abs(pose.yaw) < 15 and abs(pose.roll) < 10
    good = score_shot(crop, 60, pose)
    blurred = score_shot(cv2.GaussianBlur(crop, (0, 0), 3), 60, pose)
    dark = score_shot((crop * 0.15).astype(np.uint8), 60, pose)
    assert blurred.sharpness < good.sharpness and blurred.overall < good.overall
    assert dark.brightness < good.brightness and dark.overall < good.overall
    turned = ASTRONAUT_LM.copy()
    turned[2, 0] += 18  # nose moves toward one eye: a head turned about 50 degrees
    tpose = estimate_pose(turned)
    assert abs(tpose.yaw) > 35
    assert score_shot(crop, 60, tpose).frontalness < good.frontalness


def _det(x: float, y: float, s: float = 60.0, nose_dx: float = 0.0) -> Detection:
    box = np.array([x, y, x + s, y + s], np.float32)
    lm = np.array(
        [
            [x + 0.3 * s, y + 0.4 * s],
            [x + 0.7 * s, y + 0.4 * s],
            [x + 0.5 * s + nose_dx, y + 0.6 * s],
            [x + 0.35 * s, y + 0.8 * s],
            [x + 0.65 * s, y + 0.8 * s],
        ],
        np.float32,
    )
    return Detection(box, 0.99, lm)


def test_tracker_keeps_ids_and_ends_tracks():
    tr = Tracker(iou_threshold=0.3, max_missed_s=0.5, min_hits=2)
    ids = set()
    for i in range(20):
        seen, ended = tr.update([_det(10 + 3 * i, 20), _det(400 - 4 * i, 200)], now=i * 0.04)
        ids.update(t.track_id for t in seen)
        assert not ended
    assert ids == {1, 2}
    # Both vanish: they end only after max_missed_s.
    _, ended = tr.update([], now=0.04 * 20 + 0.2)
    assert not ended
    _, ended = tr.update([], now=0.04 * 20 + 0.6)
    assert {t.track_id for t in ended} == {1, 2}


def test_tracker_follows_small_fast_face_without_overlap():
    tr = Tracker(iou_threshold=0.3, max_missed_s=0.5)
    for i in range(10):
        seen, _ = tr.update(
            [_det(10 + 15 * i, 20, s=20)], now=i * 0.04
        )  # 15 px per frame, 20 px face
    assert [t.track_id for t in seen] == [1]


def test_same_track_is_not_published_every_frame(astronaut):
    sel = BestShotSelector(BestShotSettings.from_dict(SHOT_SETTINGS))
    tr = Tracker(min_hits=2)
    shots = []
    fps, seconds = 25, 5.0
    for i in range(int(fps * seconds)):
        t = i / fps
        frame = Frame(astronaut, i, 1_700_000_000 + t, t)
        det = Detection(np.array([170, 60, 260, 170], np.float32), 0.99, ASTRONAUT_LM)
        seen, ended = tr.update([det], t)
        shots += sel.on_frame(frame, seen, ended)
    shots += [s for t in tr.end_all() for s in sel.on_track_end(t)]
    reasons = [s.reason for s in shots]
    # first at 0.5 s, then every 2 s: 2.5 s, 4.5 s; nothing better at the end.
    assert reasons[0] == "first"
    assert reasons.count("interval") == 2
    assert len(shots) <= 4
    assert [s.shot_index for s in shots] == list(range(len(shots)))


def test_pose_change_publishes_a_new_angle(astronaut):
    sel = BestShotSelector(
        BestShotSettings.from_dict(SHOT_SETTINGS | {"publish_interval_s": 100.0})
    )
    tr = Tracker(min_hits=2)
    shots = []
    for i in range(75):
        t = i / 25
        nose_dx = 0.0 if t < 1.5 else 16.0  # the head turns at 1.5 s
        frame = Frame(astronaut, i, 1_700_000_000 + t, t)
        seen, ended = tr.update([_det(170, 60, 90, nose_dx)], t)
        shots += sel.on_frame(frame, seen, ended)
    assert [s.reason for s in shots] == ["first", "pose_change"]


def _shot_log(astronaut, selector: BestShotSelector, tracker: Tracker) -> list[tuple]:
    """(reason, frame index, track) of every shot over 3 s of a face turning at 1.5 s."""
    out = []
    for i in range(75):
        t = i / 25
        frame = Frame(astronaut, i, 1_700_000_000 + t, t)
        seen, ended = tracker.update([_det(170, 60, 90, 0.0 if t < 1.5 else 16.0)], t)
        out += [
            (s.reason, s.frame_index, s.track_id) for s in selector.on_frame(frame, seen, ended)
        ]
    return out


def test_tracker_and_selector_take_their_typed_settings(astronaut):
    assert TrackerSettings() == TrackerSettings(iou_threshold=0.3, max_missed_s=1.0, min_hits=2)
    default = Tracker()
    assert (default.iou_threshold, default.max_missed_s, default.min_hits) == (0.3, 1.0, 2)
    tr = Tracker.from_settings(TrackerSettings(max_missed_s=0.5, min_hits=3))
    assert (tr.iou_threshold, tr.max_missed_s, tr.min_hits) == (0.3, 0.5, 3)

    shot = BestShotSettings.from_dict(SHOT_SETTINGS)
    assert shot.min_face_px == 10 and shot.first_shot_after_s == 0.5
    fresh = Tracker.from_settings(TrackerSettings(min_hits=3))
    typed = _shot_log(astronaut, BestShotSelector(shot, fresh.min_hits), fresh)
    assert [r for r, _, _ in typed] == ["first", "pose_change"]
    assert typed[0][1] >= 2  # min_hits 3: no candidate before the third detection
    # keys left out take the dataclass defaults
    sel = BestShotSelector(BestShotSettings())
    assert (sel.interval_s, sel.min_face_px, sel.crop_size) == (10.0, 20.0, 160)


def test_enhancement_stage_from_typed_settings_records_float_params():
    settings = EnhanceSettings(
        low_light=LowLightSettings(clahe_clip=3, target_mean=0.5),
        denoise=DenoiseSettings(enabled=True, strength=7),
        restore=RestoreSettings(enabled=False),
    )
    stage = EnhancementStage.from_settings(settings)
    assert stage.describe() == [
        {
            "name": "denoise_nlmeans",
            "kind": "classical",
            "version": "1",
            "params": {"strength": 7.0},
        },
        {
            "name": "low_light_gamma_clahe",
            "kind": "classical",
            "version": "1",
            "params": {"clahe_clip": 3.0, "target_mean": 0.5},
        },
    ]
    assert [type(v) for s in stage.describe() for v in s["params"].values()] == [float] * 3
    assert EnhancementStage.from_settings(EnhanceSettings(enabled=False)).steps == []


def test_enhancement_brightens_and_denoises_a_dark_noisy_face(astronaut):
    clean, _ = align_face(astronaut, ASTRONAUT_LM, 160, 0.35)
    rng = np.random.default_rng(0)
    dark = clean.astype(np.float32) * 0.25 + rng.normal(0, 4, clean.shape)
    dark = np.clip(dark, 0, 255).astype(np.uint8)
    stage = EnhancementStage.from_settings(
        EnhanceSettings(
            denoise=DenoiseSettings(enabled=True, strength=5),
            restore=RestoreSettings(enabled=False),
        )
    )
    out = stage(dark)
    assert out.image.shape == clean.shape and out.image.dtype == np.uint8
    assert out.image.mean() > dark.mean() * 1.5
    assert [s["name"] for s in out.stages] == ["denoise_nlmeans", "low_light_gamma_clahe"]
    assert all(s["kind"] == "classical" for s in out.stages)

    # High-frequency noise energy goes down relative to the signal's.
    def hf(im):
        return cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.CV_32F).std() / (
            im.mean() + 1
        )  # noqa: E731

    assert hf(out.image) < hf(dark)
    assert out.ms > 0
