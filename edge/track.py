"""Keep a stable id on each face across frames (greedy IoU matching with a centre-distance fallback)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.geometry import iou_matrix
from edge.settings import TrackerSettings
from edge.types import Detection

_DEFAULTS = TrackerSettings()


@dataclass
class Track:
    track_id: int
    detection: Detection
    first_seen: float
    last_seen: float
    hits: int = 1
    # Set by the tracker each frame: did this track get a detection in the latest frame?
    updated: bool = True
    # Free space for the stages that follow (best-shot state lives here).
    state: dict = field(default_factory=dict)

    @property
    def age_s(self) -> float:
        return self.last_seen - self.first_seen


class Tracker:
    """Associates detections with live tracks; ends tracks unseen for `max_missed_s`."""

    def __init__(
        self,
        iou_threshold: float = _DEFAULTS.iou_threshold,
        max_missed_s: float = _DEFAULTS.max_missed_s,
        min_hits: int = _DEFAULTS.min_hits,
    ):
        self.iou_threshold = iou_threshold
        self.max_missed_s = max_missed_s
        self.min_hits = min_hits
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    @classmethod
    def from_settings(cls, settings: TrackerSettings) -> Tracker:
        """A tracker for a camera's `tracker` settings."""
        s = settings
        return cls(float(s.iou_threshold), float(s.max_missed_s), int(s.min_hits))

    def update(self, detections: list[Detection], now: float) -> tuple[list[Track], list[Track]]:
        """Returns (tracks seen in this frame, tracks that ended now)."""
        live = list(self.tracks.values())
        for t in live:
            t.updated = False
        matches = self._match(live, detections)
        matched_dets = set()
        for ti, di in matches:
            t = live[ti]
            t.detection = detections[di]
            t.last_seen = now
            t.hits += 1
            t.updated = True
            matched_dets.add(di)
        for di, det in enumerate(detections):
            if di not in matched_dets:
                t = Track(self._next_id, det, first_seen=now, last_seen=now)
                self._next_id += 1
                self.tracks[t.track_id] = t
        ended = [t for t in self.tracks.values() if now - t.last_seen > self.max_missed_s]
        for t in ended:
            del self.tracks[t.track_id]
        seen = [t for t in self.tracks.values() if t.updated]
        return seen, ended

    def end_all(self) -> list[Track]:
        """End every live track (the source ended or the daemon stops)."""
        ended = list(self.tracks.values())
        self.tracks.clear()
        return ended

    def _match(self, tracks: list[Track], detections: list[Detection]) -> list[tuple[int, int]]:
        if not tracks or not detections:
            return []
        tb = np.stack([t.detection.box for t in tracks]).astype(np.float32)
        db = np.stack([d.box for d in detections]).astype(np.float32)
        score = iou_matrix(tb, db)
        # Small fast faces may not overlap between frames: fall back to centre distance
        # within one face size, scored below any real overlap.
        tc = (tb[:, :2] + tb[:, 2:]) / 2
        dc = (db[:, :2] + db[:, 2:]) / 2
        size = np.maximum(tb[:, 2] - tb[:, 0], tb[:, 3] - tb[:, 1])[:, None]
        dist = np.linalg.norm(tc[:, None, :] - dc[None, :, :], axis=2) / np.maximum(size, 1.0)
        iou = score
        near = np.where(dist < 1.0, (1.0 - dist) * self.iou_threshold, 0.0)
        score = np.maximum(iou, near * 0.999)
        pairs = []
        used_t, used_d = set(), set()
        for flat in np.argsort(-score, axis=None):
            ti, di = divmod(int(flat), score.shape[1])
            if score[ti, di] <= 0:
                break
            if iou[ti, di] < self.iou_threshold and dist[ti, di] >= 1.0:
                continue
            if ti in used_t or di in used_d:
                continue
            pairs.append((ti, di))
            used_t.add(ti)
            used_d.add(di)
        return pairs
