"""How well burst registration recovers known motion, and where to draw the line between a
frame of the same face and a frame of someone else (`edge.enhance.burst.MIN_CORRELATION`).

    python -m tools.eval.burst_register --faces 150 --presets x4,x8,low,motion

Faces: UTKFace held-out chips (the training split's validation files, data seed 0), framed
like LFW (`frame_face`, no jitter). For each face and preset, a burst of 8 frames
(`tools.convert.restore.bursts.make_burst`, default motion: up to 1 camera pixel of shift,
3 degrees, 3 % scale). Every frame
(frame 1..7, one of them replaced by another face: a track swap) is registered onto frame 0
and judged by `edge.enhance.burst.accept`; reported per preset:

- the registration error: the largest distance, over the 5 model landmarks, between where
  the recovered matrix and the true move put them, in camera pixels (the degraded image's),
  median and 95th percentile, against the error of not registering (identity);
- the match correlation of genuine frames and of the other person's frames (percentiles),
  and the share of each that the rule keeps.

Writes `--out/register.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.enhance.burst import VIEW_SIDE, accept, register
from edge.enhance.face_frame import model_landmarks
from tools.convert.restore.bursts import make_burst, to_views
from tools.convert.restore.degrade import PRESETS

CLEAN_SIDE = 160


def view_move(m: np.ndarray, side: int = CLEAN_SIDE, view: int = VIEW_SIDE) -> np.ndarray:
    """A 2x3 move in clean pixels expressed in view pixels (pixel centres aligned)."""
    s = view / side
    to_v = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1.0]])
    full = np.vstack([m, [0, 0, 1.0]])
    return (to_v @ full @ np.linalg.inv(to_v))[:2]


def landmark_error(found: np.ndarray, true: np.ndarray, points: np.ndarray) -> float:
    p = np.hstack([points, np.ones((len(points), 1))])
    return float(np.linalg.norm(p @ found.T - p @ true.T, axis=1).max())


def faces(n: int, seed: int = 0) -> list[np.ndarray]:
    from tools.convert.restore.data import DEFAULT_UTK, cache_images, frame_face, list_split

    _, val = list_split(DEFAULT_UTK, 300, 0)
    chips = cache_images(val[:n], CLEAN_SIDE, progress=False)
    return [frame_face(c, CLEAN_SIDE)[0] for c in chips]


def measure(clean: list[np.ndarray], preset: str, k: int = 8, seed: int = 0) -> dict:
    params = PRESETS[preset]
    lr_side = round(CLEAN_SIDE / params.factor)
    view_per_lr = VIEW_SIDE / lr_side
    points = model_landmarks(VIEW_SIDE)
    err, err_none, corr_same, corr_other = [], [], [], []
    kept_same = kept_other = 0
    for i, face in enumerate(clean):
        rng = np.random.default_rng([seed, i, zlib_id(preset)])
        other = clean[(i + 1 + int(rng.integers(len(clean) - 1))) % len(clean)]
        burst = make_burst(face, params, k, rng, outlier=other)
        views = to_views(burst)
        regs = accept([register(views[0], v)[0] for v in views[1:]])
        for j, reg in enumerate(regs, start=1):
            if j == burst.outlier_index:
                corr_other.append(reg.correlation)
                kept_other += reg.ok
                continue
            true = view_move(burst.moves[j])
            err.append(landmark_error(reg.matrix, true, points) / view_per_lr)
            err_none.append(landmark_error(np.eye(2, 3), true, points) / view_per_lr)
            corr_same.append(reg.correlation)
            kept_same += reg.ok
    same, other = np.array(corr_same), np.array(corr_other)
    pct = [1, 5, 50, 95, 99]
    return {
        "frames": len(err),
        "others": len(other),
        "error_lr_px": {
            "registered": {
                "median": round(float(np.median(err)), 3),
                "p95": round(float(np.percentile(err, 95)), 3),
            },
            "unregistered": {
                "median": round(float(np.median(err_none)), 3),
                "p95": round(float(np.percentile(err_none, 95)), 3),
            },
        },  # fmt: skip
        "correlation_same": {f"p{p}": round(float(np.percentile(same, p)), 4) for p in pct},
        "correlation_other": {f"p{p}": round(float(np.percentile(other, p)), 4) for p in pct},
        "rule": {
            "same_kept": round(kept_same / len(same), 4),
            "other_kept": round(kept_other / len(other), 4),
        },
    }


def zlib_id(name: str) -> int:
    import zlib

    return zlib.crc32(name.encode())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=150)
    ap.add_argument("--presets", default="x4,x8,low,motion")
    ap.add_argument("--out", type=Path, default=Path("var/eval/burst_register"))
    args = ap.parse_args(argv)
    clean = faces(args.faces)
    report = {p: measure(clean, p) for p in args.presets.split(",")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "register.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
