"""Locating shipped models and refusing any whose bytes do not match the manifest's sha256."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

MANIFEST_NAME = "manifest.json"


class ModelIntegrityError(RuntimeError):
    """A model file is missing, unlisted or its checksum does not match the manifest."""


def default_models_dir() -> Path:
    """The shipped models: $FACE_EDGE_MODELS, the source checkout, or the installed share dir."""
    env = os.environ.get("FACE_EDGE_MODELS")
    if env:
        return Path(env)
    candidates = [
        Path(__file__).resolve().parents[2] / "models" / "quantized",
        Path(sys.prefix) / "share" / "face-edge" / "models",
    ]
    for c in candidates:
        if (c / MANIFEST_NAME).is_file():
            return c
    return candidates[0]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(models_dir: Path) -> dict:
    path = models_dir / MANIFEST_NAME
    if not path.is_file():
        raise ModelIntegrityError(f"model manifest not found: {path}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def verified_model_path(models_dir: Path | str, file_name: str) -> Path:
    """Return the path of a listed model after checking its sha256; raise with a clear message otherwise."""
    models_dir = Path(models_dir)
    manifest = load_manifest(models_dir)
    entry = manifest.get("models", {}).get(file_name)
    if entry is None:
        raise ModelIntegrityError(
            f"model {file_name} is not listed in {models_dir / MANIFEST_NAME}"
        )
    path = models_dir / file_name
    if not path.is_file():
        raise ModelIntegrityError(f"model file missing: {path}")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise ModelIntegrityError(
            f"model {path} is corrupt or was changed: sha256 {actual[:16]}… "
            f"does not match the manifest's {entry['sha256'][:16]}…; reinstall the model files"
        )
    return path


def model_version(models_dir: Path | str, file_name: str) -> str:
    entry = load_manifest(Path(models_dir)).get("models", {}).get(file_name, {})
    return str(entry.get("version", "unknown"))
