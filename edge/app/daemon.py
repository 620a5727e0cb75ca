"""`face-edge run`: cameras -> faces -> events -> MQTT, until stopped."""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge.pipeline.processor import EventBuilder, FaceProcessor
from edge.shots.best_shot import Shot

log = logging.getLogger("edge.app.daemon")

SHOT_QUEUE_SIZE = 256


def build_detector(settings: dict):
    from edge.detect.mtcnn import FaceDetector

    d = settings["detector"]
    return FaceDetector(
        backend=d["backend"],
        precision=d["precision"],
        threads=int(d["threads"]),
        min_face_px=float(d["min_face_px"]),
        score_threshold=float(d["score_threshold"]),
        models_dir=d.get("models_dir"),
    )


def build_enhancer(settings: dict):
    from edge.enhance import EnhancementStage

    shot = settings["best_shot"]
    return EnhancementStage.from_settings(
        settings["enhance"],
        crop_size=int(shot["crop_size"]),
        margin=float(shot["margin"]),
        models_dir=settings["detector"].get("models_dir"),
    )


class CameraWorker(threading.Thread):
    """Reads the newest frame, runs detection/tracking/selection, queues shots for enhancement."""

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
        self.source.start()
        try:
            while not self.stop_event.is_set():
                frame = self.source.read(timeout=0.5)
                if frame is None:
                    if getattr(self.source, "ended", False):
                        self._queue(self.processor.flush())
                        log.info("camera %s: source ended", self.camera)
                        break
                    continue
                result = self.processor.process(frame)
                self.faces += len(result.detections)
                self.last_frame_mono = time.monotonic()
                self._fps_window.append(self.last_frame_mono)
                self._queue(result.shots)
        except Exception:
            log.exception("camera %s: pipeline failed", self.camera)
            raise
        finally:
            self._queue(self.processor.flush())
            self.source.stop()

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
            "detect_ms": round(self.processor.detect_ms.mean, 2),
            # Region-of-interest detection: share of frames searched whole, mean area searched.
            "detect_regions": self.processor.region_stats(),
            "enhance_ms": round(self.builder.enhance_ms.mean, 2),
            "source": {k: v for k, v in src.items() if k != "last_error" or v},
        }


class EventWorker(threading.Thread):
    """Enhances queued shots and hands the events to the sink (the MQTT publisher)."""

    def __init__(self, shots: queue.Queue, sink, on_event=None):
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
                self.sink(builder.camera, event)
                self.events += 1
                if self.on_event:
                    self.on_event(event)
            except Exception:
                self.errors += 1
                log.exception("failed to build or publish an event for track %s", shot.track_id)
            finally:
                self.shots.task_done()


def describe_event(event: dict) -> str:
    q = event["quality"]["overall"]
    return (
        f"face event {event['event_id']} camera={event['camera']} track={event['track_id']} "
        f"reason={event['reason']} bbox={event['bbox']} det={event['det_score']:.2f} quality={q:.2f} "
        f"enhanced={event['enhanced']['width']}x{event['enhanced']['height']} in {event['enhanced']['ms']:.1f} ms"
    )


