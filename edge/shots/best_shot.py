"""Decide which face shots of a track are worth publishing: the best one per interval,
one when the track ends, and a new one when the head turns markedly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.settings import BestShotSettings, MultiFrameSettings, TrackerSettings
from edge.shots.align import align_face
from edge.shots.face_check import FaceCheck, FaceCheckResult
from edge.shots.frame_buffer import BurstFrame, TrackFrames
from edge.shots.quality import Pose, Quality, estimate_pose, score_shot
from edge.track import Track
from edge.types import Detection, Frame

# The face with these landmarks in the restorer's framing (edge.enhance.burst.face_view).
FaceView = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Two pose-change shots of one track are at least this far apart, so a jittery
# landmark estimate cannot flood the broker.
MIN_POSE_SHOT_GAP_S = 1.0


@dataclass(slots=True)
class Shot:
    track_id: int
    detection: Detection
    crop: np.ndarray  # aligned, unenhanced BGR crop: what the camera really saw
    pose: Pose
    quality: Quality
    wall_time: float
    mono_time: float
    frame_size: tuple[int, int]  # width, height
    frame_index: int
    reason: str = ""
    shot_index: int = 0
    face: FaceCheckResult | None = None  # None: not checked (the check is off)
    # Multi-frame restoration: this shot's face first, then the track's frames to fuse with it
    # (empty: multi-frame is off or the face is too large to fuse).
    burst: list[BurstFrame] = field(default_factory=list)


@dataclass
class _TrackShots:
    candidate: Shot | None = None
    published: int = 0
    last_time: float | None = None
    last_pose: Pose | None = None
    last_quality: float = -1.0
    frames: TrackFrames | None = None


class BestShotSelector:
    def __init__(
        self,
        settings: BestShotSettings,
        min_hits: int = TrackerSettings().min_hits,
        face_check: FaceCheck | None = None,
        multi_frame: MultiFrameSettings | None = None,
        max_eye_px: float | None = None,
        face_view: FaceView | None = None,
    ):
        """`settings`: the camera's `best_shot` section;
        `min_hits`: the tracker's, below which a track is not trusted yet;
        `face_check`: scores every candidate (None: no check, every detection is a face);
        `multi_frame`: keep each track's recent faces for multi-frame restoration (None: off),
        only of faces seen with the eyes at most `max_eye_px` apart (None: every face), as only
        those are fused (`edge.enhance.restore_step.buffered_max_eye_px`); `face_view` makes
        the kept view of a face
        (the enhancement layer's, handed down by the pipeline)."""
        s = settings
        self.settings = s
        self.interval_s = float(s.publish_interval_s)
        self.first_after_s = float(s.first_shot_after_s)
        self.pose_change_deg = float(s.pose_change_deg)
        self.min_quality = float(s.min_quality)
        self.min_face_px = float(s.min_face_px)
        self.crop_size = int(s.crop_size)
        self.margin = float(s.margin)
        self.min_hits = min_hits
        self.face_check = face_check
        self.min_face_score = float(s.min_face_score)
        self.multi_frame = multi_frame if multi_frame is not None and multi_frame.enabled else None
        if self.multi_frame is not None and face_view is None:
            raise ValueError("multi-frame restoration needs face_view")
        self.face_view = face_view
        self.max_eye_px = max_eye_px
        # Candidates turned down, by reason: for the stats topic.
        self.rejected = {"not_face": 0, "low_quality": 0}

    def make_shot(self, frame: Frame, track_id: int, det: Detection) -> Shot:
        crop, matrix = align_face(frame.image, det.landmarks, self.crop_size, self.margin)
        pose = estimate_pose(det.landmarks)
        # The matrix says where the frame's 8x8 codec grid falls in the crop (blockiness).
        quality = score_shot(crop, det.height, pose, matrix=matrix)
        h, w = frame.image.shape[:2]
        return Shot(
            track_id=track_id,
            detection=det,
            crop=crop,
            pose=pose,
            quality=quality,
            wall_time=frame.wall_time,
            mono_time=frame.mono_time,
            frame_size=(w, h),
            frame_index=frame.index,
        )

    def on_frame(self, frame: Frame, seen: list[Track], ended: list[Track]) -> list[Shot]:
        """Shots to publish after this frame."""
        out: list[Shot] = []
        now = frame.mono_time
        for track in seen:
            if track.hits < self.min_hits or track.detection.height < self.min_face_px:
                continue
            st: _TrackShots = track.state.setdefault("shots", _TrackShots())
            shot = self.make_shot(frame, track.track_id, track.detection)
            if shot.quality.overall < self.min_quality:
                self.rejected["low_quality"] += 1
                continue
            own = self._keep_frame(frame, st, shot)
            better = st.candidate is None or shot.quality.overall > st.candidate.quality.overall
            pose_now = (
                st.published > 0
                and self._pose_changed(st, shot)
                and now - st.last_time >= MIN_POSE_SHOT_GAP_S
            )
            # The face check costs more than the quality score (a network run): only a shot
            # that may be published (a new best, or a pose change) gets it.
            if (better or pose_now) and not self.is_face(frame, shot):
                continue
            if (better or pose_now) and own is not None:
                shot.burst = st.frames.select(  # type: ignore[union-attr]
                    own, self.multi_frame.max_age_s, self.multi_frame.max_pose_delta_deg
                )  # fmt: skip
            if better:
                st.candidate = shot
            if st.published == 0:
                if track.age_s >= self.first_after_s:
                    out.append(self._publish(st, st.candidate, "first", now))
            elif pose_now:
                out.append(self._publish(st, shot, "pose_change", now))
            elif now - st.last_time >= self.interval_s:
                out.append(self._publish(st, st.candidate, "interval", now))
        for track in ended:
            out.extend(self.on_track_end(track))
        return out

    def _keep_frame(self, frame: Frame, st: _TrackShots, shot: Shot) -> BurstFrame | None:
        """Stores this frame's face in the track's ring for multi-frame restoration."""
        mf = self.multi_frame
        if mf is None:
            return None
        lm = np.asarray(shot.detection.landmarks, np.float64)
        if self.max_eye_px is not None and np.linalg.norm(lm[1] - lm[0]) > self.max_eye_px:
            return None  # too large to be fused: nothing to keep
        if st.frames is None:
            st.frames = TrackFrames(int(mf.max_frames))
        own = BurstFrame(
            view=self.face_view(frame.image, lm),  # type: ignore[misc]
            mono_time=frame.mono_time,
            wall_time=frame.wall_time,
            quality=shot.quality.overall,
            yaw=shot.pose.yaw,
            pitch=shot.pose.pitch,
        )
        st.frames.add(own)
        return own

    def is_face(self, frame: Frame, shot: Shot) -> bool:
        """Runs the face check on `shot` (its `face`); False (and counted) when it says the
        shot is not a face. True when the check is off."""
        if self.face_check is None:
            return True
        det = shot.detection
        shot.face = self.face_check.check(frame.image, det.landmarks, det.box)
        if shot.face.score < self.min_face_score:
            self.rejected["not_face"] += 1
            return False
        return True

    def on_track_end(self, track: Track) -> list[Shot]:
        st: _TrackShots | None = track.state.get("shots")
        if st is None or st.candidate is None:
            return []
        if st.published and st.candidate.quality.overall <= st.last_quality:
            return []
        return [self._publish(st, st.candidate, "track_end", track.last_seen)]

    def _pose_changed(self, st: _TrackShots, shot: Shot) -> bool:
        if st.last_pose is None:
            return False
        return (
            abs(shot.pose.yaw - st.last_pose.yaw) >= self.pose_change_deg
            or abs(shot.pose.pitch - st.last_pose.pitch) >= self.pose_change_deg
        )

    def _publish(self, st: _TrackShots, shot: Shot, reason: str, now: float) -> Shot:
        shot.reason = reason
        shot.shot_index = st.published
        st.published += 1
        st.last_time = now
        st.last_pose = shot.pose
        st.last_quality = shot.quality.overall
        st.candidate = None
        return shot
