"""`face-edge config set PATH KEY=VALUE ...`: change a config in place, keeping its comments
and layout, only if the result is valid; atomic write with a backup; optional reload.

The edit is a ruamel.yaml round trip: the file is loaded as a comment-preserving tree, the
value is set (missing sections are created), and the tree is written back with the file's
own indentation. Scalars the edit does not touch are written back exactly as they were
(``null``/``~``/empty, ``True``, ``0x1F``; quoted strings keep their quotes). Before anything
is written the new text is read back and compared with the old data: only the key that was
set may differ, so an edit that would reach other keys through a YAML anchor, alias or
merge key is refused rather than written.
"""

from __future__ import annotations

import copy
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.anchor import Anchor
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import CommentMark
from ruamel.yaml.error import YAMLError as RuamelYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import (
    FoldedScalarString,
    LiteralScalarString,
    ScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.tokens import CommentToken

from edge.config.load import ConfigError, check_config_text
from edge.config.validate import KeyPath, format_path
from edge.config.yaml_lines import load_yaml_with_lines

_KEY = re.compile(r"^[A-Za-z_]\w*(\[\d+\])*(\.[A-Za-z_]\w*(\[\d+\])*)*$")
_PART = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")
_TAG = "tag:yaml.org,2002:"
# Leading comments, directives and "---": kept verbatim (ruamel drops comments above "---").
_PREAMBLE_LINE = re.compile(r"^(\s*(#.*)?|%.*)$")
_DOC_START = re.compile(r"^---\s*(#.*)?$")
_YAML11 = yaml.resolver.Resolver()  # how PyYAML (YAML 1.1) reads a plain scalar


def parse_key(key: str) -> KeyPath:
    """`cameras[0].detector.backend` -> ("cameras", 0, "detector", "backend")."""
    if not _KEY.match(key):
        raise ValueError(f"bad key {key!r}: use dotted names and [index], e.g. cameras[0].source")
    return tuple(m.group(1) if m.group(1) else int(m.group(2)) for m in _PART.finditer(key))


# -- round trip that keeps untouched scalars as written -------------------------------------


class _Plain:
    """A plain null/bool/int/float scalar as written (``~``, ``True``, ``+1``, ``1_000``):
    ruamel would otherwise rewrite some of them (``null`` -> empty, ``True`` -> ``true``)."""

    __slots__ = ("tag", "text", "anchor")

    def __init__(self, tag: str, text: str, anchor: str | None):
        self.tag, self.text, self.anchor = tag, text, anchor

    # Hashable: such scalars can be mapping keys too.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Plain) and (self.tag, self.text) == (other.tag, other.text)

    def __hash__(self) -> int:
        return hash((self.tag, self.text))


class _Constructor(RoundTripConstructor):
    def construct_plain(self, node: ScalarNode) -> Any:
        if node.style is not None:  # quoted with an explicit tag, e.g. !!int "5"
            return RoundTripConstructor.yaml_constructors[node.tag](self, node)
        return _Plain(str(node.tag), node.value, node.anchor or None)


for _name in ("null", "bool", "int", "float"):
    _Constructor.add_constructor(_TAG + _name, _Constructor.construct_plain)


class _Representer(RoundTripRepresenter):
    def represent_plain(self, data: _Plain) -> ScalarNode:
        anchor = None
        if data.anchor:
            anchor = Anchor()
            anchor.value, anchor.always_dump = data.anchor, True
        return self.represent_scalar(data.tag, data.text, anchor=anchor)

    def represent_null(self, data: None) -> ScalarNode:
        # a value set to null reads "null", as in the shipped example, not an empty value
        return self.represent_scalar(_TAG + "null", "null")


_Representer.add_representer(_Plain, _Representer.represent_plain)
_Representer.add_representer(type(None), _Representer.represent_null)


def _round_trip_yaml(body: str) -> YAML:
    y = YAML(typ="rt", pure=True)
    y.Constructor = _Constructor
    y.Representer = _Representer
    y.preserve_quotes = True
    y.width = 1 << 30  # never fold a long value onto a second line
    mapping, sequence, offset = _indentation(y.compose(body))
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def _indentation(root: Node | None) -> tuple[int, int, int]:
    """The file's (mapping indent, sequence indent, dash offset), from its first nested
    block mapping and block sequence; ruamel writes one style for the whole file."""
    mapping: int | None = None
    seq: tuple[int, int] | None = None
    todo = [root]
    while todo and (mapping is None or seq is None):
        node = todo.pop(0)
        if isinstance(node, SequenceNode):
            todo += node.value
        if not isinstance(node, MappingNode) or node.flow_style:
            continue
        for key, value in node.value:
            col = key.start_mark.column
            if isinstance(value, MappingNode) and not value.flow_style and value.value:
                if mapping is None and value.start_mark.line > key.start_mark.line:
                    mapping = value.start_mark.column - col
            elif isinstance(value, SequenceNode) and not value.flow_style and value.value:
                if seq is None:
                    dash = value.start_mark.column - col
                    seq = (value.value[0].start_mark.column - col, dash)
            todo.append(value)
    mapping = mapping if mapping and mapping > 0 else 2
    sequence, offset = seq if seq and seq[0] >= seq[1] + 2 else (mapping + 2, mapping)
    return mapping, sequence, offset


def _split_preamble(text: str) -> tuple[str, str]:
    """Leading comments, directives and a "---" line, kept verbatim (ruamel drops comments
    above "---"), and the document after them."""
    rows = text.splitlines(keepends=True)
    n = 0
    while n < len(rows) and _PREAMBLE_LINE.match(rows[n].rstrip("\r\n")):
        n += 1
    if n < len(rows) and _DOC_START.match(rows[n].rstrip("\r\n")):
        n += 1
    head = "".join(rows[:n])
    if head and not head.endswith("\n"):
        head += "\n"
    return head, "".join(rows[n:])


# -- keeping the comment lines that follow a section in place --------------------------------


def _is_block(node: Any) -> bool:
    return isinstance(node, CommentedMap | CommentedSeq) and not node.fa.flow_style()


def _last_slot(node: Any) -> tuple[Any, Any, int] | None:
    """(container, key, index into ``ca.items[key]``) of the last line inside ``node``:
    ruamel keeps the comment lines after a block there, whatever they belong to."""
    slot = None
    while _is_block(node) and len(node):
        if isinstance(node, CommentedMap):
            own = [k for k, _ in node.non_merged_items()]
            if not own:
                break
            slot = (node, own[-1], 2)
        else:
            slot = (node, len(node) - 1, 0)
        node = node[slot[1]]
    return slot


def _take_trailing(node: Any) -> str:
    """Detach the full-line comments (and blank lines) after the last line of ``node``."""
    slot = _last_slot(node)
    return "" if slot is None else _detach_after(*slot)


def _detach_after(container: Any, key: Any, i: int) -> str:
    """Detach the lines after the end-of-line comment of ``container[key]``: they belong
    to what follows it, not to a key or section put after it."""
    entry = container.ca.items.get(key)
    token = entry[i] if entry and len(entry) > i else None
    if not isinstance(token, CommentToken):
        return ""
    if _ends_own_line(container[key]):
        entry[i] = None
        return token.value
    eol, newline, rest = token.value.partition("\n")
    if not rest:
        return ""
    if eol.strip():
        token.value = eol + newline
    else:
        entry[i] = None
    return rest


def _put_trailing(node: Any, rest: str) -> None:
    slot = _last_slot(node)
    if not rest or slot is None:
        return
    container, key, i = slot
    entry = container.ca.items.setdefault(key, [None] * (4 if i == 2 else 2))
    token = entry[i]
    if isinstance(token, CommentToken):
        token.value = token.value + ("" if token.value.endswith("\n") else "\n") + rest
    else:
        lead = "" if _ends_own_line(container[key]) else "\n"
        entry[i] = CommentToken(lead + rest, CommentMark(0), None)


def _ends_own_line(value: Any) -> bool:
    """A ``|`` or ``>`` block ends with its own line break: no end-of-line part follows."""
    return isinstance(value, LiteralScalarString | FoldedScalarString)


# -- setting a value ---------------------------------------------------------------------------


def _to_tree(value: Any, old: Any = None) -> Any:
    """A value from the command line as the round trip writes it: mappings and lists as
    ruamel containers (comments attach there), strings in the quotes of the value they
    replace, or in single quotes when a YAML 1.1 reader would take them for something
    else (``'yes'``, ``'1:30'``, ``'0755'``)."""
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _to_tree(v)
        return out
    if isinstance(value, list):
        return CommentedSeq(_to_tree(v) for v in value)
    if isinstance(value, str) and not isinstance(value, ScalarString):
        if isinstance(old, ScalarString):
            return type(old)(value)
        if _YAML11.resolve(yaml.ScalarNode, value, (True, False)) != _TAG + "str":
            return SingleQuotedScalarString(value)
    return value


def _is_null(node: Any) -> bool:
    return node is None or (isinstance(node, _Plain) and node.tag == _TAG + "null")


def _edit_tree(root: CommentedMap, path: KeyPath, value: Any) -> None:
    node: Any = root
    # (new block, comment lines to put after it): the lines that followed where it goes
    moves: list[tuple[Any, str]] = []
    for depth, part in enumerate(path):
        where = format_path(path[: depth + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ValueError(f"{format_path(path[:depth])} is not a list")
            if part >= len(node):
                raise ValueError(
                    f"no list item {where} (the list has {len(node)}): add it by hand first"
                )
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ValueError(f"{format_path(path[:depth])} is a value, not a section of keys")
        own = {k for k, _ in node.non_merged_items()}
        if part not in own and not moves:
            moves.append((node, _take_trailing(node)))  # the new key goes last
        old = node.get(part)
        if depth == len(path) - 1:
            if _is_block(old) and len(old) and part in own:
                raise ValueError(
                    f"{where} is a section, not a single value: set its keys one by one "
                    f"(e.g. {where}.KEY=VALUE) or edit the file by hand"
                )
            new = _to_tree(value, old)
        elif part in node and not _is_null(old):
            if isinstance(old, CommentedMap) and not len(old) and old.fa.flow_style():
                old.fa.set_block_style()  # "detector: {}" becomes a block section
            node = old
            continue
        else:
            new = CommentedMap()
        if part in own and _is_block(new):
            # "key: null  # note" becoming a section: the lines after it move below it
            moves.append((new, _detach_after(node, part, 2)))
        node[part] = new
        node = new
    for block, rest in moves:
        _put_trailing(block, rest)


def _assign(data: Any, path: KeyPath, value: Any) -> Any:
    """``data`` (plain) with ``path`` set the way :func:`_edit_tree` sets it."""
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = out
    for part in path[:-1]:
        if isinstance(part, str) and not isinstance(node.get(part), dict | list):
            node[part] = {}
        node = node[part]
    node[path[-1]] = copy.deepcopy(value)
    return out


def _first_difference(a: Any, b: Any, path: KeyPath = ()) -> KeyPath | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            if k not in a or k not in b:
                return path + (k,)
            found = _first_difference(a[k], b[k], path + (k,))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, path + (i,))
            if found is not None:
                return found
        return None
    if type(a) is type(b) and (
        a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
    ):
        return None
    return path


def set_value(text: str, path: KeyPath, value: Any) -> str:
    """``text`` with ``path`` set to ``value`` (missing sections created), comments and
    layout kept. Raises ValueError when the edit cannot be made exactly."""
    if not path or not isinstance(path[-1], str):
        raise ValueError("set a list item through one of its keys, e.g. cameras[0].source")
    data, _, problems = load_yaml_with_lines(text)
    crlf = "\r\n" in text
    text = text.replace("\r\n", "\n")  # ruamel keeps a "\r" inside comments: edit in LF
    if problems:
        raise ValueError("fix the file first: " + "; ".join(str(p) for p in problems))
    if data is not None and not isinstance(data, dict):
        raise ValueError("the file must hold a mapping of keys")

    head, body = _split_preamble(text)
    y = _round_trip_yaml(body)
    root = y.load(body)
    if not isinstance(root, CommentedMap):  # nothing but comments so far
        root = CommentedMap()
    _edit_tree(root, path, value)
    out = io.StringIO()
    y.dump(root, out)
    new = head + out.getvalue()
    if crlf:
        new = new.replace("\n", "\r\n")

    # Read the result back: only `path` may have changed.
    new_data, _, new_problems = load_yaml_with_lines(new)
    if new_problems:  # pragma: no cover - ruamel wrote YAML it cannot read back
        raise ValueError(f"cannot write {format_path(path)}: {new_problems[0]}")
    diff = _first_difference(_assign(data, path, value), new_data or {})
    if diff is not None:
        if diff[: len(path)] == path:
            raise ValueError(
                f"{format_path(path)}: {value!r} does not read back the same: edit the file by hand"
            )
        raise ValueError(
            f"{format_path(path)} is shared with {format_path(diff)} through a YAML anchor, "
            "alias or merge key (<<): setting it would change both; edit the file by hand"
        )
    return new


def atomic_write(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parse_value(raw: str) -> Any:
    """A command-line value, read as one YAML scalar (``0.9``, ``true``, ``"a #b"``)."""
    return yaml.safe_load(raw) if raw.strip() else None


def config_set_main(path: str, assignments: list[str], reload: bool = False) -> int:
    target = Path(path)
    try:
        text = target.read_bytes().decode("utf-8") if target.exists() else ""
    except (OSError, UnicodeDecodeError) as e:
        print(f"{path}: cannot read: {e}", file=sys.stderr)
        return 2
    new = text
    try:
        for a in assignments:
            if "=" not in a:
                raise ValueError(f"expected KEY=VALUE, got {a!r}")
            key, raw = a.split("=", 1)
            new = set_value(new, parse_key(key.strip()), _parse_value(raw))
    except (ValueError, yaml.YAMLError, RuamelYAMLError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 2
    try:
        check_config_text(new, str(target), base_dir=target.parent, file_path=target)
    except ConfigError as e:
        for p in e.problems:
            print(f"{path}: refused, the file is unchanged: {p}", file=sys.stderr)
        return 2
    if target.exists():
        shutil.copy2(target, target.with_name(target.name + ".bak"))
    atomic_write(target, new)
    print(f"updated {path} (previous version in {target.name}.bak)")
    if reload:
        if shutil.which("systemctl"):
            res = subprocess.run(
                ["systemctl", "reload", "face-edge.service"], capture_output=True, text=True
            )
            print(
                "reloaded face-edge"
                if res.returncode == 0
                else f"reload failed: {res.stderr.strip()}"
            )
            return 0 if res.returncode == 0 else 1
        print("no systemctl here: send SIGHUP to the running face-edge to apply", file=sys.stderr)
    return 0
