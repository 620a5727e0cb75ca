"""The enhancement stage: an aligned face crop in, the enhanced crop out, with a record of
every step applied (name, kind, version, parameters) and the time it took."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.enhance.classical import Denoise, LowLightCorrection


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


class EnhancementStage:
    def __init__(self, steps: list[EnhanceStep]):
        self.steps = steps

    @classmethod
    def from_settings(cls, settings: dict) -> EnhancementStage:
        steps: list[EnhanceStep] = []
        if settings.get("enabled", True):
            # Denoise first: lifting a dark, noisy face would amplify the noise it then has to remove.
            dn = settings.get("denoise", {})
            if dn.get("enabled", True):
                steps.append(Denoise(float(dn.get("strength", 5))))
            ll = settings.get("low_light", {})
            if ll.get("enabled", True):
                steps.append(
                    LowLightCorrection(
                        float(ll.get("clahe_clip", 2.0)), float(ll.get("target_mean", 0.45))
                    )
                )
        return cls(steps)

    def describe(self) -> list[dict]:
        return [
            {"name": s.name, "kind": s.kind, "version": s.version, "params": s.params}
            for s in self.steps
        ]

    def __call__(self, crop_bgr: np.ndarray) -> EnhanceResult:
        start = time.perf_counter()
        image = crop_bgr
        for step in self.steps:
            image = step(image)
        ms = (time.perf_counter() - start) * 1000.0
        return EnhanceResult(image=image, stages=self.describe(), ms=ms)
