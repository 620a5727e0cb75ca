"""A small JSON Schema interpreter for the configuration schema.

The device runtime has no ``jsonschema`` package, so this module interprets the subset of
JSON Schema (draft 2020-12) that ``edge/schemas/config.schema.json`` uses:

- ``$ref`` to ``#/...`` (sibling keywords apply too and win for annotations),
- ``type`` (one name or a list, ``null`` unions included), ``enum``, ``const``,
- ``properties``, ``required``, ``additionalProperties`` (``false`` or a schema),
- ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``,
- ``pattern`` (``re.search``), ``minLength``, ``maxLength``,
- ``items``, ``minItems``, ``maxItems``,
- ``default`` filling, and the custom annotation ``x-partial: true`` that marks a
  per-camera override section, inside which absent keys are *not* filled with defaults.

Unlike most validators it reports every problem at once, each as a :class:`Problem` with
the dotted key path (``cameras[0].detector.backend``) and, when a line map from
:mod:`edge.config.yaml_lines` is given, the line of the YAML file it comes from.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KeyPath = tuple[str | int, ...]

ANNOTATION_KEYWORDS = frozenset(
    {"$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples"}
)
ASSERTION_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "pattern",
        "minLength",
        "maxLength",
        "items",
        "minItems",
        "maxItems",
        "x-partial",
    }
)
SUPPORTED_KEYWORDS = ANNOTATION_KEYWORDS | ASSERTION_KEYWORDS

# YAML 1.1 booleans; the config is read as YAML 1.2, where they are strings.
_YAML11_BOOL = frozenset({"yes", "no", "on", "off", "y", "n"})

# Words a technician reading YAML understands better than the JSON names.
_TYPE_WORDS = {
    "object": "mapping",
    "array": "list",
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean (true/false)",
    "null": "null",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a configuration: where it is and what is wrong."""

    key: str  # dotted key path, e.g. "cameras[0].detector.backend"
    message: str
    line: int | None = None  # 1-based line in the YAML file, when known

    def __str__(self) -> str:
        text = f"{self.key}: {self.message}"
        return text if self.line is None else f"{text} (line {self.line})"


def format_path(path: KeyPath) -> str:
    """``("cameras", 0, "detector")`` -> ``"cameras[0].detector"``; ``()`` -> ``"(root)"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def line_for(lines: Mapping[KeyPath, int] | None, path: KeyPath) -> int | None:
    """The line of ``path`` or of its nearest ancestor present in ``lines``."""
    if not lines:
        return None
    for n in range(len(path), -1, -1):
        line = lines.get(tuple(path[:n]))
        if line is not None:
            return line
    return None


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _describe(value: Any) -> str:
    kind = _json_type(value)
    word = _TYPE_WORDS.get(kind, kind)
    if kind in ("object", "array", "null"):
        return word
    if kind == "boolean":
        return f"boolean {str(value).lower()}"
    return f"{word} {_short(value)}"


def _is_type(value: Any, type_name: str) -> bool:
    if type_name == "null":
        return value is None
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if type_name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    raise ValueError(f"unsupported type {type_name!r} in schema")


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt_num(n: float) -> str:
    return str(int(n)) if isinstance(n, float) and n.is_integer() else str(n)


class SchemaValidator:
    """Validates (and fills defaults into) plain data against one schema document."""

    def __init__(self, schema: Mapping[str, Any]):
        self.root = schema
        unsupported = sorted(self._unsupported_keywords(schema, "#"))
        if unsupported:
            raise ValueError(
                "schema uses keywords this validator does not interpret: " + ", ".join(unsupported)
            )

    # -- schema handling ----------------------------------------------------------------

    def _unsupported_keywords(self, schema: Any, where: str) -> set[str]:
        if not isinstance(schema, Mapping):
            return set()
        found = {f"{where}/{k}" for k in schema if k not in SUPPORTED_KEYWORDS}
        for name, sub in schema.get("properties", {}).items():
            found |= self._unsupported_keywords(sub, f"{where}/properties/{name}")
        for name, sub in schema.get("$defs", {}).items():
            found |= self._unsupported_keywords(sub, f"{where}/$defs/{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), Mapping):
                found |= self._unsupported_keywords(schema[key], f"{where}/{key}")
        return found

    def _lookup(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref is supported, not {ref!r}")
        node: Any = self.root
        for part in ref[1:].split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[part]
        return node

    def resolve(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The schema with ``$ref`` chains inlined; keywords beside ``$ref`` take precedence."""
        merged = dict(schema)
        seen = 0
        while "$ref" in merged:
            seen += 1
            if seen > 32:
                raise ValueError("$ref chain too deep")
            target = dict(self._lookup(merged.pop("$ref")))
            target.update(merged)
            merged = target
        return merged

    # -- validation ---------------------------------------------------------------------

    def validate(
        self,
        instance: Any,
        lines: Mapping[KeyPath, int] | None = None,
        *,
        fill_defaults: bool = True,
        schema: Mapping[str, Any] | None = None,
        path: KeyPath = (),
    ) -> tuple[Any, list[Problem]]:
        """Check ``instance``; return it (defaults filled in place, integral floats made
        ints where an integer is expected) and the list of every problem found."""
        run = _Run(self, lines)
        value = run.check(self.root if schema is None else schema, instance, path, fill_defaults)
        return value, run.problems

    def defaults(self) -> Any:
        """The document that an empty instance becomes once defaults are filled."""
        value, problems = self.validate({})
        if problems:  # a schema bug: its defaults do not satisfy it
            raise ValueError("schema defaults are invalid: " + "; ".join(map(str, problems)))
        return value


