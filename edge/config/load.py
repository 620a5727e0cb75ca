"""Loading and checking the daemon's YAML configuration.

The contract (key names, types, defaults) is the settings classes of ``edge/settings.py``;
``edge/schemas/config.schema.json`` and ``config/README.md`` are generated from them.
:func:`load_settings` returns a frozen :class:`~edge.settings.Settings` whose cameras hold
their overrides merged over the global sections. :func:`load_config` (the older form) returns
a plain nested dict with every default filled in; per-camera override sections stay sparse
and are combined with the global sections by :func:`camera_settings`.

Validation does not need the ``jsonschema`` package: :mod:`edge.config.validate`
interprets the schema, :mod:`edge.config.yaml_lines` supplies line numbers, and the semantic
checks below cover what a schema cannot say (unique camera names, source URIs, ...).
Every problem is reported at once, as ``key.path: message (line N)``.

Secrets: the broker password is never written in the config file; it is read at run time
by :func:`edge.publish.credentials.read_password` from ``mqtt.password_file`` or from
systemd's ``$CREDENTIALS_DIRECTORY/mqtt-password``. Camera URIs may hold credentials
(``rtsp://user:pass@cam``); :func:`redacted` and :func:`redact_uri` hide them.
"""

from __future__ import annotations

import logging
import re
import socket
import stat
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from edge.capture.uri import REDACTED, redact_uri, source_problem
from edge.config.schema import settings_schema
from edge.config.validate import KeyPath, Problem, SchemaValidator, format_path, line_for
from edge.config.yaml_lines import load_yaml_with_lines
from edge.publish.topics import sanitize_level
from edge.settings import CAMERA_SECTIONS, Settings

log = logging.getLogger(__name__)


# Keys holding file system paths: relative values are taken from the config file's directory.
_GLOBAL_PATH_KEYS: tuple[KeyPath, ...] = (
    ("mqtt", "password_file"),
    ("mqtt", "tls", "ca_file"),
    ("mqtt", "tls", "cert_file"),
    ("mqtt", "tls", "key_file"),
    ("detector", "models_dir"),
    ("spool", "path"),
)
_SECRET_KEY = re.compile(r"(password|passwd|secret|token)(?!_file)", re.IGNORECASE)


class ConfigError(Exception):
    """The configuration cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[Problem | str], source: str | None = None):
        self.details: list[Problem] = [
            p if isinstance(p, Problem) else Problem("(config)", p) for p in problems
        ]
        self.problems: list[str] = [str(p) for p in self.details]
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid configuration{where}:\n  " + "\n  ".join(self.problems))


# -- schema --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _validator() -> SchemaValidator:
    # The schema the settings classes generate (the committed file is the same text).
    return SchemaValidator(settings_schema())


def default_config() -> dict:
    """The embedded defaults: one ``demo:`` camera, a local broker."""
    return _validator().defaults()


# -- loading -------------------------------------------------------------------------------


def load_settings(path: str | Path | None) -> Settings:
    """Load and check a configuration file (``None``: the embedded defaults) as typed,
    frozen settings. Raises :class:`ConfigError` listing every problem; warnings are logged."""
    return settings_from_config(load_config(path))


def settings_from_config(cfg: Mapping[str, Any]) -> Settings:
    """The typed settings of a checked configuration dict (``load_config``'s result): each
    camera's override sections merged over the global sections, lists made tuples."""
    return Settings.from_dict(cfg)


def load_config(path: str | Path | None) -> dict:
    """Load, check and complete a configuration file (``None``: the embedded defaults).

    Raises :class:`ConfigError` listing every problem. Warnings are logged.
    """
    cfg, warnings = check_config(path)
    for w in warnings:
        log.warning("config %s: %s", path, w)
    return cfg


def check_config(path: str | Path | None) -> tuple[dict, list[Problem]]:
    """Like :func:`load_config` but returns ``(cfg, warnings)`` instead of logging."""
    if path is None:
        return default_config(), []
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            [Problem("(file)", f"cannot read {path}: {e.strerror or e}")], str(path)
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError([Problem("(file)", "not UTF-8 text", line)], str(path)) from None
    return check_config_text(text, str(path), base_dir=path.parent, file_path=path)


def load_config_text(
    text: str, source_name: str = "<string>", *, base_dir: str | Path | None = None
) -> dict:
    """Load a configuration from YAML text. Relative paths are taken from ``base_dir``
    (default: left relative, i.e. to the working directory). Warnings are logged."""
    cfg, warnings = check_config_text(text, source_name, base_dir=base_dir)
    for w in warnings:
        log.warning("config %s: %s", source_name, w)
    return cfg


def check_config_text(
    text: str,
    source_name: str = "<string>",
    *,
    base_dir: str | Path | None = None,
    file_path: str | Path | None = None,
) -> tuple[dict, list[Problem]]:
    """Check YAML text; return ``(cfg, warnings)`` or raise :class:`ConfigError`.

    ``file_path`` (the file the text was read from) enables the file permission checks.
    """
    data, lines, problems = load_yaml_with_lines(text)
    if problems and data is None:  # syntax error: nothing more can be said
        raise ConfigError(problems, source_name)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(
            Problem(
                "(root)",
                f"the file must hold a mapping of keys, not a {type(data).__name__}",
                line_for(lines, ()),
            )
        )
        raise ConfigError(problems, source_name)

    cfg, schema_problems = _validator().validate(data, lines)
    problems += schema_problems
    problems += _semantic_problems(cfg, lines)
    if problems:
        raise ConfigError(_sorted(problems), source_name)

    if base_dir is not None:
        _resolve_paths(cfg, Path(base_dir))
    warnings = _warnings(cfg, lines, Path(file_path) if file_path is not None else None)
    return cfg, _sorted(warnings)


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))


