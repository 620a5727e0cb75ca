"""Writing `models/quantized/manifest.json` (torch-free, so the ship step and the detector
build share it): each shipped file's sha256, version, size and description."""

from __future__ import annotations

import json
from pathlib import Path

from edge.runtime.manifest import MANIFEST_NAME, sha256_of


def write_manifest(out: Path, files: list[str], extra: dict[str, dict], version: str) -> None:
    """Add or replace ``files``' entries (sha256, version, bytes, ``extra``) in OUT/manifest.json."""
    path = out / MANIFEST_NAME
    manifest = json.loads(path.read_text()) if path.exists() else {"models": {}}
    for f in files:
        manifest["models"][f] = {
            "sha256": sha256_of(out / f),
            "version": version,
            "bytes": (out / f).stat().st_size,
            **extra.get(f, {}),
        }
    manifest["models"] = dict(sorted(manifest["models"].items()))
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def drop_from_manifest(out: Path, files: list[str]) -> list[str]:
    """Remove ``files`` (entries and files) from OUT; returns those that were listed."""
    path = out / MANIFEST_NAME
    if not path.exists():
        return []
    manifest = json.loads(path.read_text())
    dropped = [f for f in files if manifest["models"].pop(f, None) is not None]
    for f in files:
        (out / f).unlink(missing_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return dropped
