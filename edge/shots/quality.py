"""Score how useful a face shot is to a person: sharpness, size, brightness, frontalness."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Where the nose sits between the eye line and the mouth line in a frontal face (template ratio).
_FRONTAL_NOSE_RATIO = 0.494
# Weights of the parts in the overall score; sharpness and pose matter most for recognition.
WEIGHTS = {"sharpness": 0.35, "size": 0.2, "brightness": 0.15, "frontalness": 0.3}


@dataclass(slots=True)
class Pose:
    yaw: float
    pitch: float
    roll: float

    def as_dict(self) -> dict:
        return {
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 1),
            "roll": round(self.roll, 1),
        }


@dataclass(slots=True)
class Quality:
    sharpness: float
    size: float
    brightness: float
    frontalness: float
    overall: float

    def as_dict(self) -> dict:
        return {
            "overall": round(self.overall, 4),
            "sharpness": round(self.sharpness, 4),
            "size": round(self.size, 4),
            "brightness": round(self.brightness, 4),
            "frontalness": round(self.frontalness, 4),
        }


def estimate_pose(landmarks: np.ndarray) -> Pose:
    """Rough head pose in degrees from the 5 landmarks (enough to rank shots and see turns)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (mouth_l + mouth_r) / 2
    eye_vec = right_eye - left_eye
    eye_dist = float(np.hypot(*eye_vec)) or 1.0
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    x_axis = eye_vec / eye_dist
    y_axis = np.array([-x_axis[1], x_axis[0]])
    # Yaw: sideways offset of the nose from the face's midline, relative to half the eye distance.
    midline_point = (eye_mid + mouth_mid) / 2
    side = float((nose - midline_point) @ x_axis) / (eye_dist / 2)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, side))))
    # Pitch: where the nose falls between eye line and mouth line.
    face_len = float((mouth_mid - eye_mid) @ y_axis) or 1.0
    ratio = float((nose - eye_mid) @ y_axis) / face_len
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, (ratio - _FRONTAL_NOSE_RATIO) * 2))))
    return Pose(yaw=yaw, pitch=pitch, roll=roll)


def sharpness_score(gray: np.ndarray) -> float:
    """Variance of the Laplacian, squashed to 0..1 (about 0.63 at variance 150)."""
    var = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    return 1.0 - math.exp(-var / 150.0)


def brightness_score(gray: np.ndarray) -> float:
    """1 for a well exposed face (mean near mid-grey, some contrast), falling to 0 when dark or clipped."""
    mean = float(gray.mean()) / 255.0
    exposure = max(0.0, 1.0 - abs(mean - 0.5) * 2.2)
    contrast = min(1.0, float(gray.std()) / 40.0)
    return exposure * (0.5 + 0.5 * contrast)


def score_shot(
    crop_bgr: np.ndarray, face_height_px: float, pose: Pose, full_size_px: float = 112.0
) -> Quality:
    """Quality of an aligned crop. `face_height_px` is the face's height in the frame."""
    h, w = crop_bgr.shape[:2]
    # Judge sharpness and light on the inner face, not the margin.
    inner = crop_bgr[h // 5 : h - h // 8, w // 5 : w - w // 5]
    gray = cv2.cvtColor(inner, cv2.COLOR_BGR2GRAY)
    sharp = sharpness_score(gray)
    size = min(1.0, face_height_px / full_size_px)
    bright = brightness_score(gray)
    frontal = max(0.0, math.cos(math.radians(pose.yaw)) * math.cos(math.radians(pose.pitch)))
    frontal = frontal**2  # a 30 degree turn costs a quarter, 60 degrees three quarters
    parts = {"sharpness": sharp, "size": size, "brightness": bright, "frontalness": frontal}
    overall = sum(WEIGHTS[k] * v for k, v in parts.items())
    return Quality(overall=overall, **parts)