class _Run:
    def __init__(self, validator: SchemaValidator, lines: Mapping[KeyPath, int] | None):
        self.v = validator
        self.lines = lines
        self.problems: list[Problem] = []

    def error(self, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(format_path(path), message, line_for(self.lines, path)))

    def check(self, schema: Mapping[str, Any], value: Any, path: KeyPath, fill: bool) -> Any:
        s = self.v.resolve(schema)
        if s.get("x-partial"):
            fill = False

        types = s.get("type")
        if types is not None:
            names = [types] if isinstance(types, str) else list(types)
            if not any(_is_type(value, t) for t in names):
                expected = " or ".join(_TYPE_WORDS.get(t, t) for t in names)
                hint = ""
                if "boolean" in names and isinstance(value, str) and value.lower() in _YAML11_BOOL:
                    hint = " (YAML 1.2 reads yes/no/on/off as text: write true or false)"
                self.error(path, f"expected {expected}, got {_describe(value)}{hint}")
                return value
            if isinstance(value, float) and "integer" in names and "number" not in names:
                value = int(value)

        if "enum" in s and not any(_json_equal(value, e) for e in s["enum"]):
            allowed = ", ".join("null" if e is None else str(e) for e in s["enum"])
            self.error(path, f"{_short(value)} is not one of {allowed}")
        if "const" in s and not _json_equal(value, s["const"]):
            self.error(path, f"must be {_short(s['const'])}, got {_short(value)}")

        if _is_number(value):
            self._check_number(s, value, path)
        elif isinstance(value, str):
            self._check_string(s, value, path)
        elif isinstance(value, dict):
            self._check_object(s, value, path, fill)
        elif isinstance(value, list):
            self._check_array(s, value, path, fill)
        return value

    def _check_number(self, s: Mapping[str, Any], value: float, path: KeyPath) -> None:
        shown = _fmt_num(value)
        if "minimum" in s and value < s["minimum"]:
            self.error(path, f"must be >= {_fmt_num(s['minimum'])}, got {shown}")
        if "exclusiveMinimum" in s and value <= s["exclusiveMinimum"]:
            self.error(path, f"must be > {_fmt_num(s['exclusiveMinimum'])}, got {shown}")
        if "maximum" in s and value > s["maximum"]:
            self.error(path, f"must be <= {_fmt_num(s['maximum'])}, got {shown}")
        if "exclusiveMaximum" in s and value >= s["exclusiveMaximum"]:
            self.error(path, f"must be < {_fmt_num(s['exclusiveMaximum'])}, got {shown}")

    def _check_string(self, s: Mapping[str, Any], value: str, path: KeyPath) -> None:
        if "minLength" in s and len(value) < s["minLength"]:
            self.error(
                path,
                "must not be empty"
                if s["minLength"] == 1
                else f"must be at least {s['minLength']} characters long",
            )
        if "maxLength" in s and len(value) > s["maxLength"]:
            self.error(path, f"must be at most {s['maxLength']} characters long, got {len(value)}")
        if "pattern" in s and not re.search(s["pattern"], value):
            self.error(path, f"{_short(value)} does not match the pattern {s['pattern']!r}")

    def _check_object(self, s: Mapping[str, Any], value: dict, path: KeyPath, fill: bool) -> None:
        props: Mapping[str, Any] = s.get("properties", {})
        for name in s.get("required", ()):
            if name not in value:
                self.error(path + (name,), "required key missing")
        extra = s.get("additionalProperties", True)
        for key in list(value):
            if key in props:
                value[key] = self.check(props[key], value[key], path + (key,), fill)
            elif extra is False:
                self.error(path + (key,), "unknown key" + _hint(str(key), list(props)))
            elif isinstance(extra, Mapping):
                value[key] = self.check(extra, value[key], path + (key,), fill)
        if fill:
            for key, sub in props.items():
                if key in value:
                    continue
                resolved = self.v.resolve(sub)
                if "default" in resolved:
                    value[key] = self.check(
                        sub, copy.deepcopy(resolved["default"]), path + (key,), fill
                    )

    def _check_array(self, s: Mapping[str, Any], value: list, path: KeyPath, fill: bool) -> None:
        if "minItems" in s and len(value) < s["minItems"]:
            n = s["minItems"]
            self.error(path, f"needs at least {n} item{'s' if n != 1 else ''}, got {len(value)}")
        if "maxItems" in s and len(value) > s["maxItems"]:
            self.error(path, f"allows at most {s['maxItems']} items, got {len(value)}")
        items = s.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                value[i] = self.check(items, item, path + (i,), fill)


def _hint(key: str, valid: list[str]) -> str:
    if not valid:
        return " (this section takes no keys)"
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if not close:
        close = [v for v in valid if key.lower() == v.lower() or key.replace("-", "_") == v]
    if close:
        return f" (did you mean {close[0]!r}?)"
    return " (valid keys: " + ", ".join(valid) + ")"
