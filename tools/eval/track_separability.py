"""Track separability (issue 11 item 6): multi-frame restoration on real footage, no labels.

    python -m tools.eval.track_separability \
        --videos ../shared/data/video/stage-speaker-640x360.mp4,demo:,demo:crowd \
        --out var/eval/separability [--config FILE] [--max-shots 200]

Question: do the enhanced crops keep each person distinguishable? Without identity labels,
a track stands in for a person: the crops of one track should be closer to each other
(dlib distance) than to the crops of other tracks. Per method, the ROC AUC of "same track"
against the pair distance (``restore_eval.roc_auc``: P(d_same < d_diff), ties half) says
how well the distances separate tracks; higher = more distinguishable.

Protocol:

- Videos: ``--videos``, comma separated: files, ``demo:`` and ``demo:crowd`` (the built-in
  clips, ``edge.capture.demo.ensure_demo_clip``).
- Shots: each video runs once through the product's pipeline (``VideoFrames`` on video time,
  ``run_frames``; detector and processor built from the camera's settings as
  ``face-edge enhance`` builds them, ``edge.pipeline.build``), from ``--config`` (default:
  the embedded defaults) with these overrides, so that there are several shots per track and
  fusion runs at all:

  - ``best_shot.publish_interval_s: 1.0`` and ``best_shot.first_shot_after_s: 0.5``
    (product: 10 and 1), the other best-shot settings unchanged;
  - ``enhance.restore.max_eye_px: null``: the network, and so fusion, runs on every face.
    THIS WIDENS THE PRODUCT'S GATE (9 px between the eyes by default): on these clips few
    faces are that small, and fusion could not be measured otherwise. Per video the number
    of shots whose eyes were at most the configured gate apart is recorded, and the pairs of
    two such shots are scored separately (``gate_pairs``);
  - ``enhance.enabled``, ``enhance.restore.enabled`` and ``enhance.multi_frame.enabled``
    true, so the selector buffers each track's frames (the shot's ``burst``).

  Reading stops once ``--max-shots`` (default 200) shots were published; the tracks still
  open are flushed, and the first ``--max-shots`` shots are kept.
- Methods, each shot enhanced by ``EnhancementStage``s built from the camera's settings
  (``edge.pipeline.build.build_enhancer``; low light and denoise as configured):
  ``original`` (the aligned crop as captured, no enhancement), ``single``
  (``multi_frame.enabled: false``: the single-frame network), ``fusion``
  (``multi_frame.method: network``) and ``average`` (``multi_frame.method: average``, the
  classical frame averaging). Frames fused per shot are recorded for fusion and average; a
  shot whose burst has fewer than two frames that register gets the single-frame network in
  both, as in the product, so those shots are the same in single, fusion and average.
- Judge: dlib (``restore_eval.DlibJudge``: 5-point landmarks on a fixed box, then the 128-d
  descriptor, no jitter) on the 160x160 crop. The box is ``quality_fit.crop_judge_box``:
  restore_eval's LFW box (22, 22, 138, 138) carried into the aligned crop's framing by the
  eye-to-eye similarity between LFW's framing (``MODEL_FRAMING``, measured with the
  project's detector on LFW) and the template's (``aligned_crop_framing``: the template's
  eyes at crop 160, margin 0.35), i.e. the same box relative to the face as the judge gets
  on LFW: (35, 42, 127, 134). A fixed box, not a dlib detection: dlib's detector misses many
  of these small faces, and the box then depends on the crop, not on the enhancement; dlib's
  shape predictor places the landmarks inside it as on LFW.
- Pairs: every pair of shots within one video (never across videos: track ids are per
  video), same track or not; d = Euclidean distance of the descriptors. A track with one
  shot only contributes different-track pairs. A video with fewer than two tracks or no
  same-track pair has no AUC (reported, not an error). ``pooled``: the pairs of all videos
  together.

Caveats: a person whose track was lost and found again appears as two tracks, so some
"different-track" pairs are the same person; this lowers the AUC of every method alike (it
does not favour one). The other way round, a track that jumped to another person (a camera
cut in edited footage, two faces crossing) makes some "same-track" pairs different people,
also for every method alike. The pooled AUC mixes videos whose distances have different
scales (light, face size), so it is not the mean of the per-video AUCs. Fusion and average
register the same frames (``edge.enhance.burst.register_burst``), so their frames fused are
equal by construction. Shots of one track are taken close together in time and look alike
whatever the method, and pairs share shots, so they are not independent: differences of a
few hundredths on a handful of tracks are noise.

Output in ``--out``: ``results.json`` (per video and pooled: counts, AUC per method, mean
same/different distances, mean frames fused, eyes within the gate; per shot its track,
frame, eye distance and frames fused; the command line), ``results.md`` (printed) and
``descriptors.npz`` (per video the descriptors per method and the track ids, to rescore).
dlib is imported lazily (the ``eval`` extra); torch is never imported.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.settings import MAX_EYE_PX_DEFAULT, CameraSettings
from tools.eval.restore_eval import SIZE, roc_auc

METHODS = ("original", "single", "fusion", "average")
FUSED = ("fusion", "average")
# How each enhancing method's stage differs from the camera's enhance settings.
STAGE_OVERRIDES: dict[str, dict] = {
    "single": {"multi_frame": {"enabled": False}},
    "fusion": {"multi_frame": {"enabled": True, "method": "network"}},
    "average": {"multi_frame": {"enabled": True, "method": "average"}},
}
# The camera overrides this evaluation runs with (see the module docstring).
CAMERA_OVERRIDES: dict = {
    "best_shot": {"publish_interval_s": 1.0, "first_shot_after_s": 0.5},
    "enhance": {
        "enabled": True,
        "restore": {"enabled": True, "max_eye_px": None},
        "multi_frame": {"enabled": True},
    },
}
DEFAULT_MAX_SHOTS = 200


# ----------------------------------------------------------------------------- metric


def shot_pairs(tracks: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j of shots: (i, j, same track)."""
    t = np.asarray(tracks)
    i, j = np.triu_indices(len(t), k=1)
    return i, j, t[i] == t[j]


