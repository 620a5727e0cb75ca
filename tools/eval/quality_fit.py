"""Fit the shot quality score to recognisability (issue 13): does `quality.overall` predict
whether a recogniser will match the shot to a clean photo of the same person?

    python -m tools.eval.quality_fit --out var/eval/quality [--face-check] [--refit]

Protocol:

- LFW same-person pairs of ``pairs.txt`` (the first ``--per-fold`` of each fold's 300,
  default 150): image A is the clean reference, image B the face a camera sees, ``--views``
  times (default 2, each with its own random camera).
- Camera (seeded per view: ``--seed``, crc32 of "A|B", view number): the face is made
  16..110 px tall (log-uniform, in LFW's measure: its 160x160 crops hold a face about 110 px
  tall; the detector's box is about 1.13 times that), blurred on the way (none, Gaussian
  sigma 0.3..1.6 frame px or motion 1.5..5 frame px), exposed (dark gain 0.12..0.5 with
  extra noise, bright 1.3..2, or 0.7..1.15), noisy (sigma 0..8 + extra), via
  ``tools.convert.restore.degrade.degrade`` without its JPEG; placed at a random position in a
  320x240 frame (edges replicated), and the whole frame JPEG-compressed (quality 10..95, or
  none for 15 %), so the codec's 8x8 grid lies where a camera's would.
- The project's detector (INT8 MTCNN, ``DetectorSettings`` defaults: min_face_px 20, score
  0.8) on the frame; the detection on the placed face is kept (none: "undetected", no shot);
  a face below ``BestShotSettings.min_face_px`` gets no shot either, as in the selector.
- The shot as the daemon makes it: ``align_face`` (crop 160, margin 0.35), ``estimate_pose``,
  ``score_shot`` with the alignment matrix (the blockiness part places the frame's codec grid
  with it; without it blockiness is 0, reported as ``new_without_matrix``).
- Target: the dlib distance (``tools.eval.restore_eval.DlibJudge``, no jitter) between B's
  aligned crop (judge box = restore_eval's box moved into the crop's framing) and A (clean,
  restore_eval's box); matched = distance < 0.6.
- Fit: logistic regression of matched on the model's features (``quality.features``: log
  face height, contrast-normalised half-resolution sharpness, log contrast, brightness,
  blockiness) on folds 1-5 (L2 1e-3 on standardised features), with frontalness entering as
  a fixed prior (``FIXED``); a feature whose coefficient comes out with the wrong sign (less
  recognisable when sharper, larger or better exposed, or more recognisable when blockier) is
  dropped and the rest refitted. ``--face-check`` fits a second model with the face check's
  classifier score as one more feature. Reported on folds 6-10: Spearman rank correlation
  with -distance of the old (hand-weighted) and new overall, with a bootstrap over pairs of
  the difference; the error-versus-reject curve (FNMR at 0.6 of the kept shots against the
  fraction rejected, lowest quality first, 0..50 %); what ``best_shot.min_quality``
  thresholds cost; the new score's calibration. Output: quality_fit.json, quality_fit.md,
  evrc.png in ``--out``.

Cached under ``--cache-dir``: the shots (crops, detections, descriptors) keyed by the
protocol, so ``--refit`` (features and fit only) takes seconds; face check scores likewise.
The coefficients printed go into ``edge/shots/quality.py`` (``INTERCEPT``, ``COEF``); with
``--face-check`` the model with the face check's score is fitted and printed for comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edge.enhance.restorer import MODEL_FRAMING, aligned_crop_framing, framing_matrix
from edge.settings import BestShotSettings, DetectorSettings
from edge.shots import quality as Q
from edge.shots.align import align_face, similarity_transform, template_for
from tools.convert.restore.degrade import DegradeParams, degrade
from tools.eval.restore_eval import (
    JUDGE_BOX,
    SIZE,
    THRESHOLD,
    CleanCache,
    DlibJudge,
    judge_signature,
    load_clean,
    read_pairs,
)

PROTOCOL_VERSION = "quality-fit-1"
FRAME_W, FRAME_H = 320, 240
LFW_FACE_PX = 110.0
FACE_PX = (16.0, 110.0)
FIT_FOLDS = range(0, 5)  # folds 1-5 (0-based)
REJECT = [round(0.01 * i, 2) for i in range(0, 51)]
MIN_QUALITY = [round(0.05 * i, 2) for i in range(2, 13)]  # 0.10 .. 0.60
# The fitted features (quality.features) and the expected sign of each coefficient (+1: more
# of it, more recognisable).
FEATURES = ["log_size", "log_sharpness", "log_contrast", "brightness", "blockiness"]
SIGNS = {
    "log_size": 1,
    "log_sharpness": 1,
    "log_contrast": 1,
    "brightness": 1,
    "blockiness": -1,
    "face_score": 1,
}
# A prior, not fitted: LFW's faces are within about +-40 degrees of frontal, where dlib does not
# lose them (the fit gives frontalness no weight), but recognisers do lose profiles. With this
# coefficient a 45 degree turn (frontalness 0.25) lowers the logit by 0.75 (odds x 0.47) and a
# 60 degree one by 0.94 against a frontal face. It enters the fit as a fixed offset.
FIXED = {"frontalness": 1.0}


# ----------------------------------------------------------------------------- camera


def camera_params(rng: np.random.Generator) -> dict:
    """One random camera: face size, blur, exposure, noise, JPEG, where the face is."""
    face_px = float(math.exp(rng.uniform(math.log(FACE_PX[0]), math.log(FACE_PX[1]))))
    r = rng.random()
    if r < 0.35:
        blur, blur_px = "none", 0.0
    elif r < 0.8:
        blur, blur_px = "gaussian", float(rng.uniform(0.3, 1.6))
    else:
        blur, blur_px = "motion", float(rng.uniform(1.5, 5.0))
    light = rng.random()
    if light < 0.3:
        gain, extra = float(rng.uniform(0.12, 0.5)), float(rng.uniform(2.0, 8.0))
    elif light < 0.4:
        gain, extra = float(rng.uniform(1.3, 2.0)), 0.0
    else:
        gain, extra = float(rng.uniform(0.7, 1.15)), 0.0
    jpeg = 0 if rng.random() < 0.15 else int(rng.integers(10, 96))
    return {
        "face_px": face_px,
        "blur": blur,
        "blur_px": blur_px,
        "motion_angle": float(rng.uniform(0, 180)),
        "gain": gain,
        "noise": float(rng.uniform(0.0, 8.0)) + extra,
        "jpeg": jpeg,
        "ox": float(rng.random()),
        "oy": float(rng.random()),
    }


def camera_frame(clean: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """The frame the camera delivers and where the face image lies in it (x, y, side)."""
    factor = LFW_FACE_PX / p["face_px"]
    dp = replace(
        DegradeParams(),
        factor=factor,
        blur=p["blur"],
        blur_sigma=p["blur_px"] * factor,  # degrade blurs before shrinking: clean pixels
        motion_angle=p["motion_angle"],
        gain=p["gain"],
        noise_sigma=p["noise"],
        jpeg_quality=0,
    )
    small = degrade(clean, dp, rng)
    side = small.shape[0]
    x = int(p["ox"] * (FRAME_W - small.shape[1]))
    y = int(p["oy"] * (FRAME_H - side))
    frame = cv2.copyMakeBorder(
        small, y, FRAME_H - side - y, x, FRAME_W - small.shape[1] - x, cv2.BORDER_REPLICATE
    )
    if p["jpeg"]:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, p["jpeg"]])
        assert ok
        frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return frame, (x, y, side)


def pick_detection(dets: list, where: tuple):
    """The detection on the placed face: its centre near the face image's centre."""
    x, y, side = where
    centre = np.array([x + side * 0.49, y + side * 0.5])
    best, best_d = None, side * 0.25
    for d in dets:
        c = (d.box[:2] + d.box[2:]) / 2
        dist = float(np.linalg.norm(c - centre))
        if dist < best_d:
            best, best_d = d, dist
    return best


