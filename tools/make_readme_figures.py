"""Pictures for the README, from the built-in demo clip (public-domain photos):
an annotated frame and a sheet of original vs enhanced crops.

    python tools/make_readme_figures.py --out docs/img
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from edge.capture.demo import ensure_demo_clip
from edge.commands.annotate import annotate_frame, contact_sheet
from edge.config.load import load_settings
from edge.pipeline.build import build_camera
from edge.pipeline.processor import FrameResult, eye_distance
from edge.pipeline.workers import VideoFrames, run_frames


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(None)
    camera = build_camera(settings.cameras[0], device_id="readme")
    shots: list = []
    best: dict = {"n": 0, "frame": None}

    def keep_busiest(res: FrameResult) -> None:
        if len(res.tracks) >= best["n"]:
            best["n"] = len(res.tracks)
            best["frame"] = annotate_frame(res.frame.image, res.tracks, res.shots)

    run_frames(
        VideoFrames(ensure_demo_clip()),
        camera.processor,
        on_result=keep_busiest,
        on_shots=shots.extend,
    )
    best_frame, enhancer = best["frame"], camera.builder.enhancer
    cv2.imwrite(str(args.out / "annotated-frame.jpg"), best_frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    shots = sorted(shots, key=lambda s: -s.quality.overall)[:4]
    pairs = [(s.crop, enhancer(s.crop, eye_px=eye_distance(s.detection)).image) for s in shots]
    labels = [f"#{s.track_id} {s.reason} q{s.quality.overall:.2f}" for s in shots]
    cv2.imwrite(str(args.out / "crops-original-vs-enhanced.jpg"), contact_sheet(pairs, labels))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
