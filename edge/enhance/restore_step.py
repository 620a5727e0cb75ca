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
        network_max_eye_px: float | None = None,
        above_gate_strength: float | None = None,
    ):
        """`max_eye_px`: the network's gate (None: every face); `fusion`: how a burst is fused
        where the network runs (None: single frame); faces the gate skips are fused by the
        fusion network up to `network_max_eye_px` when `fusion` is the network (at
        `above_gate_strength` over the frames' average; None: the restorer's strength), and by
        frame averaging up to `average_max_eye_px` (None: never)."""
        self.restorer = restorer
        self.max_eye_px = max_eye_px
        self.fusion = fusion
        self.average_max_eye_px = average_max_eye_px
        self.network_max_eye_px = network_max_eye_px
        self.above_gate_strength = (
            restorer.strength if above_gate_strength is None else float(above_gate_strength)
        )
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
        average_above = network_above = above_strength = None
        if fusion is not None and max_eye_px is not None:
            average_above = multi_frame.average_max_eye_px  # type: ignore[union-attr]
            if fusion.method == "network":
                network_above = multi_frame.network_max_eye_px  # type: ignore[union-attr]
                above_strength = multi_frame.above_gate_strength  # type: ignore[union-attr]
        return cls(
            restorer, crop_size, margin, max_eye_px, fusion, average_above, network_above,
            above_strength,
        )  # fmt: skip

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
            "network_max_eye_px": self.network_max_eye_px,
            "above_gate_strength": self.above_gate_strength,
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
        if outcome.restored is None:
            return self(bgr), fusion_record(self.fusion, outcome)
        return self._fused(bgr, outcome)

    def _fused(
        self, bgr: np.ndarray, outcome: FusionOutcome, strength: float | None = None
    ) -> tuple[np.ndarray, dict]:
        """The fused face put back into the crop, and its record. `strength`: the network's
        share over the frames' average (None: the restorer's, as for one frame)."""
        assert self.fusion is not None and outcome.restored is not None
        restored = outcome.restored
        if self.fusion.method == "network" and outcome.average is not None:
            # Over the frames' average rather than frame 0 (on LFW x8 bursts of 8: +2.0 points
            # at 0.6, FUSION_MODEL_CARD.md).
            share = self.restorer.strength if strength is None else strength
            restored = blend_with_plain(restored, outcome.average, share)
        return self._framed.put_back(bgr, restored), fusion_record(self.fusion, outcome)

    def fuse_skipped(
        self, bgr: np.ndarray, burst: list[BurstFrame], eye_px: float | None
    ) -> tuple[np.ndarray, dict] | None:
        """A face the single-frame network skips, restored from its burst: by the fusion
        network (over the frames' average at `above_gate_strength`) when seen with the eyes at
        most `network_max_eye_px` apart, else by frame averaging (no network: the registered
        views' per-pixel mean, put back into the crop) up to `average_max_eye_px`. None: not
        such a face, or fewer than two frames register (the crop stays as captured)."""
        if eye_px is None:
            return None
        near = self.network_max_eye_px
        if near is not None and eye_px <= near and self.fusion is not None:
            # Fewer than two frames that register leave nothing to average either.
            outcome = self.fusion(burst)
            if outcome.restored is None:
                return None
            return self._fused(bgr, outcome, self.above_gate_strength)
        limit = self.average_max_eye_px
        if limit is None or eye_px > limit:
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
    (None: every face): those the network runs on and, above its gate, those the fusion
    network or frame averaging fuses."""
    gate = settings.restore.max_eye_px
    if gate is None:
        return None
    mf = settings.multi_frame
    network = mf.network_max_eye_px if mf.method == "network" else None
    return max([gate] + [v for v in (network, mf.average_max_eye_px) if v])


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
