"""Export the trained fusion student to ONNX (FP32, dynamic frame axis) and quantize it to
static INT8 QDQ (per-channel U8U8 convs; the softmax pooling across frames stays float),
calibrated on real bursts from the training split; report PSNR on held-out bursts per K for
FP32 and INT8 against the single-frame student and bicubic, and ONNX Runtime latency on one
thread per K. With `--ship`, copy both files into models/quantized and list them in its
manifest.

    python -m tools.convert.restore.quantize_fusion --ckpt var/fusion/last.pt --out var/fusion/export
    python -m tools.convert.restore.quantize_fusion --ckpt var/fusion/last.pt --out var/fusion/export \
        --ship --version fusion-1.0

`--tflite-only` writes the LiteRT files instead (FP32 and full-integer INT8 through
litert-torch's PT2E quantizer, a fixed 8 frames: `edge.enhance.fusion.fill_frames` repeats a
shorter burst), reports their PSNR beside the shipped ONNX INT8 file, and with `--ship` adds
only them to models/quantized.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from tools.convert.detector.quantize_onnx import quantize_onnx
from tools.convert.manifest import write_manifest
from tools.convert.requantize_onnx import format_text, requantize
from tools.convert.restore.data import DEFAULT_UTK, cache_images, frame_face, list_split, psnr
from tools.convert.restore.degrade import PRESETS, random_params
from tools.convert.restore.fusion import FusionStudent, export_fusion_onnx
from tools.convert.restore.identity import load_student_from_onnx
from tools.convert.restore.train_fusion import DEFAULT_STUDENT, HR, burst_tensors

FILES = {"int8": "restore_fusion_int8.onnx", "fp32": "restore_fusion_fp32.onnx"}
TFLITE_FILES = {"int8": "restore_fusion_int8.tflite", "fp32": "restore_fusion_fp32.tflite"}
TFLITE_FRAMES = 8
# Every op quantizes, the pooling across frames too (its products run as QLinearMul; ONNX
# Runtime keeps only the sums and means over the frames in float). With the pooling left in
# float, dequantizing the K x 48 x 40 x 40 features and multiplying them in float took half
# the time: K = 8 went from 12.4 to 7.6 ms on one thread (U8S8 on VNNI; U8U8 21.5 -> 15.9),
# 5.4 ms with `shapes_from_quantized` too (`tools.eval.int8_parity`), for 45.8 dB of agreement
# with FP32 instead of 47.4.
KEEP_FLOAT: tuple[str, ...] = ()
SHIPPED = Path(__file__).resolve().parents[3] / "models/quantized"


def load_fusion(ckpt: Path, student: Path = DEFAULT_STUDENT) -> FusionStudent:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    net = FusionStudent(load_student_from_onnx(student), n_enc=int(state.get("n_enc", 2)))
    net.load_state_dict(state.get("ema", state["net"]))
    return net.eval()


def calibration_bursts(data: Path, n: int) -> list[np.ndarray]:
    """n bursts (K cycling 8, 4, 2) from the end of the training split, random degradations
    and the x4/x8 presets."""
    train, _ = list_split(data, 300, 0)
    chips = cache_images(train[-n:], HR, progress=False)
    out = []
    for i, chip in enumerate(chips):
        rng = np.random.default_rng([77, i])
        clean, _ = frame_face(chip, HR, rng)
        params = [random_params(rng), PRESETS["x4"], PRESETS["x8"]][i % 3]
        out.append(burst_tensors(clean, params, [8, 4, 2][i % 3], rng, None).numpy())
    return out


def held_out(data: Path, n: int) -> dict:
    """{(preset, K): (list of K' x 3 x 40 x 40 bursts, targets N x 3 x 160 x 160)}."""
    _, val = list_split(data, 300, 0)
    chips = cache_images(val[:n], HR, progress=False)
    out = {}
    for preset in ("x4", "x8"):
        for k in (1, 2, 4, 8):
            xs, ys = [], []
            for i, chip in enumerate(chips):
                rng = np.random.default_rng([4321, i, k, int(PRESETS[preset].factor)])
                clean, _ = frame_face(chip, HR)
                xs.append(burst_tensors(clean, PRESETS[preset], k, rng, None).numpy())
                ys.append(torch.from_numpy(clean[:, :, ::-1].transpose(2, 0, 1).copy()) / 255.0)
            out[(preset, k)] = (xs, torch.stack(ys).float())
    return out


def session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def latency_ms(path: Path, k: int, runs: int = 30) -> float:
    sess = session(path)
    x = np.random.default_rng(0).random((k, 3, 40, 40), dtype=np.float32)
    for _ in range(3):
        sess.run(None, {"frames": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {"frames": x})
        times.append((time.perf_counter() - t) * 1000)
    return round(float(np.median(times)), 2)


def export_tflite(net: FusionStudent, calib: list[np.ndarray], out: Path) -> dict[str, Path]:
    """LiteRT FP32 and INT8 files of the fusion network at a fixed TFLITE_FRAMES frames."""
    import copy

    from edge.enhance.fusion import fill_frames
    from tools.convert.detector.quantize_tflite import export_tflite_fp32, export_tflite_int8
    from tools.convert.restore.fusion import FusionFrames4d

    net = copy.deepcopy(net).eval()
    net.split_gate()
    frames = FusionFrames4d(net).eval()
    filled = [fill_frames(x, TFLITE_FRAMES) for x in calib]
    paths = {p: out / name for p, name in TFLITE_FILES.items()}
    export_tflite_fp32(frames, filled[0], paths["fp32"])
    export_tflite_int8(frames, filled[0], filled, paths["int8"])
    return paths


def tflite_report(paths: dict[str, Path], onnx_int8: Path, data: Path, n: int) -> dict:
    """PSNR per preset and K of the LiteRT files against the ONNX INT8 file, and their
    latency on one thread."""
    from edge.enhance.fusion import fill_frames
    from edge.runtime.plugins.litert import TfliteModel

    models = {f"tflite_{p}": TfliteModel(path, 1) for p, path in paths.items()}
    onnx = session(onnx_int8)
    report: dict = {"psnr": {}, "latency_ms_1thread": {}}
    for (preset, k), (xs, y) in held_out(data, n).items():
        row = {"onnx_int8": psnr(
            torch.from_numpy(np.concatenate([onnx.run(None, {"frames": x})[0] for x in xs])), y
        ).mean()}  # fmt: skip
        for name, m in models.items():
            pred = np.concatenate([m.run(fill_frames(x, TFLITE_FRAMES))[0] for x in xs])
            row[name] = psnr(torch.from_numpy(pred), y).mean()
        report["psnr"][f"{preset}_k{k}"] = {n_: round(float(v), 3) for n_, v in row.items()}
    x = np.random.default_rng(0).random((TFLITE_FRAMES, 3, 40, 40), dtype=np.float32)
    for name, m in models.items():
        for _ in range(3):
            m.run(x)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            m.run(x)
            times.append((time.perf_counter() - t) * 1000)
        report["latency_ms_1thread"][name] = round(float(np.median(times)), 2)
    return report


def ship_tflite(version: str, out: Path) -> None:
    src = "trained here by tools/convert/restore/train_fusion.py from restore-1.1 (UTKFace, non-commercial research only)"  # noqa: E501
    extra = {
        TFLITE_FILES["int8"]: {"precision": "int8", "runtime": "litert", "source": src,
                               "format": f"full-integer (PT2E), float32 I/O, {TFLITE_FRAMES} frames"},  # noqa: E501
        TFLITE_FILES["fp32"]: {"precision": "fp32", "runtime": "litert", "source": src,
                               "format": f"{TFLITE_FRAMES} frames"},
    }  # fmt: skip
    for name in TFLITE_FILES.values():
        shutil.copy2(out / name, SHIPPED / name)
    write_manifest(SHIPPED, list(TFLITE_FILES.values()), extra, version=version)
    print(f"shipped the LiteRT files of {version} into {SHIPPED}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", type=Path, default=Path("var/fusion/last.pt"))
    ap.add_argument("--student", type=Path, default=DEFAULT_STUDENT)
    ap.add_argument("--data", type=Path, default=DEFAULT_UTK)
    ap.add_argument("--out", type=Path, default=Path("var/fusion/export"))
    ap.add_argument("--calib", type=int, default=48)
    ap.add_argument("--val-images", type=int, default=60)
    ap.add_argument("--ship", action="store_true")
    ap.add_argument("--tflite-only", action="store_true", help="only the LiteRT files")
    ap.add_argument("--version", default=None)
    args = ap.parse_args(argv)
    if args.ship and not args.version:
        raise SystemExit("--ship needs --version")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    net = load_fusion(args.ckpt, args.student)
    student = load_student_from_onnx(args.student).eval()
    fp32, int8 = args.out / FILES["fp32"], args.out / FILES["int8"]
    if args.tflite_only:
        paths = export_tflite(net, calibration_bursts(args.data, args.calib), args.out)
        report = tflite_report(paths, SHIPPED / FILES["int8"], args.data, args.val_images)
        (args.out / "quantize_tflite.json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        if args.ship:
            ship_tflite(args.version, args.out)
        return
    export_fusion_onnx(net, fp32)
    calib = calibration_bursts(args.data, args.calib)
    quantize_onnx(fp32, int8, calib, keep_float=KEEP_FLOAT, input_name="frames")

    report: dict = {"psnr": {}, "latency_ms_1thread": {}}
    sessions = {"onnx_fp32": session(fp32), "onnx_int8": session(int8)}
    for (preset, k), (xs, y) in held_out(args.data, args.val_images).items():
        row = {}
        with torch.no_grad():
            ref = torch.stack([torch.from_numpy(x[0]) for x in xs])
            row["bicubic_1"] = psnr(
                torch.nn.functional.interpolate(ref, size=HR, mode="bicubic").clamp(0, 1), y
            ).mean()
            row["student_1"] = psnr(student(ref), y).mean()
            row["torch_fp32"] = psnr(
                torch.cat([net(torch.from_numpy(x)[None]) for x in xs]), y
            ).mean()
        for name, sess in sessions.items():
            pred = np.concatenate([sess.run(None, {"frames": x})[0] for x in xs])
            row[name] = psnr(torch.from_numpy(pred), y).mean()
        row = {n: round(float(v), 3) for n, v in row.items()}
        row["frames_kept"] = round(float(np.mean([len(x) for x in xs])), 2)
        report["psnr"][f"{preset}_k{k}"] = row
    for k in (1, 2, 4, 8):
        report["latency_ms_1thread"][f"k{k}"] = {
            "fp32": latency_ms(fp32, k), "int8": latency_ms(int8, k)
        }  # fmt: skip
    (args.out / "quantize.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if args.ship:
        for name in FILES.values():
            shutil.copy2(args.out / name, SHIPPED / name)
        src = "trained here by tools/convert/restore/train_fusion.py from restore-1.1 (UTKFace, non-commercial research only)"  # noqa: E501
        extra = {
            FILES["int8"]: {"precision": "int8", "runtime": "onnxruntime", "source": src,
                            "format": format_text("portable", "fusion")},
            FILES["fp32"]: {"precision": "fp32", "runtime": "onnxruntime", "source": src},
        }  # fmt: skip
        write_manifest(SHIPPED, list(FILES.values()), extra, version=args.version)
        # Its U8S8 twin for x86 CPUs with VNNI (edge.runtime.int8_variant), same recipe.
        requantize(SHIPPED, args.data.parents[1], {"fusion"}, "vnni")
        print(f"shipped {args.version} into {SHIPPED}")


if __name__ == "__main__":
    main()
