"""Ship the quantized student: copy the restore_student_{int8,fp32}.{onnx,tflite} files from
the export folder into models/quantized and list them, with their sha256, in its manifest.

    python -m tools.convert.restore.ship --version restore-1.0
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tools.convert.detector.build import write_manifest

SOURCE = (
    "trained in this repository (tools/convert/restore) on UTKFace (research-only licence); "
    "see RESTORER_MODEL_CARD.md"
)
IO = (
    "input float32 NCHW 1x3x40x40 RGB [0,1] (face crop resized, LFW deep-funneled framing); "
    "output float32 NCHW 1x3x160x160 RGB [0,1]"
)
FORMATS = {
    "restore_student_int8.onnx": (
        "int8",
        "onnxruntime",
        "QDQ, per-channel int8 weights, uint8 activations",
    ),
    "restore_student_fp32.onnx": ("fp32", "onnxruntime", "float32"),
    "restore_student_int8.tflite": ("int8", "litert", "full-integer PT2E per-channel, float32 I/O"),
    "restore_student_fp32.tflite": ("fp32", "litert", "float32"),
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", type=Path, default=Path("var/restore/export"))
    ap.add_argument("--out", type=Path, default=Path("models/quantized"))
    ap.add_argument("--version", required=True, help="e.g. restore-1.0")
    args = ap.parse_args(argv)
    extra = {}
    for name, (precision, runtime, fmt) in FORMATS.items():
        src = args.export / name
        if not src.is_file():
            raise SystemExit(f"missing {src}: run tools.convert.restore.quantize first")
        size = src.stat().st_size
        if size > 10 * 1024 * 1024:
            raise SystemExit(f"{src} is {size} bytes: shipped models must stay under 10 MB")
        shutil.copyfile(src, args.out / name)
        extra[name] = {
            "precision": precision,
            "runtime": runtime,
            "format": fmt,
            "io": IO,
            "source": SOURCE,
        }
    write_manifest(args.out, list(FORMATS), extra, version=args.version)
    print(f"shipped {', '.join(FORMATS)} ({args.version}) to {args.out}")


if __name__ == "__main__":
    main()
