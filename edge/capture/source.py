"""FrameSource: a reader thread in front of a camera, file or stream.

The reader thread pulls frames from a *grabber* (one opened device/stream,
see `Grabber`) and keeps only the newest one in a one-slot mailbox. A slow
consumer therefore never falls behind real time: the reader overwrites an
unread frame and counts it as `dropped`. The exception is a file played
as fast as possible (``lossless=True``): there the reader waits for the
consumer instead, so no frame is ever dropped.

A grabber that fails to open, raises while reading, or (when looping) ends
without delivering a single frame is closed and reopened with exponential
backoff between ``reconnect_min_s`` and ``reconnect_max_s``. Frames that are
not HxWx3 uint8 or whose size differs from the stream's established size are
counted as `broken` and skipped; a long run of them is treated as a lost
stream (so a camera that really changed its resolution is reopened and its
new size becomes the established one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from edge.types import Frame

log = logging.getLogger(__name__)

STATES = ("connecting", "streaming", "reconnecting", "ended", "stopped")
FPS_WINDOW_S = 3.0  # the measured fps is taken over this many seconds
MAX_BROKEN_RUN = 50  # this many broken frames in a row count as a lost stream
_RESYNC_S = 0.5  # a paced reader more than this late restarts its schedule


class SourceError(RuntimeError):
    """A source could not be opened or stopped delivering frames."""


@runtime_checkable
class Grabber(Protocol):
    """One opened device/stream. Created (opened) by the factory given to FrameSource.

    `read()` blocks until the next frame and returns it (BGR uint8 HxWx3
    expected), returns None at the end of a finite stream (a file), and
    raises when the device/stream failed. `close()` releases it; it is
    called from the reader thread. `nominal_fps` is the frame rate the
    device or file announces (None when unknown).
    """

    nominal_fps: float | None

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class CallableGrabber:
    """Adapts a callable (or an iterable) of images to the Grabber protocol.

    The callable returns the next image, or None (or raises StopIteration)
    at the end of the stream; any other exception counts as a failed read.
    Useful for tests and for feeding frames from code.
    """

    def __init__(
        self,
        frames: Callable[[], np.ndarray | None] | Iterable[np.ndarray],
        *,
        nominal_fps: float | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if callable(frames):
            self._next: Callable[[], np.ndarray | None] = frames
        else:
            it: Iterator[np.ndarray] = iter(frames)
            self._next = lambda: next(it, None)
        self.nominal_fps = nominal_fps
        self._on_close = on_close

    def read(self) -> np.ndarray | None:
        try:
            return self._next()
        except StopIteration:
            return None

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


class FrameSource:
    """Reader thread + one-slot mailbox in front of a grabber factory.

    opener: called (in the reader thread) to open the device; returns a
        Grabber or raises. Called again for every reconnect and every loop.
    loop: at the end of a finite stream, open it again (else: state 'ended').
    realtime: pace reading at the grabber's nominal_fps (files).
    lossless: never overwrite an unread frame; the reader waits for the
        consumer instead (a file read as fast as possible).
    """

    def __init__(
        self,
        opener: Callable[[], Grabber],
        *,
        camera: str = "",
        name: str = "",
        loop: bool = False,
        realtime: bool = False,
        lossless: bool = False,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 4.0,
        default_fps: float = 25.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._opener = opener
        # Frame.wall_time (an event's captured_at) comes from here; everything measured
        # (pacing, backoff, fps) uses time.monotonic, so a stepped clock changes no rate.
        self._wall = wall_clock
        self.camera = camera
        self.name = name or camera
        self.loop = loop
        self.realtime = realtime
        self.lossless = lossless
        self.reconnect_min_s = max(0.01, float(reconnect_min_s))
        self.reconnect_max_s = max(self.reconnect_min_s, float(reconnect_max_s))
        self.default_fps = default_fps

        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._slot: Frame | None = None

        self._state = "stopped"
        self._ended = False
        self._next_index = 0
        self._captured = 0
        self._delivered = 0
        self._dropped = 0
        self._broken = 0
        self._reconnects = 0
        self._loops = 0
        self._last_error: str | None = None
        self._frame_size: tuple[int, int] | None = None  # (width, height)
        self._shape: tuple[int, ...] | None = None  # established image shape
        self._nominal_fps: float | None = None
        self._times: deque[float] = deque()

    # ------------------------------------------------------------------ API
    def start(self) -> FrameSource:
        """Start the reader thread (no-op when it already runs)."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stop.clear()
            self._ended = False
            self._state = "connecting"
            self._thread = threading.Thread(
                target=self._run, name=f"capture-{self.name or 'source'}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the reader thread and release the device."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s: reader thread did not stop within %.0f s", self.name, timeout)
        with self._cond:
            self._state = "stopped"
            self._slot = None
            self._cond.notify_all()

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not yet delivered, waiting up to `timeout` seconds.

        Returns None on timeout, once a non-looping file has ended, and
        after stop(). Each frame is delivered at most once.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self._slot is None:
                if self._ended or self._stop.is_set():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._slot = self._slot, None
            self._delivered += 1
            self._cond.notify_all()
            return frame

    @property
    def ended(self) -> bool:
        """True once a non-looping finite source (a file) has played to its end."""
        return self._ended

    @property
    def state(self) -> str:
        return self._state

    def stats(self) -> dict:
        with self._cond:
            return {
                "source": self.name,
                "state": self._state,
                "frames": self._delivered,
                "captured": self._captured,
                "dropped": self._dropped,
                "broken": self._broken,
                "reconnects": self._reconnects,
                "loops": self._loops,
                "fps": round(self._measured_fps(), 2),
                "nominal_fps": self._nominal_fps,
                "last_error": self._last_error,
                "frame_size": list(self._frame_size) if self._frame_size else None,
                "ended": self._ended,
            }

    def __enter__(self) -> FrameSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FrameSource({self.name!r}, state={self._state!r})"

    # --------------------------------------------------------- reader thread
    def _set_state(self, state: str) -> None:
        with self._cond:
            if self._stop.is_set():
                return
            if state != self._state:
                log.info("%s: %s -> %s", self.name, self._state, state)
            self._state = state
            self._cond.notify_all()

    def _fail(self, err: BaseException | str) -> None:
        msg = err if isinstance(err, str) else (str(err) or type(err).__name__)
        with self._cond:
            if msg != self._last_error:
                log.warning("%s: %s", self.name, msg)
            self._last_error = msg

    def _run(self) -> None:
        failures = 0
        first = True
        while not self._stop.is_set():
            if not first:
                self._set_state("reconnecting")
                delay = min(self.reconnect_max_s, self.reconnect_min_s * 2 ** max(0, failures - 1))
                if self._stop.wait(delay):
                    break
                with self._cond:
                    self._reconnects += 1
            first = False
            outcome = self._session()
            if outcome == "stopped":
                break
            if outcome == "ended":
                with self._cond:
                    if not self._stop.is_set():
                        self._state = "ended"
                        self._ended = True
                    self._cond.notify_all()
                log.info("%s: end of stream", self.name)
                break
            if outcome == "loop":
                with self._cond:
                    self._loops += 1
                failures = 0
                first = True  # reopen at once, without backoff
                continue
            failures = failures + 1 if outcome == "failed" else 1  # 'lost': had frames

    def _session(self) -> str:
        """Open, pump frames until end/failure/stop. Returns the outcome:
        'stopped', 'ended', 'loop', 'failed' (no frame delivered) or 'lost'."""
        try:
            grabber = self._opener()
        except Exception as e:  # noqa: BLE001 - any open failure is retried
            self._fail(e)
            return "stopped" if self._stop.is_set() else "failed"
        got_frames = False
        try:
            fps = getattr(grabber, "nominal_fps", None)
            fps = float(fps) if fps and 0 < float(fps) < 1000 else None
            with self._cond:
                self._nominal_fps = fps
            period = 1.0 / (fps or self.default_fps) if self.realtime else 0.0
            t0 = time.monotonic()
            n = 0
            broken_run = 0
            while not self._stop.is_set():
                if period:
                    target = t0 + n * period
                    now = time.monotonic()
                    if now < target:
                        if self._stop.wait(target - now):
                            break
                    elif now - target > _RESYNC_S:
                        t0, n = now, 0
                    n += 1
                image = grabber.read()
                if image is None:
                    if self.loop:
                        return "loop" if got_frames else self._no_frames()
                    return "ended"
                mono, wall = time.monotonic(), self._wall()
                with self._cond:
                    index = self._next_index
                    self._next_index += 1
                    self._captured += 1
                problem = self._check(image)
                if problem:
                    broken_run += 1
                    with self._cond:
                        self._broken += 1
                    log.debug("%s: broken frame %d: %s", self.name, index, problem)
                    if broken_run >= MAX_BROKEN_RUN:
                        with self._cond:
                            self._shape = None  # let a reopened stream set a new size
                        raise SourceError(f"{broken_run} broken frames in a row ({problem})")
                    continue
                broken_run = 0
                if not got_frames:
                    got_frames = True
                    self._set_state("streaming")
                self._put(Frame(image, index, wall, mono, self.camera))
            return "stopped"
        except Exception as e:  # noqa: BLE001 - a failing device is reopened
            self._fail(e)
            if self._stop.is_set():
                return "stopped"
            return "lost" if got_frames else "failed"
        finally:
            try:
                grabber.close()
            except Exception as e:  # noqa: BLE001
                log.debug("%s: close failed: %s", self.name, e)

    def _no_frames(self) -> str:
        self._fail("stream ended without a single readable frame")
        return "failed"

    def _check(self, image: object) -> str | None:
        """Why `image` is not a usable frame, or None when it is."""
        if not isinstance(image, np.ndarray):
            return f"not an image ({type(image).__name__})"
        if image.dtype != np.uint8:
            return f"dtype {image.dtype}, expected uint8"
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            return f"shape {image.shape}, expected HxWx3"
        with self._cond:
            if self._shape is None:
                self._shape = image.shape
                self._frame_size = (image.shape[1], image.shape[0])
            elif image.shape != self._shape:
                return f"size {image.shape[1]}x{image.shape[0]} differs from the stream's {self._frame_size[0]}x{self._frame_size[1]}"
        return None

    def _put(self, frame: Frame) -> None:
        with self._cond:
            if self.lossless:
                while self._slot is not None and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
            if self._slot is not None:
                self._dropped += 1
            self._slot = frame
            self._times.append(frame.mono_time)
            while self._times and frame.mono_time - self._times[0] > FPS_WINDOW_S:
                self._times.popleft()
            self._cond.notify_all()

    def _measured_fps(self) -> float:
        times = self._times
        if len(times) < 2:
            return 0.0
        if time.monotonic() - times[-1] > FPS_WINDOW_S:
            return 0.0  # nothing arrived for a while
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else 0.0
