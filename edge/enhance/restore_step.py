"""The restoration network as a step of the enhancement stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.enhance.burst import BurstFrame
from edge.enhance.fusion import BurstFusion, FusionNetwork, FusionOutcome
from edge.enhance.restorer import (
    FaceRestorer,
    FramedRestorer,
    aligned_crop_framing,
    blend_with_plain,
)
from edge.settings import EnhanceSettings, MultiFrameSettings, RestoreSettings


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
        fusion: BurstFusion | None = None,
        average_max_eye_px: float | None = None,
    ):
        """`max_eye_px`: the network's gate (None: every face); `fusion`: how a burst is fused
        where the network runs (None: single frame); `average_max_eye_px`: faces the gate
        skips up to this size are fused by frame averaging (None: never)."""
        self.restorer = restorer
        self.max_eye_px = max_eye_px
        self.fusion = fusion
        self.average_max_eye_px = average_max_eye_px
        self._averager = BurstFusion("average")
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
        multi_frame: MultiFrameSettings | None = None,
        strength: float = 1.0,
    ) -> RestoreStep:
        restorer = FaceRestorer(backend, precision, threads, models_dir, strength)
        fusion = open_fusion(multi_frame, restorer)
        average_above = None
        if fusion is not None and max_eye_px is not None:
            average_above = multi_frame.average_max_eye_px  # type: ignore[union-attr]
        return cls(restorer, crop_size, margin, max_eye_px, fusion, average_above)

    @classmethod
    def from_settings(
        cls,
        settings: RestoreSettings,
        crop_size: int,
        margin: float,
        models_dir: Path | str | None = None,
        multi_frame: MultiFrameSettings | None = None,
    ) -> RestoreStep:
        """The network `enhance.restore` asks for, for crops of the given framing, with the
        multi-frame fusion `enhance.multi_frame` asks for (None or disabled: single frame)."""
        return cls.build(
            settings.backend,
            settings.precision,
            int(settings.threads),
            crop_size,
            margin,
            models_dir,
            settings.max_eye_px,
            multi_frame,
            float(settings.strength),
        )

    @property
    def params(self) -> dict:
        return {
            "model": self.restorer.file_name,
            "backend": self.restorer.backend,
            "precision": self.restorer.precision,
            "max_eye_px": self.max_eye_px,
            "strength": self.restorer.strength,
            "multi_frame": None if self.fusion is None else self.fusion.method,
            "average_max_eye_px": self.average_max_eye_px,
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

    def restore_burst(self, bgr: np.ndarray, burst: list[BurstFrame]) -> tuple[np.ndarray, dict]:
        """The crop restored from its burst (`burst[0]` is the crop's own frame): (image, what
        was fused). With fewer than two frames that register, the single-frame network."""
        if self.fusion is None or len(burst) < 2:
            return self(bgr), {"frames_fused": 1, "wall_times": [f.wall_time for f in burst[:1]]}
        outcome = self.fusion(burst)
        info = fusion_record(self.fusion, outcome)
        if outcome.restored is None:
            return self(bgr), info
        restored = outcome.restored
        if self.fusion.method == "network":  # the same share of the network as for one frame
            restored = blend_with_plain(restored, burst[0].view, self.restorer.strength)
        return self._framed.put_back(bgr, restored), info

    def average_skipped(
        self, bgr: np.ndarray, burst: list[BurstFrame], eye_px: float | None
    ) -> tuple[np.ndarray, dict] | None:
        """A face the network skips but seen with the eyes at most `average_max_eye_px` apart,
        restored from its burst by frame averaging (no network): the registered views'
        per-pixel mean, put back into the crop. None: not such a face, or fewer than two
        frames register (the crop stays as captured)."""
        limit = self.average_max_eye_px
        if limit is None or eye_px is None or eye_px > limit:
            return None
        outcome = self._averager(burst)
        if outcome.restored is None:
            return None
        return self._framed.put_back(bgr, outcome.restored), fusion_record(self._averager, outcome)


def fusion_record(fusion: BurstFusion, outcome: FusionOutcome) -> dict:
    """What a burst's fusion did, for the stage's record and the event."""
    return {
        "method": fusion.method,
        "version": fusion.version,
        "frames_fused": outcome.frames_fused,
        "frames_dropped": outcome.dropped,
        "wall_times": outcome.wall_times,
    }


def buffered_max_eye_px(settings: EnhanceSettings) -> float | None:
    """Faces seen with the eyes at most this far apart are kept in their track's frame buffer
    (None: every face): those the network runs on and, above its gate, those frame averaging
    fuses."""
    gate = settings.restore.max_eye_px
    average = settings.multi_frame.average_max_eye_px
    if gate is None:
        return None
    return gate if average is None else max(gate, average)


def open_fusion(settings: MultiFrameSettings | None, restorer: FaceRestorer) -> BurstFusion | None:
    """The fusion `enhance.multi_frame` asks for, in the restorer's runtime and precision."""
    if settings is None or not settings.enabled:
        return None
    if settings.method == "network":
        network = FusionNetwork(
            restorer.precision, restorer.model_threads, restorer.models_dir, restorer.backend
        )
        return BurstFusion("network", network)
    return BurstFusion("average")
