"""Publishes face events over MQTT (paho-mqtt 2, callback API v2) via the SQLite spool.

Delivery is at-least-once:

* ``publish_event`` writes the event to the spool first, then wakes the sender thread.
* The sender thread hands spooled messages to paho in id order, at most ``max_inflight``
  unacknowledged at a time, and only while connected. ``on_publish`` (PUBACK for QoS 1)
  queues an ack that the sender thread turns into ``spool.ack(id)``.
* On every (re)connect paho's own retransmission queue is dropped and the sender starts
  again from the oldest spooled message, so the spool is the single source of truth;
  the broker may therefore see a message twice (consumers de-duplicate by ``event_id``).
  For the same reason a clean session is used: the spool, not broker session state,
  carries the pending messages.
* paho reconnects on its own with exponential backoff (``reconnect_min_s`` doubling up to
  ``reconnect_max_s``), also after TLS and credential failures: a broken broker never
  makes a tight retry loop, and ``stats()['connect_failures']`` counts the attempts.
* The spool is a :class:`~edge.publish.buffered.BufferedSpool`: when the disk cannot take
  events they wait in memory (bounded) and the problem shows in ``stats()``.

The Last Will is a retained ``offline`` on ``{prefix}/{device}/status``; a retained
``online`` is published on every connect and a retained ``offline`` by ``stop()``.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from edge.publish import topics
from edge.publish.buffered import BufferedSpool
from edge.publish.client import Client, make_client
from edge.publish.credentials import read_password
from edge.publish.errors import MqttConfigError
from edge.publish.spool import Spool
from edge.settings import MqttSettings, SpoolSettings

log = logging.getLogger(__name__)

DEFAULT_MAX_INFLIGHT = 16
# while connected, no PUBACK for this long with messages in flight: resend from the spool
STALL_RESEND_S = 60.0

# broker_state values reported by stats()
STATE_CONNECTING = "connecting"
STATE_CONNECTED = "connected"
STATE_DISCONNECTED = "disconnected"  # lost; paho is retrying
STATE_UNREACHABLE = "unreachable"  # TCP connect failed; retrying
STATE_TLS_ERROR = "tls_error"  # handshake/certificate problem; retrying
STATE_AUTH_FAILED = "auth_failed"  # broker refused the credentials; retrying
STATE_REFUSED = "refused"  # other CONNACK refusal; retrying
STATE_STOPPED = "stopped"


# OpenSSL X509_V_ERR_* codes -> what to do about them
_CLOCK_HINT = "; or this device's clock is wrong (check NTP)"
_VERIFY_HINTS = {
    9: " (the broker's certificate is not valid yet" + _CLOCK_HINT + ")",
    10: " (the broker's certificate is outside its validity period: renew it" + _CLOCK_HINT + ")",
    18: " (self-signed: set mqtt.tls.ca_file to it)",
    19: " (set mqtt.tls.ca_file to the CA that signed the broker's certificate)",
    20: " (set mqtt.tls.ca_file to the CA that signed the broker's certificate)",
    62: " (mqtt.host must be a name or IP address listed in the broker's certificate)",
}


def _describe_connect_error(exc: BaseException) -> tuple[str, str]:
    """(state, message) for an exception raised while opening the connection."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        hint = _VERIFY_HINTS.get(exc.verify_code, "")
        return STATE_TLS_ERROR, f"TLS certificate verification failed: {why}{hint}"
    if isinstance(exc, ssl.CertificateError | ssl.SSLError):
        return STATE_TLS_ERROR, f"TLS error: {exc}"
    if isinstance(exc, socket.gaierror):
        return STATE_UNREACHABLE, f"cannot resolve broker host: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return STATE_UNREACHABLE, "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return STATE_UNREACHABLE, "connection timed out"
    return STATE_UNREACHABLE, f"{type(exc).__name__}: {exc}"


