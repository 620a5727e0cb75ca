"""`face-edge preview --seconds N --out DIR`: what the camera and the pipeline see, for the
technician aiming a camera and setting thresholds: annotated frames (boxes, landmarks, track
ids, quality, published faces, the regions the detector searched) and a contact sheet of
original vs enhanced crops."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2

from edge.commands.annotate import annotate_frame, contact_sheet
from edge.enhance import EnhancementStage
from edge.pipeline.processor import FaceProcessor
from edge.shots.best_shot import Shot

MAX_FRAMES_WRITTEN = 40


def run_preview(
    source, processor: FaceProcessor, enhancer: EnhancementStage, seconds: float, out_dir: Path
) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    source.start()
    shots: list[Shot] = []
    written = frames = faces = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            frame = source.read(timeout=0.5)
            if frame is None:
                if source.ended:
                    break
                continue
            res = processor.process(frame)
            frames += 1
            faces += len(res.detections)
            shots += res.shots
            # Every frame with a published shot, and a sample of the others with faces.
            if written < MAX_FRAMES_WRITTEN and (res.shots or (res.tracks and frames % 25 == 0)):
                cv2.imwrite(
                    str(out_dir / f"frame-{frame.index:06d}.jpg"),
                    annotate_frame(frame.image, res.tracks, res.shots, res.regions),
                )
                written += 1
        shots += processor.flush()
    finally:
        source.stop()
    pairs = [(s.crop, enhancer(s.crop).image) for s in shots[:24]]
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
