"""The state-of-the-art baseline: one face through a GFPGAN-class network (GFPGANv1Clean's
architecture at its native 512x512, random weights) in ONNX Runtime.

The ONNX file is made once, off the device, by `python -m tools.bench.export_gfpgan_class`
(needs torch, the `convert` extra); a JSON beside it holds its parameter count and MACs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge.capture.demo import cache_dir
from edge.commands.bench.timing import Budget, time_calls
from edge.runtime.plugins.onnx import OnnxModel

EXPORT_COMMAND = "pip install -e '.[convert]' && python -m tools.bench.export_gfpgan_class"
SIDE = 512


def default_gfpgan_path() -> Path:
    """Where the export tool writes the network by default (the user's face-edge cache)."""
    return cache_dir() / "gfpgan_class_512.onnx"


def describe(path: Path) -> dict:
    """The facts the export tool recorded (params, MACs, structure), or {}."""
    meta = path.with_suffix(".json")
    return json.loads(meta.read_text()) if meta.is_file() else {}


def time_gfpgan_class(path: Path, threads: list[int], budget: Budget) -> tuple[list[dict], str]:
    """Model rows for the baseline at each thread count, and a note when it cannot run."""
    if not path.is_file():
        return [], f"GFPGAN-class network not found at {path}: create it with `{EXPORT_COMMAND}`"
    facts = describe(path)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, SIDE, SIDE)).astype(np.float32)
    rows = []
    for t in threads:
        model = OnnxModel(path, t)  # not a shipped model: no manifest to verify against
        timing = time_calls(lambda _i, m=model: m.run(x), budget)
        rows.append(
            {
                "name": "gfpgan_class",
                "runtime": "onnxruntime",
                "precision": "fp32",
                "threads": t,
                "input": f"{SIDE}x{SIDE} face",
                **timing.as_dict(),
                "params_m": facts.get("params_m"),
                "gmacs": facts.get("gmacs"),
            }
        )
        del model  # ~350 MB of weights: free before the next session
    return rows, ""
