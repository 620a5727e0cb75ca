"""The configuration's JSON Schema (draft 2020-12), generated from the settings classes.

``edge/settings.py`` is the source: field types give ``type``/``enum``/nullability, field
metadata the descriptions and constraints, section docstrings the section descriptions. The
sections a camera may override live in ``$defs``; inside ``cameras[]`` they are referenced
with ``x-partial: true`` so the validator leaves them sparse (no defaults filled there).

The committed ``edge/schemas/config.schema.json`` is this module's output, written by
``tools/gen_config_docs.py`` (tests check it is current); the loader validates against
:func:`settings_schema` itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from typing import Any

from edge.settings import (
    CAMERA_SECTIONS,
    CameraSettings,
    Settings,
    doc_of,
    field_types,
    is_section,
    optional_args,
)

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://face-edge.invalid/schemas/config.schema.json"
SCHEMA_TITLE = "face-edge configuration"
GENERATED_NOTE = "Generated from edge/settings.py by tools/gen_config_docs.py: do not edit."

# Constraint keywords in the order they are written, after type and description.
_CONSTRAINT_ORDER = (
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
)
_JSON_TYPES: dict[Any, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    type(None): "null",
}


def settings_schema() -> dict[str, Any]:
    """The JSON Schema of the YAML configuration (a fresh dict on each call)."""
    section_types = field_types(Settings)
    defs = {"camera": _object(CameraSettings, with_default=False)}
    for name in CAMERA_SECTIONS:
        defs[name] = _object(section_types[name], with_default=True)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "$comment": GENERATED_NOTE,
        "title": SCHEMA_TITLE,
        "description": description_of(Settings),
        "type": "object",
        "additionalProperties": False,
        "properties": _properties(Settings),
        "$defs": defs,
    }


def schema_text(schema: dict[str, Any] | None = None) -> str:
    """The schema as the committed file holds it (2-space indent, final newline)."""
    return json.dumps(settings_schema() if schema is None else schema, indent=2) + "\n"


def description_of(cls: type) -> str:
    """A settings class's docstring as one line: its section's description."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    if not doc or doc.startswith(cls.__name__ + "("):  # dataclass's generated signature
        raise ValueError(f"{cls.__name__} needs a docstring: it is the section's description")
    return " ".join(doc.split())


def _object(cls: type, *, with_default: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "description": description_of(cls),
        "additionalProperties": False,
    }
    required = [f.name for f in dataclasses.fields(cls) if _is_required(f)]
    if required:
        out["required"] = required
    out["properties"] = _properties(cls)
    if with_default:
        out["default"] = {}
    return out


def _properties(cls: type) -> dict[str, Any]:
    hints = field_types(cls)
    # The per-camera override sections are the global sections' schemas, referenced.
    refs = {field_types(Settings)[name]: name for name in CAMERA_SECTIONS}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if cls is CameraSettings and f.name in CAMERA_SECTIONS:
            out[f.name] = {
                "$ref": f"#/$defs/{f.name}",
                "x-partial": True,
                "description": f"Per-camera overrides of the global `{f.name}` section; "
                "keys left out keep the global value.",
                "default": {},
            }
        elif is_section(tp):
            out[f.name] = (
                {"$ref": f"#/$defs/{refs[tp]}"} if tp in refs else _object(tp, with_default=True)
            )
        else:
            out[f.name] = _leaf(f, tp)
    return out


def _leaf(f: dataclasses.Field, tp: Any) -> dict[str, Any]:
    doc = doc_of(f)
    out: dict[str, Any] = {"type": _json_type(tp)}
    if doc.title is not None:
        out["title"] = doc.title
    out["description"] = doc.description
    enum = _enum(tp)
    if enum is not None:
        out["enum"] = enum
    for keyword in _CONSTRAINT_ORDER:
        if keyword in doc.constraints:
            out[keyword] = doc.constraints[keyword]
    unknown = set(doc.constraints) - set(_CONSTRAINT_ORDER)
    if unknown:
        raise ValueError(f"{f.name}: constraints the schema cannot express: {sorted(unknown)}")
    if typing.get_origin(tp) is tuple:
        out["items"] = _items(typing.get_args(tp)[0])
    if not _is_required(f):
        out["default"] = _json_value(f.default)
    return out


def _items(tp: Any) -> dict[str, Any]:
    if tp is CameraSettings:
        return {"$ref": "#/$defs/camera"}
    raise ValueError(f"no schema for list items of type {tp!r}")


def _json_type(tp: Any) -> str | list[str]:
    names: list[str] = []
    for arg in optional_args(tp):
        if typing.get_origin(arg) is typing.Literal:
            kinds = {type(v) for v in typing.get_args(arg)}
            if len(kinds) != 1:
                raise ValueError(f"a Literal mixes value types: {arg!r}")
            names.append(_JSON_TYPES[kinds.pop()])
        elif typing.get_origin(arg) is tuple:
            names.append("array")
        elif arg in _JSON_TYPES:
            names.append(_JSON_TYPES[arg])
        else:
            raise ValueError(f"no JSON type for {arg!r}")
    return names[0] if len(names) == 1 else names


def _enum(tp: Any) -> list[Any] | None:
    for arg in optional_args(tp):
        if typing.get_origin(arg) is typing.Literal:
            values = list(typing.get_args(arg))
            return values + [None] if types.NoneType in optional_args(tp) else values
    return None


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _json_value(value: Any) -> Any:
    """A default as JSON: sections hold only what differs from their own defaults."""
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if dataclasses.is_dataclass(value):
        out = {}
        for f in dataclasses.fields(value):
            current = getattr(value, f.name)
            if _is_required(f):
                out[f.name] = _json_value(current)
                continue
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            if current != default:
                out[f.name] = _json_value(current)
        return out
    return value
