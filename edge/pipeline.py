"""The per-frame path shared by the daemon and the offline tools:
frame -> detect -> track -> choose best shots; and shot -> enhance -> event."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.best_shot import BestShotSelector, Shot
from edge.enhance import EnhancementStage
from edge.events import build_event
from edge.track import Track, Tracker
from edge.types import Detection, Frame


class RollingMs:
    """Mean of the last N durations, for stats (cheap, no allocation per sample)."""

    def __init__(self, size: int = 100):
        self._values = [0.0] * size
        self._n = 0

    def add(self, ms: float) -> None:
        self._values[self._n % len(self._values)] = ms
        self._n += 1

    @property
    def mean(self) -> float:
        n = min(self._n, len(self._values))
        return sum(self._values[:n]) / n if n else 0.0


@dataclass
class FrameResult:
    frame: Frame
    detections: list[Detection]
    tracks: list[Track]
    shots: list[Shot]
    detect_ms: float


@dataclass
class FaceProcessor:
    """Detection, tracking and shot selection for one camera."""

    detector: object  # edge.detect.FaceDetector (duck-typed: .detect(image) -> list[Detection])
    tracker: Tracker
    selector: BestShotSelector
    detect_ms: RollingMs = field(default_factory=RollingMs)
    frames: int = 0

    @classmethod
    def from_settings(cls, detector: object, settings: dict) -> FaceProcessor:
        tr = settings["tracker"]
        tracker = Tracker(
            float(tr["iou_threshold"]), float(tr["max_missed_s"]), int(tr["min_hits"])
        )
        return cls(detector, tracker, BestShotSelector(settings["best_shot"], tracker.min_hits))

    def process(self, frame: Frame) -> FrameResult:
        start = time.perf_counter()
        detections = self.detector.detect(frame.image)
        ms = (time.perf_counter() - start) * 1000.0
        self.detect_ms.add(ms)
        self.frames += 1
        seen, ended = self.tracker.update(detections, frame.mono_time)
        shots = self.selector.on_frame(frame, seen, ended)
        return FrameResult(frame, detections, seen, shots, ms)

    def flush(self) -> list[Shot]:
        """End every track (source ended, daemon stopping) and return their last shots."""
        shots: list[Shot] = []
        for track in self.tracker.end_all():
            shots.extend(self.selector.on_track_end(track))
        return shots


@dataclass
class EventBuilder:
    """Enhances a shot and turns it into an event for one camera."""

    enhancer: EnhancementStage
    device_id: str
    camera: str
    detector_info: dict
    jpeg_quality: int = 90
    enhance_ms: RollingMs = field(default_factory=RollingMs)

    def __call__(
        self, shot: Shot, crop_paths: Callable[[str], tuple[str, str]] | None = None
    ) -> tuple[dict, bytes, bytes]:
        result = self.enhancer(shot.crop)
        self.enhance_ms.add(result.ms)
        event_id = str(uuid.uuid4())
        return build_event(
            shot,
            result,
            device_id=self.device_id,
            camera=self.camera,
            detector_info=self.detector_info,
            jpeg_quality=self.jpeg_quality,
            event_id=event_id,
            crop_paths=crop_paths(event_id) if crop_paths else None,
        )
