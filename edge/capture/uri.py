"""The camera source grammar, in one place: what `cameras[].source` may say, what it opens,
and how it is shown without its password.

    parse_source("rtsp://u:p@cam/s")     -> Source("network", "rtsp://u:p@cam/s")
    parse_source("file:///tmp/a%20b.mp4") -> Source("file", "/tmp/a b.mp4")
    parse_source("0") / parse_source(0)  -> Source("v4l2", 0)
    source_problem("/dev/video0")        -> "unsupported source '/dev/video0' (did you mean ...)"

The config check (`source_problem`) and the camera opener (`parse_source`) use the same
function, so a source that passes the check is one the daemon can open.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

REDACTED = "***"
SOURCE_FORMS = (
    "picamera2:0, v4l2:///dev/video0, a device index such as 0, rtsp://, rtsps://, "
    "http://, https://, file:///path/video.mp4, demo: or demo:crowd"
)
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
_DEVICE_INDEX = re.compile(r"^\d+$")


@dataclass(frozen=True, slots=True)
class Source:
    """A parsed source. kind: 'demo' (target: scene name), 'picamera2' (camera number),
    'v4l2' (device index or path), 'network' (the URL), 'file' (absolute path)."""

    kind: str
    target: str | int


def parse_source(source: str | int) -> Source:
    """Parse a camera source; raise ValueError saying what is wrong and what would work."""
    if isinstance(source, bool) or not isinstance(source, int | str):
        raise ValueError(f"a source is a URI string or a device index, not {source!r}")
    if isinstance(source, int):
        if source < 0:
            raise ValueError("a device index must be >= 0")
        return Source("v4l2", source)
    s = source.strip()
    if s != source:
        raise ValueError("remove the spaces around the source")
    if _DEVICE_INDEX.match(s):
        return Source("v4l2", int(s))
    if s.startswith("/dev/video"):
        raise ValueError(f"unsupported source {s!r} (did you mean 'v4l2://{s}'?)")
    if s.startswith("/") or s.startswith("./"):
        raise ValueError(f"unsupported source {s!r} (did you mean 'file://{Path(s).absolute()}'?)")
    scheme, sep, rest = s.partition(":")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(f"unsupported source {redact_uri(s)!r}: use {SOURCE_FORMS}")
    if scheme == "demo":
        from edge.capture.demo import scene_of  # the scene list lives with the renderer

        return Source("demo", scene_of(s))
    if scheme == "picamera2":
        if rest and not _DEVICE_INDEX.match(rest):
            raise ValueError(
                f"picamera2 source takes a camera number, e.g. 'picamera2:0', not {rest!r}"
            )
        return Source("picamera2", int(rest or 0))
    if scheme == "v4l2":
        device = rest[2:] if rest.startswith("//") else ""
        if _DEVICE_INDEX.match(device):
            return Source("v4l2", int(device))
        if not device.startswith("/"):
            raise ValueError("v4l2 source looks like 'v4l2:///dev/video0'")
        return Source("v4l2", device)
    if scheme == "file":
        parts = urllib.parse.urlsplit(s)
        path = urllib.parse.unquote(parts.path)
        if not rest.startswith("//") or parts.netloc not in ("", "localhost") or not path:
            raise ValueError("file source looks like 'file:///path/to/video.mp4'")
        return Source("file", path)
    if scheme in NETWORK_SCHEMES:
        try:
            parts = urllib.parse.urlsplit(s)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as e:
            raise ValueError(f"bad {scheme} URI: {e}") from None
        if not rest.startswith("//") or not parts.hostname:
            raise ValueError(f"{scheme} source needs a host, e.g. '{scheme}://192.168.1.20/stream'")
        return Source("network", s)
    raise ValueError(f"unsupported source scheme '{scheme}:': use {SOURCE_FORMS}")


def source_problem(source: object) -> str | None:
    """Why ``source`` is not a usable camera source, or ``None`` when it is (the config
    check; a value of the wrong type is left to the schema)."""
    if isinstance(source, bool) or not isinstance(source, int | str):
        return None
    try:
        parse_source(source)
    except ValueError as e:
        return str(e)
    return None


def redact_uri(uri: str) -> str:
    """``rtsp://user:secret@cam/stream`` -> ``rtsp://user:***@cam/stream``; other text unchanged."""
    if not isinstance(uri, str) or "@" not in uri:
        return uri
    try:
        parts = urllib.parse.urlsplit(uri)
        password = parts.password
    except ValueError:
        return uri
    if password is None:
        return uri
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:{REDACTED}@{hostport}").geturl()
