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

    def __init__(self, restorer: FaceRestorer, crop_size: int, margin: float):
        self.restorer = restorer
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
    ) -> RestoreStep:
        return cls(FaceRestorer(backend, precision, threads, models_dir), crop_size, margin)

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
        )

    @property
    def params(self) -> dict:
        return {
            "model": self.restorer.file_name,
            "backend": self.restorer.backend,
            "precision": self.restorer.precision,
        }

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        return self._framed(bgr)
