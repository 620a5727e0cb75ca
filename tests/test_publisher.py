"""Publisher against a real mosquitto: delivery, outage, SIGKILL, TLS + password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from procs import wait_until
from support.broker import TestBroker, make_test_pki, mosquitto_password_line

from edge.publish import topics
from edge.publish.buffered import BufferedSpool
from edge.publish.publisher import (
    STATE_AUTH_FAILED,
    STATE_CONNECTED,
    STATE_TLS_ERROR,
    MqttConfigError,
    Publisher,
)
from edge.publish.spool import Spool
from edge.settings import MqttSettings

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def retained(broker: TestBroker, topic: str, timeout: float = 5.0) -> bytes | None:
    """The retained message on ``topic`` (plain, anonymous listener)."""
    got: list[bytes] = []
    ev = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.on_connect = lambda cl, *a: cl.subscribe(topic, 1)
    c.on_message = lambda cl, u, m: (got.append(m.payload), ev.set())
    c.connect(broker.host, broker.port)
    c.loop_start()
    ev.wait(timeout)
    c.disconnect()
    c.loop_stop()
    return got[0] if got else None


# -- topics ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("front-door", "front-door"),
        ("a/b", "a_b"),
        ("cam #1+2", "cam__1_2"),
        ("tab\there\nnl", "tab_here_nl"),
        ("$SYS", "_SYS"),
        ("", "_"),
        (None, "_"),
        ("Küche", "Küche"),
        ("x\x00y\x7f", "x_y_"),
    ],
)
def test_sanitize_level(raw: Any, want: str) -> None:
    assert topics.sanitize_level(raw) == want


def test_topic_builders() -> None:
    assert topics.faces_topic("face-edge", "dev 1", "cam/2") == "face-edge/dev_1/cam_2/faces"
    assert topics.status_topic("p", "d") == "p/d/status"
    assert topics.stats_topic("p", "d") == "p/d/stats"
    assert topics.shared("g", topics.faces_filter("p")) == "$share/g/p/+/+/faces"
    assert topics.parse_topic("p", "p/d/c/faces") == ("d", "c", "faces")
    assert topics.parse_topic("p", "p/d/status") == ("d", None, "status")
    assert topics.parse_topic("p", "q/d/status") is None
    assert topics.validate_prefix("/site1/face-edge/") == "site1/face-edge"
    for bad in ("", "a/+", "#", "$SYS/x", "a//b"):
        with pytest.raises(ValueError):
            topics.validate_prefix(bad)


def event_feeder(pub: Publisher, sample_event: Any, device: str = "dev") -> tuple[Any, list[str]]:
    """``publish(n)`` spools n fresh events for camera ``cam``; their ids collect in the list."""
    sent: list[str] = []

    def publish(n: int) -> None:
        for _ in range(n):
            ev = sample_event(device_id=device)
            pub.publish_event("cam", ev)
            sent.append(ev["event_id"])

    return publish, sent


# -- delivery -------------------------------------------------------------------------------
def test_events_arrive_and_validate(
    mosquitto, mqtt_config, start_subscriber, sample_event, event_validator, tmp_path
) -> None:
    sub = start_subscriber(mosquitto)
    pub = Publisher(mqtt_config(mosquitto), {"path": tmp_path / "spool.sqlite"}, "dev/1")
    try:
        assert pub.wait_connected(10), pub.stats()
        sent = []
        for i in range(5):
            ev = sample_event(device_id="dev_1", track_id=i)
            pub.publish_event("front door", ev)
            sent.append(ev["event_id"])
        assert pub.flush(10), pub.stats()
        assert sub.wait_for(5), sub.lines
        assert sorted(sub.stored_ids()) == sorted(sent)
        for eid in sent:
            stored = sub.out_dir / "dev_1" / "front_door" / f"{eid}.json"
            event_validator.validate(json.loads(stored.read_text()))  # offline form is valid too
        assert pub.publish_stats({"fps": 5.0}) is True
        st = pub.stats()
        assert st["connected"] is True and st["broker_state"] == STATE_CONNECTED
        assert st["sent"] == 5 and st["acked"] == 5 and st["spool_depth"] == 0
        assert st["spool_evicted"] == 0 and st["reconnects"] == 0 and st["last_error"] is None
        assert retained(mosquitto, "face-edge/dev_1/status") == b"online"
    finally:
        pub.stop(5)
    assert pub.stats()["broker_state"] == "stopped"
    assert retained(mosquitto, "face-edge/dev_1/status") == b"offline"


def test_event_payload_is_compact_json_and_schema_valid(
    mosquitto, mqtt_config, sample_event, event_validator, tmp_path
) -> None:
    got: list[mqtt.MQTTMessage] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    subscribed = threading.Event()
    c.on_connect = lambda cl, *a: cl.subscribe("face-edge/+/+/faces", 1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = lambda cl, u, m: got.append(m)
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    assert subscribed.wait(5)
    pub = Publisher(mqtt_config(mosquitto), {"path": tmp_path / "s.sqlite"}, "dev")
    try:
        ev = sample_event(device_id="dev")
        pub.publish_event("cam", ev)
        assert wait_until(lambda: got, 10)
    finally:
        pub.stop(2)
        c.disconnect()
        c.loop_stop()
    msg = got[0]
    assert msg.topic == "face-edge/dev/cam/faces" and msg.qos == 1 and not msg.retain
    assert b": " not in msg.payload and b", " not in msg.payload
    event_validator.validate(json.loads(msg.payload))


def test_broker_outage_of_10s_loses_nothing(
    mosquitto, mqtt_config, start_subscriber, sample_event, tmp_path
) -> None:
    # persistent subscriber session: the broker (persistence on) keeps it across the restart
    sub = start_subscriber(mosquitto, client_id="central-1", reconnect_max_s=1.0)
    pub = Publisher(mqtt_config(mosquitto), {"path": tmp_path / "spool.sqlite"}, "dev")
    publish, sent = event_feeder(pub, sample_event)

    try:
        assert pub.wait_connected(10)
        publish(5)
        assert pub.flush(10)
        mosquitto.stop()
        assert wait_until(lambda: not pub.connected, 10)
        t_down = time.monotonic()
        while time.monotonic() - t_down < 10.0:  # events keep coming during the outage
            publish(2)
            time.sleep(1.0)
        st = pub.stats()
        assert st["connected"] is False and st["spool_depth"] >= 20
        assert st["broker_state"] in ("disconnected", "unreachable")
        mosquitto.start()
        assert pub.flush(20), pub.stats()
        assert sub.wait_for(len(set(sent)), 20), (len(sub.stored_ids()), len(sent))
        assert set(sub.stored_ids()) == set(sent)
        assert pub.stats()["reconnects"] >= 1
    finally:
        pub.stop(2)


_CHILD = """
import json, sys, time
sys.path[:0] = [{root!r}, {tests!r}]
from edge.publish.publisher import Publisher
from sample_event import make_event
mode, port, spool_path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
cfg = {{"host": "127.0.0.1", "port": port, "client_id": "killme", "keepalive_s": 5,
        "reconnect_min_s": 0.2, "reconnect_max_s": 0.5}}
