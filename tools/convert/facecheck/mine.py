"""Collect face-check training and evaluation material with the project's own detector.

Every detection the detector makes (at a lowered score threshold, so the hard negatives the
production threshold sometimes lets through are well represented) is stored as the face
check sees it (``edge.shots.face_check.store_crop``: 64x64, aligned by its own landmarks)
with its source, frame, track, box, landmarks and score. Labels:

- ``demo:corridor``/``demo:crowd``: from the renderer's ground-truth face boxes (a detection
  whose centre is in no drawn face is a non-face; one well inside a drawn face is a face;
  anything between is left unlabelled);
- UTKFace chips: the largest confident detection of each chip is a face;
- the shared videos and photos: unlabelled here; ``label.py`` applies hand labels per track
  (videos) or per detection (photos).

    python -m tools.convert.facecheck.mine --out var/facecheck/mined
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from edge.capture.demo import ensure_demo_clip
from edge.detect.mtcnn import FaceDetector
from edge.pipeline.workers import VideoFrames
from edge.settings import TrackerSettings
from edge.shots.face_check import store_crop
from edge.track import Tracker

SHARED = Path("../shared/data")


def demo_label(box: np.ndarray, truth: list[dict]) -> int:
    """1 face, 0 non-face, -1 unsure, against the renderer's brow-to-chin boxes."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    best = -1.0
    for t in truth:
        x1, y1, x2, y2 = t["box"]
        w, h = x2 - x1, y2 - y1
        inside = x1 - 0.1 * w <= cx <= x2 + 0.1 * w and y1 - 0.1 * h <= cy <= y2 + 0.1 * h
        near = x1 - 0.6 * w <= cx <= x2 + 0.6 * w and y1 - 0.6 * h <= cy <= y2 + 0.6 * h
        size_ok = 0.5 <= (box[3] - box[1]) / max(h, 1.0) <= 2.0
        if inside and size_ok and t.get("visible", 1.0) >= 0.9:
            return 1
        if near:
            best = max(best, 0.0)
    return -1 if best >= 0 else 0


def record(det, image, source: str, frame: int, track: int, label: int) -> tuple[dict, np.ndarray]:
    meta = {
        "source": source,
        "frame": frame,
        "track": track,
        "score": round(float(det.score), 4),
        "box": [round(float(v), 1) for v in det.box],
        "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in det.landmarks],
        "label": label,
    }
    return meta, store_crop(image, det.landmarks)


def mine_video(path: Path, source: str, detector, truth: list | None, step: int):
    tracker = Tracker.from_settings(TrackerSettings())
    out = []
    for frame in VideoFrames(path):
        dets = detector.detect(frame.image)
        seen, _ = tracker.update(dets, frame.mono_time)
        if frame.index % step:
            continue
        by_det = {id(t.detection): t.track_id for t in seen}
        for det in dets:
            label = demo_label(det.box, truth[frame.index]) if truth is not None else -1
            track = by_det.get(id(det), -1)
            out.append(record(det, frame.image, source, frame.index, track, label))
    return out


def mine_photos(folder: Path, detector):
    out = []
    for i, path in enumerate(sorted(folder.glob("*.jpg"))):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        for det in detector.detect(image):
            out.append(record(det, image, f"photo:{path.name}", i, -1, -1))
    return out


def mine_utkface(folder: Path, detector, limit: int, seed: int):
    files = sorted(folder.glob("*.jpg"))
    rng = np.random.default_rng(seed)
    files = [files[i] for i in rng.permutation(len(files))[:limit]]
    out = []
    for i, path in enumerate(files):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        dets = [d for d in detector.detect(image) if d.score >= 0.9]
        if dets:
            det = max(dets, key=lambda d: d.width * d.height)
            out.append(record(det, image, f"utkface:{path.name}", i, -1, 1))
    return out


def background_windows(image: np.ndarray, avoid: list, n: int, rng, min_px: int = 24):
    """Random square windows that overlap none of `avoid` (boxes), as stored crops (the
    window fills the stored crop like a face's template region would)."""
    h, w = image.shape[:2]
    out = []
    for _ in range(n * 10):
        if len(out) >= n:
            break
        side = int(rng.uniform(min_px, min(h, w) / 3))
        x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        grow = side * 0.5
        if any(x < b[2] + grow and b[0] - grow < x + side and y < b[3] + grow
               and b[1] - grow < y + side for b in avoid):
            continue
        window = image[y : y + side, x : x + side]
        out.append(((x, y, side), cv2.resize(window, (64, 64), interpolation=cv2.INTER_AREA)))
    return out


