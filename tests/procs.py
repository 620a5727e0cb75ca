"""Helpers for tests that run the real daemon as a process, and the stand-ins it talks to
(an HTTP MJPEG camera). Shared by test_daemon.py, test_faults.py and test_capture.py."""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import yaml


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def write_config(tmp_path: Path, video: Path, broker, **over) -> Path:
    """A daemon config: one file camera ``hall`` on ``video``, the test broker, fast stats and
    reconnects, the spool in ``tmp_path``. Keyword arguments replace top-level sections
    (``realtime`` and ``port`` are shortcuts)."""
    cfg = {
        "device_id": "test-box",
        "cameras": [{"name": "hall", "source": f"file://{video}"}],
        "capture": {"loop": False, "realtime": over.pop("realtime", False)},
        "best_shot": {"publish_interval_s": 2.0, "first_shot_after_s": 0.5},
        "mqtt": {
            "host": "127.0.0.1",
            "port": over.pop("port", broker.port),
            "stats_interval_s": 2,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
        },
        "spool": {"path": str(tmp_path / "spool.sqlite")},
    }
    cfg.update(over)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def daemon(config: Path, *extra: str, stdout: Any = subprocess.PIPE) -> subprocess.Popen:
    """``face-edge run --config CONFIG`` as a child process (stderr joins stdout)."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(config), *extra],
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def spool_ids(path: Path) -> set[str]:
    """event_ids waiting in a spool file."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT payload FROM spool").fetchall()
    finally:
        con.close()
    return {json.loads(r[0])["event_id"] for r in rows}


def stats_listener(broker, device: str = "test-box") -> tuple[mqtt.Client, list[dict]]:
    """Collects the device's stats messages (JSON) into the returned list."""
    got: list[dict] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    client.on_connect = lambda c, *a: c.subscribe(f"face-edge/{device}/stats")
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client, got


class MJPEGServer:
    """An HTTP MJPEG camera stand-in: multipart/x-mixed-replace JPEG frames at ~25 fps on
    127.0.0.1 (``port`` 0: a free one). ``close()`` is the camera going away."""

    def __init__(self, port: int = 0) -> None:
        self.stopping = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                while not outer.stopping.is_set():
                    img = np.full((120, 160, 3), (i * 7) % 256, np.uint8)
                    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    try:
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                    except OSError:
                        return
                    i += 1
                    time.sleep(0.04)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class JumpClock:
    """A wall clock that tests step by hours, as NTP or an operator steps a real one (the host
    clock cannot be stepped without root, and would disturb everything else on the machine).
    Only wall-clock stamps come from it; durations use time.monotonic, untouched."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def listening_sockets(pid: int) -> list[str]:
    """The process's listening TCP sockets and bound UDP sockets, as ``proto:local-address``
    lines of /proc/net (matched through the socket inodes in /proc/PID/fd)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            # TCP 0A = LISTEN; any UDP socket of ours would take datagrams from outside
            if inode in inodes and (proto.startswith("udp") or state == "0A"):
                found.append(f"{proto}:{local}")
    return found
