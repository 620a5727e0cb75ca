"""Reference central-side consumer: ``face-edge subscribe --out DIR``.

Subscribes to ``{prefix}/+/+/faces`` (and ``{prefix}/+/status``) and stores every event as

    DIR/{device}/{camera}/{event_id}.json          (offline form: crops point to the files)
    DIR/{device}/{camera}/{event_id}_original.jpg
    DIR/{device}/{camera}/{event_id}_enhanced.jpg

Events are de-duplicated by ``event_id`` (the edge delivers at least once): a repeated
delivery writes nothing and is counted. Files are written atomically, JPEGs first, so a
JSON file present means the event is complete. With ``--group`` several subscribers share
the stream through an MQTT 5 shared subscription (``$share/{group}/...``); with
``--client-id`` the broker keeps a persistent session that queues events while the
subscriber is away.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.publish import topics
from edge.publish.client import make_client
from edge.publish.credentials import read_password
from edge.publish.errors import MqttConfigError

log = logging.getLogger(__name__)

_EVENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._-]")
SESSION_EXPIRY_S = 7 * 24 * 3600


def load_event_schema() -> dict[str, Any]:
    """The face event JSON Schema shipped in ``edge/schemas``."""
    from importlib import resources

    text = resources.files("edge").joinpath("schemas/face_event.schema.json").read_text("utf-8")
    return json.loads(text)


def _make_validator() -> Any:
    try:
        import jsonschema
    except ImportError:  # runtime installs need not have it
        return None
    return jsonschema.Draft202012Validator(load_event_schema())


def _safe_component(name: str) -> str:
    """A topic level as a single, harmless path component."""
    s = _UNSAFE_PATH_CHARS.sub("_", name)[:128]
    if not s or s.startswith("."):
        s = "_" + s
    return s


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class SubscriberResult:
    received: int = 0  # face event messages received (including duplicates and invalid ones)
    stored: int = 0
    duplicates: int = 0
    invalid: int = 0  # not stored: not JSON, bad event_id, bad base64 ...
    schema_errors: int = 0  # stored, but not valid against the schema
    status_messages: int = 0
    error: str | None = None  # fatal: why the subscriber gave up
    event_ids: list[str] = field(default_factory=list)  # stored, in arrival order


class _EventStore:
    def __init__(self, out_dir: Path, validator: Any, emit: Callable[[str], None]) -> None:
        self.out = Path(out_dir)
        self.validator = validator
        self.emit = emit
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.result = SubscriberResult()

    def handle_event(self, device: str, camera: str, payload: bytes) -> None:
        r = self.result
        with self.lock:
            r.received += 1
            try:
                event = json.loads(payload)
                if not isinstance(event, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as e:
                r.invalid += 1
                self.emit(f"INVALID {device}/{camera}: not a JSON event ({e})")
                return
            event_id = event.get("event_id")
            if not isinstance(event_id, str) or not _EVENT_ID_RE.match(event_id):
                r.invalid += 1
                self.emit(f"INVALID {device}/{camera}: missing or unusable event_id {event_id!r}")
                return
            ddir = self.out / _safe_component(device) / _safe_component(camera)
            json_path = ddir / f"{event_id}.json"
            if event_id in self.seen or json_path.exists():
                self.seen.add(event_id)
                r.duplicates += 1
                self.emit(f"DUP {device}/{camera} {event_id}")
                return
            stored = copy.copy(event)
            images: list[tuple[str, bytes]] = []
            try:
                for kind in ("original", "enhanced"):
                    crop = event.get(kind)
                    if not isinstance(crop, dict) or "jpeg_b64" not in crop:
                        continue
                    data = base64.b64decode(crop["jpeg_b64"], validate=True)
                    if not data.startswith(b"\xff\xd8"):
                        raise ValueError(f"{kind}.jpeg_b64 is not a JPEG")
                    fname = f"{event_id}_{kind}.jpg"
                    images.append((fname, data))
                    new_crop = {k: v for k, v in crop.items() if k != "jpeg_b64"}
                    new_crop["path"] = fname
                    stored[kind] = new_crop
            except (binascii.Error, ValueError, TypeError) as e:
                r.invalid += 1
                self.emit(f"INVALID {device}/{camera} {event_id}: {e}")
                return
            schema_note = ""
            if self.validator is not None:
                err = next(iter(self.validator.iter_errors(event)), None)
                if err is not None:
                    r.schema_errors += 1
                    where = "/".join(str(p) for p in err.absolute_path) or "(top)"
                    schema_note = f" SCHEMA-ERROR at {where}: {err.message[:120]}"
            try:
                ddir.mkdir(parents=True, exist_ok=True)
                for fname, data in images:
                    _write_atomic(ddir / fname, data)
                _write_atomic(json_path, json.dumps(stored, indent=1).encode("utf-8") + b"\n")
            except OSError as e:
                r.invalid += 1
                self.emit(f"ERROR {device}/{camera} {event_id}: cannot write: {e}")
                return
            self.seen.add(event_id)
            r.stored += 1
            r.event_ids.append(event_id)
            q = (
                event.get("quality", {}).get("overall")
                if isinstance(event.get("quality"), dict)
                else None
            )
            qs = f" q={q:.2f}" if isinstance(q, int | float) else ""
            self.emit(
                f"EVENT {device}/{camera} {event_id} track={event.get('track_id')} "
                f"shot={event.get('shot_index')} reason={event.get('reason')}{qs} "
                f"at={event.get('captured_at')} -> {json_path}{schema_note}"
            )

    def handle_status(self, device: str, payload: bytes) -> None:
        with self.lock:
            self.result.status_messages += 1
        self.emit(f"STATUS {device} {payload.decode('utf-8', errors='replace')[:32]}")


@dataclass(frozen=True)
class SubscriberOptions:
    """Where to connect, what to subscribe to and when to stop.

    ``client_id`` given: persistent session (MQTT 3.1.1 clean_session false, or MQTT 5
    clean_start false + session expiry), so the broker queues QoS 1 events while away.
    ``shared_group``: MQTT 5 shared subscription ``$share/{group}/{prefix}/+/+/faces``.
    The subscriber ends after ``max_events`` stored or ``timeout`` seconds (None: never).
    """

    host: str
    port: int
    topic_prefix: str
    out_dir: str | os.PathLike[str]
    shared_group: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_verify: bool = True
    client_id: str | None = None
    qos: int = 1
    keepalive: int = 30
    max_events: int | None = None
    timeout: float | None = None
    validate: bool = True
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 10.0

    @property
    def mqtt5(self) -> bool:
        return self.shared_group is not None  # shared subscriptions need MQTT 5

    @property
    def persistent(self) -> bool:
        return bool(self.client_id)


def _print_line(line: str) -> None:
    print(line, flush=True)


class Subscriber:
    """Receives and stores face events until ``max_events`` stored, ``timeout`` s, the stop
    event or a fatal error (bad credentials, TLS failure); ``run()`` returns the counts.

    ``ready`` is set once the subscriptions are acknowledged. ``emit`` gets one line per
    message (default: print to stdout).
    """

    def __init__(
        self,
        options: SubscriberOptions,
        *,
        ready: threading.Event | None = None,
        emit: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        self.prefix = topics.validate_prefix(options.topic_prefix)
        self.ready = ready
        self.emit = emit or _print_line
        validator = _make_validator() if options.validate else None
        self.store = _EventStore(Path(options.out_dir), validator, self.emit)
        self.result = self.store.result
        faces = topics.faces_filter(self.prefix)
        group = options.shared_group
        self.faces_filter = faces if group is None else topics.shared(group, faces)
        self.status_filter = topics.status_filter(self.prefix)
        self._done = threading.Event()

    def run(self, stop_event: threading.Event | None = None) -> SubscriberResult:
        """Connect, receive until done, disconnect; the result also carries a fatal error."""
        client = self._make_client()
        # first connection in the foreground so that a wrong host/TLS setup fails clearly
        try:
            self._connect(client)
        except (OSError, ValueError) as e:
            o = self.options
            self.result.error = f"cannot connect to {o.host}:{o.port}: {e}"
            self.emit(f"ERROR {self.result.error}")
            return self.result
        client.loop_start()
        try:
            self._wait(stop_event)
        except KeyboardInterrupt:
            pass
        finally:
            client.disconnect()
            client.loop_stop()
        return self.result

    # -- connection ----------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        o = self.options
        tls = None
        if o.tls:
            tls = {
                "ca_file": o.ca_file,
                "cert_file": o.cert_file,
                "key_file": o.key_file,
                "verify": o.tls_verify,
            }
        client = make_client(
            o.client_id or "",
            protocol=mqtt.MQTTv5 if o.mqtt5 else mqtt.MQTTv311,
            # MQTT 5 chooses clean start at connect time instead
            clean_session=None if o.mqtt5 else not o.persistent,
            tls=tls,
            tls_where="subscriber tls",
            username=o.username,
            password=o.password,
            reconnect_delay=(o.reconnect_min_s, o.reconnect_max_s),
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect(self, client: mqtt.Client) -> None:
        o = self.options
        if not o.mqtt5:
            client.connect(o.host, o.port, o.keepalive)
            return
        props = Properties(PacketTypes.CONNECT)
        if o.persistent:
            props.SessionExpiryInterval = SESSION_EXPIRY_S
        client.connect(o.host, o.port, o.keepalive, clean_start=not o.persistent, properties=props)

    def _wait(self, stop_event: threading.Event | None) -> None:
        timeout = self.options.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            if stop_event is not None and stop_event.is_set():
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            self._done.wait(0.1)

    def _fatal(self, msg: str) -> None:
        if self.result.error is None:
            self.result.error = msg
        self.emit(f"ERROR {msg}")
        self._done.set()

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(self, c: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._fatal(f"broker refused the connection: {reason}")
            return
        o = self.options
        log.info(
            "subscriber connected to %s:%d (session present: %s)",
            o.host,
            o.port,
            flags.session_present,
        )
        if o.mqtt5:
            c.subscribe(
                [
                    (self.faces_filter, SubscribeOptions(qos=o.qos)),
                    (self.status_filter, SubscribeOptions(qos=1)),
                ]
            )
        else:
            c.subscribe([(self.faces_filter, o.qos), (self.status_filter, 1)])

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any
    ) -> None:
        bad = [str(r) for r in reasons if r.is_failure]
        if bad:
            self._fatal(f"subscription refused: {', '.join(bad)}")
        elif self.ready is not None:
            self.ready.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handle(msg.topic, msg.payload)
        except Exception as e:  # noqa: BLE001 - an exception here would stop paho's loop
            log.exception("subscriber: message on %s", msg.topic)
            with self.store.lock:
                self.result.invalid += 1
            self.emit(f"ERROR {msg.topic}: {e}")

    def _handle(self, topic: str, payload: bytes) -> None:
        parsed = topics.parse_topic(self.prefix, topic)
        if parsed is None:
            return
        device, camera, kind = parsed
        if kind == topics.FACES and camera is not None:
            self.store.handle_event(device, camera, payload)
            max_events = self.options.max_events
            if max_events is not None and self.result.stored >= max_events:
                self._done.set()
        elif kind == topics.STATUS:
            self.store.handle_status(device, payload)


# -- CLI ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``face-edge subscribe``."""
    parser.add_argument("--out", required=True, help="directory to store events in")
    parser.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="broker port (default 1883, 8883 with --tls)"
    )
    parser.add_argument("--prefix", default="face-edge", help="topic prefix (default face-edge)")
    parser.add_argument(
        "--group",
        default=None,
        help="share the stream with other subscribers of this group (MQTT 5 $share)",
    )
    parser.add_argument(
        "--client-id",
        default=None,
        help="fixed client id: persistent session, events queue while away",
    )
    parser.add_argument("--username", default=None)
    parser.add_argument(
        "--password-file",
        default=None,
        help="file holding the password (default: $CREDENTIALS_DIRECTORY/mqtt-password if present)",
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument(
        "--ca-file", default=None, help="CA certificate(s) to verify the broker with"
    )
    parser.add_argument("--cert-file", default=None, help="client certificate (mutual TLS)")
    parser.add_argument("--key-file", default=None, help="client key (mutual TLS)")
    parser.add_argument(
        "--insecure", action="store_true", help="TLS without certificate/host name checks"
    )
    parser.add_argument(
        "--allow-insecure", action="store_true", help="allow a password over plain TCP"
    )
    parser.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    parser.add_argument(
        "--max-events", type=int, default=None, help="exit after storing this many events"
    )
    parser.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    parser.add_argument("--no-validate", action="store_true", help="skip JSON Schema checks")


def _options_from_args(args: argparse.Namespace) -> SubscriberOptions:
    password = None
    if args.username:
        password = read_password(args.password_file, where="--password-file")
    elif args.password_file:
        raise MqttConfigError("--password-file needs --username")
    if password and not args.tls and not args.allow_insecure:
        raise MqttConfigError(
            "refusing to send the password over plain TCP: use --tls or --allow-insecure"
        )
    return SubscriberOptions(
        args.host,
        args.port if args.port is not None else (8883 if args.tls else 1883),
        args.prefix,
        args.out,
        shared_group=args.group,
        username=args.username,
        password=password,
        tls=args.tls,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
        tls_verify=not args.insecure,
        client_id=args.client_id,
        qos=args.qos,
        max_events=args.max_events,
        timeout=args.timeout,
        validate=not args.no_validate,
    )


def main(args: argparse.Namespace) -> int:
    """Run ``face-edge subscribe``; 0 when it ended normally, 1 on a fatal error, 2 on bad options."""
    try:
        result = Subscriber(_options_from_args(args)).run()
    except (MqttConfigError, ValueError) as e:
        print(f"face-edge subscribe: {e}", file=sys.stderr)
        return 2
    print(
        f"stored {result.stored} event(s), {result.duplicates} duplicate(s), "
        f"{result.invalid} invalid, {result.schema_errors} schema error(s)",
        file=sys.stderr,
    )
    return 1 if result.error else 0


if __name__ == "__main__":  # python -m edge.commands.subscribe --out DIR
    _p = argparse.ArgumentParser(prog="face-edge subscribe", description=__doc__.split("\n\n")[0])
    add_arguments(_p)
    sys.exit(main(_p.parse_args()))
