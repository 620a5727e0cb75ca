"""Grabbers for the concrete source kinds: OpenCV (files, V4L2, network) and picamera2."""

from __future__ import annotations

import logging
import os

import cv2
import numpy as np

from edge.capture.source import SourceError

log = logging.getLogger(__name__)

NETWORK_OPEN_TIMEOUT_MS = 10_000
NETWORK_READ_TIMEOUT_MS = 5_000


def _sane_fps(value: float) -> float | None:
    return float(value) if value and 0 < value < 1000 else None


class OpenCVGrabber:
    """A cv2.VideoCapture: a file, a V4L2 device or a network stream.

    kind: 'file' (cap.read() failing means end of file: read() returns None),
    'v4l2' or 'network' (a failing read raises SourceError).
    """

    def __init__(
        self,
        target: str | int,
        *,
        kind: str,
        label: str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        self.kind = kind
        self.label = label
        if kind == "file":
            if not os.path.isfile(str(target)):
                raise SourceError(f"no such file: {target}")
            cap = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG)
        elif kind == "v4l2":
            if isinstance(target, str) and not os.path.exists(target):
                raise SourceError(f"no such device: {target}")
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        elif kind == "network":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                NETWORK_OPEN_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                NETWORK_READ_TIMEOUT_MS,
            ]
            cap = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG, params)
        else:
            raise ValueError(f"unknown kind {kind!r}")
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                {
                    "file": "cannot open: not a readable video file",
                    "v4l2": "cannot open the device (busy, or not a capture device)",
                    "network": "cannot open: no connection or no decodable stream",
                }[kind]
            )
        self._cap = cap
        if kind == "v4l2":
            self._configure_v4l2(width, height, fps)
        self.nominal_fps = _sane_fps(cap.get(cv2.CAP_PROP_FPS))

    def _configure_v4l2(self, width: int | None, height: int | None, fps: float | None) -> None:
        cap = self._cap
        if width or height or fps:
            # Most USB cameras reach their larger sizes/rates only with MJPEG.
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        if fps:
            cap.set(cv2.CAP_PROP_FPS, float(fps))
        got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if (width and got[0] != int(width)) or (height and got[1] != int(height)):
            log.warning(
                "%s: asked for %sx%s, the device gives %dx%d", self.label, width, height, *got
            )

    def read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if ok and image is not None:
            return image
        if self.kind == "file":
            return None
        raise SourceError("read failed (stream lost)")

    def close(self) -> None:
        self._cap.release()


def import_picamera2():
    """Import picamera2's Picamera2 class, or raise SourceError saying why not."""
    try:
        from picamera2 import Picamera2  # noqa: PLC0415 - lazy on purpose
    except Exception as e:  # ImportError, or libcamera failing to load
        raise SourceError(
            "picamera2 source: the 'picamera2' module cannot be imported "
            f"({type(e).__name__}: {e}). It needs a Raspberry Pi with libcamera: "
            "install it with 'sudo apt install python3-picamera2' and create the venv "
            "with --system-site-packages."
        ) from e
    return Picamera2


class PiCameraGrabber:
    """A Raspberry Pi camera through picamera2 (imported only here)."""

    def __init__(
        self,
        index: int,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        picamera2_cls = import_picamera2()
        self.label = f"picamera2:{index}"
        try:
            cam = picamera2_cls(index)
        except Exception as e:
            raise SourceError(f"{self.label}: cannot open camera: {e}") from e
        self._cam = cam
        try:
            main: dict = {"format": "RGB888"}  # libcamera's RGB888 is B,G,R in memory
            if width and height:
                main["size"] = (int(width), int(height))
            controls = {"FrameRate": float(fps)} if fps else {}
            config = cam.create_video_configuration(main=main, controls=controls)
            cam.configure(config)
            cam.start()
        except Exception as e:
            self.close()
            raise SourceError(f"{self.label}: cannot start camera: {e}") from e
        self.nominal_fps = _sane_fps(float(fps)) if fps else None

    def read(self) -> np.ndarray | None:
        image = self._cam.capture_array("main")
        if image.ndim == 3 and image.shape[2] == 4:  # XBGR8888 and friends
            image = image[:, :, :3]
        return np.ascontiguousarray(image)

    def close(self) -> None:
        cam = self._cam
        for step in (cam.stop, cam.close):
            try:
                step()
            except Exception as e:  # noqa: BLE001
                log.debug("%s: %s: %s", self.label, step.__name__, e)
