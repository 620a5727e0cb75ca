"""Where the detector looks in each frame of a fixed camera (region-of-interest detection).

Searching the whole 1280x720 frame costs the MTCNN pyramid ~55-90 ms; most of a fixed
camera's picture is a still background. So, like Frigate NVR, the detector searches only:
  - the areas that moved (edge/detect/motion.py), and
  - the surroundings of live tracks: a face that stops moving must still be followed,
each grown to a useful size, made square-ish, and merged where they overlap. The whole frame
is searched when the regions would cover most of it, and every `full_frame_every_s`, which
catches faces that were still from the start.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edge.detect.motion import MotionDetector
from edge.settings import RegionsSettings
from edge.types import Box

# A region's long side is at most this many times its short side: the short side bounds the
# largest face P-Net can find in it, and a face beside a thin moving sliver is not cut off.
MAX_ASPECT = 1.5
# Around a live track, this many face sizes on each side: room for the next step of a moving
# face and for the box to be off by a little.
TRACK_MARGIN = 0.75


def grow(box: Box, pad: float, min_side: int, frame_w: int, frame_h: int) -> Box:
    """`box` padded by `pad` pixels on each side, with each side at least `min_side` and at
    least 1/MAX_ASPECT of the other, shifted (not cut) to lie inside the frame."""
    x1, y1, x2, y2 = box
    w, h = (x2 - x1) + 2 * pad, (y2 - y1) + 2 * pad
    w, h = max(w, h / MAX_ASPECT, min_side), max(h, w / MAX_ASPECT, min_side)
    w, h = min(w, frame_w), min(h, frame_h)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    nx1 = int(round(min(max(cx - w / 2, 0), frame_w - w)))
    ny1 = int(round(min(max(cy - h / 2, 0), frame_h - h)))
    return nx1, ny1, min(frame_w, nx1 + int(round(w))), min(frame_h, ny1 + int(round(h)))


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def merge(boxes: Iterable[Box]) -> list[Box]:
    """Overlapping boxes replaced by their bounding box, until none overlap (the union may
    reach a third box: repeat)."""
    out = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                if _overlap(out[i], out[j]):
                    a, b = out[i], out.pop(j)
                    out[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    merged = True
                    break
            if merged:
                break
    return out


def plan_regions(
    motion: Iterable[Box],
    tracks: Iterable[np.ndarray | Box],
    frame_w: int,
    frame_h: int,
    *,
    min_side: int,
    min_face_px: float,
) -> list[Box]:
    """The regions to search: motion boxes padded by a face, track boxes padded by
    TRACK_MARGIN faces, all grown to `min_side` and square-ish, merged where they overlap."""
    grown = [grow(b, min_face_px, min_side, frame_w, frame_h) for b in motion]
    for t in tracks:
        x1, y1, x2, y2 = (float(v) for v in t[:4])
        face = max(x2 - x1, y2 - y1, min_face_px)
        box = (int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2)))
        grown.append(grow(box, TRACK_MARGIN * face, min_side, frame_w, frame_h))
    return merge(b for b in grown if b[2] > b[0] and b[3] > b[1])


class RegionPlanner:
    """Per frame: None (search the whole frame) or the regions to search. One per camera."""

    def __init__(self, settings: RegionsSettings, min_face_px: float):
        """`settings`: the camera's `detector.regions`."""
        self.settings = settings
        self.min_face_px = float(min_face_px)
        self.motion = MotionDetector(settings.motion_threshold)
        self._next_full: float | None = None  # monotonic time of the next full-frame search
        self._shape: tuple[int, ...] = ()
        self.last_area_fraction = 1.0

    def plan(self, image: np.ndarray, now: float, tracks: Iterable[np.ndarray]) -> list[Box] | None:
        """`now`: the frame's monotonic capture time. `tracks`: boxes of the live tracks."""
        h, w = image.shape[:2]
        # The background learns every frame, full-frame ones too.
        motion = self.motion.update(image)
        period = self.settings.full_frame_every_s
        due = (
            self._next_full is None
            or not (self._next_full - period <= now < self._next_full)  # due, or time went back
            or image.shape != self._shape
        )
        regions = None
        if not due:
            regions = plan_regions(
                motion,
                tracks,
                w,
                h,
                min_side=self.settings.min_region_px,
                min_face_px=self.min_face_px,
            )
            area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in regions) / float(w * h)
            if area > self.settings.max_area_fraction:
                regions = None
        if regions is None:
            self._next_full = now + period
            self._shape = image.shape
            self.last_area_fraction = 1.0
        else:
            self.last_area_fraction = area
        return regions
