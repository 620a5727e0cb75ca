"""The configuration: YAML with line numbers, checking against the schema, the effective
settings per camera, and the comment-keeping editor behind `config set`."""

from edge.config.load import (
    ConfigError,
    camera_settings,
    check_config,
    check_config_text,
    default_config,
    load_config,
    load_config_text,
    load_settings,
    redacted,
    resolve_device_id,
    settings_from_config,
)

__all__ = [
    "ConfigError",
    "camera_settings",
    "check_config",
    "check_config_text",
    "default_config",
    "load_config",
    "load_config_text",
    "load_settings",
    "redacted",
    "resolve_device_id",
    "settings_from_config",
]
