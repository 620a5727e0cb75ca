"""The network runs only where it can help: on faces the camera saw at most about as large as
its own input (issue 10, item 5). Larger faces keep what the camera captured, and the event
says why the network was left out."""

from __future__ import annotations

import cv2
import jsonschema
import numpy as np
import pytest
from sample_event import load_schema

from edge.capture.demo import ASSETS_DIR
from edge.enhance import EnhancementStage
from edge.enhance.restorer import MODEL_FRAMING
from edge.pipeline.processor import EventBuilder, eye_distance
from edge.settings import EnhanceSettings, RestoreSettings
from edge.shots.align import align_face
from edge.shots.best_shot import Shot
from edge.shots.quality import Pose, Quality
from edge.types import Detection
from tests.test_shots import ASTRONAUT_LM


@pytest.fixture(scope="module")
def stage() -> EnhancementStage:
    return EnhancementStage.from_settings(EnhanceSettings(restore=RestoreSettings(max_eye_px=12)))


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    image = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))
    out, _ = align_face(image, ASTRONAUT_LM, 160, 0.35)
    return out


def test_the_default_gate_sits_below_the_networks_input():
    # The network sees eyes 10.3 px apart; faces seen larger are shrunk first. Measured
    # (tools.eval.restore_gate, LFW 600 pairs): identity gained at 7.7 px, lost from 10.3 px.
    assert MODEL_FRAMING.eye_distance * 40 == pytest.approx(10.3)
    assert 7.7 <= RestoreSettings().max_eye_px < 10.3


def test_small_faces_are_restored_large_ones_keep_the_camera_pixels(stage, crop):
    small = stage(crop, eye_px=8.0)
    large = stage(crop, eye_px=40.0)
    unknown = stage(crop)
    restore_small, restore_large = small.stages[0], large.stages[0]
    assert restore_small["name"] == "restore_student" and restore_small["params"]["applied"]
    assert not restore_large["params"]["applied"]
    assert "40.0 px apart" in restore_large["params"]["skipped_because"]
    assert restore_large["params"]["eye_px"] == 40.0
    assert unknown.stages[0]["params"]["applied"]  # no size known: as before, restored
    # Skipped means skipped: the output is what the other steps alone make of the crop.
    low_light_only = EnhancementStage(stage.steps[1:])(crop)
    assert np.array_equal(large.image, low_light_only.image)
    assert not np.array_equal(small.image, low_light_only.image)


def test_null_gate_restores_every_face(crop):
    always = EnhancementStage.from_settings(
        EnhanceSettings(restore=RestoreSettings(max_eye_px=None))
    )
    assert always(crop, eye_px=200.0).stages[0]["params"]["applied"]


def test_the_event_states_whether_the_network_ran(stage, crop):
    lm = ASTRONAUT_LM.copy()
    det = Detection(np.array([190, 80, 260, 160], np.float32), 0.99, lm)
    shot = Shot(
        track_id=1,
        detection=det,
        crop=crop,
        pose=Pose(0.0, 0.0, 0.0),
        quality=Quality(0.8, 0.8, 0.8, 0.8, 0.8),
        wall_time=1_700_000_000.0,
        mono_time=1.0,
        frame_size=(512, 512),
        frame_index=0,
        reason="first",
    )
    detector_info = {"name": "mtcnn", "version": "1", "backend": "onnx", "precision": "int8"}
    builder = EventBuilder(stage, "dev", "cam", detector_info)
    event, _, _ = builder(shot)
    jsonschema.validate(event, load_schema())
    restore = next(s for s in event["enhanced"]["stages"] if s["kind"] == "model")
    assert eye_distance(det) == pytest.approx(44.1, abs=0.1)
    assert restore["params"]["applied"] is False and restore["params"]["max_eye_px"] == 12
