"""Build face events in the published form (see edge/schemas/face_event.schema.json)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Protocol

import cv2
import numpy as np

from edge.enhance import EnhanceResult
from edge.shots.best_shot import Shot

SCHEMA_VERSION = "1.0"


class EventSink(Protocol):
    """Where finished events go: the MQTT publisher in the daemon, a timed wrapper in the
    benchmark. Returns the sink's own id for the event (the publisher's spool row)."""

    def publish_event(self, camera: str, event: dict) -> object: ...


def iso_utc(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def crop_field(jpeg: bytes, image: np.ndarray, path: str | None = None) -> dict:
    """A crop as the event carries it: inline base64, or a relative file path (offline form)."""
    h, w = image.shape[:2]
    out: dict = {"width": int(w), "height": int(h), "format": "jpeg"}
    if path is None:
        out["jpeg_b64"] = base64.b64encode(jpeg).decode("ascii")
    else:
        out["path"] = path
    return out


def build_event(
    shot: Shot,
    enhanced: EnhanceResult,
    *,
    device_id: str,
    camera: str,
    detector_info: dict,
    jpeg_quality: int = 90,
    event_id: str | None = None,
    crop_paths: tuple[str, str] | None = None,
) -> tuple[dict, bytes, bytes]:
    """Returns (event, original JPEG bytes, enhanced JPEG bytes). With crop_paths the event
    refers to files (original, enhanced) instead of carrying the JPEGs inline."""
    event_id = event_id or str(uuid.uuid4())
    det = shot.detection
    original_jpeg = encode_jpeg(shot.crop, jpeg_quality)
    enhanced_jpeg = encode_jpeg(enhanced.image, jpeg_quality)
    orig_path, enh_path = crop_paths if crop_paths else (None, None)
    enhanced_field = crop_field(enhanced_jpeg, enhanced.image, enh_path)
    enhanced_field["stages"] = enhanced.stages
    enhanced_field["ms"] = round(enhanced.ms, 2)
    enhanced_field["frames_fused"] = int(enhanced.frames_fused)
    if enhanced.frames_fused > 1:
        enhanced_field["fused_frames"] = [iso_utc(t) for t in enhanced.fused_times]
    event = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "device_id": device_id,
        "camera": camera,
        "track_id": int(shot.track_id),
        "shot_index": int(shot.shot_index),
        "reason": shot.reason,
        "captured_at": iso_utc(shot.wall_time),
        "frame_size": {"width": int(shot.frame_size[0]), "height": int(shot.frame_size[1])},
        "bbox": det.xywh(),
        "det_score": round(float(det.score), 4),
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in det.landmarks],
        "pose": shot.pose.as_dict(),
        "quality": shot.quality.as_dict(),
        **({"face_check": shot.face.as_dict()} if shot.face is not None else {}),
        "detector": detector_info,
        "original": crop_field(original_jpeg, shot.crop, orig_path),
        "enhanced": enhanced_field,
    }
    return event, original_jpeg, enhanced_jpeg