# -- semantic checks -----------------------------------------------------------------------


def _problem(lines: Mapping[KeyPath, int], path: KeyPath, message: str) -> Problem:
    return Problem(format_path(path), message, line_for(lines, path))


def _semantic_problems(cfg: dict, lines: Mapping[KeyPath, int]) -> list[Problem]:
    """Checks the schema cannot express. Tolerates values the schema already rejected."""
    out: list[Problem] = []
    cameras = cfg.get("cameras")
    if isinstance(cameras, list):
        seen: dict[str, int] = {}
        levels: dict[str, int] = {}  # the MQTT topic level each name becomes
        for i, cam in enumerate(cameras):
            if not isinstance(cam, dict):
                continue
            name = cam.get("name")
            if isinstance(name, str):
                level = sanitize_level(name)
                if name in seen:
                    out.append(
                        _problem(
                            lines,
                            ("cameras", i, "name"),
                            f"duplicate camera name {name!r} (also cameras[{seen[name]}])",
                        )
                    )
                elif level in levels:
                    other = levels[level]
                    out.append(
                        _problem(
                            lines,
                            ("cameras", i, "name"),
                            f"camera names {name!r} and {cameras[other]['name']!r} "
                            f"(cameras[{other}]) become the same MQTT topic level {level!r}",
                        )
                    )
                else:
                    seen[name] = i
                    levels[level] = i
            if isinstance(cam.get("source"), str):
                why = source_problem(cam["source"])
                if why:
                    out.append(_problem(lines, ("cameras", i, "source"), why))
            # capture is flat: a camera's keys simply replace the global ones
            base, override = cfg.get("capture"), cam.get("capture")
            capture = {
                **(base if isinstance(base, dict) else {}),
                **(override if isinstance(override, dict) else {}),
            }
            out += _range_problem(lines, ("cameras", i, "capture"), capture, cam.get("capture"))
    out += _range_problem(lines, ("capture",), cfg.get("capture"), None)

    mqtt = cfg.get("mqtt")
    if isinstance(mqtt, dict):
        out += _range_problem(lines, ("mqtt",), mqtt, None)
        tls = mqtt.get("tls")
        if isinstance(tls, dict):
            has_cert, has_key = bool(tls.get("cert_file")), bool(tls.get("key_file"))
            if has_cert != has_key:
                missing, given = (
                    ("key_file", "cert_file") if has_cert else ("cert_file", "key_file")
                )
                out.append(
                    _problem(
                        lines,
                        ("mqtt", "tls", missing),
                        f"needed together with tls.{given} (client certificate and its key)",
                    )
                )
            tls_on = tls.get("enabled") is True
        else:
            tls_on = False
        if mqtt.get("password_file") and not tls_on and mqtt.get("allow_insecure") is not True:
            out.append(
                _problem(
                    lines,
                    ("mqtt", "password_file"),
                    "a password would cross the network unencrypted: set mqtt.tls.enabled: true "
                    "(or mqtt.allow_insecure: true on a trusted network)",
                )
            )
    return out


def _range_problem(
    lines: Mapping[KeyPath, int], where: KeyPath, section: Any, override: Any
) -> list[Problem]:
    """reconnect_min_s <= reconnect_max_s in ``section`` (for a camera: the merged values)."""
    if not isinstance(section, dict):
        return []
    lo, hi = section.get("reconnect_min_s"), section.get("reconnect_max_s")
    if (
        not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi))
        or lo <= hi
    ):
        return []
    if override is not None:  # a camera: only report when its overrides cause it
        if not isinstance(override, dict) or not (
            {"reconnect_min_s", "reconnect_max_s"} & set(override)
        ):
            return []
        key = "reconnect_min_s" if "reconnect_min_s" in override else "reconnect_max_s"
    else:
        key = "reconnect_min_s"
    return [
        _problem(
            lines, where + (key,), f"reconnect_min_s ({lo}) must not exceed reconnect_max_s ({hi})"
        )
    ]


