"""The one frame loop and the threads around it.

``run_frames`` is the loop every caller shares: frames in, ``processor.process`` on each,
the results and shots handed on, and the tracks' last shots flushed at the end (also on
error or stop). The frames come from a live ``FrameSource`` (``source_frames``: daemon,
preview, benchmark) or from a video read frame by frame on its own clock
(``VideoFrames``: offline enhance and the tools, where video time drives the tracker).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2

from edge.events import EventSink
from edge.pipeline.processor import EventBuilder, FaceProcessor, FrameResult
from edge.shots.best_shot import Shot
from edge.types import Frame

log = logging.getLogger(__name__)

# Shots waiting for enhancement: a full queue blocks the camera thread (nothing is lost).
SHOT_QUEUE_SIZE = 256


def run_frames(
    frames: Iterable[Frame],
    processor: FaceProcessor,
    *,
    on_result: Callable[[FrameResult], None] | None = None,
    on_shots: Callable[[list[Shot]], None] | None = None,
) -> None:
    """Process every frame; results go to ``on_result``, shots to ``on_shots`` (the
    shots of the tracks still open when the frames end are flushed to it too)."""
    try:
        for frame in frames:
            result = processor.process(frame)
            if on_result is not None:
                on_result(result)
            if on_shots is not None and result.shots:
                on_shots(result.shots)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:  # a generator over a live source: stop the source now
            close()
        last = processor.flush()
        if on_shots is not None and last:
            on_shots(last)


def source_frames(
    source,
    *,
    stop: threading.Event | None = None,
    deadline: float | None = None,
    poll_s: float = 0.5,
) -> Iterator[Frame]:
    """Start ``source`` and yield its frames until it ends, ``stop`` is set or the
    monotonic ``deadline`` passes; the source is stopped when the iteration ends."""
    source.start()
    try:
        while not (stop is not None and stop.is_set()):
            if deadline is not None and time.monotonic() >= deadline:
                return
            frame = source.read(timeout=poll_s)
            if frame is not None:
                yield frame
            elif getattr(source, "ended", False):
                return
    finally:
        source.stop()


class VideoFrames:
    """A video file frame by frame, as fast as it decodes, stamped with video time (frame
    number / fps), so trackers and timers see the video's clock, not the processing's.
    Broken or wrongly shaped frames are skipped and counted; so are the frames a truncated
    file promised but could not deliver."""

    def __init__(self, path: Path, *, max_frames: int | None = None, camera: str = ""):
        self.path = Path(path)
        self.max_frames = max_frames
        self.camera = camera
        self.frames = 0  # read from the file, broken ones included
        self.broken = 0
        self.fps = 25.0
        self.total: int | None = None

    def __iter__(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise OSError(f"cannot open video {self.path}")
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        self.total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        start_wall = time.time()
        size = None
        try:
            while self.max_frames is None or self.frames < self.max_frames:
                ok, image = cap.read()
                if not ok:
                    break
                video_t = self.frames / self.fps
                self.frames += 1
                if image is None or image.ndim != 3 or image.shape[2] != 3:
                    self.broken += 1
                    continue
                if size and image.shape != size:
                    self.broken += 1
                    continue
                size = image.shape
                yield Frame(
                    image=image,
                    index=self.frames - 1,
                    wall_time=start_wall + video_t,
                    mono_time=video_t,
                    camera=self.camera,
                )
        finally:
            cap.release()
        if self.max_frames is None and self.total and self.frames < self.total:
            self.broken += self.total - self.frames


class CameraWorker(threading.Thread):
    """One camera: the newest frames through the processor; shots go to the shared queue."""

    def __init__(
        self, name: str, source, processor: FaceProcessor, builder: EventBuilder, shots: queue.Queue
    ):
        super().__init__(name=f"camera-{name}", daemon=True)
        self.camera = name
        self.source = source
        self.processor = processor
        self.builder = builder
        self.shots = shots
        self.stop_event = threading.Event()
        self.faces = 0
        self.last_frame_mono: float | None = None
        self._fps_window: list[float] = []

    def run(self) -> None:
        try:
            run_frames(
                source_frames(self.source, stop=self.stop_event),
                self.processor,
                on_result=self._count,
                on_shots=self._queue,
            )
            if getattr(self.source, "ended", False):
                log.info("camera %s: source ended", self.camera)
        except Exception:
            log.exception("camera %s: pipeline failed", self.camera)
            raise

    def _count(self, result: FrameResult) -> None:
        self.faces += len(result.detections)
        self.last_frame_mono = time.monotonic()
        self._fps_window.append(self.last_frame_mono)

    def _queue(self, shots: list[Shot]) -> None:
        for shot in shots:
            self.shots.put((self.builder, shot))  # blocks when full: back-pressure, nothing lost

    def stop(self) -> None:
        self.stop_event.set()

    def stats(self) -> dict:
        now = time.monotonic()
        self._fps_window = [t for t in self._fps_window if now - t <= 5.0]
        span = (self._fps_window[-1] - self._fps_window[0]) if len(self._fps_window) > 1 else 0.0
        fps = (len(self._fps_window) - 1) / span if span > 0 else 0.0
        src = self.source.stats()
        return {
            "fps": round(fps, 2),
            "frames_processed": self.processor.frames,
            "faces_detected": self.faces,
            # Shot candidates turned down: not a face (face check), quality too low.
            "shots_rejected": dict(self.processor.selector.rejected),
            "detect_ms": round(self.processor.detect_ms.mean, 2),
            # Region-of-interest detection: share of frames searched whole, mean area searched.
            "detect_regions": self.processor.region_stats(),
            "enhance_ms": round(self.builder.enhance_ms.mean, 2),
            # Multi-frame restoration: frames each of the last 100 events was restored from.
            "frames_fused": round(self.builder.frames_fused.mean, 2),
            "source": {k: v for k, v in src.items() if k != "last_error" or v},
        }


class EventWorker(threading.Thread):
    """Enhances queued shots and hands the events to the sink (the MQTT publisher)."""

    def __init__(self, shots: queue.Queue, sink: EventSink, on_event=None):
        super().__init__(name="enhance", daemon=True)
        self.shots = shots
        self.sink = sink
        self.on_event = on_event
        self.events = 0
        self.errors = 0

    def run(self) -> None:
        while True:
            item = self.shots.get()
            if item is None:
                return
            builder, shot = item
            try:
                event, _, _ = builder(shot)
                self.sink.publish_event(builder.camera, event)
                self.events += 1
                if self.on_event:
                    self.on_event(event)
            except Exception:
                self.errors += 1
                log.exception("failed to build or publish an event for track %s", shot.track_id)
            finally:
                self.shots.task_done()
