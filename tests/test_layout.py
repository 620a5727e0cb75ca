"""The package's shape is a rule, not a habit: each folder is one pipeline stage, and no
import runs back up the pipeline (docs/DESIGN.md, "Who may import whom").

Every `edge` import of every module, at the top or inside a function, is checked against
the layer order below. A new top-level module or folder must be given a layer here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "edge"

# Lowest first. A module may import its own unit and any unit of a lower layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("edge", "edge.types", "edge.geometry", "edge.settings", "edge.runtime"),
    ("edge.capture",),
    ("edge.detect",),
    ("edge.track",),
    ("edge.shots",),
    ("edge.enhance",),
    ("edge.events",),
    ("edge.publish",),
    ("edge.config",),
    ("edge.pipeline",),
    ("edge.commands",),
    ("edge.app", "edge.__main__"),
)


def unit_of(module: str) -> str:
    """The layer unit a dotted module name belongs to (its longest listed prefix)."""
    best = ""
    for layer in LAYERS:
        for unit in layer:
            inside = unit != "edge" and module.startswith(unit + ".")  # edge: the package file
            if (module == unit or inside) and len(unit) > len(best):
                best = unit
    return best


def rank_of(module: str) -> int:
    unit = unit_of(module)
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def edge_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of an `edge` module in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "edge"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "edge":
                continue
            if node.module == "edge":  # `from edge import x`: x may be a subpackage
                found += [(node.lineno, f"edge.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def test_every_module_has_a_layer():
    unplaced = [module_name(p) for p in sorted(EDGE.rglob("*.py")) if unit_of(module_name(p)) == ""]
    assert not unplaced, f"give these a layer in tests/test_layout.py: {unplaced}"


def test_no_import_runs_back_up_the_pipeline():
    upward = []
    for path in sorted(EDGE.rglob("*.py")):
        here = module_name(path)
        for line, imported in edge_imports(path):
            if imported == "edge.__version__" or imported == "edge":
                continue
            same_unit = unit_of(imported) == unit_of(here)
            if not same_unit and rank_of(imported) > rank_of(here):
                upward.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {imported}")
    assert not upward, "imports running back up:\n" + "\n".join(upward)


def test_training_and_test_code_stay_out_of_the_runtime():
    for path in EDGE.rglob("*.py"):
        for line, imported in edge_imports(path):
            assert not imported.startswith(("tools", "tests")), f"{path}:{line}"
        text = path.read_text(encoding="utf-8")
        for heavy in ("import torch", "from torch", "make_test_pki"):
            assert heavy not in text, f"{path.relative_to(ROOT)} mentions {heavy!r}"


def test_the_layer_check_catches_an_upward_import():
    # The rule must be able to fail: a capture module importing the publisher is upward.
    assert rank_of("edge.publish.publisher") > rank_of("edge.capture.source")
    assert unit_of("edge.shots.best_shot") == "edge.shots"
    assert unit_of("edge.trackers") == ""  # a prefix is not a unit