pub = Publisher(cfg, {{"path": spool_path}}, "killdev")
if mode == "produce":
    ids = []
    for i in range(n):
        ev = make_event(device_id="killdev", track_id=i)
        pub.publish_event("cam", ev)
        ids.append(ev["event_id"])
    print(json.dumps(ids), flush=True)
else:
    print("DRAINED" if pub.flush(20) else "NOT-DRAINED", flush=True)
time.sleep(120)
"""


def test_sigkilled_publisher_delivers_spool_after_restart(
    mosquitto, start_subscriber, tmp_path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(root=str(ROOT), tests=str(TESTS)))
    spool_path = tmp_path / "spool.sqlite"
    port = mosquitto.port

    def run_child(mode: str, n: int) -> str:
        proc = subprocess.Popen(
            [sys.executable, str(script), mode, str(port), str(spool_path), str(n)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
        finally:
            proc.kill()  # SIGKILL
            proc.wait(10)
        return line

    mosquitto.stop()  # first life: broker away, everything stays in the spool
    ids = json.loads(run_child("produce", 30))
    assert len(set(ids)) == 30
    with Spool(spool_path, 200, 168) as sp:
        assert sp.depth() == 30
    mosquitto.start()
    sub = start_subscriber(mosquitto)
    assert run_child("drain", 0) == "DRAINED"  # second life delivers, then is SIGKILLed too
    assert sub.wait_for(30, 10)
    assert set(sub.stored_ids()) == set(ids)
    with Spool(spool_path, 200, 168) as sp:
        assert sp.depth() == 0
    # no clean disconnect: the Last Will marks the device offline
    assert wait_until(lambda: retained(mosquitto, "face-edge/killdev/status", 1) == b"offline", 10)


def test_spool_eviction_counts_while_offline(
    mosquitto, mqtt_config, sample_event, tmp_path
) -> None:
    mosquitto.stop()
    one = len(json.dumps(sample_event(), separators=(",", ":")))
    cap_mb = (one * 5.5) / (1024 * 1024)  # room for 5 events
    pub = Publisher(
        mqtt_config(mosquitto), {"path": tmp_path / "s.sqlite", "max_mb": cap_mb}, "dev"
    )
    try:
        for _ in range(12):
            pub.publish_event("cam", sample_event())
        st = pub.stats()
        assert st["spool_depth"] == 5 and st["spool_evicted"] == 7
        assert st["connected"] is False
    finally:
        pub.stop(0.5)


# -- the spool's disk fails -----------------------------------------------------------------
def test_unwritable_spool_dir_keeps_events_in_memory(
    mosquitto, mqtt_config, start_subscriber, sample_event, tmp_path, caplog
) -> None:
    """The spool directory cannot be created (its parent is a regular file: that stops root
    too, unlike chmod 0o555): events wait in memory, bounded, and reach the broker once it is
    up; when the directory becomes usable the held events move onto the disk."""
    blocker = tmp_path / "state"
    blocker.write_text("a file where the spool directory should be")
    path = blocker / "spool.sqlite"
    one = len(json.dumps(sample_event(), separators=(",", ":"))) + len("face-edge/dev/cam/faces")
    spool = BufferedSpool(path, memory_max_mb=one * 8.5 / (1024 * 1024), retry_s=0.3)
    sub = start_subscriber(mosquitto, client_id="central-mem", reconnect_max_s=1.0)
    caplog.set_level("INFO", logger="edge.publish")
    mosquitto.stop()
    pub = Publisher(mqtt_config(mosquitto), None, "dev", spool=spool)
    publish, sent = event_feeder(pub, sample_event)

    try:
        publish(10)  # room for 8: the 2 oldest are dropped and counted
        st = pub.stats()
        assert st["spool_state"] == "memory" and str(blocker) in st["spool_error"]
        assert st["spool_depth"] == 8 and st["spool_memory_depth"] == 8
        assert st["spool_memory_dropped"] == 2 and st["spool_evicted"] == 2
        logged = [r.getMessage() for r in caplog.records if r.name == "edge.publish.buffered"]
        assert sum("holding events in memory" in m for m in logged) == 1, logged  # once
        mosquitto.start()
        assert pub.flush(20), pub.stats()
        assert sub.wait_for(8, 15), sub.lines[-5:]
        assert set(sub.stored_ids()) == set(sent[2:])

        # broker away again, then the directory becomes creatable: held events go to disk
        mosquitto.stop()
        assert wait_until(lambda: not pub.connected, 10)
        publish(3)
        assert pub.stats()["spool_memory_depth"] == 3
        blocker.unlink()
        time.sleep(0.35)  # past retry_s
        publish(1)
        st = pub.stats()
        assert st["spool_state"] == "disk" and st["spool_error"] is None, st
        assert st["spool_memory_depth"] == 0 and st["spool_depth"] == 4
        with Spool(path, 200, 168) as disk:
            on_disk = {json.loads(r[2])["event_id"] for r in disk.pending(10)}
        assert on_disk == set(sent[-4:])
        mosquitto.start()
        assert pub.flush(20), pub.stats()
        assert sub.wait_for(12, 15)
        assert set(sub.stored_ids()) == set(sent[2:])  # none lost within the memory bound
        logged = [r.getMessage() for r in caplog.records if r.name == "edge.publish.buffered"]
        assert sum("holding events in memory" in m for m in logged) == 1, logged
    finally:
        pub.stop(2)
        spool.close()


_DISK_FULL_CHILD = """
import json, os, resource, sys, time
sys.path[:0] = [{root!r}, {tests!r}]
from edge.publish.buffered import BufferedSpool
from edge.publish.publisher import Publisher
from sample_event import make_event
port, spool_path = int(sys.argv[1]), sys.argv[2]
cfg = {{"host": "127.0.0.1", "port": port, "client_id": "full", "keepalive_s": 5,
        "reconnect_min_s": 0.2, "reconnect_max_s": 0.5}}