def crop_judge_box(crop_size: int, margin: float) -> tuple[int, int, int, int]:
    """restore_eval's judge box (LFW framing) moved into the aligned crop's framing."""
    m = framing_matrix(MODEL_FRAMING, SIZE, aligned_crop_framing(crop_size, margin), crop_size)
    pts = np.array([[JUDGE_BOX[0], JUDGE_BOX[1], 1.0], [JUDGE_BOX[2], JUDGE_BOX[3], 1.0]]) @ m.T
    return tuple(int(math.floor(v + 0.5)) for v in pts.reshape(-1))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- data


def cache_key(args: argparse.Namespace, det_info: dict) -> str:
    h = hashlib.sha256()
    h.update(
        repr(
            (PROTOCOL_VERSION, args.seed, args.per_fold, args.views, FRAME_W, FRAME_H, FACE_PX,
             sorted(det_info.items()), judge_signature("lfw"))
        ).encode()
    )  # fmt: skip
    return h.hexdigest()[:16]


def build_shots(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Every same-person pair's camera view of B, its shot and dlib descriptors (cached)."""
    from edge.detect.mtcnn import FaceDetector

    ds, bs = DetectorSettings(), BestShotSettings()
    det = FaceDetector(
        backend=ds.backend,
        precision=ds.precision,
        threads=1,
        min_face_px=float(ds.min_face_px),
        score_threshold=float(ds.score_threshold),
    )
    det_info = {"versions": str(det.versions), "min_face_px": ds.min_face_px,
                "score": ds.score_threshold, "crop": bs.crop_size, "margin": bs.margin}  # fmt: skip
    path = args.cache_dir / f"shots_{cache_key(args, det_info)}.npz"
    if path.exists():
        print(f"shots from {path}", file=sys.stderr)
        return dict(np.load(path, allow_pickle=False))
    if args.refit:
        raise SystemExit(f"--refit: no cached shots at {path}; run without --refit first")
    pairs, _ = read_pairs(args.lfw / "pairs.txt")
    same = [p for p in pairs if p.same]
    same = [p for f in range(10) for p in [q for q in same if q.fold == f][: args.per_fold]]
    judge = DlibJudge()
    box = crop_judge_box(bs.crop_size, bs.margin)
    clean_cache = CleanCache(args.cache_dir, "lfw")
    n = len(same)
    rec: dict[str, list] = {k: [] for k in (
        "pair", "fold", "detected", "det_height", "det_score", "landmarks", "matrix", "crop", "desc_b",
        "desc_a", "face_px", "blur_px", "gain", "noise", "jpeg")}  # fmt: skip
    t0 = time.monotonic()
    for i, p in enumerate(same):
        if p.a not in clean_cache.data:
            clean_cache.data[p.a] = judge(load_clean(args.lfw, p.a))
        clean_b = load_clean(args.lfw, p.b)
        for view in range(args.views):
            rng = np.random.default_rng([args.seed, zlib.crc32(f"{p.a}|{p.b}".encode()), view])
            prm = camera_params(rng)
            frame, where = camera_frame(clean_b, prm, rng)
            d = pick_detection(det.detect(frame), where)
            ok = d is not None and d.height >= bs.min_face_px
            if ok:
                crop, m = align_face(frame, d.landmarks, bs.crop_size, bs.margin)
                desc_b = judge(crop, box)
            else:
                crop, m = np.zeros((bs.crop_size, bs.crop_size, 3), np.uint8), np.zeros((2, 3))
                desc_b = np.full(128, np.nan, np.float32)
            rec["pair"].append(i)
            rec["fold"].append(p.fold)
            rec["detected"].append(0 if d is None else (2 if ok else 1))  # 1: below min_face_px
            rec["det_height"].append(np.nan if d is None else d.height)
            rec["det_score"].append(np.nan if d is None else d.score)
            rec["landmarks"].append(np.full((5, 2), np.nan) if d is None else d.landmarks)
            rec["matrix"].append(m)
            rec["crop"].append(crop)
            rec["desc_b"].append(desc_b)
            rec["desc_a"].append(clean_cache.data[p.a])
            for k in ("face_px", "blur_px", "gain", "noise", "jpeg"):
                rec[k].append(prm[k])
        if (i + 1) % 100 == 0 or i + 1 == n:
            el = time.monotonic() - t0
            print(f"{i + 1}/{n} pairs, {el:.0f} s (eta {el / (i + 1) * (n - i - 1):.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    clean_cache.save()
    out = {k: np.asarray(v) for k, v in rec.items()}
    out["judge_box"] = np.asarray(box)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    return out


def face_check_scores(args: argparse.Namespace, data: dict, shots: np.ndarray) -> np.ndarray:
    """The face check's classifier score of every shot (NaN for no shot). The aligned crop is
    warped into the check's own framing (STORE_SIZE, STORE_MARGIN). The landmark-geometry half
    of the daemon's check needs the detection box, which the cache does not keep: left out."""
    from edge.shots import face_check
    from edge.shots.face_check import STORE_MARGIN, STORE_SIZE, FaceCheck

    bs = BestShotSettings()
    warp = similarity_transform(
        template_for(bs.crop_size, bs.margin), template_for(STORE_SIZE, STORE_MARGIN)
    )
    h = hashlib.sha256(Path(face_check.__file__).read_bytes())
    h.update(repr((STORE_SIZE, STORE_MARGIN, int(shots.sum()))).encode())
    h.update(np.ascontiguousarray(data["crop"][shots][:, ::8, ::8]).tobytes())
    path = args.cache_dir / f"face_check_{h.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    fc = FaceCheck.open()
    scores = np.full(len(shots), np.nan)
    for i in np.flatnonzero(shots):
        crop = cv2.warpAffine(
            data["crop"][i], warp, (STORE_SIZE, STORE_SIZE), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        scores[i] = fc.classify(crop)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, scores)
    return scores


def measure_all(data: dict, shots: np.ndarray) -> dict[str, np.ndarray]:
    """quality.py's parts and features for every shot (with and without the matrix)."""
    n = len(shots)
    cols: dict[str, np.ndarray] = {}

    def put(name: str, i: int, v: float) -> None:
        cols.setdefault(name, np.full(n, np.nan))[i] = v

    t0, count = time.perf_counter(), 0
    for i in np.flatnonzero(shots):
        pose = Q.estimate_pose(data["landmarks"][i])
        crop, h, m = data["crop"][i], float(data["det_height"][i]), data["matrix"][i]
        parts, feats = Q.measure(crop, h, pose, matrix=m)
        old = Q.legacy_overall(Q.Quality(overall=0.0, **parts))
        nm_parts, _ = Q.measure(crop, h, pose, matrix=None)
        for k, v in parts.items():
            put(k, i, v)
        for k, v in feats.items():
            put("f_" + k, i, v)
        put("old_overall", i, old)
        put("blockiness_nomatrix", i, nm_parts["blockiness"])
        put("yaw", i, pose.yaw)
        put("zoom", i, math.sqrt(abs(np.linalg.det(m[:, :2]))))
        count += 1
    cols["_ms_per_shot"] = np.array([(time.perf_counter() - t0) * 1e3 / max(count, 1) / 2])
    return cols


# ----------------------------------------------------------------------------- fit and metrics


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-3, offset: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Newton's method on standardised features (with a fixed `offset` added to the logit);
    returns (intercept, coefficients) in the original units."""
    off = np.zeros(len(x)) if offset is None else offset
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mu) / sd])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2 * len(x))
    reg[0] = 0.0
    for _ in range(100):
        p = 1 / (1 + np.exp(-(z @ w + off)))
        g = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(hess, g)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    coef = w[1:] / sd
    return float(w[0] - (coef * mu).sum()), coef


def fit_signed(feats: dict[str, np.ndarray], y: np.ndarray, names: list[str]) -> dict:
    """Logistic fit (FIXED coefficients as an offset); features with the wrong sign are
    dropped and the rest refitted."""
    names = list(names)
    dropped = []
    offset = sum(c * feats[k] for k, c in FIXED.items())
    while True:
        b0, coef = fit_logistic(np.stack([feats[k] for k in names], 1), y, offset=offset)
        wrong = [k for k, c in zip(names, coef, strict=True) if np.sign(c) != SIGNS[k]]
        if not wrong:
            break
        worst = min(wrong, key=lambda k: SIGNS[k] * coef[names.index(k)])
        names.remove(worst)
        dropped.append(worst)
    return {
        "intercept": b0,
        "coef": {**{k: float(c) for k, c in zip(names, coef, strict=True)}, **FIXED},
        "fixed": dict(FIXED),
        "dropped_wrong_sign": dropped,
    }


def predict(model: dict, feats: dict[str, np.ndarray]) -> np.ndarray:
    z = model["intercept"] + sum(c * feats[k] for k, c in model["coef"].items())
    return 1 / (1 + np.exp(-z))


def ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=np.float64)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=r)
    return sums[inv] / counts[inv]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def evrc(score: np.ndarray, dist: np.ndarray, fractions: list[float]) -> list[float]:
    """FNMR at THRESHOLD of the kept shots after rejecting the lowest-scored fraction (ties
    broken by distance order-independent stable sort on the score)."""
    order = np.argsort(score, kind="stable")
    miss = dist[order] >= THRESHOLD
    n = len(score)
    out = []
    for f in fractions:
        k = int(round(f * n))
        out.append(float(miss[k:].mean()) if k < n else float("nan"))
    return out


def bootstrap(
    old: np.ndarray, new: np.ndarray, d: np.ndarray, groups: np.ndarray, n: int = 1000
) -> dict:
    """95 % intervals of new - old (Spearman; FNMR at 10/20/30 % rejected), resampling the
    pairs (both views of a pair together), seed 0."""
    rng = np.random.default_rng(0)
    ids = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in ids]
    at = [10, 20, 30]
    diffs: dict[str, list[float]] = {"spearman": [], **{f"fnmr_at_{a}": [] for a in at}}
    for _ in range(n):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        diffs["spearman"].append(spearman(new[idx], -d[idx]) - spearman(old[idx], -d[idx]))
        fr = [a / 100 for a in at]
        eo, en = evrc(old[idx], d[idx], fr), evrc(new[idx], d[idx], fr)
        for a, vo, vn in zip(at, eo, en, strict=True):
            diffs[f"fnmr_at_{a}"].append(vn - vo)
    return {k: [round(float(np.percentile(v, q)), 4) for q in (2.5, 50, 97.5)]
            for k, v in diffs.items()}  # fmt: skip


def min_quality_table(score: np.ndarray, dist: np.ndarray, thresholds: list[float]) -> list[dict]:
    matched = dist < THRESHOLD
    rows = []
    for t in thresholds:
        drop = score < t
        kept = ~drop
        rows.append({
            "min_quality": t,
            "removed_pct": round(100 * float(drop.mean()), 1),
            "matched_removed_pct": round(100 * float(drop[matched].mean()), 1),
            "unmatched_removed_pct": round(100 * float(drop[~matched].mean()), 1),
            "fnmr_kept_pct": round(100 * float((~matched[kept]).mean()), 1) if kept.any() else None,
        })  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- report


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = [100 * f for f in result["evrc"]["reject"]]
    for name, style in (
        ("old", "--"), ("new", "-"), ("new_without_matrix", "-."), ("new_face", (0, (1, 1))),
        ("oracle", ":"),
    ):  # fmt: skip
        if name in result["evrc"]:
            y = [100 * v for v in result["evrc"][name]]
            ax.plot(x, y, linestyle=style, label=f"{name} (Spearman {result['spearman'].get(name, 1.0):.3f})"
                    if name != "oracle" else "oracle (reject by distance)")  # fmt: skip
    ax.set_xlabel("shots rejected, lowest quality first (%)")
    ax.set_ylabel(f"FNMR of kept shots at dlib distance {THRESHOLD} (%)")
    ax.set_title(f"Error vs reject, LFW folds 6-10 ({result['n_test']} shots)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict) -> str:
    sp = result["spearman"]
    lines = [
        f"LFW same-person pairs: {result['n_pairs']}, camera views {result['n_views']}; "
        f"shots {result['n_shots']} "
        f"(undetected {result['n_undetected']}, below min_face_px {result['n_small']}); "
        f"fit folds 1-5: {result['n_fit']} shots, test folds 6-10: {result['n_test']} shots "
        f"(matched at {THRESHOLD}: {result['test_matched_pct']} %)",
        "",
        "Spearman with -distance (test): " + ", ".join(f"{k} {v:.3f}" for k, v in sp.items()),
        "",
        "new - old, bootstrap over pairs (2.5 %, median, 97.5 %): "
        + "; ".join(f"{k} {v}" for k, v in result["bootstrap_new_minus_old"].items()),
        "",
        "| rejected | FNMR old | FNMR new |"
        + (" FNMR new+face |" if "new_face" in result["evrc"] else "")
        + " oracle |",
        "|---|---|---|" + ("---|" if "new_face" in result["evrc"] else "") + "---|",
    ]
    ev = result["evrc"]
    for i, f in enumerate(ev["reject"]):
        if round(100 * f) % 5:
            continue
        row = f"| {100 * f:.0f} % | {100 * ev['old'][i]:.1f} % | {100 * ev['new'][i]:.1f} % |"
        if "new_face" in ev:
            row += f" {100 * ev['new_face'][i]:.1f} % |"
        lines.append(row + f" {100 * ev['oracle'][i]:.1f} % |")
    lines += [
        "",
        "min_quality with the new score (test shots): removed, matched shots removed, "
        "unmatched removed, FNMR of kept",
        "",
        "| min_quality | removed | matched removed | unmatched removed | FNMR kept |",
        "|---|---|---|---|---|",
    ]
    for r in result["min_quality_new"]:
        lines.append(
            f"| {r['min_quality']:.2f} | {r['removed_pct']} % | {r['matched_removed_pct']} % | "
            f"{r['unmatched_removed_pct']} % | {r['fnmr_kept_pct']} % |"
        )
    lines += [
        "",
        "Calibration of the new overall (test shots): overall bin, shots, mean overall, "
        "share matched",
        "",
    ]
    lines += [f"- {c['overall']}: {c['shots']} shots, mean {c['mean_overall']}, matched "
              f"{c['matched']}" for c in result["calibration_new"]]  # fmt: skip
    o = result["old_at_default"]
    lines += [
        "",
        f"old score at its default 0.25: removed {o['removed_pct']} %, matched removed "
        f"{o['matched_removed_pct']} %, FNMR kept {o['fnmr_kept_pct']} %",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=Path("../shared/data/faces/lfw"))
    ap.add_argument("--out", type=Path, default=Path("var/eval/quality"))
    ap.add_argument("--cache-dir", type=Path, default=None, help="default: OUT/cache")
    ap.add_argument("--per-fold", type=int, default=150, help="same-person pairs per fold")
    ap.add_argument("--views", type=int, default=2, help="camera views of B per pair")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--face-check", action="store_true", help="add the face check's score")
    ap.add_argument("--refit", action="store_true", help="only from the cached shots")
    args = ap.parse_args(argv)
    args.cache_dir = args.cache_dir or args.out / "cache"
    t0 = time.monotonic()
    cv2.setNumThreads(1)
    data = build_shots(args)
    shots = data["detected"] == 2
    dist = np.linalg.norm(data["desc_b"] - data["desc_a"], axis=1)
    cols = measure_all(data, shots)
    fold = data["fold"]
    fit = shots & np.isin(fold, list(FIT_FOLDS))
    test = shots & ~np.isin(fold, list(FIT_FOLDS))
    matched = (dist < THRESHOLD).astype(np.float64)
    names = list(FEATURES)
    feats_fit = {k: cols["f_" + k][fit] for k in [*names, *FIXED]}
    feats_test = {k: cols["f_" + k][test] for k in [*names, *FIXED]}
    model = fit_signed(feats_fit, matched[fit], names)
    new = predict(model, feats_test)
    # The same model when the caller gives no alignment matrix (blockiness not measured: 0).
    feats_nm = {**feats_test, "blockiness": cols["blockiness_nomatrix"][test]}
    new_nm = predict(model, feats_nm)
    old = cols["old_overall"][test]
    d = dist[test]
    result: dict = {
        "protocol": PROTOCOL_VERSION,
        "n_pairs": int(len(np.unique(data["pair"]))),
        "n_views": int(len(shots)),
        "n_shots": int(shots.sum()),
        "n_undetected": int((data["detected"] == 0).sum()),
        "n_small": int((data["detected"] == 1).sum()),
        "n_fit": int(fit.sum()),
        "n_test": int(test.sum()),
        "test_matched_pct": round(100 * float(matched[test].mean()), 1),
        "score_shot_ms": round(float(cols["_ms_per_shot"][0]), 3),
        "model": model,
        "spearman": {
            "old": spearman(old, -d),
            "new": spearman(new, -d),
            "new_without_matrix": spearman(new_nm, -d),
        },
        "single_feature_spearman": {k: spearman(feats_test[k], -d) for k in feats_test},
        "evrc": {
            "reject": REJECT,
            "old": evrc(old, d, REJECT),
            "new": evrc(new, d, REJECT),
            "oracle": evrc(-d, d, REJECT),
        },
        "min_quality_new": min_quality_table(new, d, MIN_QUALITY),
        "old_at_default": min_quality_table(old, d, [0.25])[0],
        "judge_box_in_crop": data["judge_box"].tolist(),
    }
    result["evrc"]["new_without_matrix"] = evrc(new_nm, d, REJECT)
    # The constants quality.py ships (rounded from an earlier run of this fit): the same?
    shipped = predict({"intercept": Q.INTERCEPT, "coef": Q.COEF}, feats_test)
    result["spearman"]["shipped_quality_py"] = spearman(shipped, -d)
    edges = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0001]
    result["calibration_new"] = [
        {"overall": f"{lo:.1f}-{min(hi, 1.0):.1f}", "shots": int(sel.sum()),
         "mean_overall": round(float(new[sel].mean()), 3) if sel.any() else None,
         "matched": round(float((d[sel] < THRESHOLD).mean()), 3) if sel.any() else None}
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        for sel in [(new >= lo) & (new < hi)]
    ]  # fmt: skip
    result["bootstrap_new_minus_old"] = bootstrap(old, new, d, data["pair"][test])
    if args.face_check:
        fcs = face_check_scores(args, data, shots)
        fs = {**feats_fit, "face_score": fcs[fit]}
        model_f = fit_signed(fs, matched[fit], [*names, "face_score"])
        new_f = predict(model_f, {**feats_test, "face_score": fcs[test]})
        result["model_face"] = model_f
        result["spearman"]["new_face"] = spearman(new_f, -d)
        result["single_feature_spearman"]["face_score"] = spearman(fcs[test], -d)
        result["evrc"]["new_face"] = evrc(new_f, d, REJECT)
        result["min_quality_new_face"] = min_quality_table(new_f, d, MIN_QUALITY)
    result["seconds"] = round(time.monotonic() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality_fit.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "evrc.png")
    md = markdown(result)
    (args.out / "quality_fit.md").write_text(md + "\n")
    print(md)
    print("\nconstants for edge/shots/quality.py:")
    print(f"INTERCEPT = {model['intercept']:.4f}")
    print("COEF = " + json.dumps({k: round(v, 4) for k, v in model["coef"].items()}))
    if "model_face" in result:
        mf = result["model_face"]
        print(f"with the face check's score (not used by the product): intercept "
              f"{mf['intercept']:.4f}, coef " + json.dumps({k: round(v, 4) for k, v in mf["coef"].items()}))
    print(f"({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
