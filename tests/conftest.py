"""Shared fixtures: real mosquitto brokers, a threaded subscriber, sample events; the real
parts tests need (``requires``), which skip here and fail under ``CI=true``."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for `import sample_event`

from sample_event import load_schema, make_event  # noqa: E402
from support.broker import TestBroker  # noqa: E402

from edge.commands.subscribe import (  # noqa: E402
    Subscriber,
    SubscriberOptions,
    SubscriberResult,
)
from edge.publish.local_broker import find_mosquitto  # noqa: E402

TEST_USER = "edge"
TEST_PASSWORD = "s3cret-Pässword"


@pytest.fixture
def mosquitto() -> Iterator[TestBroker]:
    """A plain mosquitto on 127.0.0.1 (free port, anonymous, persistence on so that
    ``restart()`` keeps persistent sessions)."""
    require("mosquitto")
    broker = TestBroker(persistence=True)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def mosquitto_auth_tls() -> Iterator[TestBroker]:
    """mosquitto that needs a password (``broker.username``/``broker.password``) on every
    listener: plain ``broker.port`` and TLS ``broker.tls_port`` (CA ``broker.ca_file``,
    server cert for 127.0.0.1/localhost)."""
    require("mosquitto")
    require("openssl")
    broker = TestBroker(users={TEST_USER: TEST_PASSWORD}, tls=True)
    broker.username = TEST_USER  # type: ignore[attr-defined]
    broker.password = TEST_PASSWORD  # type: ignore[attr-defined]
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def face_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s of CCTV-like video (1280x720, 25 fps) with two real faces (the shipped
    public-domain photos in edge/assets) walking through."""
    from edge.capture.demo import load_asset_faces, make_demo_clip

    path = tmp_path_factory.mktemp("video") / "faces.mp4"
    return make_demo_clip(path, faces=load_asset_faces(), seconds=8.0, fps=25, seed=1)


