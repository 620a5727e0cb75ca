"""Loading and checking the daemon's YAML configuration.

The contract (key names, defaults) is ``edge/schemas/config.schema.json``, described in
``docs/DESIGN.md`` and ``config/README.md``. After :func:`load_config` the configuration
is a plain nested dict with every default filled in; per-camera override sections stay
sparse and are combined with the global sections by :func:`camera_settings`.

Validation does not need the ``jsonschema`` package: :mod:`edge.config.validate`
interprets the schema, :mod:`edge.config.yaml_lines` supplies line numbers, and the semantic
checks below cover what a schema cannot say (unique camera names, source URIs, ...).
Every problem is reported at once, as ``key.path: message (line N)``.

Secrets: the broker password is never written in the config file; it is read at run time
by :func:`resolve_password` from ``mqtt.password_file`` or from systemd's
``$CREDENTIALS_DIRECTORY/mqtt-password``. Camera URIs may hold credentials
(``rtsp://user:pass@cam``); :func:`redacted` and :func:`redact_uri` hide them.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import socket
import stat
import sys
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from edge.config.validate import KeyPath, Problem, SchemaValidator, format_path, line_for
from edge.config.yaml_lines import load_yaml_with_lines
from edge.publish.topics import sanitize_level

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.json"
CAMERA_SECTIONS = ("capture", "detector", "tracker", "best_shot", "enhance")
CREDENTIAL_NAME = "mqtt-password"  # file name under $CREDENTIALS_DIRECTORY
REDACTED = "***"

SOURCE_FORMS = (
    "picamera2:0, v4l2:///dev/video0, a device index such as 0, rtsp://, rtsps://, "
    "http://, https://, file:///path/video.mp4, demo: or demo:crowd"
)
_NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
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
def _schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


def config_schema() -> dict:
    """A copy of the configuration's JSON Schema."""
    return copy.deepcopy(_schema())


@lru_cache(maxsize=1)
def _validator() -> SchemaValidator:
    return SchemaValidator(_schema())


def default_config() -> dict:
    """The embedded defaults: one ``demo:`` camera, a local broker."""
    return _validator().defaults()


# -- loading -------------------------------------------------------------------------------


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


def source_problem(source: Any) -> str | None:
    """Why ``source`` is not a usable camera source URI, or ``None`` when it is."""
    if isinstance(source, bool) or not isinstance(source, int | str):
        return None  # the schema reports the type
    if isinstance(source, int):
        return None if source >= 0 else "a device index must be >= 0"
    s = source.strip()
    if s != source:
        return "remove the spaces around the source"
    if s.isdigit():
        return None
    if s.startswith("/dev/video"):
        return f"unsupported source {s!r} (did you mean 'v4l2://{s}'?)"
    if s.startswith("/") or s.startswith("./"):
        return f"unsupported source {s!r} (did you mean 'file://{Path(s).absolute()}'?)"
    scheme, sep, rest = s.partition(":")
    scheme = scheme.lower()
    if not sep:
        return f"unsupported source {s!r}: use {SOURCE_FORMS}"
    if scheme == "demo":
        from edge.capture.demo import scene_of

        try:
            scene_of(s)
        except ValueError as e:
            return str(e)
        return None
    if scheme == "picamera2":
        return (
            None
            if rest == "" or rest.isdigit()
            else f"picamera2 source takes a camera number, e.g. 'picamera2:0', not {rest!r}"
        )
    if scheme == "v4l2":
        if not rest.startswith("//") or not rest[2:]:
            return "v4l2 source looks like 'v4l2:///dev/video0'"
        return None
    if scheme == "file":
        if not rest.startswith("//") or not rest[2:]:
            return "file source looks like 'file:///path/to/video.mp4'"
        return None
    if scheme in _NETWORK_SCHEMES:
        try:
            parts = urlsplit(s)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as e:
            return f"bad {scheme} URI: {e}"
        if not rest.startswith("//") or not parts.hostname:
            return f"{scheme} source needs a host, e.g. '{scheme}://192.168.1.20/stream'"
        return None
    return f"unsupported source scheme '{scheme}:': use {SOURCE_FORMS}"


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
            capture = _merged_section(cfg, cam, "capture")
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
            if isinstance(src, str) and _uri_password(src):
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


def _uri_password(uri: str) -> bool:
    try:
        return urlsplit(uri).password is not None
    except ValueError:
        return False


def redact_uri(uri: str) -> str:
    """``rtsp://user:secret@cam/stream`` -> ``rtsp://user:***@cam/stream``; other text unchanged."""
    if not isinstance(uri, str) or "@" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:{REDACTED}@{hostport}").geturl()


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