def mine_background(out: Path, shared: Path, per_frame: int, seed: int) -> None:
    """Non-face windows away from every detection (and every drawn face in the demo clips)."""
    rng = np.random.default_rng(seed)
    clips = {f"demo-{s}": ensure_demo_clip(scene=s) for s in ("corridor", "crowd")}
    clips["stage-speaker"] = shared / "video/stage-speaker-640x360.mp4"
    clips["crowd-night"] = shared / "video/crowd-night-826x540.mp4"
    for name, path in clips.items():
        metas = json.loads((out / f"{name}.json").read_text())
        truth = None
        if name.startswith("demo-"):
            truth = json.loads(path.with_suffix(".json").read_text())["frames"]
        rows = []
        for frame in VideoFrames(path):
            if frame.index % 5:
                continue
            avoid = [m["box"] for m in metas if m["frame"] == frame.index]
            avoid += [t["box"] for t in truth[frame.index]] if truth else []
            for (x, y, side), crop in background_windows(frame.image, avoid, per_frame, rng):
                meta = {"source": name, "frame": frame.index, "track": -2, "score": 0.0,
                        "box": [x, y, x + side, y + side], "landmarks": [], "label": 0}
                rows.append((meta, crop))
        save(rows, out, f"bg-{name}")
    metas = json.loads((out / "photos.json").read_text())
    rows = []
    for i, path in enumerate(sorted((shared / "detect").glob("*.jpg"))):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        avoid = [m["box"] for m in metas if m["source"] == f"photo:{path.name}"]
        for (x, y, side), crop in background_windows(image, avoid, per_frame * 4, rng):
            meta = {"source": f"photo:{path.name}", "frame": i, "track": -2, "score": 0.0,
                    "box": [x, y, x + side, y + side], "landmarks": [], "label": 0}
            rows.append((meta, crop))
    save(rows, out, "bg-photos")


def mine_lfw_unpaired(folder: Path, detector, limit: int):
    """One image of each LFW person who appears in no pair of pairs.txt (the data README
    allows these for training; the evaluation pairs stay unseen): faces of every pose and
    light, where UTKFace chips are mostly frontal and evenly lit."""
    paired: set[str] = set()
    for line in (folder / "pairs.txt").read_text().splitlines()[1:]:
        parts = line.split("\t")
        paired.update([parts[0]] if len(parts) == 3 else [parts[0], parts[2]])
    people = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in paired)
    out = []
    for i, person in enumerate(people[:limit]):
        path = sorted(person.glob("*.jpg"))[0]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        dets = [d for d in detector.detect(image) if d.score >= 0.9] if image is not None else []
        if dets:
            det = max(dets, key=lambda d: d.width * d.height)
            out.append(record(det, image, f"lfw:{path.name}", i, -1, 1))
    return out


def save(rows: list[tuple[dict, np.ndarray]], out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    metas = [m for m, _ in rows]
    crops = np.stack([c for _, c in rows]) if rows else np.zeros((0, 64, 64, 3), np.uint8)
    np.savez_compressed(out / f"{name}.npz", crops=crops)
    (out / f"{name}.json").write_text(json.dumps(metas))
    labels = [m["label"] for m in metas]
    print(f"{name}: {len(rows)} detections, faces {labels.count(1)}, "
          f"non-faces {labels.count(0)}, unlabelled {labels.count(-1)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("var/facecheck/mined"))
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--score", type=float, default=0.6, help="detector threshold for mining")
    ap.add_argument("--min-face-px", type=float, default=16)
    ap.add_argument("--utkface", type=int, default=4000, help="UTKFace chips to use")
    ap.add_argument("--lfw", type=int, default=2500, help="unpaired LFW people to use")
    ap.add_argument("--step", type=int, default=2, help="keep every n-th video frame")
    ap.add_argument("--only", default="", help="comma list of parts to (re)mine")
    args = ap.parse_args()
    detector = FaceDetector(min_face_px=args.min_face_px, score_threshold=args.score)
    parts = set(filter(None, args.only.split(","))) or {
        "demo-corridor", "demo-crowd", "stage-speaker", "crowd-night", "photos", "utkface", "lfw"}
    for scene in ("corridor", "crowd"):
        if f"demo-{scene}" in parts:
            clip = ensure_demo_clip(scene=scene)
            truth = json.loads(clip.with_suffix(".json").read_text())["frames"]
            save(mine_video(clip, f"demo:{scene}", detector, truth, args.step),
                 args.out, f"demo-{scene}")
    videos = {"stage-speaker": "stage-speaker-640x360.mp4", "crowd-night": "crowd-night-826x540.mp4"}
    for name, file in videos.items():
        if name in parts:
            rows = mine_video(args.shared / "video" / file, name, detector, None, 1)
            save(rows, args.out, name)
    if "photos" in parts:
        save(mine_photos(args.shared / "detect", detector), args.out, "photos")
    if "lfw" in parts:
        save(mine_lfw_unpaired(args.shared / "faces/lfw", detector, args.lfw), args.out, "lfw")
    if "background" in parts:
        mine_background(args.out, args.shared, 4, 1)
    if "utkface" in parts:
        rows = mine_utkface(args.shared / "faces/utkface", detector, args.utkface, 0)
        save(rows, args.out, "utkface")


if __name__ == "__main__":
    main()
