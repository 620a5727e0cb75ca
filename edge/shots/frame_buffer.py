"""The recent frames of each track, kept for multi-frame restoration (bounded in memory).

Every frame a live track passes the quality gate in, its face is stored in the restorer's
framing (`edge.enhance.burst.face_view`, handed to the selector by the pipeline: 80x80 BGR,
19,200 bytes) in a ring of `max_frames`.
When a shot becomes a track's candidate for publishing, it takes a snapshot (references, no
copies) of the frames that may be fused with it: seen at most `max_age_s` before it, head
yaw and pitch within `max_pose_delta_deg` of its own, the nearest in time first. So a track
holds at most its ring plus one candidate's snapshot: 2 x max_frames x 19,200 bytes
(307,200 at the default 8), whatever the frame rate or the track's length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

# The view `edge.enhance.burst.face_view` makes: 80x80 BGR (VIEW_SIDE there).
VIEW_BYTES = 80 * 80 * 3


def max_bytes_per_track(max_frames: int, view_bytes: int = VIEW_BYTES) -> int:
    """The most a track's frames can hold: its ring and one candidate's snapshot."""
    return 2 * max_frames * view_bytes


@dataclass(frozen=True, slots=True)
class BurstFrame:
    """One frame of a track in the restorer's framing, with when it was seen and how good."""

    view: np.ndarray  # BGR uint8, square
    mono_time: float
    wall_time: float
    quality: float
    yaw: float
    pitch: float

    @property
    def nbytes(self) -> int:
        return int(self.view.nbytes)


class TrackFrames:
    """One track's last `max_frames` faces."""

    def __init__(self, max_frames: int):
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.max_frames = max_frames
        self.frames: deque[BurstFrame] = deque(maxlen=max_frames)

    def add(self, frame: BurstFrame) -> None:
        self.frames.append(frame)

    def select(
        self, reference: BurstFrame, max_age_s: float, max_pose_delta_deg: float
    ) -> list[BurstFrame]:
        """`reference` first, then up to max_frames - 1 buffered frames to fuse with it."""
        others = [
            f
            for f in self.frames
            if f is not reference
            and 0.0 <= reference.mono_time - f.mono_time <= max_age_s
            and abs(f.yaw - reference.yaw) <= max_pose_delta_deg
            and abs(f.pitch - reference.pitch) <= max_pose_delta_deg
        ]
        others.sort(key=lambda f: reference.mono_time - f.mono_time)
        return [reference, *others[: self.max_frames - 1]]

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self.frames)
