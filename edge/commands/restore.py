"""`face-edge restore IN_DIR OUT_DIR`: restore every face-crop image of a folder.

Output at the model's size (160x160), same framing, same file name and format. A file that
cannot be read is skipped, named and counted; nothing in IN_DIR is ever written."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from edge.enhance.restorer import (
    FaceRestorer,
    FramedRestorer,
    aligned_crop_framing,
    resize_to,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class BatchSummary:
    restored: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    ms_per_face: float = 0.0


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def restore_folder(
    in_dir: Path, out_dir: Path, restorer: FaceRestorer, margin: float | None = None
) -> BatchSummary:
    """Restore each image of `in_dir` into `out_dir`. `margin`: the crops are face-edge aligned
    crops with this margin (as the daemon publishes them) and are reframed for the model;
    None: they are framed like the model's training crops (LFW deep-funneled)."""
    if in_dir.resolve() == out_dir.resolve():
        raise ValueError("OUT_DIR must differ from IN_DIR: the originals are never overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    side = restorer.output_side
    framed = None
    if margin is not None:
        framed = FramedRestorer(restorer, aligned_crop_framing(side, margin))
    summary = BatchSummary()
    spent = 0.0
    for path in list_images(in_dir):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            summary.failed.append((path.name, "not a readable image"))
            continue
        start = time.perf_counter()
        out = framed(resize_to(image, (side, side))) if framed else restorer(image)
        spent += time.perf_counter() - start
        if not cv2.imwrite(str(out_dir / path.name), out):
            summary.failed.append((path.name, f"could not write {out_dir / path.name}"))
            continue
        summary.restored += 1
    summary.ms_per_face = round(spent * 1000 / max(1, summary.restored), 2)
    return summary


def add_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("in_dir", metavar="IN_DIR")
    r.add_argument("out_dir", metavar="OUT_DIR", help="written with the same file names")
    r.add_argument("--backend", choices=["onnx", "tflite"], default="onnx")
    r.add_argument("--precision", choices=["int8", "fp32"], default="int8")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument(
        "--margin",
        type=float,
        help="the crops are face-edge aligned crops with this margin (0.35 as published); "
        "default: framed like the model's LFW training crops",
    )
    r.add_argument("--models-dir", help="default: the shipped models")


def main(args: argparse.Namespace) -> int:
    from edge.runtime.manifest import ModelIntegrityError

    in_dir, out_dir = Path(args.in_dir), Path(args.out_dir)
    if not in_dir.is_dir():
        print(f"IN_DIR {in_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        restorer = FaceRestorer(args.backend, args.precision, args.threads, args.models_dir)
        summary = restore_folder(in_dir, out_dir, restorer, args.margin)
    except (ModelIntegrityError, ValueError) as e:
        print(f"restore: {e}", file=sys.stderr)
        return 2
    for name, why in summary.failed:
        print(f"skipped {in_dir / name}: {why}", file=sys.stderr)
    print(
        f"restored {summary.restored} faces into {out_dir} with {restorer.file_name} "
        f"({restorer.version}), {summary.ms_per_face} ms per face; {len(summary.failed)} skipped"
    )
    return 1 if summary.failed else 0
