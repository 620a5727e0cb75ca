"""When does the restoration network help? A sweep over the resolution the camera saw.

The shipped network takes a 40x40 face in its LFW framing (eyes 10.3 px apart) and returns
160x160. A face the camera saw larger than that is first shrunk to 40x40, so the network
can only lose what the camera captured beyond it. This measures, for faces seen at eye
distances from 5 to 41 px, the product path with the network against the plain crop
(bicubic from what the camera saw), on real faces with an independent judge:

- LFW pairs (``--pairs``, as in ``tools.eval.restore_eval``), clean 160x160 images;
- "camera": area-downscale to side s (eye distance 41.2/160 * s), Gaussian noise sigma 3 and
  JPEG quality 70 at that size (seeded per image and size);
- "plain": bicubic back to 160; "network": ``FaceRestorer`` on the s-px image (it resizes to
  its 40 px input, as the daemon's ``FramedRestorer`` does);
- PSNR (luma) against the clean image; dlib accuracy at distance 0.6; TAR at FAR 1 % with the
  threshold set on the clean pairs' different-person distances (a fixed operating point, the
  same for both methods), with the FAR each method reaches there; and the ROC's TAR at FAR
  1 % (each method's threshold set on its own different-person distances: how well it still
  separates people, whatever its calibration).

    python -m tools.eval.restore_gate --pairs 600 --out var/eval/gate

The product's gate (``enhance.restore.max_eye_px``) is set from this table: the network runs
only on faces seen with eyes at most that far apart.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from edge.enhance.restorer import MODEL_FRAMING, FaceRestorer, blend_with_plain
from tools.eval.restore_eval import (
    SIZE,
    THRESHOLD,
    DlibJudge,
    load_clean,
    operating_point,
    psnr,
    read_pairs,
    threshold_at_far,
    unique_images,
)

SIDES = (20, 30, 40, 50, 60, 80, 120, 160)
NOISE_SIGMA = 3.0
JPEG_QUALITY = 70


def camera_view(clean: np.ndarray, side: int, rel: str, seed: int = 0) -> np.ndarray:
    """The face as a camera that saw it at ``side`` px (in the model's framing) delivers it."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{rel}|{side}".encode())])
    small = cv2.resize(clean, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = np.clip(small + rng.normal(0, NOISE_SIGMA, small.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def plain(view: np.ndarray) -> np.ndarray:
    return cv2.resize(view, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=Path("../shared/data/faces/lfw"))
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--far", type=float, default=0.01)
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--precision", default="int8")
    ap.add_argument(
        "--strengths",
        default="",
        help="also score the network blended with the plain crop at these strengths "
        "(enhance.restore.strength), e.g. 0.5,0.7",
    )
    ap.add_argument("--sides", default=",".join(map(str, SIDES)), help="face sides to sweep")
    ap.add_argument("--out", type=Path, default=Path("var/eval/gate"))
    args = ap.parse_args(argv)
    sides = [int(v) for v in args.sides.split(",")]
    strengths = [float(v) for v in args.strengths.split(",") if v.strip()]
    t0 = time.monotonic()
    pairs, _ = read_pairs(args.lfw / "pairs.txt", args.pairs)
    images = unique_images(pairs)
    index = {rel: i for i, rel in enumerate(images)}
    judge, net = DlibJudge(), FaceRestorer(args.backend, args.precision)
    same = np.array([p.same for p in pairs])
    ia = np.array([index[p.a] for p in pairs])
    ib = np.array([index[p.b] for p in pairs])

    def distances(desc: np.ndarray) -> np.ndarray:
        return np.linalg.norm(desc[ia] - desc[ib], axis=1)

    clean = [load_clean(args.lfw, rel) for rel in images]
    d_clean = distances(np.stack([judge(c) for c in clean]))
    thr = threshold_at_far(d_clean[~same], args.far)
    rows = []
    distances_out: dict[str, np.ndarray] = {"clean": d_clean, "same": same}
    for side in sides:
        views = [camera_view(c, side, rel) for c, rel in zip(clean, images, strict=True)]
        row: dict = {"side": side, "eye_px": round(MODEL_FRAMING.eye_distance * side, 1)}
        restored = [net(v) for v in views]
        outputs = {"plain": [plain(v) for v in views], "network": restored}
        for st in strengths:
            outputs[f"s{st:g}"] = [
                blend_with_plain(r, v, st) for r, v in zip(restored, views, strict=True)
            ]
        for name, out in outputs.items():
            d = distances(np.stack([judge(o) for o in out]))
            at_clean = operating_point(d, same, thr)
            tar, far = at_clean["tar"], at_clean["far"]
            roc_tar = operating_point(d, same, threshold_at_far(d[~same], args.far))["tar"]
            distances_out[f"{name}_{side}"] = d
            row[name] = {
                "psnr": round(
                    float(np.mean([psnr(o, c) for o, c in zip(out, clean, strict=True)])), 2
                ),
                "acc_0.6": round(100 * float(((d < THRESHOLD) == same).mean()), 1),
                "tar": round(100 * tar, 1),
                "far": round(100 * far, 2),
                "roc_tar": round(100 * roc_tar, 1),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "pairs": len(pairs),
        "far_target": args.far,
        "threshold_from_clean": round(thr, 4),
        "clean": {
            "acc_0.6": round(100 * float(((d_clean < THRESHOLD) == same).mean()), 1),
            "tar": round(100 * operating_point(d_clean, same, thr)["tar"], 1),
        },
        "camera": {"noise_sigma": NOISE_SIGMA, "jpeg_quality": JPEG_QUALITY},
        "model": f"{net.file_name} ({net.version})",
        "strengths": strengths,
        "rows": rows,
        "seconds": round(time.monotonic() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gate.json").write_text(json.dumps(result, indent=2) + "\n")
    np.savez_compressed(args.out / "distances.npz", **distances_out)
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    lines = [
        f"LFW {result['pairs']} pairs; TAR at FAR {100 * result['far_target']:g} % with the "
        f"threshold {result['threshold_from_clean']} set on the clean pairs (clean: acc@0.6 "
        f"{result['clean']['acc_0.6']} %, TAR {result['clean']['tar']} %); {result['model']}",
        "",
        "| seen at (side / eye px) | PSNR plain / net | acc@0.6 plain / net | TAR plain / net "
        "| FAR plain / net | ROC TAR@FAR plain / net |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        p, n = r["plain"], r["network"]
        lines.append(
            f"| {r['side']} / {r['eye_px']} | {p['psnr']} / {n['psnr']} | {p['acc_0.6']} / "
            f"{n['acc_0.6']} | {p['tar']} / {n['tar']} | {p['far']} / {n['far']} | "
            f"{p['roc_tar']} / {n['roc_tar']} |"
        )
    for st in result.get("strengths", []):
        name = f"s{st:g}"
        lines += [
            "",
            f"Network at strength {st:g} (its change blended over the plain crop):",
            "",
            "| seen at (side / eye px) | PSNR | acc@0.6 | TAR | FAR | ROC TAR@FAR |",
            "|---|---|---|---|---|---|",
        ]
        for r in result["rows"]:
            b = r[name]
            lines.append(
                f"| {r['side']} / {r['eye_px']} | {b['psnr']} | {b['acc_0.6']} | {b['tar']} "
                f"| {b['far']} | {b['roc_tar']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
