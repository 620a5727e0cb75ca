"""Reference subscriber: storage, de-duplication, shared subscriptions, CLI."""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.commands import subscribe as subscriber
from edge.publish.publisher import Publisher


def raw_client(broker) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def send(c: mqtt.Client, topic: str, payload: bytes) -> None:
    c.publish(topic, payload, qos=1).wait_for_publish(5)


def test_stores_event_and_decodable_jpegs_and_dedups(
    mosquitto, start_subscriber, sample_event, event_validator
) -> None:
    sub = start_subscriber(mosquitto)
    c = raw_client(mosquitto)
    try:
        ev = sample_event(device_id="dev1", camera="cam1")
        payload = json.dumps(ev).encode()
        send(c, "face-edge/dev1/cam1/faces", payload)
        send(c, "face-edge/dev1/cam1/faces", payload)  # at-least-once redelivery
        assert sub.wait_for(1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(ln.startswith("DUP") for ln in sub.lines):
            time.sleep(0.05)
    finally:
        c.disconnect()
        c.loop_stop()
    res = sub.stop()
    assert res is not None and res.error is None
    assert (res.received, res.stored, res.duplicates, res.invalid, res.schema_errors) == (
        2,
        1,
        1,
        0,
        0,
    )
    d = sub.out_dir / "dev1" / "cam1"
    eid = ev["event_id"]
    assert sorted(p.name for p in d.iterdir()) == sorted(
        [f"{eid}.json", f"{eid}_original.jpg", f"{eid}_enhanced.jpg"]
    )
    stored = json.loads((d / f"{eid}.json").read_text())
    event_validator.validate(stored)  # offline form
    assert stored["original"]["path"] == f"{eid}_original.jpg"
    assert "jpeg_b64" not in stored["enhanced"] and stored["enhanced"]["stages"]
    for kind in ("original", "enhanced"):
        data = (d / f"{eid}_{kind}.jpg").read_bytes()
        assert data == base64.b64decode(ev[kind]["jpeg_b64"])
        cv2 = pytest.importorskip("cv2")
        import numpy as np

        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[:2] == (ev[kind]["height"], ev[kind]["width"])
    assert sum(ln.startswith("EVENT ") for ln in sub.lines) == 1


def test_bad_messages_are_counted_not_fatal(mosquitto, start_subscriber, sample_event) -> None:
    sub = start_subscriber(mosquitto)
    c = raw_client(mosquitto)
    try:
        send(c, "face-edge/d/c/faces", b"not json")
        send(c, "face-edge/d/c/faces", json.dumps({"event_id": "../../etc"}).encode())
        bad_b64 = sample_event()
        bad_b64["original"]["jpeg_b64"] = "!!!!"
        send(c, "face-edge/d/c/faces", json.dumps(bad_b64).encode())
        schema_bad = sample_event(reason="because")
        send(c, "face-edge/../../faces", json.dumps(schema_bad).encode())
        assert sub.wait_for(1)
    finally:
        c.disconnect()
        c.loop_stop()
    res = sub.stop()
    assert res is not None
    assert res.invalid == 3 and res.stored == 1 and res.schema_errors == 1
    # ".." topic levels never leave the output directory
    stored = list(sub.out_dir.rglob("*.json"))
    assert len(stored) == 1 and sub.out_dir in stored[0].parents
    assert stored[0].parent.parent.name.startswith("_") and stored[0].parent.name.startswith("_")


def test_status_lines(mosquitto, start_subscriber, mqtt_config, tmp_path) -> None:
    sub = start_subscriber(mosquitto)
    pub = Publisher(mqtt_config(mosquitto), {"path": tmp_path / "s.sqlite"}, "devS")
    assert pub.wait_connected(10)
    pub.stop(2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "STATUS devS offline" not in sub.lines:
        time.sleep(0.05)
    assert "STATUS devS online" in sub.lines and "STATUS devS offline" in sub.lines


def test_shared_subscription_splits_messages(
    mosquitto, start_subscriber, mqtt_config, sample_event, tmp_path
) -> None:
    a = start_subscriber(mosquitto, shared_group="central")
    b = start_subscriber(mosquitto, shared_group="central")
    pub = Publisher(mqtt_config(mosquitto), {"path": tmp_path / "s.sqlite"}, "dev")
    sent = []
    try:
        assert pub.wait_connected(10)
        for i in range(20):
            ev = sample_event(device_id="dev", track_id=i)
            pub.publish_event("cam", ev)
            sent.append(ev["event_id"])
        assert pub.flush(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(a.stored_ids()) + len(b.stored_ids()) < 20:
            time.sleep(0.05)
    finally:
        pub.stop(1)
    ia, ib = set(a.stored_ids()), set(b.stored_ids())
    assert ia and ib, (len(ia), len(ib))
    assert not ia & ib
    assert ia | ib == set(sent)


def test_cli_main(mosquitto, mqtt_config, sample_event, tmp_path, capsys) -> None:
    parser = argparse.ArgumentParser()
    subscriber.add_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(
        ["--out", str(out), "--host", mosquitto.host, "--port", str(mosquitto.port)]
        + ["--max-events", "2", "--timeout", "15", "--client-id", "cli-test"]
    )
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(subscriber.main(args)), daemon=True)
    t.start()
    time.sleep(0.3)  # let it subscribe (a persistent session would queue anyway after this)
    pub = Publisher(mqtt_config(mosquitto), {"path": tmp_path / "s.sqlite"}, "dev")
    try:
        for _ in range(2):
            pub.publish_event("cam", sample_event(device_id="dev"))
        t.join(15)
    finally:
        pub.stop(1)
    assert rc == [0]
    assert len(list((out / "dev" / "cam").glob("*.json"))) == 2
    captured = capsys.readouterr()
    assert captured.out.count("EVENT dev/cam ") == 2
    assert "stored 2 event(s)" in captured.err


def test_cli_wrong_password_fails_cleanly(mosquitto_auth_tls, tmp_path, capsys) -> None:
    b = mosquitto_auth_tls
    pw = tmp_path / "pw"
    pw.write_text("nope")
    parser = argparse.ArgumentParser()
    subscriber.add_arguments(parser)
    base = ["--out", str(tmp_path / "o"), "--host", b.host, "--username", b.username]
    base += ["--password-file", str(pw), "--timeout", "10"]
    # password over plain TCP: refused before connecting
    assert subscriber.main(parser.parse_args([*base, "--port", str(b.port)])) == 2
    args = parser.parse_args([*base, "--port", str(b.tls_port), "--tls", "--ca-file", b.ca_file])
    t0 = time.monotonic()
    assert subscriber.main(args) == 1
    assert time.monotonic() - t0 < 5
    assert "refused" in capsys.readouterr().out


def test_event_schema_is_packaged() -> None:
    schema = subscriber.load_event_schema()
    assert schema["properties"]["schema_version"] == {"const": "1.0"}
    assert (
        Path(subscriber.__file__)
        .parent.parent.joinpath("schemas", "face_event.schema.json")
        .is_file()
    )
