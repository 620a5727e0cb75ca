"""The one error the MQTT side raises for settings that cannot work."""

from __future__ import annotations


class MqttConfigError(ValueError):
    """The ``mqtt`` section cannot work as given (message says which key and why)."""
