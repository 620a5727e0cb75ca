"""`face-edge restore IN_DIR OUT_DIR`: restore every face-crop image of a folder.

Each image's face is found (`find_face`) and restored in the network's framing wherever it
sits in the image (`edge.enhance.face_frame`): the output keeps the image's framing and
aspect, longer side 160 px (the model's output), and only the face is restored; the rest is
the image resized. Where no face is found the image is restored as `--no-align` does (framed
like the model's training crops, or reframed from `--margin`), and said so on stderr.
`restore-summary.json` in OUT_DIR has one record per file.

`--no-align`: the earlier behaviour exactly (no detector, 160x160 output, no summary).
Same file names and formats; a file that cannot be read is skipped, named and counted;
nothing in IN_DIR is ever written."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.commands.find_face import crop_detector, find_face
from edge.detect.base import Detector
from edge.enhance.face_frame import AlignedRestorer
from edge.enhance.restorer import (
    FaceRestorer,
    FramedRestorer,
    aligned_crop_framing,
    resize_to,
)
from edge.settings import RESTORE_STRENGTH_DEFAULT

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SUMMARY_FILE = "restore-summary.json"


@dataclass
class FileRecord:
    """What happened to one file, as restore-summary.json lists it. Points in input pixels."""

    file: str
    face_found: bool | None = None  # None: not looked for (unreadable)
    framing: str = ""  # "aligned", "centre" (as the model's crops), "margin 0.35"
    score: float | None = None
    box: list[float] | None = None
    landmarks: list[list[float]] | None = None
    in_size: list[int] | None = None  # width, height
    out_size: list[int] | None = None
    ms: float | None = None  # detection + restoration
    error: str | None = None


@dataclass
class BatchSummary:
    restored: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    ms_per_face: float = 0.0
    records: list[FileRecord] = field(default_factory=list)

    @property
    def no_face(self) -> list[str]:
        return [r.file for r in self.records if r.face_found is False]


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def rounded(a: np.ndarray) -> list:
    return np.round(np.asarray(a, np.float64), 1).tolist()


def restore_folder(
    in_dir: Path,
    out_dir: Path,
    restorer: FaceRestorer,
    margin: float | None = None,
    detector: Detector | None = None,
) -> BatchSummary:
    """Restore each image of `in_dir` into `out_dir`. With a `detector`, each image's face
    is found and restored where it sits (see the module's docstring) and restore-summary.json
    is written. Without one, or for an image without a face: `margin`, the crops are face-edge
    aligned crops with this margin (as the daemon publishes them) and are reframed for the
    model; None, they are framed like the model's training crops (LFW deep-funneled)."""
    if in_dir.resolve() == out_dir.resolve():
        raise ValueError("OUT_DIR must differ from IN_DIR: the originals are never overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    side = restorer.output_side
    framed = None
    if margin is not None:
        framed = FramedRestorer(restorer, aligned_crop_framing(side, margin))
    aligned = AlignedRestorer(restorer) if detector is not None else None
    fallback = "centre" if margin is None else f"margin {margin:g}"
    summary = BatchSummary()
    spent = 0.0
    for path in list_images(in_dir):
        record = FileRecord(path.name)
        summary.records.append(record)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            record.error = "not a readable image"
            summary.failed.append((path.name, record.error))
            continue
        record.in_size = [image.shape[1], image.shape[0]]
        start = time.perf_counter()
        face = find_face(detector, image) if detector is not None else None
        if aligned is not None and face is not None:
            out = aligned(image, face.landmarks).image
            record.framing, record.score = "aligned", round(face.score, 4)
            record.box, record.landmarks = rounded(face.box), rounded(face.landmarks)
        else:
            out = framed(resize_to(image, (side, side))) if framed else restorer(image)
            record.framing = fallback
        elapsed = time.perf_counter() - start
        record.face_found = None if detector is None else face is not None
        record.out_size, record.ms = [out.shape[1], out.shape[0]], round(elapsed * 1000, 2)
        spent += elapsed
        if not cv2.imwrite(str(out_dir / path.name), out):
            record.error = f"could not write {out_dir / path.name}"
            summary.failed.append((path.name, record.error))
            continue
        summary.restored += 1
    summary.ms_per_face = round(spent * 1000 / max(1, summary.restored), 2)
    if detector is not None:
        write_summary(out_dir / SUMMARY_FILE, summary, restorer, detector, fallback)
    return summary


def write_summary(
    path: Path,
    summary: BatchSummary,
    restorer: FaceRestorer,
    detector: Detector,
    fallback: str,
) -> None:
    doc = {
        "restorer": {"file": restorer.file_name, "version": restorer.version,
                     "strength": restorer.strength},
        "detector": detector.info(),
        "fallback": fallback,
        "restored": summary.restored,
        "no_face": len(summary.no_face),
        "failed": len(summary.failed),
    }
    files = [{k: v for k, v in asdict(r).items() if v is not None} for r in summary.records]
    head = json.dumps(doc, indent=1)[:-2]  # then "files", one per line
    rows = ",\n".join(f"  {json.dumps(f)}" for f in files)
    path.write_text(f'{head},\n "files": [\n{rows}\n ]\n}}\n', encoding="utf-8")


def add_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("in_dir", metavar="IN_DIR")
    r.add_argument("out_dir", metavar="OUT_DIR", help="written with the same file names")
    r.add_argument("--backend", choices=["onnx", "tflite"], default="onnx")
    r.add_argument("--precision", choices=["int8", "fp32"], default="int8")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument(
        "--margin",
        type=float,
        help="without a face found (or with --no-align): the crops are face-edge aligned "
        "crops with this margin (0.35 as published); default: framed like the model's LFW "
        "training crops",
    )
    r.add_argument(
        "--no-align",
        action="store_true",
        help="do not look for the face: every crop framed as --margin says, 160x160 output",
    )
    r.add_argument(
        "--strength",
        type=float,
        default=RESTORE_STRENGTH_DEFAULT,
        help="share of the network's change kept over the plain upscale, 0..1 (as "
        "enhance.restore.strength; default %(default)s, 1: the network alone)",
    )
    r.add_argument("--models-dir", help="default: the shipped models")


def main(args: argparse.Namespace) -> int:
    from edge.runtime.manifest import ModelIntegrityError

    in_dir, out_dir = Path(args.in_dir), Path(args.out_dir)
    if not in_dir.is_dir():
        print(f"IN_DIR {in_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        restorer = FaceRestorer(
            args.backend, args.precision, args.threads, args.models_dir, args.strength
        )
        detector = None
        if not args.no_align:
            detector = crop_detector(args.backend, args.threads, args.models_dir)
        summary = restore_folder(in_dir, out_dir, restorer, args.margin, detector)
    except (ModelIntegrityError, ValueError) as e:
        print(f"restore: {e}", file=sys.stderr)
        return 2
    for name, why in summary.failed:
        print(f"skipped {in_dir / name}: {why}", file=sys.stderr)
    for name in summary.no_face:
        how = "as the model's crops" if args.margin is None else f"from --margin {args.margin:g}"
        print(f"no face found in {in_dir / name}: restored framed {how}", file=sys.stderr)
    found = ""
    if detector is not None:
        found = f"; {len(summary.no_face)} without a face found, see {out_dir / SUMMARY_FILE}"
    print(
        f"restored {summary.restored} faces into {out_dir} with {restorer.file_name} "
        f"({restorer.version}), {summary.ms_per_face} ms per face; "
        f"{len(summary.failed)} skipped{found}"
    )
    return 1 if summary.failed else 0
