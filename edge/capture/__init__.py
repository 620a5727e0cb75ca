"""Camera sources: Pi camera, USB (V4L2), IP cameras, video files and the demo clip.

`open_source(uri, camera=..., options=capture_settings)` returns a FrameSource (not
yet started). Use it as::

    src = open_source("rtsp://cam/stream", camera="door", options=camera.capture).start()
    while running:
        frame = src.read(timeout=1.0)   # newest frame, or None
    src.stop()

picamera2 is imported only when a ``picamera2:`` source is opened.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edge.capture.source import CallableGrabber, FrameSource, Grabber, SourceError
from edge.capture.uri import Source, parse_source, redact_uri, source_problem
from edge.settings import CaptureSettings

__all__ = [
    "CallableGrabber",
    "FrameSource",
    "Grabber",
    "SourceError",
    "Source",
    "open_source",
    "parse_source",
    "redact_uri",
    "source_problem",
]


def open_source(
    uri: str,
    *,
    camera: str,
    options: CaptureSettings | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> FrameSource:
    """A FrameSource for `uri` (call .start() on it).

    options: the camera's `capture` settings (None: the defaults).
    Raises ValueError for a malformed URI and SourceError for a source kind
    that cannot work on this machine (picamera2 without libcamera). A device
    that merely fails to open is not an error here: the source keeps retrying
    and reports it in stats()['state'] / ['last_error'].

    file:// and demo: sources loop when `loop` and pace at the file's frame
    rate when `realtime`; with realtime false they are read as fast as the
    consumer takes frames and never drop one (the reader waits for read()).
    Live sources ignore loop/realtime and always keep only the newest frame.
    wall_clock stamps Frame.wall_time (a seam for clock-jump tests).
    """
    # OpenCV is loaded when a source is opened, not when the config check reads a URI.
    from edge.capture.devices import OpenCVGrabber, PiCameraGrabber, import_picamera2

    opts = options or CaptureSettings()
    parsed = parse_source(uri)
    kind, target = parsed.kind, parsed.target
    label = redact_uri(str(uri).strip())
    width, height, fps = opts.width, opts.height, opts.fps
    common = {
        "camera": camera,
        "name": f"{camera}:{label}" if camera else label,
        "reconnect_min_s": float(opts.reconnect_min_s),
        "reconnect_max_s": float(opts.reconnect_max_s),
        "wall_clock": wall_clock,
    }

    if kind in ("file", "demo"):
        realtime = bool(opts.realtime)
        if kind == "file":
            path = str(target)

            def opener() -> Grabber:
                return OpenCVGrabber(path, kind="file", label=label)
        else:

            def opener() -> Grabber:
                from edge.capture.demo import ensure_demo_clip

                clip = ensure_demo_clip(scene=str(target))
                return OpenCVGrabber(str(clip), kind="file", label=label)

        return FrameSource(
            opener,
            loop=bool(opts.loop),
            realtime=realtime,
            lossless=not realtime,
            **common,
        )

    if kind == "picamera2":
        import_picamera2()  # fail now, clearly: retrying cannot help
        index = int(target)

        def opener() -> Grabber:
            return PiCameraGrabber(index, width=width, height=height, fps=fps)
    elif kind == "v4l2":

        def opener() -> Grabber:
            return OpenCVGrabber(
                target, kind="v4l2", label=label, width=width, height=height, fps=fps
            )
    elif kind == "network":

        def opener() -> Grabber:
            return OpenCVGrabber(str(target), kind="network", label=label)
    else:  # pragma: no cover - parse_source knows no other kinds
        raise ValueError(f"unsupported source kind {kind!r}")

    return FrameSource(opener, **common)
