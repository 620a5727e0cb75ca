"""The face check (issue 13): non-faces the detector may take for faces are turned down, real
faces are kept, the selector and the event use it, and the model file is checksum-guarded."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR
from edge.capture.demo_props import blurred_background, render_hand, render_shirt
from edge.detect.mtcnn import FaceDetector
from edge.runtime.manifest import ModelIntegrityError, default_models_dir
from edge.settings import BestShotSettings
from edge.shots.align import template_for
from edge.shots.best_shot import BestShotSelector
from edge.shots.face_check import MODEL_FILES, FaceCheck, geometry_score
from edge.track import Track
from edge.types import Detection, Frame

MIN_FACE_SCORE = BestShotSettings().min_face_score
TEMPLATE = template_for(112, 0.0)
BOX_112 = np.array([20.0, 25.0, 92.0, 112.0])  # where MTCNN's box sits around the template


@pytest.fixture(scope="module", params=["onnx", "tflite"])
def check(request) -> FaceCheck:
    return FaceCheck.open(request.param)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(min_face_px=16)


def as_if_detected(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks and box a detector would give if it took the whole image for a face."""
    s = image.shape[0] / 112.0
    return TEMPLATE * s, BOX_112 * s


def test_geometry_accepts_a_face_layout_and_refuses_impossible_ones():
    assert geometry_score(TEMPLATE, BOX_112) == 1.0
    upside_down = TEMPLATE[[3, 4, 2, 0, 1]]  # mouth above the eyes
    assert geometry_score(upside_down, BOX_112) == 0.0
    squashed = TEMPLATE.copy()
    squashed[2:, 1] = TEMPLATE[0, 1] + 1  # nose and mouth on the eye line
    assert geometry_score(squashed, BOX_112) == 0.0
    tiny_eyes = TEMPLATE.copy()
    tiny_eyes[1] = tiny_eyes[0] + [3, 0]  # eyes 3 px apart in a 72 px wide box
    assert geometry_score(tiny_eyes, BOX_112) == 0.0


@pytest.mark.parametrize("render", [render_hand, render_shirt, blurred_background])
@pytest.mark.parametrize("size", [32, 64, 112])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_non_faces_are_rejected(check, render, size, seed):
    image = render(size, seed)
    landmarks, box = as_if_detected(image)
    result = check.check(image, landmarks, box)
    assert result.geometry == 1.0  # the layout is a face's: only the classifier can say no
    assert result.score < MIN_FACE_SCORE, (render.__name__, size, seed, result)


@pytest.mark.parametrize("name", ["astronaut.jpg", "grace_hopper.jpg"])
@pytest.mark.parametrize("face_px", [24, 32, 48, 96])
def test_real_faces_pass_at_24_px_and_above(check, detector, name, face_px):
    photo = cv2.imread(str(ASSETS_DIR / name))
    full = max(detector.detect(photo), key=lambda d: d.height)
    scale = face_px / full.height
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    found = max(detector.detect(small), key=lambda d: d.height)
    assert abs(found.height - face_px) < 0.35 * face_px
    result = check.check(small, found.landmarks, found.box)
    assert result.score >= MIN_FACE_SCORE, (name, face_px, result)


def _track(det: Detection) -> Track:
    track = Track(track_id=1, detection=det, first_seen=0.0, last_seen=0.0)
    track.hits = 5
    return track


def test_selector_turns_down_a_hand_and_counts_it():
    check = FaceCheck.open("onnx")
    frame_image = np.full((240, 320, 3), 50, np.uint8)
    frame_image[60:172, 100:212] = render_hand(112, 3)
    landmarks, box = as_if_detected(np.zeros((112, 112, 3), np.uint8))
    det = Detection(box=box + [100, 60, 100, 60], score=0.99, landmarks=landmarks + [100, 60])
    settings = BestShotSettings(first_shot_after_s=0.0, min_quality=0.0, min_face_px=10)
    selector = BestShotSelector(settings, 1, check)
    shots = []
    for i in range(5):
        frame = Frame(image=frame_image, index=i, wall_time=float(i), mono_time=float(i))
        shots += selector.on_frame(frame, [_track(det)], [])
    assert shots == []
    assert selector.rejected["not_face"] == 5


def test_selector_publishes_a_real_face_with_its_score(detector):
    photo = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))
    det = max(detector.detect(photo), key=lambda d: d.height)
    settings = BestShotSettings(first_shot_after_s=0.0, min_quality=0.0, min_face_px=10)
    selector = BestShotSelector(settings, 1, FaceCheck.open("onnx"))
    frame = Frame(image=photo, index=0, wall_time=0.0, mono_time=0.0)
    shots = selector.on_frame(frame, [_track(det)], [])
    assert len(shots) == 1 and shots[0].face.score >= MIN_FACE_SCORE
    assert selector.rejected["not_face"] == 0


def test_a_tampered_model_is_refused(tmp_path):
    for f in ("manifest.json", MODEL_FILES["onnx"]):
        shutil.copy(default_models_dir() / f, tmp_path / f)
    data = bytearray((tmp_path / MODEL_FILES["onnx"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / MODEL_FILES["onnx"]).write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        FaceCheck.open("onnx", models_dir=tmp_path)


def test_the_suit_patch_the_int8_detector_takes_for_a_face_is_turned_down(check, detector):
    photo = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))
    found = FaceDetector(score_threshold=0.5).detect(photo)
    face = max(found, key=lambda d: d.height)
    assert check.check(photo, face.landmarks, face.box).score >= MIN_FACE_SCORE
    for other in (d for d in found if d is not face):
        assert check.check(photo, other.landmarks, other.box).score < MIN_FACE_SCORE
