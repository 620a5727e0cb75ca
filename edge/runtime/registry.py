"""Model runtimes by backend name. Each module in `edge.runtime.plugins` registers its runner
when imported, so a new runtime is one new file there."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from edge.runtime.base import ModelRunner, RunnerPlugin
from edge.runtime.int8_variant import preferred_file
from edge.runtime.manifest import load_manifest, verified_model_path

_RUNNERS: dict[str, RunnerPlugin] = {}
_discovered = False


def register_runner(backend: str, cls: RunnerPlugin) -> None:
    _RUNNERS[backend] = cls


def _discover() -> None:
    """Import every plugin module once. Plugins import their runtime library only when a model
    is opened, so this costs nothing where a runtime is not installed."""
    global _discovered
    if _discovered:
        return
    from edge.runtime import plugins

    for mod in pkgutil.iter_modules(plugins.__path__):
        importlib.import_module(f"{plugins.__name__}.{mod.name}")
    _discovered = True


def known_backends() -> list[str]:
    _discover()
    return sorted(_RUNNERS)


def runner_class(backend: str) -> RunnerPlugin:
    """The registered runner for `backend`; ValueError naming the known ones otherwise."""
    _discover()
    cls = _RUNNERS.get(backend)
    if cls is None:
        raise ValueError(f"unknown backend {backend!r}: use {' or '.join(known_backends())}")
    return cls


def model_suffix(backend: str) -> str:
    """The file suffix of `backend`'s models (".onnx", ".tflite")."""
    return runner_class(backend).suffix


def open_runner(
    backend: str,
    path: Path | str,
    threads: int = 1,
    *,
    verify: bool = True,
    fixed_shape: bool = True,
    arena: bool | None = None,
) -> ModelRunner:
    """Open a model file in the given backend. With verify (the default) the file must be listed
    in the manifest.json beside it with a matching sha256, else ModelIntegrityError; a shipped
    `*_int8.onnx` opens as its `*_int8_vnni.onnx` sibling where this CPU wants that variant and
    the manifest lists it (`edge.runtime.int8_variant`). The runner's `path` is the file opened.
    `fixed_shape=False` (inputs of many shapes) turns ONNX Runtime's memory arena off, unless
    `arena=True` (the shapes are bounded in size: P-Net's strips)."""
    cls = runner_class(backend)
    if verify:
        folder = Path(path).parent
        listed = load_manifest(folder).get("models", {})
        path = verified_model_path(folder, preferred_file(Path(path).name, listed))
    runner = cls(path, threads, fixed_shape=fixed_shape, arena=arena)
    runner.path = Path(path)
    return runner
