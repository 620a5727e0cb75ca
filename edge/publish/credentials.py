"""The broker password: read at run time, never from the configuration itself."""

from __future__ import annotations

import os
from pathlib import Path

from edge.publish.errors import MqttConfigError

CREDENTIAL_NAME = "mqtt-password"  # systemd: LoadCredential=mqtt-password:/etc/face-edge/...


def read_password(
    password_file: str | os.PathLike[str] | None, *, where: str = "mqtt.password_file"
) -> str | None:
    """The broker password, or ``None`` when none is configured.

    Source: ``password_file`` when given (``~`` expanded); otherwise, when systemd set
    ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``) and it holds ``mqtt-password``, that
    file; otherwise ``None``.

    Content: UTF-8 text, one line. Exactly one trailing line ending (``\\n`` or ``\\r\\n``)
    is removed; everything else, leading and trailing spaces included, is the password.

    Raises :class:`MqttConfigError` naming ``where`` (or ``$CREDENTIALS_DIRECTORY/...``)
    and the path, never the content, when the file cannot be read, is not UTF-8, is empty
    or holds more than one line.
    """
    if password_file:
        path = Path(password_file).expanduser()
    else:
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not creds:
            return None
        path = Path(creds) / CREDENTIAL_NAME
        if not path.exists():
            return None
        where = f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}"
    try:
        raw = path.read_bytes()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise MqttConfigError(f"{where}: cannot read the password file {path}: {reason}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # from None: the decode error would quote the bytes, i.e. part of the secret
        raise MqttConfigError(f"{where}: the password file {path} is not UTF-8 text") from None
    text = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    if not text:
        raise MqttConfigError(f"{where}: the password file {path} is empty")
    if "\n" in text or "\r" in text:
        raise MqttConfigError(f"{where}: the password file {path} holds more than one line")
    return text
