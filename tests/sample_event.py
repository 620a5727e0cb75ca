"""A small, valid face event (schema 1.0) for tests. Pure Python; no camera or model needed."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "edge" / "schemas" / "face_event.schema.json"

# 16x16 baseline JPEG (a coloured square on black), made with cv2.imencode
TINY_JPEG_B64 = (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsj"
    "HBYWICwgIyYnKSopGR8tMC0oMCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo"
    "KCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCj/wAARCAAQABADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDwv4a+BP8AhNv7R/4mP2H7H5f/ACw83fv3f7Qxjb+tHxK8Cf8A"
    "CE/2d/xMft32zzP+WHlbNm3/AGjnO79KPhr47/4Qn+0f+Jd9u+2eX/y38rZs3f7Jznd+lHxK8d/8Jt/Z3/Eu+w/Y"
    "/M/5b+bv37f9kYxt/WvL/wBt+u/9Ovl2+/f+rHX+49h/f+ff7tj/2Q=="
)


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def make_event(**overrides: Any) -> dict[str, Any]:
    """A valid event with a fresh event_id; keyword arguments replace top-level fields."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event: dict[str, Any] = {
        "schema_version": "1.0",
        "event_id": uuid.uuid4().hex,
        "device_id": "test-device",
        "camera": "front-door",
        "track_id": 7,
        "shot_index": 0,
        "reason": "first",
        "captured_at": now,
        "frame_size": {"width": 640, "height": 480},
        "bbox": [100, 80, 64, 80],
        "det_score": 0.97,
        "landmarks": [
            [118.5, 105.0],
            [146.0, 104.2],
            [132.1, 120.7],
            [121.0, 138.3],
            [143.9, 137.6],
        ],
        "pose": {"yaw": 4.5, "pitch": -2.0, "roll": 1.2},
        "quality": {
            "overall": 0.81,
            "sharpness": 0.7,
            "size": 0.9,
            "brightness": 0.85,
            "frontalness": 0.95,
        },
        "original": {"width": 16, "height": 16, "format": "jpeg", "jpeg_b64": TINY_JPEG_B64},
        "enhanced": {
            "width": 16,
            "height": 16,
            "format": "jpeg",
            "jpeg_b64": TINY_JPEG_B64,
            "stages": [
                {"name": "clahe", "kind": "classical", "version": "1", "params": {"clip": 2.0}},
                {"name": "denoise", "kind": "classical", "version": "1"},
            ],
            "ms": 3.2,
        },
        "detector": {"name": "mtcnn", "version": "1.0", "backend": "onnx", "precision": "int8"},
    }
    event.update(copy.deepcopy(overrides))
    return event
