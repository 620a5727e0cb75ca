"""The one place paho-mqtt clients are built: publisher, subscriber and doctor.

Every client uses paho 2's callback API v2. TLS comes from the ``mqtt.tls`` settings
(``TlsSettings``) through :func:`build_ssl_context`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.publish.errors import MqttConfigError
from edge.settings import TlsSettings


def build_ssl_context(
    tls: TlsSettings | Mapping[str, Any], *, where: str = "mqtt.tls"
) -> ssl.SSLContext:
    """Client SSLContext from the TLS settings (``ca_file``, ``cert_file``, ``key_file``,
    ``verify``; a mapping of some of them is taken too).

    ``verify`` (default true) checks the broker certificate against ``ca_file`` (or the
    system CAs) and its host name; ``verify: false`` turns both off explicitly.
    """
    tls = TlsSettings.coerce(tls)
    for key in ("ca_file", "cert_file", "key_file"):
        f = getattr(tls, key)
        if f and not Path(f).is_file():
            raise MqttConfigError(f"{where}.{key}: file not found: {f}")
    if tls.key_file and not tls.cert_file:
        raise MqttConfigError(f"{where}.key_file is set but {where}.cert_file is not")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file or None)
    except (ssl.SSLError, OSError) as e:
        raise MqttConfigError(f"{where}: cannot load certificates: {e}") from e
    if tls.verify is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client(mqtt.Client):
    """paho client that hands the reason of a failed connection attempt to
    ``on_connect_error``: paho's own loop retries silently, so nothing else would see it."""

    on_connect_error: Callable[[BaseException], None] | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as e:  # includes ssl errors; paho's loop retries after these
            cb = self.on_connect_error
            if cb is not None:
                cb(e)
            raise


def make_client(
    client_id: str = "",
    *,
    protocol: int = mqtt.MQTTv311,
    clean_session: bool | None = None,
    tls: TlsSettings | Mapping[str, Any] | None = None,
    tls_where: str = "mqtt.tls",
    username: str | None = None,
    password: str | None = None,
    reconnect_delay: tuple[float, float] | None = None,
) -> Client:
    """A paho 2 client, not yet connected.

    ``clean_session``: MQTT 3.1.1 only (None: paho's default, a clean session); MQTT 5
    chooses clean start at connect time. ``tls``: the TLS settings, None for plain TCP;
    problems raise :class:`MqttConfigError` prefixed with ``tls_where``. ``username``:
    sent with ``password`` when set. ``reconnect_delay``: ``(min_s, max_s)`` of paho's
    exponential backoff (paho's default when None).
    """
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=protocol,
    )
    if username:
        client.username_pw_set(str(username), password)
    if tls is not None:
        client.tls_set_context(build_ssl_context(tls, where=tls_where))
    if reconnect_delay is not None:
        # paho's hints say int; it computes with floats and the tests use sub-second delays
        client.reconnect_delay_set(*reconnect_delay)  # type: ignore[arg-type]
    return client
