"""Is this detection really a face? A check run on every shot that may be published.

The detector's score is not enough: MTCNN scores blurred hands, clothing folds and textured
background 0.98+ now and then (issue 13). Two independent checks decide instead:

- **landmark geometry**: the 5 points must be laid out like a face (eyes apart by a sane
  share of the box, mouth below the eyes, nose between them, not wildly asymmetric for the
  yaw the points imply); a layout no face can have scores 0;
- **a small learned face/non-face classifier** (`face_check_int8.onnx`/`.tflite`, trained
  here by ``tools/convert/facecheck``) on the face aligned by those landmarks, 32x32 RGB.
  It judges colour, texture and structure together: skin statistics and texture are what
  it learns from, so they are not hand-coded again here.

``face_score`` = the classifier's probability, capped by the geometry score. Shots below
``best_shot.min_face_score`` are never published.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.runtime import ModelRunner, open_runner
from edge.runtime.manifest import default_models_dir
from edge.shots.align import similarity_transform, template_for

# The classifier's framing: the landmarks are warped onto the 5-point template in a
# STORE_SIZE crop with STORE_MARGIN context (what the training tool stores), and the
# network sees the central INPUT_CROP pixels (the template itself, no margin) at INPUT_SIZE.
STORE_SIZE = 64
STORE_MARGIN = 0.25
INPUT_CROP = 48
INPUT_SIZE = 32
MODEL_FILES = {"onnx": "face_check_int8.onnx", "tflite": "face_check_int8.tflite"}


def store_crop(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face warped onto the template with context (STORE_SIZE square, BGR uint8).
    Replicated borders, not black: a black border would tell the classifier 'frame edge'."""
    matrix = similarity_transform(landmarks, template_for(STORE_SIZE, STORE_MARGIN))
    return cv2.warpAffine(
        image, matrix, (STORE_SIZE, STORE_SIZE), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def network_input(stored: np.ndarray) -> np.ndarray:
    """A stored crop -> the network's 1x3xINPUT_SIZExINPUT_SIZE float32 RGB in [0, 1]."""
    o = (STORE_SIZE - INPUT_CROP) // 2
    inner = stored[o : o + INPUT_CROP, o : o + INPUT_CROP]
    small = cv2.resize(inner, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    rgb = small[:, :, ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


@dataclass(frozen=True, slots=True)
class FaceCheckResult:
    score: float  # 0..1: min(classifier, geometry)
    classifier: float
    geometry: float

    def as_dict(self) -> dict:
        return {
            "score": round(self.score, 4),
            "classifier": round(self.classifier, 4),
            "geometry": round(self.geometry, 4),
        }


def geometry_score(landmarks: np.ndarray, box: np.ndarray) -> float:
    """1 when the 5 points are laid out like a face, falling to 0 for layouts no face has."""
    lm = np.asarray(landmarks, np.float64)
    le, re, nose, ml, mr = lm
    eye_vec = re - le
    eye_dist = float(np.hypot(*eye_vec))
    box_w = float(box[2] - box[0])
    if eye_dist < 1e-6 or box_w <= 0:
        return 0.0
    x_axis = eye_vec / eye_dist
    y_axis = np.array([-x_axis[1], x_axis[0]])
    eye_mid = (le + re) / 2
    mouth_mid = (ml + mr) / 2
    mouth_down = float((mouth_mid - eye_mid) @ y_axis) / eye_dist  # ~1.15 frontal
    nose_down = float((nose - eye_mid) @ y_axis) / eye_dist  # ~0.57 frontal
    mouth_width = float(np.hypot(*(mr - ml))) / eye_dist  # ~0.83 frontal
    eye_share = eye_dist / box_w  # ~0.4 for an MTCNN box
    # Each bound lies beyond what the detector gives real faces at any pose (measured on the
    # 1,959 hand- and renderer-labelled faces of tools/convert/facecheck: 99.5th percentiles
    # mouth_down 2.50, nose_down 1.23, ratio 0.72, mouth_width 0.74..1.09, eye_share >= 0.26,
    # offset 0.95: turned heads bring the eyes close together). O-Net always draws a
    # face-like layout, so this only catches the impossible; the classifier does the rest.
    checks = [
        _ramp(mouth_down, 0.45, 0.7, 2.8, 3.5),  # mouth below the eyes, not far below
        _ramp(nose_down, 0.05, 0.2, 1.4, 1.8),  # nose between eye line and mouth line
        _ramp(nose_down / max(mouth_down, 1e-6), 0.1, 0.25, 0.85, 1.0),
        _ramp(mouth_width, 0.3, 0.45, 1.5, 2.0),
        _ramp(eye_share, 0.1, 0.15, 0.75, 0.95),
        # the mouth's centre on the same side of the midline as the nose, within reason
        _ramp(abs(float((mouth_mid - nose) @ x_axis)) / eye_dist, -1.0, -1.0, 1.3, 1.8),
    ]
    return float(min(checks))


def _ramp(v: float, lo0: float, lo1: float, hi1: float, hi0: float) -> float:
    """0 below lo0, rising to 1 at lo1, 1 up to hi1, falling to 0 at hi0."""
    if not math.isfinite(v):
        return 0.0
    if v < lo1:
        return 0.0 if v <= lo0 else (v - lo0) / (lo1 - lo0)
    if v > hi1:
        return 0.0 if v >= hi0 else (hi0 - v) / (hi0 - hi1)
    return 1.0


class FaceCheck:
    """The face check of one camera (one model instance; not thread-safe, like a detector)."""

    def __init__(self, runner: ModelRunner):
        self.runner = runner

    @classmethod
    def open(
        cls, backend: str = "onnx", threads: int = 1, models_dir: Path | None = None
    ) -> FaceCheck:
        folder = Path(models_dir) if models_dir else default_models_dir()
        return cls(open_runner(backend, folder / MODEL_FILES[backend], threads))

    def classify(self, stored: np.ndarray) -> float:
        """Probability that a stored crop (see store_crop) shows a face."""
        logit = float(self.runner.run(network_input(stored))[0].reshape(-1)[0])
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))

    def check(self, image: np.ndarray, landmarks: np.ndarray, box: np.ndarray) -> FaceCheckResult:
        geometry = geometry_score(landmarks, box)
        classifier = self.classify(store_crop(image, landmarks))
        return FaceCheckResult(min(classifier, geometry), classifier, geometry)
