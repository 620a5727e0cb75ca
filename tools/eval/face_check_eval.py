"""How well the face check separates faces from non-faces (issue 13), measured two ways:

1. **Leave one source out**: for each source (the two demo clips, the two shared videos, the
   shared photos), the classifier is trained without it (``tools.convert.facecheck.train``)
   and scored on its mined detections; geometry is applied as in the product.
2. **Published shots**: the product's pipeline (default settings, detector threshold 0.8)
   runs on every source with the check computed but not applied; each published shot is
   labelled (renderer ground truth for the demo clips, ``tools/eval/face_labels.json`` for
   the shared data, by hand once) and scored by the held-out classifier of its source and
   by the shipped INT8 model. For each ``min_face_score`` the table gives the share of
   published shots that are not faces and the share of true faces lost. (With the check on,
   a track whose best shot is rejected may publish another of its frames instead; that can
   only add true faces, so the loss given here is an upper bound.)

    python -m tools.eval.face_check_eval --minutes 3 --out var/eval/face_check
    python -m tools.eval.face_check_eval --reuse --out var/eval/face_check   # re-tabulate
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from edge.capture.demo import ensure_demo_clip
from edge.pipeline.processor import FaceProcessor
from edge.pipeline.workers import VideoFrames, run_frames
from edge.settings import CameraSettings
from edge.shots.best_shot import BestShotSelector
from edge.shots.face_check import FaceCheck, geometry_score, store_crop
from edge.types import Frame
from tools.convert.facecheck.labels import LabelBook
from tools.convert.facecheck.mine import demo_label

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SOURCES = ("demo-corridor", "demo-crowd", "stage-speaker", "crowd-night", "photos")


def published_shots(shared: Path, face_check: FaceCheck) -> list[dict]:
    """Every shot the default pipeline publishes on every source, with its label."""
    from edge.pipeline.build import build_detector

    settings = CameraSettings.from_dict({"name": "eval", "source": "demo:"})
    detector = build_detector(settings)
    book = LabelBook()
    rows: list[dict] = []

    def add(source, frame_image, frame_index, shot, label):
        rows.append({
            "source": source, "frame": frame_index, "label": label,
            "box": [round(float(v), 1) for v in shot.detection.box],
            "landmarks": np.asarray(shot.detection.landmarks).tolist(),
            "det_score": float(shot.detection.score),
            "shipped": shot.face.classifier, "geometry": shot.face.geometry,
            "crop": store_crop(frame_image, shot.detection.landmarks),
        })

    videos = {f"demo-{s}": ensure_demo_clip(scene=s) for s in ("corridor", "crowd")}
    videos["stage-speaker"] = shared / "video/stage-speaker-640x360.mp4"
    videos["crowd-night"] = shared / "video/crowd-night-826x540.mp4"
    for source, path in videos.items():
        truth = None
        if source.startswith("demo-"):
            truth = json.loads(path.with_suffix(".json").read_text())["frames"]
        processor = FaceProcessor.from_settings(detector, settings)
        processor.selector = BestShotSelector(
            settings.best_shot, processor.tracker.min_hits, face_check
        )
        processor.selector.min_face_score = 0.0  # computed, not applied
        images: dict[int, np.ndarray] = {}

        def keep(result, images=images):
            images[result.frame.index] = result.frame.image
            for old in [k for k in images if k < result.frame.index - 400]:
                del images[old]

        shots = []
        run_frames(VideoFrames(path), processor, on_result=keep, on_shots=shots.extend)
        for shot in shots:
            if truth is not None:
                label = demo_label(shot.detection.box, truth[shot.frame_index])
            else:
                label = book.label(source, shot.frame_index, shot.detection.box)
            add(source, images[shot.frame_index], shot.frame_index, shot, label)
        print(f"{source}: {len(shots)} published", flush=True)
    selector = BestShotSelector(settings.best_shot, 1, face_check)
    for i, path in enumerate(sorted((shared / "detect").glob("*.jpg"))):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        frame = Frame(image=image, index=i, wall_time=0.0, mono_time=0.0)
        for n, det in enumerate(detector.detect(image)):
            if det.height < selector.min_face_px:
                continue
            shot = selector.make_shot(frame, n + 1, det)
            selector.is_face(frame, shot)  # computes shot.face; the verdict is tabulated below
            add("photos", image, i, shot, book.label(f"photo:{path.name}", i, det.box))
    print(f"photos: {sum(r['source'] == 'photos' for r in rows)} published", flush=True)
    return rows


def rates(scores: np.ndarray, labels: np.ndarray, t: float) -> dict:
    keep = scores >= t
    faces, non = labels == 1, labels == 0
    kept = int(keep[labels >= 0].sum())
    return {
        "threshold": t,
        "published": kept,
        "non_faces_published": int((keep & non).sum()),
        "false_face_share": round(float((keep & non).sum()) / max(kept, 1), 4),
        "faces_lost": int((~keep & faces).sum()),
        "faces_lost_share": round(float((~keep & faces).sum()) / max(int(faces.sum()), 1), 4),
    }


def loso(mined: Path, minutes: float, out: Path) -> dict[str, object]:
    """Trains one classifier per held-out source; returns {source: torch net}."""
    import torch

    from tools.convert.facecheck.labels import load_labelled
    from tools.convert.facecheck.train import FaceNet, train

    torch.set_num_threads(1)
    data = load_labelled(mined)
    nets = {}
    for source in SOURCES:
        path = out / f"loso-{source}.pt"
        if path.exists():
            net = FaceNet()
            net.load_state_dict(torch.load(path))
            nets[source] = net.eval()
            continue
        keep = np.array([g != source for g in data.group])
        t0 = time.monotonic()
        net = train(data.crops[keep], data.labels[keep], minutes, 64, 0, log=lambda *_: None)
        torch.save(net.state_dict(), path)
        nets[source] = net
        print(f"held out {source}: trained in {time.monotonic() - t0:.0f} s", flush=True)
    return nets


def candidate_rates(mined: Path, nets: dict, min_det_score: float) -> dict:
    """Leave-one-source-out on every labelled detection (not background window) the detector
    makes at the production score threshold: each frame's candidates, not only the published
    shots, so the numbers rest on more faces and more non-faces."""
    from tools.convert.facecheck.train import predict

    book = LabelBook()
    out: dict[str, dict] = {}
    all_scores, all_labels = [], []
    for source in SOURCES:
        metas = json.loads((mined / f"{source}.json").read_text())
        crops = np.load(mined / f"{source}.npz")["crops"]
        rows, labels = [], []
        for i, m in enumerate(metas):
            if m["score"] < min_det_score:
                continue
            label = m["label"]
            if source in ("stage-speaker", "crowd-night", "photos"):
                label = book.label(m["source"], m["frame"], m["box"])
            if label >= 0:
                rows.append(i)
                labels.append(label)
        if not rows:
            continue
        probs = predict(nets[source], crops[rows])
        geo = np.array([geometry_score(np.array(metas[i]["landmarks"]), np.array(metas[i]["box"]))
                        for i in rows])
        scores = np.minimum(probs, geo)
        labels = np.array(labels)
        out[source] = [rates(scores, labels, t) for t in THRESHOLDS]
        out[source + " (geometry only)"] = rates(geo, labels, 0.5)
        all_scores.append(scores)
        all_labels.append(labels)
    out["all"] = [rates(np.concatenate(all_scores), np.concatenate(all_labels), t)
                  for t in THRESHOLDS]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mined", type=Path, default=Path("var/facecheck/mined"))
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("var/eval/face_check"))
    ap.add_argument("--minutes", type=float, default=3.0, help="training time per held-out fold")
    ap.add_argument("--reuse", action="store_true", help="reuse the published shots of a run")
    ap.add_argument("--detector-score", type=float, default=0.8,
                    help="candidates: detections at or above this score (the product's default)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "published.npz"
    if args.reuse and cache.exists():
        z = np.load(cache, allow_pickle=True)
        rows = list(z["rows"])
    else:
        rows = published_shots(args.shared, FaceCheck.open())
        np.savez_compressed(cache, rows=np.array(rows, dtype=object))
    from tools.convert.facecheck.train import predict

    nets = loso(args.mined, args.minutes, args.out)
    labels = np.array([r["label"] for r in rows])
    sources = np.array([r["source"] for r in rows])
    held = np.zeros(len(rows))
    for source, net in nets.items():
        idx = np.flatnonzero(sources == source)
        if len(idx):
            held[idx] = predict(net, np.stack([rows[i]["crop"] for i in idx]))
    geometry = np.array([r["geometry"] for r in rows])
    shipped = np.array([r["shipped"] for r in rows])
    result = {
        "labelled": {"faces": int((labels == 1).sum()), "non_faces": int((labels == 0).sum()),
                     "unlabelled": int((labels < 0).sum())},
        "per_source": {
            s: {"faces": int(((sources == s) & (labels == 1)).sum()),
                "non_faces": int(((sources == s) & (labels == 0)).sum())} for s in SOURCES
        },
        "no_check": rates(np.ones(len(rows)), labels, 0.5),
        "held_out": [rates(np.minimum(held, geometry), labels, t) for t in THRESHOLDS],
        "shipped": [rates(np.minimum(shipped, geometry), labels, t) for t in THRESHOLDS],
        "held_out_per_source": {
            s: rates(np.minimum(held, geometry)[sources == s], labels[sources == s], 0.5)
            for s in SOURCES
        },
    }
    result["candidates"] = candidate_rates(args.mined, nets, args.detector_score)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["labelled"]), json.dumps(result["no_check"]))
    print("| min_face_score | published | non-faces published | false-face share | "
          "faces lost | lost share |  (held-out classifier x geometry)")
    for r in result["held_out"]:
        print(f"| {r['threshold']} | {r['published']} | {r['non_faces_published']} | "
              f"{r['false_face_share']:.1%} | {r['faces_lost']} | {r['faces_lost_share']:.1%} |")
    for s, r in result["held_out_per_source"].items():
        print(s, json.dumps(r))
    print("candidates (every labelled detection at the production threshold, held-out "
          "classifier x geometry), at 0.5:")
    for s, r in result["candidates"].items():
        r = r[4] if isinstance(r, list) else r
        print(f"  {s}: {json.dumps(r)}")


if __name__ == "__main__":
    main()
