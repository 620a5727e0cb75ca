"""The enhancement stage: an aligned face crop in, the enhanced crop out, with a record of
every step applied (name, kind, version, parameters) and the time it took."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.enhance.burst import BurstFrame
from edge.enhance.classical import Denoise, LowLightCorrection
from edge.enhance.restore_step import RestoreStep
from edge.settings import BestShotSettings, EnhanceSettings

_SHOT = BestShotSettings()


class EnhanceStep(Protocol):
    name: str
    kind: str  # "classical" or "model"
    version: str

    @property
    def params(self) -> dict: ...

    def __call__(self, bgr: np.ndarray) -> np.ndarray: ...


@dataclass(slots=True)
class EnhanceResult:
    image: np.ndarray
    stages: list[dict]
    ms: float
    # Multi-frame restoration: how many frames the restored face comes from, and when each
    # was seen (wall clock, the published frame first); 1 and [] for a single frame.
    frames_fused: int = 1
    fused_times: list[float] = field(default_factory=list)


class EnhancementStage:
    def __init__(self, steps: list[EnhanceStep]):
        self.steps = steps

    @classmethod
    def from_settings(
        cls,
        settings: EnhanceSettings,
        crop_size: int = _SHOT.crop_size,
        margin: float = _SHOT.margin,
        models_dir: Path | str | None = None,
    ) -> EnhancementStage:
        """The steps the camera's `enhance` settings enable, in
        the order that measured best on LFW (README): denoise, the restoration network, then
        low light (restoring first gave higher PSNR and SSIM on every lighting preset than
        brightening first). `crop_size` and `margin` are the framing of the aligned crops the
        stage will get (best_shot settings); `models_dir` the detector's (null: shipped)."""
        s = settings
        steps: list[EnhanceStep] = []
        if not s.enabled:
            return cls(steps)
        # Denoise first: lifting a dark, noisy face would amplify the noise it then has to remove.
        if s.denoise.enabled:
            steps.append(Denoise.from_settings(s.denoise))
        if s.restore.enabled:
            steps.append(
                RestoreStep.from_settings(s.restore, crop_size, margin, models_dir, s.multi_frame)
            )
        if s.low_light.enabled:
            steps.append(LowLightCorrection.from_settings(s.low_light))
        return cls(steps)

    def describe(self) -> list[dict]:
        return [
            {"name": s.name, "kind": s.kind, "version": s.version, "params": s.params}
            for s in self.steps
        ]

    def __call__(
        self,
        crop_bgr: np.ndarray,
        eye_px: float | None = None,
        burst: list[BurstFrame] | None = None,
    ) -> EnhanceResult:
        """Enhance one aligned crop. ``eye_px``: how far apart the eyes were in the camera's
        frame (None: unknown); a gated step skips faces it cannot help and says why in its
        record's params (``applied``, ``skipped_because``). ``burst``: the crop's own frame and
        its track's frames to fuse with it (multi-frame restoration), for a step that can."""
        start = time.perf_counter()
        image = crop_bgr
        records = []
        frames_fused, fused_times = 1, []
        for step in self.steps:
            record = {"name": step.name, "kind": step.kind, "version": step.version}
            params = dict(step.params)
            # A gated step (the network) also has skip_reason(eye_px) -> str | None.
            gate = getattr(step, "skip_reason", None)
            reason = gate(eye_px) if gate is not None else None
            from_burst = getattr(step, "restore_burst", None)
            fused = None
            if reason is None and burst and from_burst is not None:
                image, fused = from_burst(image, burst)
            elif reason is None:
                image = step(image)
            elif burst and (from_frames := _fuse_skipped(step, image, burst, eye_px)):
                # The single-frame network skips this face, but its frames hold more than one
                # frame: the fusion network (then it ran: applied) or frame averaging.
                image, fused = from_frames
                if fused["method"] == "network":
                    reason = None
            if fused is not None:
                frames_fused, fused_times = fused["frames_fused"], fused["wall_times"]
                params["frames_fused"] = frames_fused
                if "frames_dropped" in fused:
                    params["multi_frame"] = fused["method"]
                    params["frames_dropped"] = fused["frames_dropped"]
                    params["fusion_version"] = fused["version"]
            if gate is not None:
                params["applied"] = reason is None
                if eye_px is not None:
                    params["eye_px"] = round(float(eye_px), 1)
                if reason is not None:
                    params["skipped_because"] = reason
            records.append({**record, "params": params})
        ms = (time.perf_counter() - start) * 1000.0
        return EnhanceResult(image, records, ms, frames_fused, fused_times)


def _fuse_skipped(step, image, burst, eye_px) -> tuple[np.ndarray, dict] | None:
    """A gated step's multi-frame restoration of a face its single-frame network skips (None:
    it has none, or it does not apply)."""
    fuse = getattr(step, "fuse_skipped", None)
    return fuse(image, burst, eye_px) if fuse is not None else None