def pair_distances(desc: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Euclidean distance of descriptors i[k] and j[k]."""
    desc = np.asarray(desc, np.float64)
    return np.linalg.norm(desc[i] - desc[j], axis=1)


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if len(x) else None


def separability(d: np.ndarray, same: np.ndarray) -> dict:
    """Pair counts, mean same- and different-track distances, and the AUC of d separating
    same-track from different-track pairs (None without both kinds of pair)."""
    d, same = np.asarray(d, np.float64), np.asarray(same, bool)
    n_same, n_diff = int(same.sum()), int((~same).sum())
    auc = roc_auc(d, same) if n_same and n_diff else None
    return {
        "same_pairs": n_same,
        "diff_pairs": n_diff,
        "auc": auc,
        "mean_d_same": _mean(d[same]),
        "mean_d_diff": _mean(d[~same]),
    }


def track_separability(desc: np.ndarray, tracks: Sequence[int]) -> dict:
    """``separability`` of every shot pair of one video (descriptors, one row per shot)."""
    i, j, same = shot_pairs(tracks)
    return separability(pair_distances(desc, i, j), same)


def skip_reason(tracks: Sequence[int]) -> str | None:
    """Why a video has no AUC, or None."""
    ids, counts = np.unique(np.asarray(tracks), return_counts=True)
    if len(ids) < 2:
        return f"{len(ids)} track(s): no different-track pairs"
    if not (counts > 1).any():
        return "every track has a single shot: no same-track pairs"
    return None


# ----------------------------------------------------------------------------- shots


def video_path(spec: str) -> Path:
    """A file, or the built-in clip of a ``demo:`` / ``demo:crowd`` source."""
    if spec.startswith("demo:"):
        from edge.capture.demo import ensure_demo_clip, scene_of

        return ensure_demo_clip(scene=scene_of(spec))
    path = Path(spec)
    if not path.is_file():
        raise SystemExit(f"video not found: {spec}")
    return path


def _capped(frames: Iterable, shots: list, max_shots: int | None) -> Iterator:
    for frame in frames:
        if max_shots and len(shots) >= max_shots:
            return
        yield frame


def collect_shots(path: Path, cam: CameraSettings, max_shots: int | None) -> tuple[list, dict]:
    """The video's published shots (the product's pipeline, ``cam``'s settings)."""
    from edge.pipeline.build import build_detector
    from edge.pipeline.processor import FaceProcessor
    from edge.pipeline.workers import VideoFrames, run_frames

    processor = FaceProcessor.from_settings(build_detector(cam), cam)
    frames = VideoFrames(path, camera=cam.name)
    shots: list = []
    run_frames(_capped(frames, shots, max_shots), processor, on_shots=shots.extend)
    info = {"frames_read": frames.frames, "frames_total": frames.total, "fps": frames.fps}
    info["stopped_at_max_shots"] = bool(max_shots and len(shots) >= max_shots)
    return shots[:max_shots] if max_shots else shots, info


def build_stages(cam: CameraSettings) -> dict:
    from edge.pipeline.build import build_enhancer

    return {m: build_enhancer(cam.merged({"enhance": STAGE_OVERRIDES[m]})) for m in STAGE_OVERRIDES}


def describe_video(shots: list, stages: dict, judge, box: tuple) -> dict:
    """Descriptors per method and per-shot records of one video's shots."""
    from edge.pipeline.processor import eye_distance

    desc = {m: np.zeros((len(shots), 128), np.float32) for m in METHODS}
    rows = []
    for k, shot in enumerate(shots):
        eye_px = eye_distance(shot.detection)
        row = {
            "track": int(shot.track_id),
            "frame": int(shot.frame_index),
            "reason": shot.reason,
            "eye_px": round(eye_px, 2),
            "quality": round(float(shot.quality.overall), 3),
            "burst": len(shot.burst),
        }
        desc["original"][k] = judge(shot.crop, box)
        for m, stage in stages.items():
            result = stage(shot.crop, eye_px=eye_px, burst=shot.burst)
            desc[m][k] = judge(result.image, box)
            if m in FUSED:
                row[f"frames_fused_{m}"] = int(result.frames_fused)
        rows.append(row)
    return {"desc": desc, "shots": rows}


def fusion_versions(stages: dict) -> dict:
    """Per method, the version of the fusion its restore step runs (None: single frame)."""
    out = {}
    for m, stage in stages.items():
        for step in stage.steps:
            fusion = getattr(step, "fusion", None)
            if hasattr(step, "restore_burst"):
                out[m] = None if fusion is None else fusion.version
    return out


# ----------------------------------------------------------------------------- scoring


def score_video(desc: dict, rows: list[dict], gate: float) -> dict:
    tracks = [r["track"] for r in rows]
    i, j, same = shot_pairs(tracks)
    small = np.array([r["eye_px"] <= gate for r in rows], bool)
    both_small = small[i] & small[j] if len(rows) else np.zeros(0, bool)
    ids, counts = np.unique(np.asarray(tracks, int), return_counts=True)
    out: dict = {
        "shots": len(rows),
        "tracks": len(ids),
        "tracks_with_2_shots": int((counts > 1).sum()),
        "shots_eyes_within_gate": int(small.sum()),
        "mean_eye_px": _mean(np.array([r["eye_px"] for r in rows])),
        "shots_with_burst": int(sum(r["burst"] >= 2 for r in rows)),
        "skipped": skip_reason(tracks),
        "methods": {},
        "gate_pairs": {},
    }
    for m in FUSED:
        fused = np.array([r[f"frames_fused_{m}"] for r in rows], float)
        out[f"mean_frames_fused_{m}"] = _mean(fused)
        out[f"shots_fused_{m}"] = int((fused > 1).sum())
    pairs: dict = {"same": same, "both_small": both_small}
    for m in METHODS:
        d = pair_distances(desc[m], i, j)
        pairs[m] = d
        out["methods"][m] = separability(d, same)
        out["gate_pairs"][m] = separability(d[both_small], same[both_small])
    out["_pairs"] = pairs
    return out


def pool(videos: dict) -> dict:
    """The pairs of every video together (pairs never cross videos)."""
    parts = [v.pop("_pairs") for v in videos.values()]
    same = np.concatenate([p["same"] for p in parts]) if parts else np.zeros(0, bool)
    small = np.concatenate([p["both_small"] for p in parts]) if parts else np.zeros(0, bool)
    out: dict = {
        "shots": sum(v["shots"] for v in videos.values()),
        "tracks": sum(v["tracks"] for v in videos.values()),
        "tracks_with_2_shots": sum(v["tracks_with_2_shots"] for v in videos.values()),
        "shots_eyes_within_gate": sum(v["shots_eyes_within_gate"] for v in videos.values()),
        "shots_with_burst": sum(v["shots_with_burst"] for v in videos.values()),
        "methods": {},
        "gate_pairs": {},
    }
    n = out["shots"]
    for m in FUSED:
        total = sum((v[f"mean_frames_fused_{m}"] or 0.0) * v["shots"] for v in videos.values())
        out[f"mean_frames_fused_{m}"] = total / n if n else None
        out[f"shots_fused_{m}"] = sum(v[f"shots_fused_{m}"] for v in videos.values())
    for m in METHODS:
        d = np.concatenate([p[m] for p in parts]) if parts else np.zeros(0)
        out["methods"][m] = separability(d, same)
        out["gate_pairs"][m] = separability(d[small], same[small])
    return out


# ----------------------------------------------------------------------------- report


def _f(v: float | None, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def _label(spec: str) -> str:
    """A video's name in the tables: a file's name, or the demo source as given."""
    return spec if spec.startswith(("demo:", "**")) else Path(spec).name


def markdown(out: dict) -> str:
    gate = out["meta"]["product_max_eye_px"]
    rows = [*out["videos"].items(), ("**pooled**", out["pooled"])]
    lines = [
        "# Track separability (issue 11 item 6)",
        "",
        f"`{out['meta']['command']}`",
        "",
        "AUC of the dlib distance separating same-track from different-track shot pairs "
        "(higher: the crops keep people more distinguishable). The network ran on EVERY face "
        f"(`enhance.restore.max_eye_px: null`): the product's gate is {gate:g} px between the "
        f"eyes; `eyes<={gate:g}` counts the shots the product would restore.",
        "",
        "| video | shots | tracks | same / diff pairs | eyes<=" + f"{gate:g} | fused (net / avg) "
        "| " + " | ".join(f"AUC {m}" for m in METHODS) + " |",
        "|---|" + "---:|" * (5 + len(METHODS)),
    ]
    for spec, v in rows:
        name = _label(spec)
        ms = v["methods"]
        fused = " / ".join(_f(v[f"mean_frames_fused_{m}"], 2) for m in FUSED)
        aucs = [_f(ms[m]["auc"]) for m in METHODS]
        if v.get("skipped"):
            aucs = [f"n/a ({v['skipped']})"] + ["n/a"] * (len(METHODS) - 1)
        pairs = f"{ms['original']['same_pairs']} / {ms['original']['diff_pairs']}"
        lines.append(
            f"| {name} | {v['shots']} | {v['tracks']} | {pairs} | {v['shots_eyes_within_gate']} "
            f"| {fused} | " + " | ".join(aucs) + " |"
        )
    lines += [
        "",
        "Mean distance, same track / different track:",
        "",
        "| video | " + " | ".join(METHODS) + " |",
        "|---|" + "---:|" * len(METHODS),
    ]
    for spec, v in rows:
        name = _label(spec)
        ms = v["methods"]
        cells = [f"{_f(ms[m]['mean_d_same'])} / {_f(ms[m]['mean_d_diff'])}" for m in METHODS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    gp = out["pooled"]["gate_pairs"]
    lines += [
        "",
        f"Pooled, only pairs of two shots with eyes <= {gate:g} px (what the product restores): "
        f"{gp['original']['same_pairs']} same / {gp['original']['diff_pairs']} different pairs; "
        "AUC " + ", ".join(f"{m} {_f(gp[m]['auc'])}" for m in METHODS) + ".",
        "",
        "fused: mean frames fused per shot (1 = single frame). Different tracks may be the same "
        "person (a track lost and found again): that lowers every method's AUC alike.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", required=True, help="comma separated: files, demo:, demo:crowd")
    ap.add_argument("--out", type=Path, default=Path("var/eval/separability"))
    ap.add_argument("--config", help="face-edge configuration (default: the embedded defaults)")
    ap.add_argument("--max-shots", type=int, default=DEFAULT_MAX_SHOTS, help="per video; 0: no cap")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    cv2.setNumThreads(1)

    from edge.commands.common import load_settings_or_exit, setup_logging
    from tools.eval.quality_fit import crop_judge_box
    from tools.eval.restore_eval import DlibJudge, judge_available

    if not judge_available():
        print("dlib or face_recognition_models missing (pip install '.[eval]')", file=sys.stderr)
        return 2
    settings = load_settings_or_exit(args.config)
    setup_logging(settings.log_level)
    specs = [s.strip() for s in args.videos.split(",") if s.strip()]
    judge = DlibJudge()
    t_start = time.monotonic()
    videos: dict = {}
    per_shot: dict = {}
    arrays: dict = {}
    meta: dict = {}
    for spec in specs:
        t0 = time.monotonic()
        path = video_path(spec)
        base = settings.camera_for({"name": "separability", "source": spec})
        gate = base.enhance.restore.max_eye_px
        gate = float(gate if gate is not None else MAX_EYE_PX_DEFAULT)
        cam = base.merged(CAMERA_OVERRIDES)
        box = crop_judge_box(SIZE, float(cam.best_shot.margin))
        stages = build_stages(cam)
        shots, info = collect_shots(path, cam, args.max_shots or None)
        t_shots = time.monotonic() - t0
        got = describe_video(shots, stages, judge, box)
        v = score_video(got["desc"], got["shots"], gate)
        v.update(info, path=str(path), seconds=round(time.monotonic() - t0, 1))
        v["seconds_pipeline"] = round(t_shots, 1)
        videos[spec], per_shot[spec] = v, got["shots"]
        for m in METHODS:
            arrays[f"{spec}|{m}"] = got["desc"][m]
        arrays[f"{spec}|tracks"] = np.array([r["track"] for r in got["shots"]], np.int64)
        meta = {
            "product_max_eye_px": gate,
            "judge_box": list(box),
            "stages": {m: s.describe() for m, s in stages.items()},
            "fusion_versions": fusion_versions(stages),
        }
        print(
            f"{spec}: {len(shots)} shots, {v['tracks']} tracks, {v['seconds']} s "
            f"(pipeline {t_shots:.1f} s)",
            file=sys.stderr,
        )
    pooled = pool(videos)
    out = {
        "meta": {
            "command": "python -m tools.eval.track_separability " + shlex.join(argv),
            "protocol": "track-separability-1",
            "overrides": CAMERA_OVERRIDES,
            "stage_overrides": STAGE_OVERRIDES,
            "max_shots": args.max_shots,
            "seconds": round(time.monotonic() - t_start, 1),
            **meta,
        },
        "videos": videos,
        "pooled": pooled,
        "shots": per_shot,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(out, indent=1) + "\n")
    np.savez_compressed(args.out / "descriptors.npz", **arrays)
    md = markdown(out)
    (args.out / "results.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
