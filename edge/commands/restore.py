"""`face-edge restore IN_DIR OUT_DIR`: restore every face-crop image of a folder.

Output at the model's size (160x160), same framing, same file name and format. A file that
cannot be read is skipped, named and counted; nothing in IN_DIR is ever written."""

from __future__ import annotations

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