def resolve_password(mqtt_cfg: Mapping[str, Any]) -> str | None:
    """The broker password, or ``None`` when none is configured.

    Read from ``mqtt_cfg["password_file"]``; when that is null and ``$CREDENTIALS_DIRECTORY``
    is set (systemd ``LoadCredential=``), from ``$CREDENTIALS_DIRECTORY/mqtt-password`` if
    that file exists. One trailing newline (``\\n`` or ``\\r\\n``) is stripped. Raises
    :class:`ConfigError` (without the secret) when the file cannot be read or is empty.
    """
    file = mqtt_cfg.get("password_file")
    if file:
        path, key = Path(file).expanduser(), "mqtt.password_file"
    else:
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not creds:
            return None
        path, key = Path(creds) / CREDENTIAL_NAME, f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}"
        if not path.exists():
            return None
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            [
                Problem(
                    key, f"cannot read the password file {path}: {e.strerror or type(e).__name__}"
                )
            ]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([Problem(key, f"the password file {path} is not UTF-8 text")]) from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ConfigError([Problem(key, f"the password file {path} is empty")])
    if "\n" in text:
        raise ConfigError([Problem(key, f"the password file {path} holds more than one line")])
    return text


# -- derived settings ----------------------------------------------------------------------


def _deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = {k: copy.deepcopy(v) for k, v in base.items()}
        for k, v in override.items():
            out[k] = _deep_merge(base.get(k), v)
        return out
    return copy.deepcopy(override)


def _merged_section(cfg: Mapping[str, Any], camera: Mapping[str, Any], section: str) -> Any:
    base = cfg.get(section)
    override = camera.get(section)
    if not isinstance(override, dict) or not override:
        return copy.deepcopy(base)
    return _deep_merge(base, override)


def camera_settings(cfg: Mapping[str, Any], camera: Mapping[str, Any]) -> dict:
    """The settings one camera runs with: ``name``, ``source``, ``enabled`` and the sections
    capture/detector/tracker/best_shot/enhance, the camera's overrides deep-merged over the
    global sections (mappings merge key by key; any other value, ``null`` included, replaces)."""
    out: dict[str, Any] = {
        "name": camera.get("name"),
        "source": camera.get("source"),
        "enabled": camera.get("enabled", True),
    }
    for section in CAMERA_SECTIONS:
        out[section] = _merged_section(cfg, camera, section)
    return out


def default_spool_path(cfg: Mapping[str, Any]) -> Path:
    """``spool.path`` if set, else ``$STATE_DIRECTORY/spool.sqlite`` (first directory when
    systemd lists several), else ``./var/spool.sqlite`` (absolute, from the working dir)."""
    configured = _get(cfg, ("spool", "path"))
    if configured:
        return Path(configured).expanduser()
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        first = state.split(":")[0]
        if first:
            return Path(first) / "spool.sqlite"
    return Path.cwd() / "var" / "spool.sqlite"


def resolve_device_id(cfg: Mapping[str, Any]) -> str:
    """``device_id`` if set, else the host name made safe as an MQTT topic level."""
    configured = cfg.get("device_id")
    if configured:
        # the schema already refuses / + # and spaces; control characters and a leading $
        # (broker topics) get through it
        return sanitize_level(configured)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()).strip("-.")
    return name or "face-edge"


# -- command line --------------------------------------------------------------------------


def _print_problems(path: str, problems: list[Problem], prefix: str = "") -> None:
    for p in problems:
        where = f"{path}:{p.line}" if p.line is not None else path
        print(f"{where}: {p.key}: {prefix}{p.message}", file=sys.stderr)


def config_check_main(path: str) -> int:
    """``config check``: print ``OK: <path>`` and return 0 when valid (warnings go to stderr);
    else print ``<path>:<line>: <key.path>: <message>`` per problem to stderr and return 2."""
    try:
        _, warnings = check_config(path)
    except ConfigError as e:
        _print_problems(str(path), e.details)
        return 2
    _print_problems(str(path), warnings, "warning: ")
    print(f"OK: {path}")
    return 0


def config_show_main(path: str | None) -> int:
    """``config show``: print the effective configuration (defaults filled, secrets redacted)
    as YAML and return 0; on problems behave like :func:`config_check_main`."""
    try:
        cfg, warnings = check_config(path)
    except ConfigError as e:
        _print_problems(str(path), e.details)
        return 2
    _print_problems(str(path), warnings, "warning: ")
    sys.stdout.write(f"# effective configuration of {path or '(embedded defaults)'}\n")
    sys.stdout.write(
        yaml.safe_dump(redacted(cfg), sort_keys=False, default_flow_style=False, allow_unicode=True)
    )
    return 0
