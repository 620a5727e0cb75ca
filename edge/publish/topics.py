"""MQTT topic names (see docs/DESIGN.md, "MQTT topics").

Camera and device names become topic levels, so they are sanitized: the MQTT wildcards
``+`` and ``#``, the level separator ``/``, control characters and whitespace are replaced
with ``_``; a leading ``$`` (reserved for broker topics such as ``$SYS``) too.
"""

from __future__ import annotations

import unicodedata

FACES = "faces"
STATUS = "status"
STATS = "stats"

STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"

_MAX_LEVEL_BYTES = 200


def _bad_char(ch: str) -> bool:
    if ch in "+#/" or ch.isspace():
        return True
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp", "Zs")


def sanitize_level(name: object) -> str:
    """Turn ``name`` into a safe, non-empty single MQTT topic level."""
    text = "" if name is None else str(name)
    out = "".join("_" if _bad_char(ch) else ch for ch in text)
    if out.startswith("$"):
        out = "_" + out[1:]
    # keep levels reasonably short (UTF-8 bytes), never cutting a character in half
    encoded = out.encode("utf-8")
    if len(encoded) > _MAX_LEVEL_BYTES:
        out = encoded[:_MAX_LEVEL_BYTES].decode("utf-8", errors="ignore")
    return out or "_"


def validate_prefix(prefix: str) -> str:
    """Check a configured topic prefix (it may have several levels, e.g. ``site1/face-edge``).

    Returns the prefix without surrounding slashes; raises ``ValueError`` when it is unusable.
    """
    if not isinstance(prefix, str):
        raise ValueError(f"mqtt.topic_prefix must be a string, got {type(prefix).__name__}")
    p = prefix.strip("/")
    if not p:
        raise ValueError("mqtt.topic_prefix must not be empty")
    if any(c in p for c in "+#\x00"):
        raise ValueError(f"mqtt.topic_prefix {prefix!r} must not contain '+', '#' or NUL")
    if "//" in p:
        raise ValueError(f"mqtt.topic_prefix {prefix!r} has an empty level")
    if p.startswith("$"):
        raise ValueError(f"mqtt.topic_prefix {prefix!r} must not start with '$'")
    return p


def faces_topic(prefix: str, device_id: str, camera: str) -> str:
    """``{prefix}/{device}/{camera}/faces``."""
    return f"{prefix}/{sanitize_level(device_id)}/{sanitize_level(camera)}/{FACES}"


def status_topic(prefix: str, device_id: str) -> str:
    """``{prefix}/{device}/status`` (retained online/offline, Last Will offline)."""
    return f"{prefix}/{sanitize_level(device_id)}/{STATUS}"


def stats_topic(prefix: str, device_id: str) -> str:
    """``{prefix}/{device}/stats`` (periodic JSON, QoS 0)."""
    return f"{prefix}/{sanitize_level(device_id)}/{STATS}"


def faces_filter(prefix: str) -> str:
    """Subscription filter for every device's and camera's face events."""
    return f"{prefix}/+/+/{FACES}"


def status_filter(prefix: str) -> str:
    """Subscription filter for every device's status."""
    return f"{prefix}/+/{STATUS}"


def shared(group: str, topic_filter: str) -> str:
    """MQTT 5 shared subscription ``$share/{group}/{filter}``."""
    return f"$share/{sanitize_level(group)}/{topic_filter}"


def parse_topic(prefix: str, topic: str) -> tuple[str, str | None, str] | None:
    """Split a topic under ``prefix`` into ``(device, camera or None, kind)``.

    ``kind`` is ``faces`` (with a camera), ``status`` or ``stats`` (camera None);
    other topics give None.
    """
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) == 3 and parts[2] == FACES and parts[0] and parts[1]:
        return parts[0], parts[1], FACES
    if len(parts) == 2 and parts[1] in (STATUS, STATS) and parts[0]:
        return parts[0], None, parts[1]
    return None
