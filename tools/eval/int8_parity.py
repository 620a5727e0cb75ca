"""How close each integer format of the shipped INT8 ONNX models (portable U8U8, and the U8S8
twin for VNNI CPUs) comes to its FP32 model on real images, and how fast each runs here.

    python -m tools.eval.int8_parity --json var/eval/int8_parity.json

- **Detector**: the `detect/` photos (long side capped at 960 px) and 6 frames of each shared
  video, plus the same at 0.5x (small faces). The FP32 detections of faces >= 20 px high are the
  reference: found (IoU >= 0.5), extra detections, landmark error of the found faces (median /
  max, px), and ms per 640x360 frame.
- **Restorer** and **fusion** (bursts of 2 and 8 frames with sub-pixel shifts and noise): PSNR of
  the INT8 output against the FP32 output on UTKFace faces (the last --faces of the folder),
  and ms per call (K = 8).

The U8S8 files are exact only where ONNX Runtime has VNNI kernels; on a CPU without VNNI their
numbers here show the saturation the daemon avoids by opening the portable files there.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from edge.detect import FaceDetector
from edge.enhance.fusion import FusionNetwork
from edge.enhance.restorer import FaceRestorer
from edge.geometry import iou_matrix
from edge.runtime.int8_variant import ENV, describe_choice
from tools.eval.detector_eval import load_images

VARIANTS = ("portable", "vnni")
MIN_FACE = 20.0
MATCH_IOU = 0.5


def _median_ms(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return round(float(np.median(ts)), 2)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def detector_parity(images: list[np.ndarray], frame: np.ndarray, runs: int) -> dict:
    reference = FaceDetector(backend="onnx", precision="fp32")
    refs = [[d for d in reference.detect(im) if d.height >= MIN_FACE] for im in images]
    out = {}
    for variant in VARIANTS:
        os.environ[ENV] = variant
        det = FaceDetector(backend="onnx", precision="int8")
        found = extra = 0
        errors: list[float] = []
        for im, ref in zip(images, refs, strict=True):
            got = [d for d in det.detect(im) if d.height >= MIN_FACE * 0.8]
            if ref and got:
                iou = iou_matrix(np.array([d.box for d in ref]), np.array([d.box for d in got]))
                best = iou.argmax(1)
                for i, j in enumerate(best):
                    if iou[i, j] >= MATCH_IOU:
                        found += 1
                        errors.append(float(np.abs(ref[i].landmarks - got[j].landmarks).max()))
                extra += int((iou.max(0) < MATCH_IOU).sum())
            else:
                extra += len(got)
        total = sum(len(r) for r in refs)
        out[variant] = {
            "file": det.nets["pnet"].path.name,
            "fp32_faces": total,
            "found": found,
            "recall_vs_fp32": round(found / max(total, 1), 4),
            "extra": extra,
            "landmark_err_px_median": round(float(np.median(errors)), 2) if errors else None,
            "landmark_err_px_max": round(float(np.max(errors)), 2) if errors else None,
            "ms_640x360": _median_ms(lambda d=det: d.detect(frame), runs),
        }
    out["fp32"] = {"ms_640x360": _median_ms(lambda: reference.detect(frame), runs)}
    return out


def _faces(utk: Path, n: int) -> list[np.ndarray]:
    files = sorted(utk.glob("*.jpg"))[-n:]
    return [cv2.resize(cv2.imread(str(f)), (160, 160), interpolation=cv2.INTER_AREA) for f in files]


def _burst(face: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    views = []
    for _ in range(k):
        dx, dy = rng.uniform(-2, 2, 2)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        shifted = cv2.warpAffine(face, m, (160, 160), borderMode=cv2.BORDER_REFLECT)
        small = cv2.resize(shifted, (40, 40), interpolation=cv2.INTER_AREA).astype(np.float32)
        views.append(np.clip(small + rng.normal(0, 4, small.shape), 0, 255).astype(np.uint8))
    return views


def restorer_parity(faces: list[np.ndarray], runs: int) -> dict:
    rng = np.random.default_rng(0)
    bursts = {k: [_burst(f, k, rng) for f in faces] for k in (2, 8)}
    ref_r, ref_f = FaceRestorer("onnx", "fp32"), FusionNetwork("fp32")
    out: dict = {"restorer": {}, "fusion": {}}
    singles = [b[0] for b in bursts[2]]
    for variant in VARIANTS:
        os.environ[ENV] = variant
        r, f = FaceRestorer("onnx", "int8"), FusionNetwork("int8")
        out["restorer"][variant] = {
            "file": r.model.path.name,
            "psnr_vs_fp32_db": round(float(np.mean([_psnr(r(x), ref_r(x)) for x in singles])), 2),
            "ms": _median_ms(lambda r=r: r(singles[0]), runs * 5),
        }
        row = {"file": f.model.path.name}
        for k, bs in bursts.items():
            row[f"psnr_vs_fp32_db_k{k}"] = round(
                float(np.mean([_psnr(f(b), ref_f(b)) for b in bs])), 2
            )
        row["ms_k8"] = _median_ms(lambda f=f: f(bursts[8][0]), runs * 2)
        out["fusion"][variant] = row
    out["restorer"]["fp32"] = {"ms": _median_ms(lambda: ref_r(bursts[2][0][0]), runs * 5)}
    out["fusion"]["fp32"] = {"ms_k8": _median_ms(lambda: ref_f(bursts[8][0]), runs * 2)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--faces", type=int, default=40)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", type=Path, default=Path("var/eval/int8_parity.json"))
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    auto = describe_choice()
    videos = [Path(p) for p in sorted(glob.glob(str(args.data / "video/*.mp4")))]
    images = [im for _, im in load_images(args.data / "detect", videos, 6, 960)]
    images += [cv2.resize(im, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for im in images]
    frame = cv2.resize(images[-1], (640, 360), interpolation=cv2.INTER_AREA)
    result = {
        "command": "python -m tools.eval.int8_parity " + " ".join(argv or []),
        "this_cpu": auto,
        "images": len(images),
        "detector": detector_parity(images, frame, args.runs),
        **restorer_parity(_faces(args.data / "faces/utkface", args.faces), args.runs),
    }
    os.environ.pop(ENV, None)
    text = json.dumps(result, indent=2)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
