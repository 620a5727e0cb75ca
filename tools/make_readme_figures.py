"""Pictures for the README, from the built-in demo clip (public-domain photos):
an annotated frame and a sheet of original vs enhanced crops.

    python tools/make_readme_figures.py --out docs/img
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from edge.app.daemon import build_detector, build_enhancer
from edge.capture.demo import ensure_demo_clip
from edge.commands.annotate import annotate_frame, contact_sheet
from edge.config.load import camera_settings, load_config
from edge.pipeline.processor import FaceProcessor
from edge.types import Frame


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None)
    settings = camera_settings(cfg, cfg["cameras"][0])
    processor = FaceProcessor.from_settings(build_detector(settings), settings)
    enhancer = build_enhancer(settings)
    cap = cv2.VideoCapture(str(ensure_demo_clip()))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25
    best_frame, best_n, shots, i = None, 0, [], 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        res = processor.process(Frame(image, i, i / fps, i / fps))
        shots += res.shots
        if len(res.tracks) >= best_n:
            best_n, best_frame = len(res.tracks), annotate_frame(image, res.tracks, res.shots)
        i += 1
    shots += processor.flush()
    cv2.imwrite(str(args.out / "annotated-frame.jpg"), best_frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    shots = sorted(shots, key=lambda s: -s.quality.overall)[:4]
    pairs = [(s.crop, enhancer(s.crop).image) for s in shots]
    labels = [f"#{s.track_id} {s.reason} q{s.quality.overall:.2f}" for s in shots]
    cv2.imwrite(str(args.out / "crops-original-vs-enhanced.jpg"), contact_sheet(pairs, labels))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
