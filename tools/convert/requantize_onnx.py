"""Requantize the shipped INT8 ONNX models from their shipped FP32 ONNX files as U8U8
(per-channel uint8 weights, uint8 activations), with the calibration recipes of the builds
that made them (see ``tools.convert.detector.quantize_onnx`` for why: the earlier U8S8 files
saturate on x86 CPUs without VNNI).

    python -m tools.convert.requantize_onnx --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.detect.mtcnn import model_file
from tools.convert.detector.quantize_onnx import quantize_onnx
from tools.convert.manifest import write_manifest

MODELS = Path(__file__).resolve().parents[2] / "models" / "quantized"
U8U8 = "per-channel uint8 weights, uint8 activations (U8U8: exact on non-VNNI x86 too)"


def requantize(out: Path, data: Path, which: set[str], seed: int = 0) -> None:
    manifest = json.loads((out / "manifest.json").read_text())["models"]

    def done(file: str) -> None:
        """The network and its version stay; only the file, its sha256 and format change."""
        version = manifest[file]["version"]
        entry = {k: v for k, v in manifest[file].items() if k not in ("sha256", "bytes", "version")}
        rest = entry.get("format", "").partition("activations")[2].lstrip(";, ")
        entry["format"] = "QDQ, " + U8U8 + (f"; {rest}" if rest else "")
        write_manifest(out, [file], {file: entry}, version)
        print("requantized", file, version, flush=True)

    if "detector" in which:
        from tools.convert.detector.build import NETS, collect_calibration

        calib = collect_calibration(out, data, seed)  # runs the shipped FP32 detector
        for n in NETS:
            f = model_file(n, "int8", "onnx")
            quantize_onnx(out / model_file(n, "fp32", "onnx"), out / f, calib[n])
            done(f)
    if "restorer" in which:
        from tools.convert.restore.quantize import calibration_inputs

        calib = calibration_inputs(data / "faces/utkface", 64, 40, 160)
        quantize_onnx(out / "restore_student_fp32.onnx", out / "restore_student_int8.onnx", calib)
        done("restore_student_int8.onnx")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=MODELS)
    ap.add_argument("--only", default="detector,restorer")
    args = ap.parse_args()
    requantize(args.out, args.data, set(args.only.split(",")))


if __name__ == "__main__":
    main()