@pytest.fixture
def event_validator() -> Any:
    require("jsonschema")
    import jsonschema

    return jsonschema.Draft202012Validator(
        load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.fixture
def sample_event() -> Callable[..., dict[str, Any]]:
    """``sample_event(**overrides)`` -> a fresh valid event dict."""
    return make_event


def _mqtt_section(broker: TestBroker, **overrides: Any) -> dict[str, Any]:
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
    """A Subscriber in a background thread."""

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
        options = SubscriberOptions(host, port, prefix, self.out_dir, **kwargs)
        subscriber = Subscriber(options, ready=self.ready, emit=self.lines.append)
        self.result = subscriber.run(self.stop_event)
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
    """``start_subscriber(broker, out_dir=None, **subscriber_options)`` -> SubscriberThread
    (waits until subscribed; stopped at teardown)."""
    started: list[SubscriberThread] = []

    def start(broker: TestBroker, out_dir: Path | None = None, **kwargs: Any) -> SubscriberThread:
        port = kwargs.pop("port", broker.port)
        out = out_dir or tmp_path / f"sub{len(started)}"
        st = SubscriberThread(broker.host, port, out, **kwargs)
        started.append(st)
        return st

    yield start
    for st in started:
        st.stop()


# ------------------------------------------------------------------------------- real parts
# Tests use real parts. One that needs a part this machine lacks says so with
# ``@pytest.mark.requires("mosquitto", ...)`` (or ``require(...)`` in a conftest fixture):
# on a developer machine it skips; under CI=true it FAILS, because .ci/run installs every
# required part and a CI image that lost one must not pass by skipping. Under CI=true any
# other skip fails too (pytest.skip, skipif, importorskip, in any test file), except a skip
# for one of OPTIONAL_PARTS, whose reason starts with OPTIONAL_SKIP and the part's name.
CI = os.environ.get("CI") == "true"
OPTIONAL_SKIP = "optional part missing: "


def _tool(name: str) -> Callable[[], str | None]:
    return lambda: None if shutil.which(name) else f"{name} is not on PATH"


def _module(*names: str) -> Callable[[], str | None]:
    """Present when any of ``names`` can be imported."""

    def missing() -> str | None:
        if any(importlib.util.find_spec(n) for n in names):
            return None
        return f"Python module {' or '.join(names)} is not installed"

    return missing


def _mosquitto_missing() -> str | None:
    try:
        find_mosquitto()
        return None
    except Exception as e:  # noqa: BLE001
        return f"mosquitto not found ({e})"


def _console_script_missing() -> str | None:
    exe = Path(sys.executable).parent / "face-edge"
    return None if exe.exists() else f"{exe} missing: the package is not installed in this venv"


def _dlib_judge_missing() -> str | None:
    from tools.eval.restore_eval import judge_available

    return None if judge_available() else "dlib / face_recognition_models not installed"


# Installed by .ci/run (apt: mosquitto, openssl, systemd, passwd; pip: '.[dev,tflite]').
REQUIRED_PARTS: dict[str, Callable[[], str | None]] = {
    "mosquitto": _mosquitto_missing,
    "openssl": _tool("openssl"),
    "systemd-analyze": _tool("systemd-analyze"),
    "useradd": _tool("useradd"),
    "litert": _module("ai_edge_litert", "tflite_runtime"),
    "jsonschema": _module("jsonschema"),
    "matplotlib": _module("matplotlib"),
    "console-script": _console_script_missing,
    "glibc": lambda: None if platform.libc_ver()[0] == "glibc" else "the C library is not glibc",
}
# Deliberately not installed by CI: tests that need one skip there too. Part: (check, why).
OPTIONAL_PARTS: dict[str, tuple[Callable[[], str | None] | None, str]] = {
    "torch": (
        _module("torch"),
        "the offline training chain (tests/test_restore_train.py) needs the `convert` extra "
        "(a pinned CPU torch build, ~1 GB); the device runtime and CI do without it",
    ),
    "onnx": (
        _module("onnx"),
        "the `convert` extra's ONNX exporter, used with torch in tests/test_restore_train.py",
    ),
    "dlib": (
        _dlib_judge_missing,
        "the `eval` extra's reference identity judge (dlib + face_recognition_models) for "
        "tests/test_restore_eval.py::test_report_with_dlib_identity",
    ),
    "shared-data": (
        None,  # requires("shared-data", path=...): that file or folder
        "datasets and recordings in ../shared/data, outside this repository (LFW for "
        "tests/test_restore.py, a stage video for tests/test_regions.py)",
    ),
}
assert not OPTIONAL_PARTS.keys() & REQUIRED_PARTS.keys()


def _missing(part: str, path: str | Path | None = None) -> str | None:
    """Why ``part`` is missing here, or None. ``path``: the file or folder that must exist
    (for "shared-data")."""
    if part in OPTIONAL_PARTS:
        check = OPTIONAL_PARTS[part][0]
    elif part in REQUIRED_PARTS:
        check = REQUIRED_PARTS[part]
    else:
        raise ValueError(f"unknown part {part!r}: add it to REQUIRED_PARTS or OPTIONAL_PARTS")
    if path is not None:
        return None if Path(path).exists() else f"{path} not present"
    if check is None:
        raise ValueError(f"part {part!r} needs path=...")
    return check()


def _skip_reason_for(part: str, missing: str) -> str:
    return (
        f"{OPTIONAL_SKIP}{part}: {missing}"
        if part in OPTIONAL_PARTS
        else f"needs {part}: {missing}"
    )


def _fail_in_ci(part: str, missing: str) -> None:
    pytest.fail(f"CI=true and {part} is missing: {missing} (.ci/run installs it)", pytrace=False)


def require(part: str, path: str | Path | None = None) -> None:
    """In a fixture: skip the running test when ``part`` is missing; under CI=true fail
    instead, unless it is one of OPTIONAL_PARTS."""
    missing = _missing(part, path)
    if missing is None:
        return
    if CI and part not in OPTIONAL_PARTS:
        _fail_in_ci(part, missing)
    pytest.skip(_skip_reason_for(part, missing))


def _missing_parts(item: pytest.Item) -> list[tuple[str, str]]:
    """(part, why) for each part of the item's ``requires`` markers that is missing."""
    return [
        (part, why)
        for marker in item.iter_markers("requires")
        for part in marker.args
        if (why := _missing(part, **marker.kwargs)) is not None
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.requires(part, ..., path=...)``: a missing part skips the test before
    its fixtures run (reported at the test), except a required one under CI=true."""
    for item in items:
        for part, why in _missing_parts(item):
            if not CI or part in OPTIONAL_PARTS:
                item.add_marker(pytest.mark.skip(reason=_skip_reason_for(part, why)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under CI=true a test whose required part is missing fails, before its fixtures run."""
    if CI:
        for part, why in _missing_parts(item):
            if part not in OPTIONAL_PARTS:
                _fail_in_ci(part, why)


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def _fail_skip_under_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not (CI and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report).removeprefix("Skipped: ")
    m = re.search(re.escape(OPTIONAL_SKIP) + r"([\w-]+)", reason)
    if m and m.group(1) in OPTIONAL_PARTS:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true: tests may not skip ({reason}). .ci/run installs every part a test needs; "
        "a part CI leaves out on purpose belongs in OPTIONAL_PARTS in tests/conftest.py"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())
