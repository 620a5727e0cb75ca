"""One command from the pretrained MTCNN in facenet-pytorch to the shipped detector models:

    python -m tools.convert.detector.build --data ../shared/data --out models/quantized

FP32 ONNX + FP32 TFLite, static QDQ INT8 ONNX and full-integer INT8 TFLite, calibrated on real
faces (UTKFace), with their sha256 in the manifest."""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edge.detect.mtcnn import FaceDetector, model_file
from tools.convert.detector.calibration import Recorder, calibration_images
from tools.convert.detector.export import INPUTS, export_onnx, fold_input_normalisation
from tools.convert.detector.nets import load_nets
from tools.convert.detector.quantize_onnx import quantize_onnx
from tools.convert.detector.quantize_tflite import export_tflite_fp32, export_tflite_int8

VERSION = "mtcnn-1.0"
NETS = ("pnet", "rnet", "onet")


def write_manifest(out: Path, files: list[str], extra: dict[str, dict]) -> None:
    path = out / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"models": {}}
    for f in files:
        entry = {
            "sha256": hashlib.sha256((out / f).read_bytes()).hexdigest(),
            "version": VERSION,
            "bytes": (out / f).stat().st_size,
            **extra.get(f, {}),
        }
        manifest["models"][f] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def fit_to(x: np.ndarray, shape: tuple[int, ...], rng: random.Random) -> np.ndarray:
    """Crop or wrap-pad a P-Net input to the static shape the TFLite export is traced with."""
    _, _, h, w = shape
    if x.shape[2] < h or x.shape[3] < w:
        x = np.pad(
            x,
            ((0, 0), (0, 0), (0, max(0, h - x.shape[2])), (0, max(0, w - x.shape[3]))),
            mode="wrap",
        )
    y0, x0 = rng.randint(0, x.shape[2] - h), rng.randint(0, x.shape[3] - w)
    return np.ascontiguousarray(x[:, :, y0 : y0 + h, x0 : x0 + w])


def collect_calibration(models_dir: Path, data: Path, seed: int) -> dict[str, list[np.ndarray]]:
    det = FaceDetector(backend="onnx", precision="fp32", models_dir=models_dir, score_threshold=0.7)
    rec = {n: Recorder(det.nets[n], max_items=400) for n in NETS}
    det.nets = rec
    images = calibration_images(data, seed)
    for i, img in enumerate(images):
        det.detect(img)
        print(f"\rcalibration images {i + 1}/{len(images)}", end="", flush=True)
    print()
    out = {n: rec[n].inputs for n in NETS}
    # R-Net/O-Net saw batches: calibrate on single crops.
    for n in ("rnet", "onet"):
        out[n] = [x[i : i + 1] for x in out[n] for i in range(len(x))][:600]
    print({n: len(v) for n, v in out.items()}, "calibration inputs")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="../shared/data", type=Path)
    ap.add_argument("--out", default="models/quantized", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    nets = {n: fold_input_normalisation(m) for n, m in load_nets().items()}
    files, extra = [], {}
    src = "facenet-pytorch 2.6.0 data/{pnet,rnet,onet}.pt (MTCNN, Zhang et al. 2016), MIT licence"

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        for n in NETS:
            f = model_file(n, "fp32", "onnx")
            export_onnx(n, nets[n], args.out / f)
            shutil.copy(args.out / f, tmpd / f)
            files.append(f)
            extra[f] = {"precision": "fp32", "runtime": "onnxruntime", "source": src}
        write_manifest(tmpd, [model_file(n, "fp32", "onnx") for n in NETS], {})
        print("exported FP32 ONNX", f"{time.time() - t0:.0f}s")
        calib = collect_calibration(tmpd, args.data, args.seed)

    for n in NETS:
        f = model_file(n, "int8", "onnx")
        quantize_onnx(args.out / model_file(n, "fp32", "onnx"), args.out / f, calib[n])
        files.append(f)
        extra[f] = {
            "precision": "int8",
            "runtime": "onnxruntime",
            "format": "QDQ per-channel",
            "source": src,
        }
    print("quantized ONNX INT8", f"{time.time() - t0:.0f}s")

    for n in NETS:
        shape = INPUTS[n]
        sample = (np.random.default_rng(args.seed).random(shape) * 255).astype(np.float32)
        inputs = [fit_to(x, shape, rng) for x in calib[n]] if n == "pnet" else calib[n]
        f32, f8 = model_file(n, "fp32", "tflite"), model_file(n, "int8", "tflite")
        export_tflite_fp32(nets[n], sample, args.out / f32)
        export_tflite_int8(nets[n], sample, inputs[:300], args.out / f8)
        files += [f32, f8]
        extra[f32] = {"precision": "fp32", "runtime": "litert", "source": src}
        extra[f8] = {
            "precision": "int8",
            "runtime": "litert",
            "format": "full-integer PT2E, float I/O",
            "source": src,
        }
    print("converted TFLite FP32 + INT8", f"{time.time() - t0:.0f}s")

    write_manifest(args.out, files, extra)
    for f in files:
        print(f"{f:28s} {(args.out / f).stat().st_size / 1024:8.1f} KiB")
    print(f"done in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
