"""Plain data types shared by the pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels, x2/y2 exclusive


@dataclass(slots=True)
class Detection:
    """One face in one frame, in frame pixels.

    box: x1, y1, x2, y2 (float). landmarks: (5, 2) float32 in the order
    left eye, right eye, nose, left mouth corner, right mouth corner, where
    "left" means the image's left (the subject's right eye).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    def xywh(self) -> list[int]:
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return [round(x1), round(y1), round(x2 - x1), round(y2 - y1)]


@dataclass(slots=True)
class Frame:
    """A decoded frame with the facts the later stages need."""

    image: np.ndarray  # BGR uint8, HxWx3
    index: int  # sequence number from the source (gaps mean dropped frames)
    wall_time: float  # time.time() at capture: for captured_at
    mono_time: float  # time.monotonic() at capture: for intervals and latency
    camera: str = ""
