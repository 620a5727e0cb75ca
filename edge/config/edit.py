"""`face-edge config set PATH KEY=VALUE ...`: change a config in place, keeping its comments
and layout, only if the result is valid; atomic write with a backup; optional reload."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from edge.config.load import ConfigError, check_config_text
from edge.config.validate import KeyPath
from edge.config.yaml_lines import load_yaml_with_lines

_KEY = re.compile(r"^[A-Za-z_]\w*(\[\d+\])*(\.[A-Za-z_]\w*(\[\d+\])*)*$")
_PART = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")


def parse_key(key: str) -> KeyPath:
    """`cameras[0].detector.backend` -> ("cameras", 0, "detector", "backend")."""
    if not _KEY.match(key):
        raise ValueError(f"bad key {key!r}: use dotted names and [index], e.g. cameras[0].source")
    return tuple(m.group(1) if m.group(1) else int(m.group(2)) for m in _PART.finditer(key))


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def set_value(text: str, path: KeyPath, value: Any) -> str:
    """Replace the value of `path` on its own line, or insert the key under its parent."""
    data, lines, problems = load_yaml_with_lines(text)
    if problems:
        raise ValueError(str(problems[0]))
    rows = text.splitlines(keepends=True)
    key = path[-1]
    if not isinstance(key, str):
        raise ValueError("set a list item through one of its keys, e.g. cameras[0].source")
    if path in lines:
        i = lines[path] - 1
        m = re.match(
            r"^(\s*(?:-\s+)?" + re.escape(key) + r"\s*:)(\s*)([^#\n]*?)(\s*#.*)?(\r?\n)?$", rows[i]
        )
        if not m or _is_block(data, path):
            raise ValueError(f"{key} is not a one-line value: edit the file by hand")
        rows[i] = f"{m.group(1)} {_scalar(value)}{m.group(4) or ''}{m.group(5) or chr(10)}"
        return "".join(rows)
    parent = path[:-1]
    if parent and parent not in lines:
        if not isinstance(parent[-1], str):
            raise ValueError(f"no list item {parent}: add it by hand")
        # Create the missing section first, then the key inside it.
        return set_value(set_value(text, parent, {}), path, value)
    if not parent:
        sep = "" if text.endswith("\n") or not text else "\n"
        return f"{text}{sep}{key}: {_scalar(value)}\n"
    i = lines[parent] - 1
    m = re.match(r"^(\s*)(-\s+)?", rows[i])
    item_indent = len(m.group(1)) + (len(m.group(2)) if m.group(2) else 0)
    # Inside a list item the keys line up after "- "; inside a mapping they go one level down.
    indent = item_indent if isinstance(parent[-1], int) else item_indent + 2
    if re.search(r":\s*\{\}\s*(#.*)?$", rows[i]):
        rows[i] = re.sub(r":\s*\{\}", ":", rows[i], count=1)
    rows.insert(i + 1, f"{' ' * indent}{key}: {_scalar(value)}\n")
    return "".join(rows)


def _is_block(data: Any, path: KeyPath) -> bool:
    node = data
    for p in path:
        node = node[p]
    return isinstance(node, dict | list) and bool(node)


def atomic_write(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def config_set_main(path: str, assignments: list[str], reload: bool = False) -> int:
    target = Path(path)
    text = target.read_text(encoding="utf-8") if target.exists() else ""
    new = text
    try:
        for a in assignments:
            if "=" not in a:
                raise ValueError(f"expected KEY=VALUE, got {a!r}")
            key, raw = a.split("=", 1)
            new = set_value(
                new, parse_key(key.strip()), yaml.safe_load(raw) if raw.strip() else None
            )
    except (ValueError, KeyError, IndexError, yaml.YAMLError) as e:
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
