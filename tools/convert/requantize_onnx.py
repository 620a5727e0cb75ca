"""Requantize the shipped INT8 ONNX models from their shipped FP32 ONNX files, with the
calibration recipes of the builds that made them, in one of two integer formats:

- ``portable`` (``*_int8.onnx``): per-channel uint8 weights, uint8 activations (U8U8). Exact
  on every CPU; see ``tools.convert.detector.quantize_onnx`` for why (U8S8 saturates on x86
  CPUs without VNNI).
- ``vnni`` (``*_int8_vnni.onnx``): per-channel int8 weights, uint8 activations (U8S8), which
  ONNX Runtime runs with VNNI's int32-accumulating dot products: exact there and about 3x
  faster than U8U8 (measured on this project's Xeon VMs). The daemon opens these only on x86
  CPUs that report VNNI (`edge.runtime.int8_variant`).

    python -m tools.convert.requantize_onnx --data ../shared/data
    python -m tools.convert.requantize_onnx --data ../shared/data --variant vnni
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from onnxruntime.quantization import QuantType

from edge.detect.mtcnn import model_file
from edge.runtime.int8_variant import VARIANT_FORMATS, variant_file
from tools.convert.detector.quantize_onnx import quantize_onnx
from tools.convert.manifest import write_manifest

MODELS = Path(__file__).resolve().parents[2] / "models" / "quantized"
WEIGHT_TYPES = {"portable": QuantType.QUInt8, "vnni": QuantType.QInt8}
# What stays in float in each network, beside its integer convs (stated in the manifest).
FLOAT_PARTS = {
    "detector": "PReLU and softmax in float",
    "restorer": "",
    "fusion": "pooling across frames in int8 too (sums over the frames in float)",
}


def format_text(variant: str, part: str) -> str:
    """The manifest's "format" of a network's INT8 ONNX file in `variant`."""
    floats = FLOAT_PARTS[part]
    return "QDQ, " + VARIANT_FORMATS[variant] + (f"; {floats}" if floats else "")


def requantize(out: Path, data: Path, which: set[str], variant: str, seed: int = 0) -> None:
    manifest = json.loads((out / "manifest.json").read_text())["models"]
    weight_type = WEIGHT_TYPES[variant]

    def done(portable: str, part: str) -> None:
        """The network, its version and its description stay; file, sha256 and format change."""
        file = variant_file(portable, variant)
        version = manifest[portable]["version"]
        entry = {
            k: v for k, v in manifest[portable].items() if k not in ("sha256", "bytes", "version")
        }
        entry["format"] = format_text(variant, part)
        write_manifest(out, [file], {file: entry}, version)
        print("requantized", file, version, flush=True)

    if "detector" in which:
        from tools.convert.detector.build import NETS, collect_calibration

        calib = collect_calibration(out, data, seed)  # runs the shipped FP32 detector
        for n in NETS:
            f = model_file(n, "int8", "onnx")
            quantize_onnx(
                out / model_file(n, "fp32", "onnx"), out / variant_file(f, variant), calib[n],
                weight_type=weight_type,
            )  # fmt: skip
            done(f, "detector")
    if "restorer" in which:
        from tools.convert.restore.quantize import calibration_inputs

        calib = calibration_inputs(data / "faces/utkface", 64, 40, 160)
        f = "restore_student_int8.onnx"
        quantize_onnx(
            out / "restore_student_fp32.onnx", out / variant_file(f, variant), calib,
            weight_type=weight_type,
        )  # fmt: skip
        done(f, "restorer")
    if "fusion" in which:
        from tools.convert.restore.quantize_fusion import KEEP_FLOAT, calibration_bursts

        calib = calibration_bursts(data / "faces/utkface", 48)  # quantize_fusion's default
        f = "restore_fusion_int8.onnx"
        quantize_onnx(
            out / "restore_fusion_fp32.onnx", out / variant_file(f, variant), calib,
            weight_type=weight_type, keep_float=KEEP_FLOAT, input_name="frames",
        )  # fmt: skip
        done(f, "fusion")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=MODELS)
    ap.add_argument("--only", default="detector,restorer,fusion")
    ap.add_argument("--variant", choices=sorted(WEIGHT_TYPES), default="portable")
    args = ap.parse_args()
    requantize(args.out, args.data, set(args.only.split(",")), args.variant)


if __name__ == "__main__":
    main()
