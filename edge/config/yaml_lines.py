"""Load YAML while remembering the line each key comes from.

A plain YAML load forgets where values were written and silently keeps the last of
duplicate keys. For configuration errors a technician can act on we compose the node
tree with ruamel.yaml ourselves and build plain Python data from it, recording for every
key path (``("cameras", 0, "source")``) the 1-based line of its key (sequence items: the
line of the item). Duplicate keys, non-scalar keys, unreadable values and syntax errors
come back as :class:`~edge.config.validate.Problem` objects with their line, all of them.

The text is read as YAML 1.2 (ruamel.yaml's default, the same rules ``config set`` edits
with): only ``true``/``false`` are booleans; ``yes``/``no``/``on``/``off`` are text, which
the schema then refuses where a boolean is expected.

Merge keys (``<<: *anchor``) are supported: explicit keys win over merged ones, and
merged keys keep the line of the anchor they came from.
"""

from __future__ import annotations

import warnings
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from edge.config.validate import KeyPath, Problem, format_path

MERGE_TAG = "tag:yaml.org,2002:merge"
SYNTAX_KEY = "(yaml)"
_STD_TAG = "tag:yaml.org,2002:"


def load_yaml_with_lines(text: str) -> tuple[Any, dict[KeyPath, int], list[Problem]]:
    """Parse one YAML document.

    Returns ``(data, lines, problems)``. ``data`` (plain dicts, lists and scalars) is
    ``None`` for an empty document or after a syntax error (then ``problems`` holds that
    one error). ``lines`` maps key paths to 1-based line numbers.
    """
    # pure: the C parser gives no marks for some errors; typ="safe": plain Python scalars.
    yaml = YAML(typ="safe", pure=True)
    try:
        with warnings.catch_warnings():
            # A reused anchor name is valid YAML (the later one wins); not worth a warning.
            warnings.simplefilter("ignore")
            node = yaml.compose(text)
    except MarkedYAMLError as e:
        return None, {}, [_syntax_problem(e)]
    except ReaderError as e:
        line = text[: max(e.position, 0)].count("\n") + 1
        return None, {}, [Problem(SYNTAX_KEY, f"unreadable character: {e.reason}", line)]
    except YAMLError as e:  # pragma: no cover - other parser errors carry no mark
        return None, {}, [Problem(SYNTAX_KEY, str(e).strip())]
    if node is None:
        return None, {}, []
    builder = _Builder(yaml)
    builder.lines[()] = node.start_mark.line + 1
    data = builder.build(node, ())
    return data, builder.lines, builder.problems


def _syntax_problem(e: MarkedYAMLError) -> Problem:
    mark = e.problem_mark or e.context_mark
    parts = [p for p in (e.context, e.problem) if p]
    message = "; ".join(parts) if parts else "invalid YAML"
    if (
        e.context_mark is not None
        and e.problem_mark is not None
        and e.context_mark.line != e.problem_mark.line
    ):
        message += f" (started on line {e.context_mark.line + 1})"
    return Problem(
        SYNTAX_KEY, f"YAML syntax error: {message}", None if mark is None else mark.line + 1
    )


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_STD_TAG) :] if tag.startswith(_STD_TAG) else tag


class _Builder:
    def __init__(self, yaml: YAML):
        self.yaml = yaml
        self.lines: dict[KeyPath, int] = {}
        self.problems: list[Problem] = []
        self._active: set[int] = set()  # node ids being built (alias cycles)

    def problem(self, path: KeyPath, message: str, node: Node) -> None:
        self.problems.append(Problem(format_path(path), message, node.start_mark.line + 1))

    def build(self, node: Node, path: KeyPath) -> Any:
        if id(node) in self._active:
            self.problem(path, "recursive YAML alias", node)
            return None
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self._build_sequence(node, path)
            if isinstance(node, MappingNode):
                return self._build_mapping(node, path)
        finally:
            self._active.discard(id(node))
        self.problem(path, f"unsupported YAML node {type(node).__name__}", node)  # pragma: no cover
        return None

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        try:
            return self.yaml.constructor.construct_object(node, deep=True)
        except YAMLError as e:
            why = getattr(e, "problem", None) or str(e).splitlines()[0]
        except (ValueError, KeyError, TypeError, OverflowError):
            # an explicit tag the text does not fit, e.g. "!!int x"
            why = f"{node.value!r} is not a valid {_short_tag(str(node.tag))}"
        self.problem(path, f"cannot read value: {why}", node)
        return None

    def _build_sequence(self, node: SequenceNode, path: KeyPath) -> list:
        out = []
        for i, child in enumerate(node.value):
            self.lines[path + (i,)] = child.start_mark.line + 1
            out.append(self.build(child, path + (i,)))
        return out

    def _build_mapping(self, node: MappingNode, path: KeyPath) -> dict:
        merged: dict[str, Any] = {}
        merged_lines: dict[KeyPath, int] = {}
        own: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                self._merge(value_node, path, merged, merged_lines)
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(path, "keys must be plain names, not lists or mappings", key_node)
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.problem(
                    path + (key,),
                    f"duplicate key (first given on line {first_line[key]})",
                    key_node,
                )
                continue
            first_line[key] = line
            self.lines[path + (key,)] = line
            own[key] = self.build(value_node, path + (key,))
        for p, line in merged_lines.items():
            if p[len(path)] not in own:
                self.lines.setdefault(p, line)
        return {**merged, **own}

    def _merge(self, value_node: Node, path: KeyPath, merged: dict, merged_lines: dict) -> None:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for src in sources:
            if not isinstance(src, MappingNode):
                self.problem(path, "'<<' merges only mappings (use <<: *anchor)", src)
                continue
            sub = _Builder(self.yaml)
            sub._active = self._active
            data = sub.build(src, path)
            self.problems.extend(sub.problems)
            if not isinstance(data, dict):  # a recursive alias, already reported
                continue
            for key, val in data.items():
                if key not in merged:  # earlier merge sources win, as in YAML
                    merged[key] = val
                    for p, line in sub.lines.items():
                        if len(p) > len(path) and p[len(path)] == key:
                            merged_lines.setdefault(p, line)
