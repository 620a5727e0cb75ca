"""One command from the pretrained MTCNN in facenet-pytorch to the shipped detector models:

    python -m tools.convert.detector.build --calib-dir ../shared/data --out models/quantized

FP32 ONNX + FP32 TFLite, static QDQ INT8 ONNX (per-channel) and full-integer INT8 TFLite
(PT2E, per-channel), calibrated on real faces (UTKFace faces as they are and composited small into dim scenes;
no evaluation image) as the FP32 cascade sees them, with their sha256 in the manifest.
Deterministic for a given --seed (data sampling, random export samples)."""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edge.detect.mtcnn import FaceDetector, model_file
from tools.convert.detector.calibration import Recorder, calibration_images
from tools.convert.detector.export import (
    INPUTS,
    decompose_prelu,
    export_onnx,
    fold_input_normalisation,
)
from tools.convert.detector.nets import load_nets
from tools.convert.detector.quantize_onnx import quantize_onnx
from tools.convert.detector.quantize_tflite import export_tflite_fp32, export_tflite_int8
from tools.convert.manifest import write_manifest as shared_write_manifest

VERSION = "mtcnn-1.1"
NETS = ("pnet", "rnet", "onet")


def write_manifest(
    out: Path, files: list[str], extra: dict[str, dict], version: str = VERSION
) -> None:
    """The detector's entries in OUT/manifest.json (``tools.convert.manifest``)."""
    shared_write_manifest(out, files, extra, version)


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
    # P-Net inputs are whole pyramid levels (up to 576x324): keep fewer of them.
    limits = {"pnet": 160, "rnet": 300, "onet": 300}
    rec = {n: Recorder(det.nets[n], max_items=limits[n], seed=seed) for n in NETS}
    det.nets = rec
    images = calibration_images(data, seed)
    for i, img in enumerate(images):
        det.detect(img)
        print(f"\rcalibration images {i + 1}/{len(images)}", end="", flush=True)
    print()
    out = {n: rec[n].inputs for n in NETS}
    # R-Net/O-Net saw batches: calibrate on a seeded sample of single crops.
    rng = random.Random(seed)
    for n in ("rnet", "onet"):
        crops = [x[i : i + 1] for x in out[n] for i in range(len(x))]
        out[n] = rng.sample(crops, min(600, len(crops)))
    print({n: len(v) for n, v in out.items()}, "calibration inputs")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--calib-dir",
        "--data",
        dest="calib_dir",
        default="../shared/data",
        type=Path,
        help="the shared data folder (faces/utkface, detect)",
    )
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
            export_onnx(n, decompose_prelu(nets[n]), args.out / f)
            shutil.copy(args.out / f, tmpd / f)
            files.append(f)
            extra[f] = {"precision": "fp32", "runtime": "onnxruntime", "source": src}
        write_manifest(tmpd, [model_file(n, "fp32", "onnx") for n in NETS], {})
        print("exported FP32 ONNX", f"{time.time() - t0:.0f}s")
        calib = collect_calibration(tmpd, args.calib_dir, args.seed)

    for n in NETS:
        f = model_file(n, "int8", "onnx")
        quantize_onnx(args.out / model_file(n, "fp32", "onnx"), args.out / f, calib[n])
        files.append(f)
        extra[f] = {
            "precision": "int8",
            "runtime": "onnxruntime",
            "format": "QDQ, per-channel uint8 weights, uint8 activations (U8U8); PReLU and softmax in float",
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
            "format": "full-integer PT2E per-channel; int8 input and reg/landmark outputs, float32 softmax output",
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
