"""Recall/precision of the shipped detector variants against dlib's CNN face detector (a
strong, slow reference), and their speed per frame on one thread.

    python -m tools.eval.detector_eval --detect-dir ../shared/data/detect \
        --videos '../shared/data/video/*.mp4' --json var/eval/detector.json

Images: every JPEG of the detect folder (long side capped at --max-side, 960 px) and
--frames-per-video evenly spaced frames of each video. Reference: dlib's mmod CNN face
detector with one 2x upsampling (reaches ~20 px faces), cached per image under var/eval.
dlib's mmod detector misses most faces under ~30 px even then (e.g. detect/25.jpg: no
reference face, 75 real ~15-20 px faces found by MTCNN), so small-face recall is measured a
second way: every image downscaled by --small-scale (0.5) with the reference boxes scaled
alike, which turns the reference's 32-64 px faces into 16-32 px ones; and "precision vs
reference" is a lower bound. A reference face counts as found when a detection overlaps it at IoU >= 0.4 (dlib's boxes
are tighter and squarer than MTCNN's). Recall is given per reference face height; the
headline recall counts faces at least --min-face px high (the detector's search limit).
Speed: median and p95 ms per detect() call on one thread (ONNX Runtime / LiteRT threads=1,
OpenCV threads=1), after 3 warm-up calls, at 640x360 and 1280x720.
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import cv2
import numpy as np

from edge.detect import FaceDetector
from edge.geometry import iou_matrix

# name: (backend, precision, first stage precision). "-pnet-fp32": R-Net and O-Net in INT8
# behind an FP32 P-Net, what `detector.first_stage_precision: auto` picks on x86.
VARIANTS = {
    "onnx-int8": ("onnx", "int8", "int8"),
    "onnx-fp32": ("onnx", "fp32", "fp32"),
    "onnx-int8-pnet-fp32": ("onnx", "int8", "fp32"),
    "tflite-int8": ("tflite", "int8", "int8"),
    "tflite-fp32": ("tflite", "fp32", "fp32"),
    "tflite-int8-pnet-fp32": ("tflite", "int8", "fp32"),
}
SIZE_BINS = [
    (0, 20, "<20 px"),
    (20, 32, "20-32 px"),
    (32, 64, "32-64 px"),
    (64, 1e9, ">=64 px"),
]
MATCH_IOU = 0.4  # dlib's boxes are tighter and squarer than MTCNN's: 0.4 tolerates the framing


def load_images(
    detect_dir: Path, videos: list[Path], frames_per_video: int, max_side: int
) -> list[tuple[str, np.ndarray]]:
    out = []
    for p in sorted(detect_dir.glob("*.jpg")):
        img = cv2.imread(str(p))
        s = max_side / max(img.shape[:2])
        if s < 1:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        out.append((p.name, img))
    for v in sorted(videos):
        cap = cv2.VideoCapture(str(v))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in np.linspace(0, n - 1, frames_per_video).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = cap.read()
            if ok:
                out.append((f"{v.name}#{i}", frame))
    return out


def reference_boxes(images: list[tuple[str, np.ndarray]], cache: Path) -> dict[str, np.ndarray]:
    # The reference takes minutes per large image on a small CPU: cache each result as it
    # comes, so an interrupted run resumes where it stopped.
    done = json.loads(cache.read_text()) if cache.exists() else {}
    refs = {k: np.array(v, np.float32).reshape(-1, 4) for k, v in done.items()}
    if all(name in refs for name, _ in images):
        return refs
    import importlib.util

    import dlib

    # face_recognition_models' own import needs pkg_resources: locate its data file directly.
    spec = importlib.util.find_spec("face_recognition_models")
    weights = Path(spec.submodule_search_locations[0]) / "models" / "mmod_human_face_detector.dat"
    cnn = dlib.cnn_face_detection_model_v1(str(weights))
    cache.parent.mkdir(parents=True, exist_ok=True)
    for i, (name, img) in enumerate(images):
        if name in refs:
            continue
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        # One 2x upsampling: the mmod detector then reaches faces of ~20 px, the detector's
        # min_face_px (more would cost 4x per step on a small CPU).
        dets = cnn(rgb, 1)
        refs[name] = np.array(
            [[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in dets],
            np.float32,
        ).reshape(-1, 4)
        cache.write_text(json.dumps({k: v.tolist() for k, v in refs.items()}))
        print(f"\rreference {i + 1}/{len(images)}", end="", flush=True)
    print()
    return refs


def score_variant(det: FaceDetector, images, refs, min_face: float) -> dict:
    matched = np.zeros(len(SIZE_BINS))
    total = np.zeros(len(SIZE_BINS))
    n_det = n_det_matched = 0
    big_total = big_matched = 0
    for name, img in images:
        boxes = np.array([d.box for d in det.detect(img)], np.float32).reshape(-1, 4)
        ref = refs[name]
        n_det += len(boxes)
        iou = iou_matrix(ref, boxes)
        hit_ref = iou.max(axis=1) >= MATCH_IOU if len(boxes) else np.zeros(len(ref), bool)
        n_det_matched += int((iou.max(axis=0) >= MATCH_IOU).sum()) if len(ref) else 0
        heights = ref[:, 3] - ref[:, 1]
        big_total += int((heights >= min_face).sum())
        big_matched += int((hit_ref & (heights >= min_face)).sum())
        for b, (lo, hi, _) in enumerate(SIZE_BINS):
            sel = (heights >= lo) & (heights < hi)
            total[b] += sel.sum()
            matched[b] += (hit_ref & sel).sum()
    return {
        "recall": float(big_matched / max(big_total, 1)),
        "recall_all_sizes": float(matched.sum() / max(total.sum(), 1)),
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
    ap.add_argument("--detect-dir", type=Path, default=Path("../shared/data/detect"))
    ap.add_argument(
        "--videos",
        nargs="+",
        default=["../shared/data/video/*.mp4"],
        help="video files or glob patterns",
    )
    ap.add_argument("--json", type=Path, default=Path("var/eval/detector.json"))
    ap.add_argument("--frames-per-video", type=int, default=6)
    ap.add_argument("--max-side", type=int, default=960)
    ap.add_argument("--min-face", type=float, default=20)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--small-scale", type=float, default=0.5)
    ap.add_argument(
        "--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS),
        help="which detector variants to score (default: all)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # one-thread timings: OpenCV's resizes would use every core
    videos = [Path(p) for pat in args.videos for p in sorted(glob.glob(pat))]
    images = load_images(args.detect_dir, videos, args.frames_per_video, args.max_side)
    print(f"{len(images)} images", flush=True)
    refs = reference_boxes(
        images, args.json.with_name(f"dlib_reference_boxes_{args.max_side}.json")
    )
    sk = args.small_scale
    small_images = [
        (n, cv2.resize(im, None, fx=sk, fy=sk, interpolation=cv2.INTER_AREA)) for n, im in images
    ]
    small_refs = {n: r * sk for n, r in refs.items()}
    speed_frame = next(
        (img for name, img in images if name.startswith("stage-speaker")), images[0][1]
    )
    results = {
        "reference": "dlib cnn_face_detection_model_v1 (mmod_human_face_detector)",
        "match_iou": MATCH_IOU,
        "images": len(images),
        "reference_faces": int(sum(len(r) for r in refs.values())),
        "min_face_px": args.min_face,
        "small_scale": sk,
        "speed_frame": "stage-speaker-640x360.mp4 (resized)",
        "variants": {},
    }
    for name in args.variants:
        backend, precision, first_stage = VARIANTS[name]
        det = FaceDetector(
            backend=backend, precision=precision, first_stage_precision=first_stage,
            threads=1, min_face_px=args.min_face,
        )  # fmt: skip
        r = score_variant(det, images, refs, args.min_face)
        r["downscaled"] = score_variant(det, small_images, small_refs, args.min_face)
        r["speed_1thread"] = time_variant(det, speed_frame, args.runs)
        results["variants"][name] = r
        print(
            f"{name}: recall {r['recall']:.3f}, "
            f"{r['speed_1thread']['640x360']['p50_ms']:.1f} ms at 640x360",
            flush=True,
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(
        f"\n{results['images']} images, {results['reference_faces']} reference faces, "
        f"IoU >= {MATCH_IOU}; recall counts faces >= {args.min_face:g} px\n"
    )
    print(
        "| variant | recall | "
        + " | ".join(lab for _, _, lab in SIZE_BINS)
        + " | precision vs ref | ms 640x360 p50/p95 | ms 1280x720 p50/p95 |"
    )
    print("|---" * (5 + len(SIZE_BINS)) + "|")
    for k, r in results["variants"].items():
        rb = r["recall_by_size"]
        s = r["speed_1thread"]
        cells = " | ".join("-" if rb[lab] is None else f"{rb[lab]:.3f}" for _, _, lab in SIZE_BINS)
        print(
            f"| {k} | {r['recall']:.3f} | {cells} | {r['precision_vs_reference']:.3f} | "
            f"{s['640x360']['p50_ms']:.1f}/{s['640x360']['p95_ms']:.1f} | {s['1280x720']['p50_ms']:.1f}/{s['1280x720']['p95_ms']:.1f} |"
        )
    first = next(iter(results["variants"].values()))
    print("\nreference faces per size bin:", first["faces_by_size"])
    print(f"\nImages downscaled {sk:g}x (reference boxes scaled alike):\n")
    print("| variant | recall | " + " | ".join(lab for _, _, lab in SIZE_BINS) + " |")
    print("|---" * (2 + len(SIZE_BINS)) + "|")
    for name, r in results["variants"].items():
        d = r["downscaled"]
        cells = " | ".join(
            "-" if d["recall_by_size"][lab] is None else f"{d['recall_by_size'][lab]:.3f}"
            for _, _, lab in SIZE_BINS
        )
        print(f"| {name} | {d['recall']:.3f} | {cells} |")
    print("faces per size bin:", first["downscaled"]["faces_by_size"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
