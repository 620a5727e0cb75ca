"""The whole daemon path on a video, instrumented: decode -> detect -> track -> select ->
enhance -> publish to a real mosquitto -> PUBACK (QoS 1), either as fast as possible (the
reader never drops a frame) or paced at the video's frame rate (a slow pipeline drops
frames, as with a camera).

It is built from the daemon's own parts (CameraWorker and EventWorker threads, FaceProcessor,
EventBuilder, FrameSource, Publisher with its SQLite spool), with thin timing layers around
them. Runs in a process of its own, `python -m edge.commands.bench.pipeline`, which prints one JSON
line: so that peak RSS and CPU time are the daemon path's alone, not the model benchmark's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import queue
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.capture.devices import OpenCVGrabber
from edge.capture.source import FrameSource
from edge.commands.bench.timing import percentiles
from edge.config.load import load_settings
from edge.pipeline.build import build_camera
from edge.pipeline.processor import EventBuilder, FaceProcessor, FrameResult
from edge.pipeline.workers import SHOT_QUEUE_SIZE, CameraWorker, EventWorker
from edge.publish.buffered import BufferedSpool
from edge.publish.local_broker import LocalBroker
from edge.publish.publisher import Publisher
from edge.settings import Settings
from edge.shots.best_shot import Shot
from edge.types import Frame

CAMERA = "bench"
STAGES = ("decode", "detect", "track_select", "enhance", "event_build", "publish_ack")


class StageClock:
    """Per-stage durations and per-event moments (time.monotonic), from several threads."""

    def __init__(self, frame_limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self.frame_limit = frame_limit
        self.enough = threading.Event()  # set once frame_limit frames were processed
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.faces: list[int] = []
        self.full_frames = 0  # frames the detector searched whole (the rest: regions)
        self.area_searched = 0.0  # sum over frames of the fraction of the frame searched
        self.last_frame_done = 0.0
        self.triggered: dict[
            tuple[int, int], float
        ] = {}  # shot -> capture of the frame that sent it
        self.events: dict[str, dict[str, float]] = {}  # event_id -> moments
        self.spool_ids: dict[int, str] = {}

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self.ms[stage].append(ms)

    def event(self, event_id: str, **moments: float) -> None:
        with self._lock:
            self.events.setdefault(event_id, {}).update(moments)


class TimedGrabber:
    """A grabber whose read() (the decode) is timed."""

    def __init__(self, grabber: OpenCVGrabber, clock: StageClock):
        self._grabber = grabber
        self._clock = clock
        self.nominal_fps = grabber.nominal_fps

    def read(self):
        t0 = time.perf_counter()
        image = self._grabber.read()
        if image is not None:
            self._clock.add("decode", (time.perf_counter() - t0) * 1000.0)
        return image

    def close(self) -> None:
        self._grabber.close()


@dataclass
class TimedProcessor(FaceProcessor):
    """FaceProcessor that also records tracking + selection time and, for each shot it lets
    go, the capture time of the frame that made it go (the best shot itself may be older)."""

    clock: StageClock = field(default_factory=StageClock)

    def process(self, frame: Frame) -> FrameResult:
        t0 = time.perf_counter()
        result = super().process(frame)
        self.clock.add("detect", result.detect_ms)
        self.clock.add("track_select", (time.perf_counter() - t0) * 1000.0 - result.detect_ms)
        self.clock.faces.append(len(result.detections))
        self.clock.full_frames += result.regions is None
        self.clock.area_searched += self.planner.last_area_fraction if self.planner else 1.0
        self.clock.last_frame_done = time.monotonic()
        if self.clock.frame_limit and self.frames >= self.clock.frame_limit:
            self.clock.enough.set()
        for shot in result.shots:
            self.clock.triggered[(shot.track_id, shot.shot_index)] = frame.mono_time
        return result

    def flush(self) -> list[Shot]:
        shots = super().flush()
        now = time.monotonic()
        for shot in shots:
            self.clock.triggered[(shot.track_id, shot.shot_index)] = now
        return shots


@dataclass
class TimedBuilder(EventBuilder):
    """EventBuilder that records enhancement and event building (JPEG, base64) apart."""

    clock: StageClock = field(default_factory=StageClock)

    def __call__(self, shot: Shot, crop_paths=None) -> tuple[dict, bytes, bytes]:
        t0 = time.perf_counter()
        event, original, enhanced = super().__call__(shot, crop_paths)
        total = (time.perf_counter() - t0) * 1000.0
        enhance_ms = float(event["enhanced"]["ms"])
        self.clock.add("enhance", enhance_ms)
        self.clock.add("event_build", total - enhance_ms)
        trigger = self.clock.triggered.pop((shot.track_id, shot.shot_index), shot.mono_time)
        self.clock.event(event["event_id"], captured=shot.mono_time, triggered=trigger)
        return event, original, enhanced


class TimedSink:
    """The event sink: the publisher, noting when each event was spooled."""

    def __init__(self, publisher: Publisher, clock: StageClock):
        self.publisher, self.clock = publisher, clock

    def publish_event(self, camera: str, event: dict) -> int:
        spool_id = self.publisher.publish_event(camera, event)
        self.clock.event(event["event_id"], spooled=time.monotonic())
        self.clock.spool_ids[spool_id] = event["event_id"]
        return spool_id


class AckClock:
    """The publisher's spool (the daemon's own kind, same interface), noting when each
    message was acknowledged: its PUBACK reached the spool, which then deletes it, the
    moment the event is safe."""

    def __init__(self, spool: BufferedSpool):
        self._spool = spool
        self.acked_at: dict[int, float] = {}

    def __getattr__(self, name: str):
        return getattr(self._spool, name)

    def ack(self, msg_id: int) -> bool:
        self.acked_at.setdefault(int(msg_id), time.monotonic())
        return self._spool.ack(msg_id)

    def ack_many(self, msg_ids: list[int]) -> int:
        now = time.monotonic()
        for mid in msg_ids:
            self.acked_at.setdefault(int(mid), now)
        return self._spool.ack_many(msg_ids)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _latencies(clock: StageClock, acked_at: dict[int, float]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for spool_id, event_id in clock.spool_ids.items():
        ack, ev = acked_at.get(spool_id), clock.events.get(event_id, {})
        if ack is None or "captured" not in ev:
            continue
        out["capture_to_ack"].append((ack - ev["captured"]) * 1000.0)
        out["trigger_to_ack"].append((ack - ev["triggered"]) * 1000.0)
        out["publish_ack"].append((ack - ev["spooled"]) * 1000.0)
    return out


def run_pipeline(
    video: Path,
    *,
    paced: bool,
    max_seconds: float | None = None,
    max_frames: int | None = None,
    settings: Settings | None = None,
) -> dict:
    """One run over `video` (once, no loop, or until `max_seconds` or `max_frames`); the
    measurements as a dict."""
    settings = settings or load_settings(None)
    cam = settings.camera_for({"name": CAMERA, "source": f"file://{video.resolve()}"})
    clock = StageClock(max_frames)
    with tempfile.TemporaryDirectory(prefix="face-edge-bench-") as tmp, LocalBroker() as broker:
        spool_settings = dataclasses.replace(settings.spool, path=str(Path(tmp) / "spool.sqlite"))
        spool = AckClock(BufferedSpool.from_config(spool_settings))
        mqtt = settings.mqtt.merged(
            {**broker.client_settings(), "username": None, "password_file": None}
        )
        publisher = Publisher(mqtt, None, CAMERA, spool=spool)
        if not publisher.wait_connected(10):
            raise RuntimeError(f"no connection to the local broker: {publisher.stats()}")

        sink = TimedSink(publisher, clock)
        camera = build_camera(
            cam,
            device_id=CAMERA,
            name=CAMERA,
            processor_cls=TimedProcessor,
            builder_cls=TimedBuilder,
        )
        processor, builder, detector = camera.processor, camera.builder, camera.detector
        processor.clock = builder.clock = clock
        source = FrameSource(
            lambda: TimedGrabber(OpenCVGrabber(str(video), kind="file", label=video.name), clock),
            camera=CAMERA,
            realtime=paced,
            lossless=not paced,
        )
        shots: queue.Queue = queue.Queue(maxsize=SHOT_QUEUE_SIZE)
        worker = EventWorker(shots, sink)
        worker_cam = CameraWorker(CAMERA, source, processor, builder, shots)

        # Steady state, as in a daemon that has been running: a runtime's first call sets up
        # kernels and buffers (tens of ms), which would otherwise be most of a short run's
        # few enhancement samples.
        side = int(cam.best_shot.crop_size)
        builder.enhancer(np.zeros((side, side, 3), np.uint8))
        detector.detect(np.zeros((360, 640, 3), np.uint8))
        cpu0, t0 = _cpu_s(), time.monotonic()
        worker.start()
        worker_cam.start()
        deadline = t0 + max_seconds if max_seconds else float("inf")
        while worker_cam.is_alive():
            if clock.enough.wait(0.05) or time.monotonic() > deadline:
                worker_cam.stop()  # as the daemon stops: tracks end, their last shots go out
                break
        worker_cam.join(30)
        frames_end = clock.last_frame_done or time.monotonic()
        shots.join()  # every shot enhanced and handed to the publisher
        drained = publisher.flush(30)
        t_end, cpu1 = time.monotonic(), _cpu_s()
        shots.put(None)
        worker.join(5)
        publisher.stop(timeout=2)
        spool.close()

    src = source.stats()
    lat = _latencies(clock, spool.acked_at)
    clock.ms["publish_ack"] = lat["publish_ack"]
    frames = processor.frames
    return {
        "mode": "paced" if paced else "fast",
        "video": video.name,
        "frame_size": src["frame_size"],
        "video_fps": src["nominal_fps"],
        "frames": frames,
        "dropped": src["dropped"] + src["broken"],
        "seconds": round(frames_end - t0, 2),
        "fps": round(frames / max(frames_end - t0, 1e-9), 2),
        "detect_regions": {
            "enabled": processor.planner is not None,
            "full_frame_share": round(clock.full_frames / max(1, frames), 3),
            "area_fraction": round(clock.area_searched / max(1, frames), 3),
        },
        "faces_per_frame": {
            "mean": round(sum(clock.faces) / max(1, len(clock.faces)), 2),
            "max": max(clock.faces, default=0),
        },
        "cpu_percent": round(100.0 * (cpu1 - cpu0) / max(t_end - t0, 1e-9), 1),
        "cores": os.cpu_count(),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "events": len(lat["capture_to_ack"]),
        "events_published": worker.events,
        "all_acked": drained,
        "events_per_s": round(len(lat["capture_to_ack"]) / max(t_end - t0, 1e-9), 2),
        "latency_ms": percentiles(lat["capture_to_ack"]),
        "trigger_to_ack_ms": percentiles(lat["trigger_to_ack"]),
        "stage_ms": {s: percentiles(clock.ms.get(s, [])) for s in STAGES},
        # With its files: which precision the first stage runs in ("auto" times it at start).
        "detector": detector.info(with_files=True),
        "enhance_steps": [s["name"] for s in builder.enhancer.describe()],
    }


def video_fps(video: Path) -> float:
    cap = cv2.VideoCapture(str(video))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()


def run_in_subprocess(
    video: Path,
    *,
    paced: bool,
    max_seconds: float | None,
    max_frames: int | None = None,
    config: str | None = None,
) -> dict:
    """run_pipeline in a fresh Python process (see the module doc)."""
    cmd = [sys.executable, "-m", "edge.commands.bench.pipeline", "--video", str(video)]
    cmd += ["--paced"] if paced else []
    cmd += ["--max-seconds", str(max_seconds)] if max_seconds else []
    cmd += ["--max-frames", str(max_frames)] if max_frames else []
    cmd += ["--config", config] if config else []
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline run failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--paced", action="store_true", help="read at the video's frame rate")
    ap.add_argument("--max-seconds", type=float, help="stop the run after this long")
    ap.add_argument("--max-frames", type=int, help="stop the run after this many frames")
    ap.add_argument("--config", help="detector/tracker/best_shot/enhance settings to run with")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from edge.runtime.memory import limit_malloc_arenas

    limit_malloc_arenas()  # as `face-edge run` does, so the measured RSS is the daemon's
    settings = load_settings(args.config)
    result = run_pipeline(
        args.video,
        paced=args.paced,
        max_seconds=args.max_seconds,
        max_frames=args.max_frames,
        settings=settings,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
