"""`face-edge enhance INPUT --out DIR`: a video, an image or a folder of images through the
same pipeline as the daemon, writing events.jsonl (the MQTT form, crops as files beside it)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import cv2

from edge.pipeline.processor import EventBuilder, FaceProcessor, FrameResult
from edge.pipeline.workers import VideoFrames, run_frames
from edge.shots.best_shot import Shot
from edge.types import Frame

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class Progress:
    """One self-overwriting stderr line, at most every half second."""

    def __init__(self, total: int | None, label: str):
        self.total, self.label = total, label
        self._last = 0.0
        self.tty = sys.stderr.isatty()

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        total = f"/{self.total}" if self.total else ""
        pct = f" {100 * done / self.total:5.1f}%" if self.total else ""
        line = f"{self.label}: {done}{total}{pct} {extra}"
        sys.stderr.write(("\r" + line) if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


class EventWriter:
    """Appends events to events.jsonl and writes their crops into crops/."""

    def __init__(self, out_dir: Path, builder: EventBuilder):
        self.out_dir = out_dir
        (out_dir / "crops").mkdir(parents=True, exist_ok=True)
        self.builder = builder
        self._jsonl = open(out_dir / "events.jsonl", "a", encoding="utf-8")
        self.count = 0

    def write(self, shot: Shot) -> dict:
        def paths(event_id: str) -> tuple[str, str]:
            return f"crops/{event_id}_original.jpg", f"crops/{event_id}_enhanced.jpg"

        event, orig_jpeg, enh_jpeg = self.builder(shot, crop_paths=paths)
        (self.out_dir / event["original"]["path"]).write_bytes(orig_jpeg)
        (self.out_dir / event["enhanced"]["path"]).write_bytes(enh_jpeg)
        self._jsonl.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._jsonl.flush()
        self.count += 1
        return event

    def write_all(self, shots: list[Shot]) -> None:
        for shot in shots:
            self.write(shot)

    def close(self) -> None:
        self._jsonl.close()


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def process_images(paths: list[Path], processor: FaceProcessor, writer: EventWriter) -> dict:
    """Every face of every image is published (reason "image"): there is no track to choose from."""
    progress = Progress(len(paths), "images")
    unreadable = 0
    for i, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            unreadable += 1
            print(f"skipped unreadable image: {path}", file=sys.stderr)
            continue
        now = time.time()
        frame = Frame(image=image, index=i, wall_time=now, mono_time=float(i), camera=path.name)
        detections = processor.detector.detect(image)
        for n, det in enumerate(detections):
            if det.height < processor.selector.min_face_px:
                continue
            shot = processor.selector.make_shot(frame, n + 1, det)
            if not processor.selector.is_face(frame, shot):
                continue
            shot.reason, shot.shot_index = "image", 0
            writer.write(shot)
        progress.update(i + 1, f"events {writer.count}")
    progress.update(len(paths), f"events {writer.count}", force=True)
    progress.close()
    return {"images": len(paths), "unreadable": unreadable, "events": writer.count}


def process_video(path: Path, processor: FaceProcessor, writer: EventWriter) -> dict:
    frames = VideoFrames(path)
    progress = Progress(None, "frames")

    def on_result(result: FrameResult) -> None:
        progress.total = frames.total
        progress.update(frames.frames, f"events {writer.count}")

    run_frames(frames, processor, on_result=on_result, on_shots=writer.write_all)
    progress.update(frames.frames, f"events {writer.count}", force=True)
    progress.close()
    return {
        "frames": frames.frames,
        "broken": frames.broken,
        "events": writer.count,
        "fps": frames.fps,
    }


def run_enhance(
    input_path: Path, out_dir: Path, processor: FaceProcessor, builder: EventBuilder
) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = EventWriter(out_dir, builder)
    try:
        if input_path.is_dir():
            return process_images(list_images(input_path), processor, writer)
        if input_path.suffix.lower() in IMAGE_SUFFIXES:
            return process_images([input_path], processor, writer)
        return process_video(input_path, processor, writer)
    finally:
        writer.close()


def add_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("input")
    e.add_argument("--out", required=True)
    e.add_argument("--config")
    e.add_argument("--camera", default="offline", help="camera name written in the events")
    e.add_argument("--backend", choices=["onnx", "tflite"])


def main(args: argparse.Namespace) -> int:
    from edge.commands.common import load_settings_or_exit, setup_logging
    from edge.config.load import resolve_device_id
    from edge.pipeline.build import build_camera

    settings = load_settings_or_exit(args.config)
    setup_logging(settings.log_level)
    src = Path(args.input)
    if not src.exists():
        print(f"input not found: {src}", file=sys.stderr)
        return 2
    cam = settings.camera_for({"name": args.camera, "source": "file://" + str(src.resolve())})
    if args.backend:
        cam = dataclasses.replace(cam, detector=cam.detector.merged({"backend": args.backend}))
    camera = build_camera(cam, device_id=resolve_device_id(settings.device_id))
    summary = run_enhance(src, Path(args.out), camera.processor, camera.builder)
    print(json.dumps(summary))
    print(f"wrote {summary['events']} events to {Path(args.out) / 'events.jsonl'}")
    return 0
