"""Quantize the student: static INT8 QDQ ONNX (per-channel) for ONNX Runtime and full-integer
INT8 TFLite (litert-torch + PT2E), both calibrated on real degraded UTKFace crops from the
training split (never the validation files); FP32 versions are kept for comparison. Reports
PSNR of every version on the held-out validation files (x4, x8 presets, and the seeded
random degradations) and the ONNX Runtime latency on one thread.

    python -m tools.convert.restore.quantize
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from tools.convert.detector.quantize_onnx import quantize_onnx
from tools.convert.restore.common import VAL_PRESETS
from tools.convert.restore.data import (
    DEFAULT_UTK,
    FaceRestoreDataset,
    bicubic,
    cache_images,
    list_split,
    psnr,
)
from tools.convert.restore.export import export_student_onnx, load_student, ort_latency_ms


def calibration_inputs(data: Path, n: int, lr: int, hr: int, n_val: int = 300) -> list:
    train, _ = list_split(data, n_val, 0)
    files = train[-n:]  # the end of the shuffled training list
    imgs = cache_images(files, hr, progress=False)
    half = n // 2
    out = []
    for i, preset in enumerate([None] * half + ["x4", "x8"] * ((n - half) // 2)):
        ds = FaceRestoreDataset(imgs[i : i + 1], lr, hr, train=False, seed=77 + i, preset=preset)
        out.append(ds[0][0][None].numpy())
    return out


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"image": x[i : i + 1]})[0] for i in range(len(x))])


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    res = []
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i : i + 1])
        it.invoke()
        res.append(it.get_tensor(out["index"]).copy())
    return np.concatenate(res)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", type=Path, default=Path("var/restore/student/last.pt"))
    ap.add_argument("--data", type=Path, default=DEFAULT_UTK)
    ap.add_argument("--out", type=Path, default=Path("var/restore/export"))
    ap.add_argument("--calib", type=int, default=64, help="calibration crops")
    ap.add_argument("--val-images", type=int, default=150)
    ap.add_argument("--no-tflite", action="store_true")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    net, s = load_student(args.student)
    lr, hr = s["io"]["lr"], s["io"]["hr"]
    fp32 = args.out / "restore_student_fp32.onnx"
    int8 = args.out / "restore_student_int8.onnx"
    export_student_onnx(net, fp32, lr)
    calib = calibration_inputs(args.data, args.calib, lr, hr)
    quantize_onnx(fp32, int8, calib)
    paths = {"onnx_fp32": fp32, "onnx_int8": int8}
    if not args.no_tflite:
        from tools.convert.detector.quantize_tflite import export_tflite_fp32, export_tflite_int8

        paths["tflite_fp32"] = args.out / "restore_student_fp32.tflite"
        paths["tflite_int8"] = args.out / "restore_student_int8.tflite"
        export_tflite_fp32(net, calib[0], paths["tflite_fp32"])
        export_tflite_int8(net, calib[0], calib, paths["tflite_int8"])

    _, val_files = list_split(args.data, 300, 0)
    val_imgs = cache_images(val_files[: args.val_images], hr, progress=False)
    report: dict = {"psnr": {}, "latency_1thread": {}}
    for name in VAL_PRESETS:
        ds = FaceRestoreDataset(
            val_imgs, lr, hr, False, 1234, None if name == "random" else name
        )  # the same validation sets as the training scripts
        xs, ys, _ = (torch.stack(t) for t in zip(*[ds[i] for i in range(len(ds))], strict=True))
        row = {"bicubic": float(psnr(bicubic(xs, hr), ys).mean())}
        with torch.no_grad():
            row["torch_fp32"] = float(psnr(net(xs), ys).mean())
        for k, p in paths.items():
            run = run_onnx if k.startswith("onnx") else run_tflite
            row[k] = float(psnr(torch.from_numpy(run(p, xs.numpy())), ys).mean())
        report["psnr"][name] = {k: round(v, 3) for k, v in row.items()}
    for k in ("onnx_fp32", "onnx_int8"):
        report["latency_1thread"][k] = ort_latency_ms(paths[k], lr)
    (args.out / "quantize.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
