"""The daemon as systemd runs it: sd_notify READY/STATUS/WATCHDOG over a real socket,
SIGHUP reloads (a bad config is refused and the old one keeps running), SIGTERM exits
cleanly within 10 s leaving `offline` retained."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from edge.capture.demo import make_demo_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_demo_clip(
        tmp_path_factory.mktemp("v") / "c.mp4", seconds=4.0, fps=25, size=(640, 360)
    )


def config_text(video: Path, broker, spool: Path, cameras: list[str]) -> str:
    return yaml.safe_dump(
        {
            "device_id": "svc",
            "cameras": [{"name": n, "source": f"file://{video}"} for n in cameras],
            "capture": {"loop": True, "realtime": True},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "stats_interval_s": 2},
            "spool": {"path": str(spool)},
        }
    )


class NotifySocket:
    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m for m in list(self.messages)):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


def retained_status(broker) -> str | None:
    got: list[str] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda cl, u, m: got.append(m.payload.decode())
    c.connect(broker.host, broker.port)
    c.subscribe("face-edge/svc/status")
    c.loop_start()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()
    return got[-1] if got else None


def test_notify_reload_and_terminate(tmp_path, clip, mosquitto):
    cfg = tmp_path / "config.yaml"
    spool = tmp_path / "spool.sqlite"
    cfg.write_text(config_text(clip, mosquitto, spool, ["a"]))
    notify = NotifySocket(tmp_path / "notify.sock")
    log = open(tmp_path / "daemon.log", "w+")
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(cfg), "--quiet"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        assert notify.wait_for("READY=1", 60), notify.messages
        assert notify.wait_for("WATCHDOG=1", 5), notify.messages
        assert notify.wait_for("STATUS=", 10)
        assert retained_status(mosquitto) == "online"

        # A broken config on SIGHUP is refused; the daemon keeps running the old one.
        cfg.write_text("cameras:\n  - name: a\n    source: 'ftp://x'\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None
        log.flush()
        text = Path(log.name).read_text()
        assert "reload refused" in text and "cameras[0].source" in text
        n = notify.messages.count("WATCHDOG=1")
        time.sleep(2)
        assert notify.messages.count("WATCHDOG=1") > n  # frames still flow: the watchdog is fed

        # A good config adds a camera without a restart.
        cfg.write_text(config_text(clip, mosquitto, spool, ["a", "b"]))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while (
            "reload: camera b started" not in Path(log.name).read_text()
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert "reload: camera b started" in Path(log.name).read_text()

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - t0 < 10
        assert notify.wait_for("STOPPING=1", 1)
        assert retained_status(mosquitto) == "offline"
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
        log.close()


def test_ready_and_watchdog_wait_for_frames(tmp_path, clip, mosquitto):
    """No READY and no watchdog while the camera delivers nothing; both once frames flow."""
    video = tmp_path / "later.mp4"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_text(video, mosquitto, tmp_path / "spool.sqlite", ["cam"]))
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(cfg), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert notify.wait_for("STATUS=", 15)
        time.sleep(3)
        assert not any("READY=1" in m or "WATCHDOG=1" in m for m in notify.messages)
        video.write_bytes(clip.read_bytes())  # the camera comes (back)
        assert notify.wait_for("READY=1", 40), notify.messages
        assert notify.wait_for("WATCHDOG=1", 5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        notify.close()
