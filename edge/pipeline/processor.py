"""The per-frame path shared by the daemon and the offline tools:
frame -> detect -> track -> choose best shots; and shot -> enhance -> event."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.detect.base import Detector
from edge.detect.regions import RegionPlanner
from edge.enhance import EnhancementStage
from edge.enhance.burst import face_view
from edge.enhance.restore_step import buffered_max_eye_px
from edge.events import build_event
from edge.settings import CameraSettings
from edge.shots.best_shot import BestShotSelector, Shot
from edge.shots.face_check import FaceCheck
from edge.track import Track, Tracker
from edge.types import Detection, Frame


class RollingMs:
    """Mean of the last N values (durations, shares), for stats (no allocation per sample)."""

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
    # Where the detector looked: None = the whole frame, else regions (x1, y1, x2, y2).
    regions: list[tuple[int, int, int, int]] | None = None


# Region stats cover this many frames: several full-frame periods at 25 fps.
REGION_STATS_FRAMES = 250


@dataclass
class FaceProcessor:
    """Detection, tracking and shot selection for one camera."""

    detector: Detector
    tracker: Tracker
    selector: BestShotSelector
    # None: every frame is searched whole (detector.regions.enabled: false).
    planner: RegionPlanner | None = None
    # Hand the detector last frame's faces to re-check where they were (detector.follow_faces).
    follow_faces: bool = True
    detect_ms: RollingMs = field(default_factory=RollingMs)
    full_frame_share: RollingMs = field(default_factory=lambda: RollingMs(REGION_STATS_FRAMES))
    area_searched: RollingMs = field(default_factory=lambda: RollingMs(REGION_STATS_FRAMES))
    frames: int = 0

    @classmethod
    def from_settings(cls, detector: Detector, settings: CameraSettings) -> FaceProcessor:
        """The processor a camera's settings ask for, around ``detector``."""
        tracker = Tracker.from_settings(settings.tracker)
        det = settings.detector
        planner = RegionPlanner(det.regions, det.min_face_px) if det.regions.enabled else None
        face_check = None
        if settings.best_shot.min_face_score > 0:
            face_check = FaceCheck.open(det.backend, int(det.threads), det.models_dir)
        enh = settings.enhance
        # Frames are kept for multi-frame restoration only of faces the restore step fuses.
        multi = enh.multi_frame if enh.enabled and enh.restore.enabled else None
        selector = BestShotSelector(
            settings.best_shot, tracker.min_hits, face_check, multi, buffered_max_eye_px(enh),
            face_view,
        )  # fmt: skip
        return cls(detector, tracker, selector, planner, follow_faces=det.follow_faces)

    def process(self, frame: Frame) -> FrameResult:
        start = time.perf_counter()
        regions = None
        if self.planner is not None:
            # Live tracks, also those missed in the last frames: a face that stopped moving
            # is still searched for where it was.
            tracks = [t.detection.box for t in self.tracker.tracks.values()]
            regions = self.planner.plan(frame.image, frame.mono_time, tracks)
        follow = None
        if self.follow_faces:
            # Only faces found in the last frame: a missed track's box may be stale.
            follow = [t.detection.box for t in self.tracker.tracks.values() if t.updated]
        detections = self.detector.detect(frame.image, regions, follow)
        ms = (time.perf_counter() - start) * 1000.0
        self.detect_ms.add(ms)
        self.full_frame_share.add(1.0 if regions is None else 0.0)
        self.area_searched.add(self.planner.last_area_fraction if self.planner else 1.0)
        self.frames += 1
        seen, ended = self.tracker.update(detections, frame.mono_time)
        shots = self.selector.on_frame(frame, seen, ended)
        return FrameResult(frame, detections, seen, shots, ms, regions)

    def region_stats(self) -> dict:
        """Over the last REGION_STATS_FRAMES frames: the share searched whole and the mean
        fraction of the frame's area searched (1.0 with regions off)."""
        return {
            "full_frame_share": round(self.full_frame_share.mean, 3),
            "area_fraction": round(self.area_searched.mean, 3),
        }

    def flush(self) -> list[Shot]:
        """End every track (source ended, daemon stopping) and return their last shots."""
        shots: list[Shot] = []
        for track in self.tracker.end_all():
            shots.extend(self.selector.on_track_end(track))
        return shots


def eye_distance(detection: Detection) -> float:
    """Pixels between the eyes in the camera's frame: how much of the face the camera saw."""
    lm = np.asarray(detection.landmarks, np.float32)
    return float(np.linalg.norm(lm[1] - lm[0]))


@dataclass
class EventBuilder:
    """Enhances a shot and turns it into an event for one camera."""

    enhancer: EnhancementStage
    device_id: str
    camera: str
    detector_info: dict
    jpeg_quality: int = 90
    enhance_ms: RollingMs = field(default_factory=RollingMs)
    frames_fused: RollingMs = field(default_factory=RollingMs)

    def __call__(
        self, shot: Shot, crop_paths: Callable[[str], tuple[str, str]] | None = None
    ) -> tuple[dict, bytes, bytes]:
        result = self.enhancer(shot.crop, eye_px=eye_distance(shot.detection), burst=shot.burst)
        self.enhance_ms.add(result.ms)
        self.frames_fused.add(result.frames_fused)
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
