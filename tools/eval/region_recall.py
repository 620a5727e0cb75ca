"""Region-of-interest detection against full-frame detection, frame by frame on real videos.

Two FaceProcessors share one detector and see the same frames (video time drives the
trackers and the full-frame timer): one searches every frame whole, the other only where the
region planner points it (detector.regions). Reported per video:
  - recall: of the faces full-frame detection finds in two consecutive frames (a face
    present, not a one-frame flicker), the share region detection also finds (IoU >= 0.5),
    counted after the first frame (the first full-frame pass);
  - detections, published shots (events) and tracks with at least one shot in each mode;
  - detector ms per frame in each mode, timed alternately on the same frames, so a loaded
    machine slows both alike (compare the ratio, not the absolute numbers);
  - the share of frames searched whole and the mean fraction of the frame searched.

    python -m tools.eval.region_recall                       # the demo clip and ../shared videos
    python -m tools.eval.region_recall --videos a.mp4 b.mp4 --json var/eval/regions.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from edge.config.load import load_settings
from edge.geometry import iou_matrix
from edge.pipeline.build import build_detector
from edge.pipeline.processor import FaceProcessor
from edge.pipeline.workers import VideoFrames
from edge.settings import Settings

DEFAULT_VIDEOS = (
    "../shared/data/video/stage-speaker-640x360.mp4",
    "../shared/data/video/crowd-night-826x540.mp4",
)
PRESENT_IOU = 0.3  # a full-frame face "present" in the frame before
FOUND_IOU = 0.5  # region detection found the same face


def _boxes(dets) -> np.ndarray:
    return np.array([d.box for d in dets], np.float32).reshape(-1, 4)


def compare(video: Path, settings: Settings | None = None, max_frames: int | None = None) -> dict:
    """Both modes on `video` (see the module doc); the numbers as a dict."""
    settings = settings or load_settings(None)
    cam = settings.camera_for({"name": "eval", "source": f"file://{video}"})
    # The reference is the plain cascade on the whole frame; the other side runs as configured
    # (regions and, by default, detector.follow_faces).
    whole = cam.detector.merged({"regions": {"enabled": False}, "follow_faces": False})
    full_settings = dataclasses.replace(cam, detector=whole)
    if not cam.detector.regions.enabled:
        raise ValueError("detector.regions.enabled is false in this config: nothing to compare")
    detector = build_detector(cam)  # stateless between calls: one serves both modes
    full = FaceProcessor.from_settings(detector, full_settings)
    roi = FaceProcessor.from_settings(detector, cam)
    detector.detect(np.zeros((64, 64, 3), np.uint8))  # the runtimes' first-call setup
    n = present = found = 0
    counts = {"full": 0, "regions": 0}
    shots = {"full": 0, "regions": 0}
    published: dict[str, set[int]] = {"full": set(), "regions": set()}
    ms = {"full": 0.0, "regions": 0.0}
    full_frames = 0
    area = 0.0
    prev_full = np.zeros((0, 4), np.float32)
    size = None
    # Two processors see each frame: this comparison steps them side by side instead of
    # through run_frames, on the same video clock.
    for frame in VideoFrames(video, max_frames=max_frames, camera="eval"):
        image = frame.image
        size = [int(image.shape[1]), int(image.shape[0])]
        results = {}
        # Alternate which mode goes first: neither always gets the warmer caches.
        order = (("full", full), ("regions", roi)) if n % 2 else (("regions", roi), ("full", full))
        for name, proc in order:
            results[name] = proc.process(frame)
            ms[name] += results[name].detect_ms
            counts[name] += len(results[name].detections)
            shots[name] += len(results[name].shots)
            published[name].update(shot.track_id for shot in results[name].shots)
        regions = results["regions"].regions
        full_frames += regions is None
        area += roi.planner.last_area_fraction
        fb, rb = _boxes(results["full"].detections), _boxes(results["regions"].detections)
        if n > 0 and len(fb) and len(prev_full):
            persistent = iou_matrix(fb, prev_full).max(axis=1) >= PRESENT_IOU
            present += int(persistent.sum())
            if len(rb):
                hit = iou_matrix(fb, rb).max(axis=1) >= FOUND_IOU
                found += int((persistent & hit).sum())
        prev_full = fb
        n += 1
    for name, proc in (("full", full), ("regions", roi)):
        last = proc.flush()
        shots[name] += len(last)
        published[name].update(shot.track_id for shot in last)
    return {
        "video": video.name,
        "frame_size": size,
        "frames": n,
        "faces_present": present,
        "faces_found": found,
        "recall": round(found / present, 4) if present else None,
        "detections": counts,
        "events": shots,
        "tracks_published": {k: len(v) for k, v in published.items()},
        "detect_ms_mean": {k: round(v / max(n, 1), 2) for k, v in ms.items()},
        "full_frame_share": round(full_frames / max(n, 1), 3),
        "area_fraction_mean": round(area / max(n, 1), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", nargs="*", type=Path, help="default: demo clip + ../shared videos")
    ap.add_argument("--config", help="detector/tracker/best_shot settings (default: built-in)")
    ap.add_argument("--max-frames", type=int)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    videos = args.videos
    if not videos:
        from edge.capture.demo import ensure_demo_clip

        videos = [ensure_demo_clip()] + [Path(v) for v in DEFAULT_VIDEOS if Path(v).is_file()]
    settings = load_settings(args.config)
    rows = []
    for v in videos:
        t0 = time.monotonic()
        row = compare(Path(v), settings, args.max_frames)
        row["seconds"] = round(time.monotonic() - t0, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
