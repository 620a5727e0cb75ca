"""Recall/precision of the shipped detector variants against dlib's CNN face detector (a
strong, slow reference), and their speed per frame on one thread.

    python -m tools.eval.detector_eval --data ../shared/data --json var/eval/detector.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from edge.detect import FaceDetector
from edge.track import iou_matrix

VARIANTS = [("onnx", "int8"), ("onnx", "fp32"), ("tflite", "int8"), ("tflite", "fp32")]
SIZE_BINS = [(0, 32, "<32 px"), (32, 64, "32-64 px"), (64, 1e9, ">=64 px")]
MATCH_IOU = 0.4  # dlib's boxes are tighter and squarer than MTCNN's: 0.4 tolerates the framing


def load_images(data: Path, frames_per_video: int, max_side: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for p in sorted((data / "detect").glob("*.jpg")):
        img = cv2.imread(str(p))
        s = max_side / max(img.shape[:2])
        if s < 1:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        out.append((p.name, img))
    for v in sorted((data / "video").glob("*.mp4")):
        cap = cv2.VideoCapture(str(v))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in np.linspace(0, n - 1, frames_per_video).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = cap.read()
            if ok:
                out.append((f"{v.name}#{i}", frame))
    return out


def reference_boxes(images: list[tuple[str, np.ndarray]], cache: Path) -> dict[str, np.ndarray]:
    if cache.exists():
        return {
            k: np.array(v, np.float32).reshape(-1, 4)
            for k, v in json.loads(cache.read_text()).items()
        }
    import importlib.util

    import dlib

    # face_recognition_models' own import needs pkg_resources: locate its data file directly.
    spec = importlib.util.find_spec("face_recognition_models")
    weights = Path(spec.submodule_search_locations[0]) / "models" / "mmod_human_face_detector.dat"
    cnn = dlib.cnn_face_detection_model_v1(str(weights))
    refs = {}
    for i, (name, img) in enumerate(images):
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        # upsample so faces down to ~20 px are within the reference's reach
        up = 2 if max(img.shape[:2]) <= 640 else 1
        dets = cnn(rgb, up)
        refs[name] = np.array(
            [[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in dets],
            np.float32,
        ).reshape(-1, 4)
        print(f"\rreference {i + 1}/{len(images)}", end="", flush=True)
    print()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({k: v.tolist() for k, v in refs.items()}))
    return refs


def score_variant(det: FaceDetector, images, refs) -> dict:
    matched = np.zeros(len(SIZE_BINS))
    total = np.zeros(len(SIZE_BINS))
    n_det = n_det_matched = 0
    for name, img in images:
        boxes = np.array([d.box for d in det.detect(img)], np.float32).reshape(-1, 4)
        ref = refs[name]
        n_det += len(boxes)
        iou = iou_matrix(ref, boxes)
        hit_ref = iou.max(axis=1) >= MATCH_IOU if len(boxes) else np.zeros(len(ref), bool)
        n_det_matched += int((iou.max(axis=0) >= MATCH_IOU).sum()) if len(ref) else 0
        heights = ref[:, 3] - ref[:, 1]
        for b, (lo, hi, _) in enumerate(SIZE_BINS):
            sel = (heights >= lo) & (heights < hi)
            total[b] += sel.sum()
            matched[b] += (hit_ref & sel).sum()
    return {
        "recall": float(matched.sum() / max(total.sum(), 1)),
        "recall_by_size": {
            lab: float(matched[b] / total[b]) if total[b] else None
            for b, (_, _, lab) in enumerate(SIZE_BINS)
        },
        "faces_by_size": {lab: int(total[b]) for b, (_, _, lab) in enumerate(SIZE_BINS)},
        "precision_vs_reference": float(n_det_matched / max(n_det, 1)),
        "detections": n_det,
    }


def time_variant(det: FaceDetector, frame: np.ndarray, runs: int) -> dict:
    out = {}
    for w, h in [(640, 360), (1280, 720)]:
        img = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        for _ in range(3):
            det.detect(img)
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            det.detect(img)
            ts.append((time.perf_counter() - t) * 1000)
        out[f"{w}x{h}"] = {"p50_ms": float(np.median(ts)), "p95_ms": float(np.percentile(ts, 95))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--json", type=Path, default=Path("var/eval/detector.json"))
    ap.add_argument("--frames-per-video", type=int, default=6)
    ap.add_argument("--max-side", type=int, default=960)
    ap.add_argument("--min-face", type=float, default=20)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args(argv)
    images = load_images(args.data, args.frames_per_video, args.max_side)
    refs = reference_boxes(images, args.json.with_name("dlib_reference_boxes.json"))
    speed_frame = next(img for name, img in images if name.startswith("stage-speaker"))
    results = {
        "reference": "dlib cnn_face_detection_model_v1 (mmod_human_face_detector)",
        "match_iou": MATCH_IOU,
        "images": len(images),
        "reference_faces": int(sum(len(r) for r in refs.values())),
        "min_face_px": args.min_face,
        "speed_frame": "stage-speaker-640x360.mp4 (resized)",
        "variants": {},
    }
    for backend, precision in VARIANTS:
        det = FaceDetector(
            backend=backend, precision=precision, threads=1, min_face_px=args.min_face
        )
        r = score_variant(det, images, refs)
        r["speed_1thread"] = time_variant(det, speed_frame, args.runs)
        results["variants"][f"{backend}-{precision}"] = r
        print(f"{backend}-{precision}: recall {r['recall']:.3f}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(
        f"\n{results['images']} images, {results['reference_faces']} reference faces, IoU >= {MATCH_IOU}\n"
    )
    print(
        "| variant | recall | <32 px | 32-64 px | >=64 px | precision vs ref | ms 640x360 p50/p95 | ms 1280x720 p50/p95 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for k, r in results["variants"].items():
        rb = r["recall_by_size"]
        s = r["speed_1thread"]
        cells = " | ".join("-" if rb[lab] is None else f"{rb[lab]:.3f}" for _, _, lab in SIZE_BINS)
        print(
            f"| {k} | {r['recall']:.3f} | {cells} | {r['precision_vs_reference']:.3f} | "
            f"{s['640x360']['p50_ms']:.1f}/{s['640x360']['p95_ms']:.1f} | {s['1280x720']['p50_ms']:.1f}/{s['1280x720']['p95_ms']:.1f} |"
        )
    print("\nfaces per size bin:", results["variants"]["onnx-int8"]["faces_by_size"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
