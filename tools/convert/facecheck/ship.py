"""Quantize the trained face-check classifier and ship it: static INT8 QDQ ONNX (per-channel,
calibrated on the labelled crops of both classes) and full-integer INT8 TFLite (litert-torch,
PT2E), checked against the float model, copied to models/quantized/ with manifest entries.

    python -m tools.convert.facecheck.ship --model var/facecheck/model
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edge.runtime import open_runner
from edge.runtime.int8_variant import VARIANT_FORMATS
from edge.shots.face_check import MODEL_FILES, network_input
from tools.convert.detector.quantize_onnx import quantize_onnx
from tools.convert.facecheck.labels import load_labelled
from tools.convert.facecheck.train import FaceNet, export_onnx
from tools.convert.manifest import write_manifest

VERSION = "face-check-1.0"
MODELS = Path(__file__).resolve().parents[3] / "models" / "quantized"


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=Path("var/facecheck/model"))
    ap.add_argument("--mined", type=Path, default=Path("var/facecheck/mined"))
    ap.add_argument("--out", type=Path, default=MODELS)
    ap.add_argument("--calib", type=int, default=400)
    ap.add_argument("--no-tflite", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = FaceNet()
    net.load_state_dict(torch.load(args.model / "facenet.pt"))
    net.eval()
    data = load_labelled(args.mined)
    rng = np.random.default_rng(0)
    pos = rng.permutation(np.flatnonzero(data.labels == 1))[: args.calib // 2]
    neg = rng.permutation(np.flatnonzero(data.labels == 0))[: args.calib // 2]
    calib = [network_input(data.crops[i]) for i in np.concatenate([pos, neg])]
    fp32 = args.model / "face_check_fp32.onnx"
    export_onnx(net, fp32)
    int8 = args.out / MODEL_FILES["onnx"]
    quantize_onnx(fp32, int8, calib)
    files = [MODEL_FILES["onnx"]]
    if not args.no_tflite:
        from tools.convert.detector.quantize_tflite import export_tflite_int8

        export_tflite_int8(net, calib[0], calib, args.out / MODEL_FILES["tflite"])
        files.append(MODEL_FILES["tflite"])
    source = ("trained here by tools/convert/facecheck (UTKFace faces; demo-clip, shared-video "
              "and shared-photo detections, hand-labelled); research use only")
    extra = {
        MODEL_FILES["onnx"]: {"precision": "int8", "runtime": "onnxruntime",
                              "format": "QDQ, " + VARIANT_FORMATS["portable"],
                              "source": source},
        MODEL_FILES["tflite"]: {"precision": "int8", "runtime": "litert",
                                "format": "full-integer PT2E per-channel, float32 I/O",
                                "source": source},
    }
    write_manifest(args.out, files, extra, VERSION)
    # Agreement of the shipped files with the float model on every labelled crop.
    x = np.concatenate([network_input(c) for c in data.crops])
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).squeeze(1).numpy()
    report = {"version": VERSION, "float_auc": auc(ref, data.labels)}
    for f in files:
        backend = "onnx" if f.endswith(".onnx") else "tflite"
        runner = open_runner(backend, args.out / f, 1)
        t0 = time.perf_counter()
        out = np.array([float(np.asarray(runner.run(x[i : i + 1])[0]).reshape(-1)[0])
                        for i in range(len(x))])
        ms = (time.perf_counter() - t0) * 1000 / len(x)
        agree = float(((out > 0) == (ref > 0)).mean())
        report[f] = {"auc": auc(out, data.labels), "decision_agreement": agree,
                     "ms_per_crop_1_thread": round(ms, 4),
                     "bytes": (args.out / f).stat().st_size}
    (args.model / "ship.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