# -- warnings ------------------------------------------------------------------------------


def _mode_readable_by_others(path: Path) -> int | None:
    """The permission bits of ``path`` when group or others may read it, else ``None``."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & (stat.S_IRGRP | stat.S_IROTH) else None


def _warnings(cfg: dict, lines: Mapping[KeyPath, int], file_path: Path | None) -> list[Problem]:
    out: list[Problem] = []
    cameras = cfg["cameras"]
    if not any(c.get("enabled", True) for c in cameras):
        out.append(
            _problem(
                lines, ("cameras",), "every camera is disabled: the daemon will capture nothing"
            )
        )

    config_mode = _mode_readable_by_others(file_path) if file_path is not None else None
    if config_mode is not None:
        for i, cam in enumerate(cameras):
            src = cam.get("source")
            if isinstance(src, str) and redact_uri(src) != src:  # a password in the URI
                out.append(
                    _problem(
                        lines,
                        ("cameras", i, "source"),
                        f"the URI holds a password and {file_path} is readable by group/others "
                        f"(mode {config_mode:04o}): chmod 600 (or 640 for the service's group)",
                    )
                )

    mqtt = cfg["mqtt"]
    pw = mqtt.get("password_file")
    if pw:
        p = Path(pw)
        if not p.is_file():
            # The value itself is not echoed: someone may have typed the password here.
            out.append(
                _problem(
                    lines,
                    ("mqtt", "password_file"),
                    "no such file (value not shown; this key takes the path of a file holding the password)",
                )
            )
        else:
            mode = _mode_readable_by_others(p)
            if mode is not None:
                out.append(
                    _problem(
                        lines,
                        ("mqtt", "password_file"),
                        f"{p} is readable by group/others (mode {mode:04o}): chmod 600 it "
                        "(or 640 for the service's group)",
                    )
                )
    tls = mqtt["tls"]
    for key in ("ca_file", "cert_file", "key_file"):
        if tls.get(key) and not Path(tls[key]).is_file():
            out.append(_problem(lines, ("mqtt", "tls", key), f"file not found: {tls[key]}"))
    if tls.get("enabled") and tls.get("verify") is False:
        out.append(
            _problem(
                lines,
                ("mqtt", "tls", "verify"),
                "the broker's certificate is not checked: use only for testing",
            )
        )
    if mqtt.get("allow_insecure") and mqtt.get("password_file") and not tls.get("enabled"):
        out.append(
            _problem(lines, ("mqtt", "allow_insecure"), "the broker password is sent unencrypted")
        )
    return out


# -- paths, secrets ------------------------------------------------------------------------


def _get(cfg: Mapping, path: KeyPath) -> Any:
    node: Any = cfg
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _resolve_paths(cfg: dict, base_dir: Path) -> None:
    """Make relative path values absolute against ``base_dir`` (``~`` is expanded)."""

    def fix(section: Any, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str) and section[key]:
            p = Path(section[key]).expanduser()
            section[key] = str(p if p.is_absolute() else (base_dir / p).absolute())

    for path in _GLOBAL_PATH_KEYS:
        fix(_get(cfg, path[:-1]), path[-1])
    for cam in cfg.get("cameras", []):
        fix(cam.get("detector"), "models_dir")


def redacted(cfg: Mapping[str, Any]) -> dict:
    """A deep copy of ``cfg`` safe to log or print: values of password/secret/token keys
    are replaced by ``***`` and passwords inside URIs are masked. Paths to secret files
    (``password_file``) are kept: they are not secrets."""

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v, str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if key is not None and node is not None and _SECRET_KEY.search(key):
            return REDACTED
        if isinstance(node, str):
            return redact_uri(node)
        return node

    return walk(cfg, None)


# -- derived settings ----------------------------------------------------------------------


def camera_settings(cfg: Mapping[str, Any], camera: Mapping[str, Any]) -> dict:
    """The settings one camera entry runs with, as plain dicts (typed: ``Settings.cameras``,
    or ``settings.camera_for(entry)`` for an entry not in the file): ``name``, ``source``,
    ``enabled`` and the sections capture/detector/tracker/best_shot/enhance, the camera's
    overrides deep-merged over the global sections (mappings merge key by key; any other
    value, ``null`` included, replaces). The same merge as :func:`settings_from_config`."""
    sections = Settings.from_dict({s: cfg[s] for s in CAMERA_SECTIONS if s in cfg})
    return sections.camera_for(camera).to_dict()


def resolve_device_id(configured: str | None) -> str:
    """``device_id`` (``Settings.device_id``) if set, else the host name made safe as an MQTT
    topic level."""
    if configured:
        # the schema already refuses / + # and spaces; control characters and a leading $
        # (broker topics) get through it
        return sanitize_level(configured)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()).strip("-.")
    return name or "face-edge"
