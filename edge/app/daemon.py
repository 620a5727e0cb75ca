"""`face-edge run`: cameras -> faces -> events -> MQTT, until stopped."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge.pipeline.build import build_camera
from edge.pipeline.workers import SHOT_QUEUE_SIZE, CameraWorker, EventWorker
from edge.settings import CameraSettings, MqttSettings, Settings

log = logging.getLogger("edge.app.daemon")


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
        settings: Settings,
        *,
        show: bool = True,
        out_dir: Path | None = None,
        config_path: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        # Wall-clock time only stamps things (captured_at, spool rows, stats "ts"); every
        # duration, rate, interval and backoff uses time.monotonic. A seam for clock tests.
        self.wall_clock = wall_clock
        self.config_path = config_path
        self.config_error: str | None = None
        self.show = show
        self.out_dir = out_dir
        self.started = time.monotonic()
        from edge.config.load import resolve_device_id

        self.device_id = resolve_device_id(settings.device_id)
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
        from edge.publish.local_broker import ensure_broker
        from edge.publish.publisher import Publisher
        from edge.publish.spool import default_spool_path

        mqtt, self.broker = ensure_broker(self.settings.mqtt)
        if self.broker is not None and self.show:
            self._start_viewer(mqtt)
        spool = self.settings.spool
        spool = dataclasses.replace(spool, path=str(default_spool_path(spool.path)))
        self.publisher = Publisher(mqtt, spool, self.device_id, wall_clock=self.wall_clock)
        # The daemon is the sink: it hands each event to the current publisher.
        self.worker = EventWorker(self.shots, self, self._on_event)
        self.worker.start()
        for cam in self.settings.cameras:
            if cam.enabled:
                self._start_camera(cam)

    def publish_event(self, camera: str, event: dict) -> int:
        """EventSink: looked up on each event, so a reload can replace the publisher."""
        return self.publisher.publish_event(camera, event)

    def _start_camera(self, cam: CameraSettings) -> None:
        from edge.capture import redact_uri

        camera = build_camera(cam, device_id=self.device_id)
        source = camera.open_source(wall_clock=self.wall_clock)
        worker = CameraWorker(camera.name, source, camera.processor, camera.builder, self.shots)
        self.cameras[camera.name] = worker
        worker.start()
        info = camera.detector.info(with_files=True)
        log.info(
            "camera %s: %s (detector %s %s, first stage %s)",
            camera.name,
            redact_uri(str(cam.source)),  # rtsp://user:password@... must not reach the log
            info.get("backend"),
            info.get("precision"),
            info.get("first_stage_precision", info.get("precision")),
        )

    def _start_viewer(self, mqtt: MqttSettings) -> None:
        """Demo mode: a reference subscriber on the local broker shows what really arrived."""
        from edge.commands.subscribe import Subscriber, SubscriberOptions

        out = self.out_dir or Path("var/demo-events")

        def view() -> None:
            try:
                options = SubscriberOptions(mqtt.host, int(mqtt.port), mqtt.topic_prefix, out)
                Subscriber(options).run(self._stop)
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
        from edge.config.load import ConfigError, load_settings
        from edge.publish.topics import sanitize_level

        try:
            new = load_settings(self.config_path)
        except (ConfigError, OSError) as e:
            problems = getattr(e, "problems", None) or [str(e)]
            self.config_error = (
                f"reload refused, still running the previous config: {'; '.join(problems)}"
            )
            log.error("%s", self.config_error)
            return
        self.config_error = None
        old = self.settings
        kept = ("mqtt", "spool", "device_id")
        if any(getattr(old, k) != getattr(new, k) for k in kept):
            log.warning(
                "reload: mqtt/spool/device_id changes need a restart; keeping the running connection"
            )
            new = dataclasses.replace(new, **{k: getattr(old, k) for k in kept})
        self.settings = new
        # A camera's settings hold the global sections merged in: comparing them finds both
        # its own changes and changes of the sections it inherits.
        old_cams = {c.name: c for c in old.cameras if c.enabled}
        new_cams = {c.name: c for c in new.cameras if c.enabled}
        for name, cam in old_cams.items():
            if new_cams.get(name) != cam:
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
        interval = float(self.settings.mqtt.stats_interval_s)
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


# -- `face-edge run` -----------------------------------------------------------------------
def add_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--config", help="YAML config (default: the embedded demo config)")
    r.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    r.add_argument("--max-events", type=int, help="stop after this many events were published")
    r.add_argument("--quiet", action="store_true", help="do not show each event")
    r.add_argument("--demo-out", help="demo mode: where the built-in viewer stores received events")


def main(args: argparse.Namespace) -> int:
    from edge.commands.common import load_settings_or_exit, setup_logging
    from edge.runtime.manifest import ModelIntegrityError

    settings = load_settings_or_exit(args.config)
    setup_logging(settings.log_level)
    daemon = Daemon(
        settings,
        show=not args.quiet,
        out_dir=Path(args.demo_out) if args.demo_out else None,
        config_path=args.config,
    )
    try:
        return daemon.run_forever(max_seconds=args.max_seconds, max_events=args.max_events)
    except ModelIntegrityError as e:
        logging.getLogger("edge").error("%s", e)
        return 3
