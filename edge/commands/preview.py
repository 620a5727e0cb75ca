"""`face-edge preview --seconds N --out DIR`: what the camera and the pipeline see, for the
technician aiming a camera and setting thresholds: annotated frames (boxes, landmarks, track
ids, quality, published faces, the regions the detector searched) and a contact sheet of
original vs enhanced crops."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2

from edge.commands.annotate import annotate_frame, contact_sheet
from edge.enhance import EnhancementStage
from edge.pipeline.processor import FaceProcessor, FrameResult, eye_distance
from edge.pipeline.workers import run_frames, source_frames
from edge.shots.best_shot import Shot

MAX_FRAMES_WRITTEN = 40


def run_preview(
    source, processor: FaceProcessor, enhancer: EnhancementStage, seconds: float, out_dir: Path
) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    shots: list[Shot] = []
    counts = {"frames": 0, "faces": 0, "written": 0}

    def on_result(res: FrameResult) -> None:
        counts["frames"] += 1
        counts["faces"] += len(res.detections)
        # Every frame with a published shot, and a sample of the others with faces.
        if counts["written"] < MAX_FRAMES_WRITTEN and (
            res.shots or (res.tracks and counts["frames"] % 25 == 0)
        ):
            cv2.imwrite(
                str(out_dir / f"frame-{res.frame.index:06d}.jpg"),
                annotate_frame(res.frame.image, res.tracks, res.shots, res.regions),
            )
            counts["written"] += 1

    live = source_frames(source, deadline=time.monotonic() + seconds)
    run_frames(live, processor, on_result=on_result, on_shots=shots.extend)
    frames, faces, written = counts["frames"], counts["faces"], counts["written"]
    pairs = [(s.crop, enhancer(s.crop, eye_px=eye_distance(s.detection)).image) for s in shots[:24]]
    labels = [f"#{s.track_id} {s.reason} q{s.quality.overall:.2f}" for s in shots[:24]]
    cv2.imwrite(str(out_dir / "contact-sheet.jpg"), contact_sheet(pairs, labels))
    summary = {
        "frames": frames,
        "faces_detected": faces,
        "shots_published": len(shots),
        "annotated_frames": written,
        "detect_ms": round(processor.detect_ms.mean, 1),
        "detect_regions": processor.region_stats(),
        "source": source.stats(),
        "shots": [
            {
                "track_id": s.track_id,
                "reason": s.reason,
                "quality": s.quality.as_dict(),
                "pose": s.pose.as_dict(),
                "face_px": round(s.detection.height, 1),
            }
            for s in shots
        ],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def add_arguments(pv: argparse.ArgumentParser) -> None:
    pv.add_argument("--config")
    pv.add_argument("--camera", help="camera name (default: the first)")
    pv.add_argument("--seconds", type=float, default=10.0)
    pv.add_argument("--out", required=True)


def main(args: argparse.Namespace) -> int:
    from edge.commands.common import load_settings_or_exit, setup_logging
    from edge.config.load import resolve_device_id
    from edge.pipeline.build import build_camera

    settings = load_settings_or_exit(args.config)
    setup_logging(settings.log_level)
    cams = [c for c in settings.cameras if args.camera in (None, c.name)]
    if not cams:
        print(f"no camera named {args.camera!r} in the config", file=sys.stderr)
        return 2
    cam = cams[0]
    camera = build_camera(cam, device_id=resolve_device_id(settings.device_id))
    source = camera.open_source()
    out = Path(args.out)
    summary = run_preview(source, camera.processor, camera.builder.enhancer, args.seconds, out)
    print(
        f"{cam.name}: {summary['frames']} frames, {summary['faces_detected']} faces, "
        f"{summary['shots_published']} shots would be published; detector {summary['detect_ms']} ms"
    )
    print(f"annotated frames and contact-sheet.jpg in {out}")
    return 0