class Publisher:
    """MQTT publisher of face events with a persistent spool.

    ``Publisher(mqtt, spool, device_id)`` with the ``mqtt`` and ``spool`` settings
    (``MqttSettings``/``SpoolSettings``; a mapping of some of their keys is taken too, the
    rest at their defaults).
    Connecting happens in the background: construction never blocks on the network and a
    broker that is down is not an error, and neither is a spool path that cannot be written
    (events wait in memory, see ``edge.publish.buffered``). Configuration problems raise
    ``MqttConfigError``. ``wall_clock`` stamps spool rows (a seam for clock-jump tests).
    """

    def __init__(
        self,
        mqtt: MqttSettings | Mapping[str, Any],
        spool_settings: SpoolSettings | Mapping[str, Any] | None,
        device_id: str,
        *,
        spool: Spool | BufferedSpool | None = None,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        start: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        cfg = MqttSettings.coerce(mqtt)
        self._read_settings(cfg, device_id)
        self.max_inflight = max(1, int(max_inflight))
        # the client before the spool: a bad TLS/password setting must not leave a spool open
        self._client = self._build_client(cfg)
        self._init_state()
        self._own_spool = spool is None
        if spool is None:
            spool = BufferedSpool.from_config(spool_settings, wall_clock=wall_clock)
        self.spool = spool
        self._sender = threading.Thread(target=self._sender_main, name="mqtt-sender", daemon=True)
        self._started = False
        if start:
            self.start()

    def _read_settings(self, cfg: MqttSettings, device_id: str) -> None:
        """Broker address, topics, QoS and timing from the ``mqtt`` section, checked (a
        mapping given in code has not been through the config check)."""
        host = cfg.host
        if not host:
            raise MqttConfigError(
                "mqtt.host is not set (use edge.publish.local_broker.ensure_broker() for the local demo broker)"
            )
        self.host = str(host)
        self.port = int(cfg.port)
        try:
            self.prefix = topics.validate_prefix(cfg.topic_prefix)
        except ValueError as e:
            raise MqttConfigError(str(e)) from e
        self.device_id = topics.sanitize_level(device_id)
        self.client_id = str(cfg.client_id or f"face-edge-{self.device_id}")
        self.qos = int(cfg.qos)
        if self.qos not in (0, 1, 2):
            raise MqttConfigError(f"mqtt.qos must be 0, 1 or 2, got {self.qos}")
        self.keepalive = int(cfg.keepalive_s)
        rmin, rmax = float(cfg.reconnect_min_s), float(cfg.reconnect_max_s)
        if rmin <= 0 or rmax < rmin:
            raise MqttConfigError(
                f"mqtt.reconnect_min_s/max_s must satisfy 0 < min <= max, got {rmin}/{rmax}"
            )
        self._reconnect_delay = (rmin, rmax)
        self.tls_enabled = bool(cfg.tls.enabled)
        self.status_topic = topics.status_topic(self.prefix, self.device_id)
        self.stats_topic = topics.stats_topic(self.prefix, self.device_id)

    def _build_client(self, cfg: MqttSettings) -> Client:
        """The paho client with credentials, TLS, Last Will and this publisher's callbacks."""
        username = cfg.username
        password = read_password(cfg.password_file) if username else None
        if cfg.password_file and not username:
            raise MqttConfigError("mqtt.password_file is set but mqtt.username is not")
        if password and not self.tls_enabled and not cfg.allow_insecure:
            raise MqttConfigError(
                "refusing to send the MQTT password over plain TCP: enable mqtt.tls "
                "or set mqtt.allow_insecure: true"
            )
        tls_cfg = cfg.tls if self.tls_enabled else None
        client = make_client(
            self.client_id,
            clean_session=True,  # the spool, not broker session state, carries what is pending
            tls=tls_cfg,
            username=username,
            password=password,
            reconnect_delay=self._reconnect_delay,
        )
        if tls_cfg is not None and tls_cfg.verify is False:
            log.warning("mqtt.tls.verify is false: the broker's certificate is NOT checked")
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_error = self._on_connect_error
        client.max_inflight_messages_set(self.max_inflight + 4)  # + status/stats messages
        client.will_set(self.status_topic, topics.STATUS_OFFLINE, qos=1, retain=True)
        return client

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._signals: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._gen = 0  # bumped by every successful connect (network thread)
        self._connected = False
        self._ever_connected = False
        self._state = STATE_CONNECTING
        self._last_error: str | None = None
        self._sent = 0
        self._acked = 0
        self._reconnects = 0
        self._connect_failures = 0
        self._inflight_n = 0
        self._stopping = False
        self._stopped = False
        self._idle = threading.Event()  # set while nothing is in flight
        self._idle.set()
        # sender thread only: paho mid -> spool id, valid for connection `_round_gen`
        self._inflight: dict[int, int] = {}
        self._round_gen = -1
        self._cursor = 0  # highest spool id handed to paho in this round
        self._progress = time.monotonic()  # last ack (or round start)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Begin connecting (background) and start the sender thread."""
        if self._started:
            return
        self._started = True
        log.info(
            "mqtt: connecting to %s:%d%s as %s (client id %s)",
            self.host,
            self.port,
            " with TLS" if self.tls_enabled else "",
            self.device_id,
            self.client_id,
        )
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self._client.loop_start()
        self._sender.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Drain in-flight messages briefly, publish retained ``offline``, disconnect.

        Undelivered messages stay in the spool for the next start.
        """
        if self._stopped:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        if self._started and self._connected:
            # let what is in flight (and what is already spooled) go out for part of the time
            drain_until = time.monotonic() + max(0.0, timeout) * 0.6
            while time.monotonic() < drain_until and self._connected:
                if self._idle.is_set() and self.spool.depth() == 0:
                    break
                time.sleep(0.02)
        self._stopping = True
        self._signals.put(("stop",))
        if self._started:
            if self._connected:
                try:
                    info = self._client.publish(
                        self.status_topic, topics.STATUS_OFFLINE, qos=1, retain=True
                    )
                    info.wait_for_publish(max(0.1, deadline - time.monotonic()))
                except (RuntimeError, ValueError) as e:
                    log.debug("mqtt: could not publish offline status: %s", e)
            self._client.disconnect()
            self._client.loop_stop()
            self._sender.join(max(0.1, deadline - time.monotonic()))
        with self._lock:
            self._connected = False
            self._state = STATE_STOPPED
            self._stopped = True
        log.info("mqtt: stopped (%d message(s) left in the spool)", self._spool_depth())
        if self._own_spool:
            self.spool.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- publishing ------------------------------------------------------------------------
    def publish_event(self, camera: str, event: dict[str, Any]) -> int:
        """Spool a face event for ``{prefix}/{device}/{camera}/faces``; returns its spool id.

        Raises ``ValueError`` for events that are not valid JSON (e.g. NaN values) and
        ``SpoolTooLargeError`` for an event bigger than the whole spool.
        """
        if self._stopped:
            raise RuntimeError("publisher is stopped")
        payload = json.dumps(
            event, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
        topic = topics.faces_topic(self.prefix, self.device_id, camera)
        msg_id = self.spool.put(topic, payload, self.qos)
        self._signals.put(("wake",))
        return msg_id

    def publish_stats(self, stats: dict[str, Any]) -> bool:
        """Publish a stats JSON (QoS 0, not retained, not spooled). False when not connected."""
        if not self._connected or self._stopping:
            return False
        payload = json.dumps(stats, separators=(",", ":"), default=str).encode("utf-8")
        info = self._client.publish(self.stats_topic, payload, qos=0, retain=False)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the spool is empty and nothing is in flight. True when drained."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.spool.depth() == 0 and self._idle.is_set():
                return True
            time.sleep(0.02)
        return self.spool.depth() == 0 and self._idle.is_set()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._connected:
                return True
            time.sleep(0.02)
        return self._connected

    @property
    def connected(self) -> bool:
        return self._connected

    def _spool_depth(self) -> int:
        try:
            return self.spool.depth()
        except Exception:  # noqa: BLE001 - closed spool
            return -1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                "connected": self._connected,
                "broker_state": self._state,
                "last_error": self._last_error,
                "sent": self._sent,
                "acked": self._acked,
                "inflight": self._inflight_n,
                "reconnects": self._reconnects,
                "connect_failures": self._connect_failures,
            }
        try:
            sp = self.spool.stats()
            out["spool_depth"] = sp["depth"]
            out["spool_evicted"] = sp["evicted"]
            # BufferedSpool: is the disk usable, and what waits in (or fell out of) memory
            out["spool_state"] = sp.get("state", "disk")
            out["spool_error"] = sp.get("error")
            out["spool_memory_depth"] = sp.get("memory_depth", 0)
            out["spool_memory_dropped"] = sp.get("memory_dropped", 0)
        except Exception:  # noqa: BLE001 - closed spool
            out["spool_depth"] = None
            out["spool_evicted"] = None
        return out

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._lock:
            changed = state != self._state or (error and error != self._last_error)
            self._state = state
            if error:
                self._last_error = error
        if changed and error:
            log.warning("mqtt: %s: %s", state, error)

    def _on_connect_error(self, exc: BaseException) -> None:
        state, msg = _describe_connect_error(exc)
        with self._lock:
            self._connect_failures += 1
        self._set_state(state, f"{self.host}:{self.port}: {msg}")

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            with self._lock:
                self._connect_failures += 1
            text = str(reason)
            low = text.lower()
            if "not authorized" in low or "bad user name" in low or "password" in low:
                self._set_state(
                    STATE_AUTH_FAILED,
                    f"broker refused the credentials ({text}); check mqtt.username / password",
                )
            else:
                self._set_state(STATE_REFUSED, f"broker refused the connection: {text}")
            return
        # the spool is the source of truth: forget paho's retransmission queue
        dropped = client.drop_out_messages()
        with self._lock:
            self._gen += 1
            self._connected = True
            self._state = STATE_CONNECTED
            if self._ever_connected:
                self._reconnects += 1
            self._ever_connected = True
        if dropped:
            log.debug(
                "mqtt: dropped %d paho-queued message(s); resending from the spool", len(dropped)
            )
        log.info("mqtt: connected to %s:%d", self.host, self.port)
        client.publish(self.status_topic, topics.STATUS_ONLINE, qos=1, retain=True)
        self._signals.put(("wake",))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        was = self._connected
        with self._lock:
            self._connected = False
        if self._stopping:
            return
        if was:
            self._set_state(STATE_DISCONNECTED, f"connection lost: {reason}")
        self._signals.put(("wake",))

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        # called with paho's internal lock held: only hand over, never block here
        self._signals.put(("ack", self._gen, mid, bool(reason is not None and reason.is_failure)))

    # -- sender thread ---------------------------------------------------------------------
    def _sender_main(self) -> None:
        while True:
            signals = self._next_signals()
            if any(s[0] == "stop" for s in signals):
                return
            try:
                self._sender_step(signals)
            except Exception as e:  # noqa: BLE001 - keep the sender alive
                log.exception("mqtt sender: %s", e)
                with self._lock:
                    self._last_error = f"sender: {e}"
                time.sleep(0.5)

    def _next_signals(self) -> list[tuple[Any, ...]]:
        """The next signal (a ``tick`` after 1 s of quiet) and everything queued behind it."""
        try:
            signals = [self._signals.get(timeout=1.0)]
        except queue.Empty:
            signals = [("tick",)]
        while True:
            try:
                signals.append(self._signals.get_nowait())
            except queue.Empty:
                return signals

    def _sender_step(self, signals: list[tuple[Any, ...]]) -> None:
        self._check_round()
        self._apply_acks(signals)
        self._fill_window()
        with self._lock:
            self._inflight_n = len(self._inflight)
        if self._inflight:
            self._idle.clear()
        else:
            self._idle.set()

    def _check_round(self) -> None:
        """Start over from the oldest spooled message after a (re)connect or a stall."""
        gen = self._gen
        if gen != self._round_gen:
            self._new_round(gen)
        elif (
            self._inflight
            and self._connected
            and time.monotonic() - self._progress > STALL_RESEND_S
        ):
            log.warning(
                "mqtt: no acknowledgement for %.0f s; resending from the spool", STALL_RESEND_S
            )
            self._client.drop_out_messages()
            self._new_round(gen)

    def _new_round(self, gen: int) -> None:
        self._round_gen, self._cursor = gen, 0
        self._inflight.clear()
        self._progress = time.monotonic()

    def _apply_acks(self, signals: list[tuple[Any, ...]]) -> None:
        done: list[int] = []
        for sig in signals:
            if sig[0] != "ack" or sig[1] != self._round_gen:
                continue
            spool_id = self._inflight.pop(sig[2], None)
            if spool_id is None:
                continue  # status/stats message, or stale
            if sig[3]:
                # negative ack (MQTT 5 only): stays spooled for the next round
                log.warning("mqtt: broker rejected message %d", spool_id)
                continue
            done.append(spool_id)
        if done:  # one transaction for all acks that queued up
            self._progress = time.monotonic()
            self.spool.ack_many(done)
            with self._lock:
                self._acked += len(done)

    def _fill_window(self) -> None:
        if not self._connected or self._stopping or self._gen != self._round_gen:
            return
        was_empty = not self._inflight
        self._send_more()
        if was_empty and self._inflight:
            self._progress = time.monotonic()

    def _send_more(self) -> None:
        """Hand spooled messages after the cursor to paho, up to ``max_inflight`` in flight."""
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for spool_id, topic, payload, qos in self.spool.pending(room, after_id=self._cursor):
            if self._gen != self._round_gen or not self._connected:
                break
            info = self._client.publish(topic, payload, qos=qos, retain=False)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                with self._lock:
                    self._last_error = f"publish failed: {mqtt.error_string(info.rc)}"
                break
            self._inflight[info.mid] = spool_id
            self._cursor = spool_id
            with self._lock:
                self._sent += 1
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                break  # connection just went away; next connect resends from the spool
        if self._inflight:
            self._idle.clear()

    def __repr__(self) -> str:
        return f"Publisher({self.host}:{self.port}, device={self.device_id!r}, state={self._state})"
