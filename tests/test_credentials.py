"""The broker password reader: sources, what counts as the password, errors without the secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.publish.credentials import read_password
from edge.publish.errors import MqttConfigError


@pytest.fixture
def no_credentials_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.mark.usefixtures("no_credentials_dir")
def test_password_file_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw = tmp_path / "mqtt-pass"
    cases = {
        "s3cret \n": "s3cret ",  # one line ending goes, spaces are part of the password
        " crlf\r\n": " crlf",
        "no-newline": "no-newline",
        "Pässwörd\n": "Pässwörd",
    }
    for content, want in cases.items():
        pw.write_text(content, encoding="utf-8", newline="")
        assert read_password(str(pw)) == want, repr(content)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert read_password("~/mqtt-pass") == "Pässwörd"
    assert read_password(None) is None and read_password("") is None


def test_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt-password").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_password(None) == "from-systemd"
    explicit = tmp_path / "other"
    explicit.write_text("explicit\n")
    assert read_password(explicit) == "explicit"  # a configured file wins
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "empty"))
    assert read_password(None) is None  # the unit loads no mqtt-password


@pytest.mark.usefixtures("no_credentials_dir")
def test_unusable_files_are_named_never_echoed(tmp_path: Path) -> None:
    secret = "hunter2-secret"
    cases = {
        "missing": (None, "cannot read the password file"),
        "a-dir": (None, "cannot read the password file"),
        "empty": ("\n", "is empty"),
        "two-lines": (f"{secret}\nsecond\n", "more than one line"),
        "blank-line-after": (f"{secret}\n\n", "more than one line"),
        "bare-cr": (f"{secret}\r", "more than one line"),
        "latin1": (secret.encode() + b"\xe9\n", "not UTF-8"),
    }
    (tmp_path / "a-dir").mkdir()
    for name, (content, why) in cases.items():
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content, newline="")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        with pytest.raises(MqttConfigError) as info:
            read_password(path, where="--password-file")
        msg = str(info.value)
        assert msg.startswith("--password-file: ") and why in msg and str(path) in msg, msg
        assert secret not in msg
        assert info.value.__cause__ is None  # no chained error quoting the bytes either


def test_credentials_directory_errors_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mqtt-password").write_text("")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(MqttConfigError, match=r"^\$CREDENTIALS_DIRECTORY/mqtt-password: .*empty"):
        read_password(None)
