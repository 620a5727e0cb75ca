"""A throw-away local mosquitto broker on 127.0.0.1: plain listener, anonymous access.

Used by the daemon's demo mode (``mqtt.host: null``, via :func:`ensure_broker`) and by
``face-edge bench``. The broker's config and log live in a private temporary directory that
``close()`` removes.

    with LocalBroker() as broker:
        ... broker.host, broker.port, broker.client_settings() ...

The test suite's broker (passwords, TLS, outages) extends this class in
``tests/support/broker.py`` through the ``_*_lines``/``_ports`` hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.settings import MqttSettings

log = logging.getLogger(__name__)

_MOSQUITTO_CANDIDATES = (
    "/usr/sbin/mosquitto",
    "/usr/local/sbin/mosquitto",
    "/opt/homebrew/sbin/mosquitto",
)


class BrokerError(RuntimeError):
    """mosquitto could not be found, configured or started."""


def find_mosquitto() -> str:
    """Path of the mosquitto binary ($MOSQUITTO, PATH, then the usual sbin dirs)."""
    env = os.environ.get("MOSQUITTO")
    if env:
        return env
    found = shutil.which("mosquitto")
    if found:
        return found
    for cand in _MOSQUITTO_CANDIDATES:
        if os.access(cand, os.X_OK):
            return cand
    raise BrokerError("mosquitto not found (install the 'mosquitto' package or set $MOSQUITTO)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class LocalBroker:
    """A mosquitto process on 127.0.0.1 with a private config in a temp dir.

    ``port``: the listener's port (a free one when None). Starts in the constructor unless
    ``start=False``.
    """

    host = "127.0.0.1"

    def __init__(
        self, port: int | None = None, *, mosquitto: str | None = None, start: bool = True
    ) -> None:
        self.binary = mosquitto or find_mosquitto()
        self._fixed_port = port is not None
        self.port = int(port) if port is not None else free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="face-edge-mosquitto-"))
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: Any = None
        if start:
            self._start_or_close()

    def _start_or_close(self) -> None:
        """start(); on failure remove the temp dir too (a failed constructor has no owner)."""
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    # -- config: hooks a subclass extends ------------------------------------------------
    def _global_lines(self) -> list[str]:
        lines = ["per_listener_settings false"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # mosquitto started as root drops to user 'mosquitto', which cannot read our
            # private (0700) temp dir; stay root for this throw-away local broker.
            lines.append("user root")
        return lines + [
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
        ]

    def _access_lines(self) -> list[str]:
        return ["allow_anonymous true"]

    def _listener_lines(self) -> list[str]:
        return [f"listener {self.port} {self.host}"]

    def _ports(self) -> list[int]:
        """Ports that must accept connections before the broker counts as started."""
        return [self.port]

    def _repick_ports(self) -> None:
        """New free ports after 'Address already in use', unless pinned."""
        if not self._fixed_port:
            self.port = free_port()

    def _write_config(self) -> None:
        lines = self._global_lines() + self._access_lines() + self._listener_lines()
        self.config_path.write_text("\n".join(lines) + "\n")

    # -- process -------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until its listener(s) accept connections."""
        if self.is_running():
            return
        last_err = ""
        for attempt in range(3):
            if self._launch(timeout):
                return
            last_err = self.log_tail()
            self._terminate()
            # the port may have been taken in the meantime: pick new ones unless pinned
            if "Address already in use" in last_err and attempt < 2:
                self._repick_ports()
                continue
            break
        raise BrokerError(f"mosquitto did not start on {self.host}:{self.port}: {last_err[-800:]}")

    def _launch(self, timeout: float) -> bool:
        """One start attempt: True once every port listens, False when mosquitto exited or
        the time ran out."""
        self._write_config()
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 - closed in _terminate()
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if all(_port_open(self.host, p) for p in self._ports()):
                log.info("local mosquitto on %s:%d (pid %d)", self.host, self.port, self._proc.pid)
                return True
            time.sleep(0.03)
        return False

    def _terminate(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        """Stop mosquitto and delete its temp dir."""
        self._terminate()
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def client_settings(self) -> dict[str, Any]:
        """A partial ``mqtt`` config section pointing at this broker (plain, no credentials)."""
        return {
            "host": self.host,
            "port": self.port,
            "tls": {
                "enabled": False,
                "ca_file": None,
                "cert_file": None,
                "key_file": None,
                "verify": True,
            },
        }

    def __enter__(self) -> LocalBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"{type(self).__name__}({self.host}:{self.port}, {state})"


def ensure_broker(
    mqtt: MqttSettings | Mapping[str, Any],
) -> tuple[MqttSettings, LocalBroker | None]:
    """Demo mode helper: when ``mqtt.host`` is None start a LocalBroker.

    Returns ``(settings, broker)``: the settings pointing at the local broker (plain TCP, no
    credentials) and the broker to ``close()`` at shutdown; or the settings unchanged and
    None when a host is configured.
    """
    mqtt = MqttSettings.coerce(mqtt)
    if mqtt.host:
        return mqtt, None
    broker = LocalBroker()
    local = dataclasses.replace(
        mqtt,
        host=broker.host,
        port=broker.port,
        username=None,
        password_file=None,
        tls=dataclasses.replace(mqtt.tls, enabled=False),
    )
    log.warning(
        "mqtt.host is not set: started a local mosquitto on %s:%d for demo use",
        broker.host,
        broker.port,
    )
    return local, broker
