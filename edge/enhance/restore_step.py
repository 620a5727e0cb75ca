"""The restoration network as a step of the enhancement stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.enhance.restorer import FaceRestorer, FramedRestorer, aligned_crop_framing
from edge.settings import RestoreSettings


class RestoreStep:
    """Super-resolution, deblurring and denoising of the aligned face by the distilled INT8 (or
    FP32) student, at the crop's own size and framing."""

    name = "restore_student"
    kind = "model"

    def __init__(
        self,
        restorer: FaceRestorer,
        crop_size: int,
        margin: float,
        max_eye_px: float | None = None,
    ):
        self.restorer = restorer
        self.max_eye_px = max_eye_px
        self.version = restorer.version
        self.crop_size, self.margin = crop_size, margin
        self._framed = FramedRestorer(restorer, aligned_crop_framing(crop_size, margin))

    @classmethod
    def build(
        cls,
        backend: str,
        precision: str,
        threads: int,
        crop_size: int,
        margin: float,
        models_dir: Path | str | None = None,
        max_eye_px: float | None = None,
    ) -> RestoreStep:
        restorer = FaceRestorer(backend, precision, threads, models_dir)
        return cls(restorer, crop_size, margin, max_eye_px)

    @classmethod
    def from_settings(
        cls,
        settings: RestoreSettings,
        crop_size: int,
        margin: float,
        models_dir: Path | str | None = None,
    ) -> RestoreStep:
        """The network `enhance.restore` asks for, for crops of the given framing."""
        return cls.build(
            settings.backend,
            settings.precision,
            int(settings.threads),
            crop_size,
            margin,
            models_dir,
            settings.max_eye_px,
        )

    @property
    def params(self) -> dict:
        return {
            "model": self.restorer.file_name,
            "backend": self.restorer.backend,
            "precision": self.restorer.precision,
            "max_eye_px": self.max_eye_px,
        }

    def skip_reason(self, eye_px: float | None) -> str | None:
        """Why this face is left to the other steps, or None to restore it. The network
        would first shrink a face seen larger than its input, losing what the camera saw."""
        if eye_px is None or self.max_eye_px is None or eye_px <= self.max_eye_px:
            return None
        return (
            f"face seen with the eyes {eye_px:.1f} px apart (> {self.max_eye_px:g}): the "
            "network would only shrink it"
        )

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        return self._framed(bgr)
