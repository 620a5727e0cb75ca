"""Shared fixtures: real mosquitto brokers, a threaded subscriber, sample events."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for `import sample_event`

from sample_event import load_schema, make_event  # noqa: E402

from edge.commands.subscribe import SubscriberResult, run_subscriber  # noqa: E402
from edge.publish.local_broker import LocalBroker, find_mosquitto  # noqa: E402


def _have_mosquitto() -> bool:
    try:
        find_mosquitto()
        return True
    except Exception:  # noqa: BLE001
        return False


requires_mosquitto = pytest.mark.skipif(not _have_mosquitto(), reason="mosquitto not installed")

TEST_USER = "edge"
TEST_PASSWORD = "s3cret-Pässword"


@pytest.fixture
def mosquitto() -> Iterator[LocalBroker]:
    """A plain mosquitto on 127.0.0.1 (free port, anonymous, persistence on so that
    ``restart()`` keeps persistent sessions)."""
    if not _have_mosquitto():
        pytest.skip("mosquitto not installed")
    broker = LocalBroker(persistence=True)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def mosquitto_auth_tls() -> Iterator[LocalBroker]:
    """mosquitto that needs a password (``broker.username``/``broker.password``) on every
    listener: plain ``broker.port`` and TLS ``broker.tls_port`` (CA ``broker.ca_file``,
    server cert for 127.0.0.1/localhost)."""
    if not _have_mosquitto():
        pytest.skip("mosquitto not installed")
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    broker = LocalBroker(users={TEST_USER: TEST_PASSWORD}, tls=True)
    broker.username = TEST_USER  # type: ignore[attr-defined]
    broker.password = TEST_PASSWORD  # type: ignore[attr-defined]
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def face_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s of CCTV-like video (1280x720, 25 fps) with two real faces (scikit-image and
    matplotlib sample photos) walking through."""
    import cv2
    import numpy as np

    from edge.capture.demo import head_crop, make_demo_clip

    skimage_data = pytest.importorskip("skimage.data")
    cbook = pytest.importorskip("matplotlib.cbook")
    astronaut = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    faces = [head_crop(astronaut, "astronaut"), head_crop(hopper, "grace_hopper")]
    path = tmp_path_factory.mktemp("video") / "faces.mp4"
    return make_demo_clip(path, faces=faces, seconds=8.0, fps=25, seed=1)


@pytest.fixture
def event_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(
        load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.fixture
def sample_event() -> Callable[..., dict[str, Any]]:
    """``sample_event(**overrides)`` -> a fresh valid event dict."""
    return make_event


def _mqtt_section(broker: LocalBroker, **overrides: Any) -> dict[str, Any]:
    """An ``mqtt`` config section for ``broker`` with fast reconnects for tests."""
    cfg: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "topic_prefix": "face-edge",
        "client_id": None,
        "qos": 1,
        "keepalive_s": 5,
        "username": None,
        "password_file": None,
        "allow_insecure": False,
        "tls": {
            "enabled": False,
            "ca_file": None,
            "cert_file": None,
            "key_file": None,
            "verify": True,
        },
        "stats_interval_s": 30,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def mqtt_config() -> Callable[..., dict[str, Any]]:
    """``mqtt_config(broker, **overrides)`` -> an ``mqtt`` config section for that broker
    (plain TCP, fast reconnects: 0.2 .. 1.0 s, keepalive 5 s)."""
    return _mqtt_section


class SubscriberThread:
    """run_subscriber() in a background thread."""

    def __init__(self, broker_host: str, port: int, out_dir: Path, **kwargs: Any) -> None:
        self.out_dir = Path(out_dir)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.stop_event = threading.Event()
        self.result: SubscriberResult | None = None
        kwargs.setdefault("topic_prefix", "face-edge")
        self._thread = threading.Thread(
            target=self._run, args=(broker_host, port, kwargs), daemon=True, name="test-subscriber"
        )
        self._thread.start()
        if not self.ready.wait(10):
            self.stop()
            raise RuntimeError(f"subscriber did not get ready: {self.lines[-5:]}")

    def _run(self, host: str, port: int, kwargs: dict[str, Any]) -> None:
        prefix = kwargs.pop("topic_prefix")
        self.result = run_subscriber(
            host,
            port,
            prefix,
            self.out_dir,
            ready=self.ready,
            stop_event=self.stop_event,
            emit=self.lines.append,
            **kwargs,
        )
        self.ready.set()

    def stored_ids(self) -> list[str]:
        return [ln.split()[2] for ln in list(self.lines) if ln.startswith("EVENT ")]

    def wait_for(self, n: int, timeout: float = 15.0) -> bool:
        """Wait until ``n`` events were stored."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.stored_ids()) >= n:
                return True
            time.sleep(0.05)
        return len(self.stored_ids()) >= n

    def stop(self) -> SubscriberResult | None:
        self.stop_event.set()
        self._thread.join(10)
        return self.result


@pytest.fixture
def start_subscriber(tmp_path: Path) -> Iterator[Callable[..., SubscriberThread]]:
    """``start_subscriber(broker, out_dir=None, **run_subscriber_kwargs)`` -> SubscriberThread
    (waits until subscribed; stopped at teardown)."""
    started: list[SubscriberThread] = []

    def start(broker: LocalBroker, out_dir: Path | None = None, **kwargs: Any) -> SubscriberThread:
        port = kwargs.pop("port", broker.port)
        out = out_dir or tmp_path / f"sub{len(started)}"
        st = SubscriberThread(broker.host, port, out, **kwargs)
        started.append(st)
        return st

    yield start
    for st in started:
        st.stop()