class Daemon:
    def __init__(
        self,
        cfg: dict,
        *,
        show: bool = True,
        out_dir: Path | None = None,
        config_path: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.cfg = cfg
        # Wall-clock time only stamps things (captured_at, spool rows, stats "ts"); every
        # duration, rate, interval and backoff uses time.monotonic. A seam for clock tests.
        self.wall_clock = wall_clock
        self.config_path = config_path
        self.config_error: str | None = None
        self.show = show
        self.out_dir = out_dir
        self.started = time.monotonic()
        from edge.config.load import resolve_device_id

        self.device_id = resolve_device_id(cfg)
        self.broker = None
        self.publisher = None
        self.viewer = None
        self.cameras: dict[str, CameraWorker] = {}
        self.shots: queue.Queue = queue.Queue(maxsize=SHOT_QUEUE_SIZE)
        self.worker: EventWorker | None = None
        self._stop = threading.Event()
        self._reload = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        from edge.config.load import default_spool_path
        from edge.publish.local_broker import ensure_broker
        from edge.publish.publisher import Publisher

        mqtt_cfg, self.broker = ensure_broker(dict(self.cfg["mqtt"]))
        if self.broker is not None and self.show:
            self._start_viewer(mqtt_cfg)
        spool_cfg = dict(self.cfg["spool"])
        spool_cfg["path"] = str(default_spool_path(self.cfg))
        self.publisher = Publisher(mqtt_cfg, spool_cfg, self.device_id, wall_clock=self.wall_clock)
        # The sink looks the publisher up on each event, so a reload can replace it.
        self.worker = EventWorker(
            self.shots, lambda cam, ev: self.publisher.publish_event(cam, ev), self._on_event
        )
        self.worker.start()
        for cam in self.cfg["cameras"]:
            if cam.get("enabled", True):
                self._start_camera(cam)

    def _start_camera(self, cam: dict) -> None:
        from edge.capture import open_source, redact_uri
        from edge.config.load import camera_settings
        from edge.publish.topics import sanitize_level

        settings = camera_settings(self.cfg, cam)
        name = sanitize_level(cam["name"])
        detector = build_detector(settings)
        processor = FaceProcessor.from_settings(detector, settings)
        builder = EventBuilder(
            enhancer=build_enhancer(settings),
            device_id=self.device_id,
            camera=name,
            detector_info=detector.info(),
            jpeg_quality=int(settings["enhance"].get("jpeg_quality", 90)),
        )
        source = open_source(
            cam["source"], camera=name, options=settings["capture"], wall_clock=self.wall_clock
        )
        worker = CameraWorker(name, source, processor, builder, self.shots)
        self.cameras[name] = worker
        worker.start()
        log.info(
            "camera %s: %s (detector %s %s)",
            name,
            redact_uri(cam["source"]),  # rtsp://user:password@... must not reach the log
            detector.info().get("backend"),
            detector.info().get("precision"),
        )

    def _start_viewer(self, mqtt_cfg: dict) -> None:
        """Demo mode: a reference subscriber on the local broker shows what really arrived."""
        from edge.commands.subscribe import run_subscriber

        out = self.out_dir or Path("var/demo-events")

        def view() -> None:
            try:
                run_subscriber(
                    mqtt_cfg["host"],
                    int(mqtt_cfg["port"]),
                    mqtt_cfg["topic_prefix"],
                    out,
                    stop_event=self._stop,
                )
            except Exception:
                log.exception("demo viewer failed")

        self.viewer = threading.Thread(target=view, name="viewer", daemon=True)
        self.viewer.start()

    def _on_event(self, event: dict) -> None:
        if self.show:
            log.info("%s", describe_event(event))

    def stats(self) -> dict:
        from edge.events import iso_utc

        return {
            "device_id": self.device_id,
            "ts": iso_utc(self.wall_clock()),  # when this sample was taken (wall clock)
            "uptime_s": round(time.monotonic() - self.started, 1),
            "cameras": {name: w.stats() for name, w in self.cameras.items()},
            "queue_depth": self.shots.qsize(),
            "events": self.worker.events if self.worker else 0,
            "event_errors": self.worker.errors if self.worker else 0,
            "mqtt": self.publisher.stats() if self.publisher else {},
            "config_error": self.config_error,
        }

    def stop(self, timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        for w in self.cameras.values():
            w.stop()
        for w in self.cameras.values():
            w.join(max(0.1, deadline - time.monotonic()))
        if self.worker:
            self.shots.put(None)
            self.worker.join(max(0.1, deadline - time.monotonic()))
        if self.publisher:
            self.publisher.stop(timeout=max(0.5, deadline - time.monotonic()))
        self._stop.set()
        if self.viewer:
            self.viewer.join(2.0)
        if self.broker:
            self.broker.close()

    # -- main loop -------------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def request_reload(self, *_: object) -> None:
        self._reload.set()

    def reload(self) -> None:
        """SIGHUP: validate the new config; if it is bad keep running on the old one and say
        why (log, stats, systemd STATUS); else add, remove and restart cameras as needed."""
        from edge.config.load import ConfigError, load_config

        try:
            new = load_config(self.config_path)
        except (ConfigError, OSError) as e:
            problems = getattr(e, "problems", None) or [str(e)]
            self.config_error = (
                f"reload refused, still running the previous config: {'; '.join(problems)}"
            )
            log.error("%s", self.config_error)
            return
        self.config_error = None
        old = self.cfg
        self.cfg = new
        if (old["mqtt"], old["spool"], old.get("device_id")) != (
            new["mqtt"],
            new["spool"],
            new.get("device_id"),
        ):
            log.warning(
                "reload: mqtt/spool/device_id changes need a restart; keeping the running connection"
            )
            new["mqtt"], new["spool"], new["device_id"] = (
                old["mqtt"],
                old["spool"],
                old.get("device_id"),
            )
        sections = ("capture", "detector", "tracker", "best_shot", "enhance")
        global_changed = any(old.get(k) != new.get(k) for k in sections)
        old_cams = {c["name"]: c for c in old["cameras"] if c.get("enabled", True)}
        new_cams = {c["name"]: c for c in new["cameras"] if c.get("enabled", True)}
        from edge.publish.topics import sanitize_level

        for name, cam in old_cams.items():
            if name not in new_cams or new_cams[name] != cam or global_changed:
                worker = self.cameras.pop(sanitize_level(name), None)
                if worker:
                    worker.stop()
                    worker.join(10)
                    log.info("reload: camera %s stopped", name)
        for name, cam in new_cams.items():
            if sanitize_level(name) not in self.cameras:
                self._start_camera(cam)
                log.info("reload: camera %s started", name)

    def _frames_flowing(self, within_s: float) -> bool:
        now = time.monotonic()
        return any(
            w.last_frame_mono is not None and now - w.last_frame_mono <= within_s
            for w in self.cameras.values()
        )

    def _status_text(self, stats: dict) -> str:
        text = _stats_line(stats)
        return f"{text} | {self.config_error}" if self.config_error else text

    def run_forever(self, max_seconds: float | None = None, max_events: int | None = None) -> int:
        from edge.app.sdnotify import Notifier

        notifier = Notifier()
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        self.start()
        interval = float(self.cfg["mqtt"]["stats_interval_s"])
        next_stats = time.monotonic() + min(interval, 5.0)
        next_status = 0.0
        ready = False
        wd = notifier.watchdog_s
        next_watchdog = 0.0
        try:
            while not self._stop.is_set():
                self._stop.wait(0.2)
                now = time.monotonic()
                if self._reload.is_set():
                    self._reload.clear()
                    notifier.reloading()
                    self.reload()
                    notifier.ready(self._status_text(self.stats()))
                # READY only once a camera delivers frames (the models are loaded by then).
                if not ready and (self._frames_flowing(60.0) or not self.cameras):
                    ready = True
                    notifier.ready("frames flowing")
                    log.info("ready: frames flowing")
                # The watchdog is fed only while frames really flow: a stuck camera restarts us.
                if wd and now >= next_watchdog and self._frames_flowing(wd / 2):
                    notifier.watchdog()
                    next_watchdog = now + wd / 3
                if notifier.enabled and now >= next_status:
                    notifier.status(self._status_text(self.stats()))
                    next_status = now + 5.0
                if now >= next_stats:
                    stats = self.stats()
                    self.publisher.publish_stats(stats)
                    log.info("stats: %s", self._status_text(stats))
                    next_stats = now + interval
                if max_seconds is not None and now - self.started >= max_seconds:
                    break
                if max_events is not None and self.worker.events >= max_events:
                    break
                if self.cameras and all(not w.is_alive() for w in self.cameras.values()):
                    log.info("all cameras ended")
                    break
        finally:
            notifier.stopping()
            self.stop()
        return 0


def _stats_line(stats: dict) -> str:
    cams = " ".join(
        f"{n}:{c['fps']}fps/{c['source'].get('state', '?')}/drop{c['source'].get('dropped', 0)}"
        for n, c in stats["cameras"].items()
    )
    m = stats["mqtt"]
    text = (
        f"{cams} events={stats['events']} queue={stats['queue_depth']} "
        f"broker={m.get('broker_state', '?')} spool={m.get('spool_depth', '?')}"
    )
    if m.get("spool_error"):  # the disk spool fails: events wait in memory
        text += (
            f" SPOOL IN MEMORY ({m.get('spool_memory_depth', 0)} held, "
            f"{m.get('spool_memory_dropped', 0)} dropped): {m['spool_error']}"
        )
    return text