pub = Publisher(cfg, None, "fulldev", spool=BufferedSpool(spool_path, retry_s=0.2))
# RLIMIT_FSIZE binds root as well: a write past it fails (EFBIG; Python ignores SIGXFSZ) just
# as on a full disk, in this process only. Room for a few events in the WAL, not for 20.
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(spool_path + "-wal") + 20_000, hard))
ids = []
for i in range(20):
    ev = make_event(device_id="fulldev", track_id=i)
    pub.publish_event("cam", ev)
    ids.append(ev["event_id"])
print(json.dumps({{"ids": ids, "stats": pub.stats()}}), flush=True)
sys.stdin.readline()  # the test says: the disk has room again
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
time.sleep(0.3)
ev = make_event(device_id="fulldev", track_id=99)
pub.publish_event("cam", ev)
print(json.dumps({{"ids": [ev["event_id"]], "stats": pub.stats()}}), flush=True)
sys.stdin.readline()  # the broker is up
print("DRAINED" if pub.flush(20) else "NOT-DRAINED", json.dumps(pub.stats()), flush=True)
pub.stop(2)
"""


def test_spool_disk_full_then_free_again(mosquitto, start_subscriber, tmp_path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_DISK_FULL_CHILD.format(root=str(ROOT), tests=str(TESTS)))
    spool_path = tmp_path / "spool.sqlite"
    mosquitto.stop()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(mosquitto.port), str(spool_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        st = first["stats"]
        assert st["spool_state"] == "memory" and "SQLITE_" in st["spool_error"], st
        assert 0 < st["spool_memory_depth"] < 20 and st["spool_depth"] == 20
        proc.stdin.write("free\n")
        proc.stdin.flush()
        second = json.loads(proc.stdout.readline())
        st = second["stats"]
        assert st["spool_state"] == "disk" and st["spool_memory_depth"] == 0, st
        assert st["spool_depth"] == 21
        mosquitto.start()
        sub = start_subscriber(mosquitto)
        proc.stdin.write("up\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line.startswith("DRAINED"), line
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    err = proc.stderr.read() if proc.stderr else ""
    assert err.count("holding events in memory") == 1, err[-2000:]  # logged once, not per event
    ids = set(first["ids"]) | set(second["ids"])
    assert sub.wait_for(21, 10)
    assert set(sub.stored_ids()) == ids


# -- TLS and credentials --------------------------------------------------------------------
def _secure_cfg(broker: TestBroker, mqtt_config: Any, password_file: Path, **tls: Any) -> dict:
    tls_cfg = {
        "enabled": True,
        "ca_file": broker.ca_file,
        "cert_file": None,
        "key_file": None,
        "verify": True,
    }
    tls_cfg.update(tls)
    return mqtt_config(
        broker,
        port=broker.tls_port,
        username=broker.username,
        password_file=str(password_file),
        tls=tls_cfg,
    )


def test_tls_and_password(
    mosquitto_auth_tls, mqtt_config, start_subscriber, sample_event, tmp_path, caplog
) -> None:
    b = mosquitto_auth_tls
    pw = tmp_path / "pw"
    pw.write_text(b.password + "\n")
    sub = start_subscriber(
        b, port=b.tls_port, username=b.username, password=b.password, tls=True, ca_file=b.ca_file
    )
    caplog.set_level("DEBUG")
    pub = Publisher(_secure_cfg(b, mqtt_config, pw), {"path": tmp_path / "s.sqlite"}, "sec")
    try:
        assert pub.wait_connected(10), pub.stats()
        ev = sample_event(device_id="sec")
        pub.publish_event("cam", ev)
        assert pub.flush(10)
        assert sub.wait_for(1)
        assert sub.stored_ids() == [ev["event_id"]]
    finally:
        pub.stop(2)
    assert b.password not in caplog.text


def test_credentials_directory(mosquitto_auth_tls, mqtt_config, tmp_path, monkeypatch) -> None:
    b = mosquitto_auth_tls
    (tmp_path / "mqtt-password").write_text(b.password)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = _secure_cfg(b, mqtt_config, tmp_path / "unused")
    cfg["password_file"] = None
    pub = Publisher(cfg, {"path": tmp_path / "s.sqlite"}, "sec")
    try:
        assert pub.wait_connected(10), pub.stats()
    finally:
        pub.stop(1)


def test_wrong_password_is_an_error_state_not_a_crash(
    mosquitto_auth_tls, mqtt_config, sample_event, tmp_path
) -> None:
    b = mosquitto_auth_tls
    pw = tmp_path / "pw"
    pw.write_text("wrong-password")
    pub = Publisher(_secure_cfg(b, mqtt_config, pw), {"path": tmp_path / "s.sqlite"}, "sec")
    try:
        pub.publish_event("cam", sample_event())  # spooled, waits for working credentials
        assert wait_until(lambda: pub.stats()["broker_state"] == STATE_AUTH_FAILED, 10), pub.stats()
        st = pub.stats()
        assert st["connected"] is False and st["spool_depth"] == 1
        assert "credentials" in st["last_error"] and "wrong-password" not in st["last_error"]
    finally:
        pub.stop(1)


def test_tls_verification(mosquitto_auth_tls, mqtt_config, tmp_path) -> None:
    b = mosquitto_auth_tls
    pw = tmp_path / "pw"
    pw.write_text(b.password)
    # our test CA is not among the system CAs: verification must fail, clearly
    pub = Publisher(
        _secure_cfg(b, mqtt_config, pw, ca_file=None), {"path": tmp_path / "a.sqlite"}, "x"
    )
    try:
        assert wait_until(lambda: pub.stats()["broker_state"] == STATE_TLS_ERROR, 10), pub.stats()
        assert "certificate" in pub.stats()["last_error"]
    finally:
        pub.stop(1)
    # verify: false skips certificate and host name checks explicitly
    pub = Publisher(
        _secure_cfg(b, mqtt_config, pw, ca_file=None, verify=False),
        {"path": tmp_path / "b.sqlite"},
        "x",
    )
    try:
        assert pub.wait_connected(10), pub.stats()
    finally:
        pub.stop(1)


def _tls_only_cfg(mqtt_config: Any, broker: TestBroker, ca_file: Any, host: str) -> dict:
    return mqtt_config(
        broker,
        host=host,
        port=broker.tls_port,
        reconnect_min_s=0.5,
        reconnect_max_s=2.0,
        tls={"enabled": True, "ca_file": str(ca_file), "verify": True},
    )


def test_expired_broker_certificate_is_named_and_retried_with_backoff(
    mqtt_config, tmp_path, caplog
) -> None:
    pki = make_test_pki(tmp_path / "pki", server_validity=("20200101000000Z", "20200201000000Z"))
    broker = TestBroker(tls=True, pki=pki)
    caplog.set_level("INFO", logger="edge.publish")
    pub = Publisher(
        _tls_only_cfg(mqtt_config, broker, pki["ca_file"], "127.0.0.1"),
        {"path": tmp_path / "s.sqlite"},
        "x",
    )
    try:
        assert wait_until(lambda: pub.stats()["broker_state"] == STATE_TLS_ERROR, 10), pub.stats()
        t0, n0 = time.monotonic(), pub.stats()["connect_failures"]
        time.sleep(6.0)
        n = pub.stats()["connect_failures"] - n0
        elapsed = time.monotonic() - t0
        st = pub.stats()
        assert "certificate has expired" in st["last_error"] and "clock" in st["last_error"]
        # backoff 0.5 s doubling to 2 s: about 4 attempts in 6 s, never a tight loop
        assert 2 <= n <= elapsed / 0.5 + 1, (n, elapsed)
        assert pub._sender.is_alive() and st["connected"] is False
    finally:
        pub.stop(1)
        broker.close()
    warnings = [r for r in caplog.records if "certificate has expired" in r.getMessage()]
    assert len(warnings) == 1  # the same error is logged once, not per attempt


def test_untrusted_ca_and_wrong_host_name_are_named(mqtt_config, tmp_path) -> None:
    pki = make_test_pki(tmp_path / "pki", hostnames=("broker.example",))
    other_ca = make_test_pki(tmp_path / "other")["ca_file"]
    broker = TestBroker(tls=True, pki=pki)
    cases = [
        # mosquitto sends its CA along, so OpenSSL names the untrusted self-signed root
        ("127.0.0.1", other_ca, "self-signed certificate in certificate chain", "mqtt.tls.ca_file"),
        ("localhost", pki["ca_file"], "Hostname mismatch", "mqtt.host"),
    ]
    try:
        for host, ca, cause, hint in cases:
            cfg = _tls_only_cfg(mqtt_config, broker, ca, host)
            pub = Publisher(cfg, {"path": tmp_path / f"{host}.sqlite"}, "x")
            try:
                assert wait_until(lambda p=pub: p.stats()["broker_state"] == STATE_TLS_ERROR, 10)
                err = pub.stats()["last_error"]
                assert cause in err and hint in err, err
            finally:
                pub.stop(1)
        # the right CA and a listed name connect: the broker itself is fine
        pub = Publisher(
            _tls_only_cfg(mqtt_config, broker, pki["ca_file"], "127.0.0.1"),
            {"path": tmp_path / "ok.sqlite"},
            "x",
        )
        try:
            assert pub.wait_connected(10), pub.stats()
        finally:
            pub.stop(1)
    finally:
        broker.close()


def test_password_over_plain_tcp_is_refused(mosquitto_auth_tls, mqtt_config, tmp_path) -> None:
    b = mosquitto_auth_tls
    pw = tmp_path / "pw"
    pw.write_text(b.password)
    cfg = mqtt_config(b, username=b.username, password_file=str(pw))
    with pytest.raises(MqttConfigError, match="allow_insecure"):
        Publisher(cfg, {"path": tmp_path / "s.sqlite"}, "x")
    cfg["allow_insecure"] = True
    pub = Publisher(cfg, {"path": tmp_path / "s.sqlite"}, "x")
    try:
        assert pub.wait_connected(10), pub.stats()
    finally:
        pub.stop(1)


def test_config_errors(tmp_path) -> None:
    spool = {"path": tmp_path / "s.sqlite"}
    with pytest.raises(MqttConfigError, match="mqtt.host"):
        Publisher({"host": None}, spool, "d")
    with pytest.raises(MqttConfigError, match="password_file"):
        Publisher(
            {"host": "h", "username": "u", "password_file": str(tmp_path / "missing")}, spool, "d"
        )
    with pytest.raises(MqttConfigError, match="ca_file"):
        Publisher(
            {"host": "h", "tls": {"enabled": True, "ca_file": str(tmp_path / "nope.pem")}},
            spool,
            "d",
        )
    with pytest.raises(MqttConfigError, match="topic_prefix"):
        Publisher({"host": "h", "topic_prefix": "a/#"}, spool, "d")


def test_inflight_is_bounded_and_backlog_drains_in_order(
    mosquitto, mqtt_config, sample_event, tmp_path
) -> None:
    got: list[str] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="order-check", clean_session=False)
    subscribed = threading.Event()
    c.on_connect = lambda cl, *a: cl.subscribe("face-edge/+/+/faces", 1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = lambda cl, u, m: got.append(json.loads(m.payload)["event_id"])
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    assert subscribed.wait(5)
    mosquitto.stop()
    pub = Publisher(mqtt_config(mosquitto), {"path": tmp_path / "s.sqlite"}, "dev", max_inflight=4)
    sent = []
    try:
        for _ in range(60):
            ev = sample_event()
            pub.publish_event("cam", ev)
            sent.append(ev["event_id"])
        mosquitto.start()
        peak = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (pub.connected and pub.flush(0)):
            peak = max(peak, pub.stats()["inflight"], len(pub._client._out_messages) - 1)
            time.sleep(0.002)
        assert pub.flush(5)
        assert 0 < peak <= 4, peak
        assert wait_until(lambda: len(set(got)) == 60, 10)
        first_seen = list(dict.fromkeys(got))
        assert first_seen == sent  # spool order is kept
    finally:
        pub.stop(1)
        c.disconnect()
        c.loop_stop()


def test_ensure_broker_for_demo_mode(mqtt_config, tmp_path) -> None:
    from edge.publish.local_broker import ensure_broker

    cfg, broker = ensure_broker(
        {"host": None, "port": 1883, "username": "x", "tls": {"enabled": True}}
    )
    assert broker is not None
    try:
        assert cfg.host == "127.0.0.1" and cfg.port == broker.port
        assert cfg.username is None and cfg.tls.enabled is False
        pub = Publisher(cfg, {"path": tmp_path / "s.sqlite"}, "demo")
        try:
            assert pub.wait_connected(10)
        finally:
            pub.stop(1)
    finally:
        broker.close()
    same, none = ensure_broker({"host": "broker.example"})
    assert none is None and same == MqttSettings(host="broker.example")


def test_python_written_password_file_is_accepted(
    mosquitto_auth_tls, mqtt_config, tmp_path
) -> None:
    b = mosquitto_auth_tls
    b.password_file.write_text(mosquitto_password_line("py-user", "py-pass") + "\n")
    b.restart()
    pw = tmp_path / "pw"
    pw.write_text("py-pass")
    cfg = _secure_cfg(b, mqtt_config, pw)
    cfg["username"] = "py-user"
    pub = Publisher(cfg, {"path": tmp_path / "s.sqlite"}, "x")
    try:
        assert pub.wait_connected(10), pub.stats()
    finally:
        pub.stop(1)
