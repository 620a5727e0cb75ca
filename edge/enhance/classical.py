"""Classical enhancement steps that stay in the chain whatever model follows them:
low-light correction on luminance, and colour denoising."""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.settings import DenoiseSettings, LowLightSettings

_LOW_LIGHT = LowLightSettings()
_DENOISE = DenoiseSettings()


class LowLightCorrection:
    """Gamma on luminance lifts a dark face towards a target mean, then CLAHE restores local
    contrast; a face already at or above the target mean is returned unchanged. Colour is
    kept: only the L channel of Lab changes."""

    name = "low_light_gamma_clahe"
    kind = "classical"
    version = "1"

    def __init__(
        self,
        clahe_clip: float = _LOW_LIGHT.clahe_clip,
        target_mean: float = _LOW_LIGHT.target_mean,
    ):
        self.clahe_clip = clahe_clip
        self.target_mean = target_mean
        self._clahe = cv2.createCLAHE(clipLimit=clahe_clip, tileGridSize=(4, 4))

    @classmethod
    def from_settings(cls, settings: LowLightSettings) -> LowLightCorrection:
        # floats, so the params recorded in events read the same whatever the YAML wrote
        return cls(float(settings.clahe_clip), float(settings.target_mean))

    @property
    def params(self) -> dict:
        return {"clahe_clip": self.clahe_clip, "target_mean": self.target_mean}

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)
        lum = lab[:, :, 0]
        mean = float(lum.mean()) / 255.0
        if mean >= self.target_mean:
            # A well-lit face is left alone: CLAHE on normally lit LFW faces cost 6-7 dB PSNR
            # (tools/eval/restore_eval, presets x4/warm/cold).
            return bgr
        if mean > 0.0:
            # gamma such that mean**gamma == target; never brighten by more than gamma 0.4
            gamma = max(0.4, math.log(self.target_mean) / math.log(mean))
            lut = (np.linspace(0.0, 1.0, 256) ** gamma * 255.0).round().astype(np.uint8)
            lum = cv2.LUT(lum, lut)
        lab[:, :, 0] = self._clahe.apply(lum)
        return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


class Denoise:
    """Non-local means on colour crops: removes sensor noise and some JPEG blocking."""

    name = "denoise_nlmeans"
    kind = "classical"
    version = "1"

    def __init__(self, strength: float = float(_DENOISE.strength)):
        self.strength = strength

    @classmethod
    def from_settings(cls, settings: DenoiseSettings) -> Denoise:
        return cls(float(settings.strength))

    @property
    def params(self) -> dict:
        return {"strength": self.strength}

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        h = float(self.strength)
        # small windows: a 160 px crop needs no wider search, and it is 4x faster than 7/21
        return cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 5, 11)
