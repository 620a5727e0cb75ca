"""Restoration evaluation on LFW (issues 3 and 10): image quality and identity, per preset
and framing, with the identity read the way an operator's recognizer uses it.

    python -m tools.eval.restore_eval --lfw ../shared/data/faces/lfw --pairs stratified:1200 \
        --presets x4,x8 --framings lfw,tight,loose \
        --restorers bicubic,classical[,student_int8=onnx:PATH,tflite:PATH,teacher=torch:PATH] \
        --out var/eval/restore

Protocol (fixed so numbers compare across runs):

- Pairs: the standard LFW ``pairs.txt`` (10 folds of 300 same-person + 300 different-person
  pairs). ``--pairs all`` = all 6,000, the protocol that counts. ``--pairs stratified:N``:
  in every fold and class, the N/(2*folds) pairs whose ``pairs.txt`` line has the smallest
  crc32 (a fixed pseudo-random pick, independent of ``--seed`` and of numpy; kept in file
  order), so 1,200 = 60 same + 60 different per fold. ``--pairs N``: the first N/(2*folds)
  of each class in every fold (quick looks; pairs.txt is sorted by name inside a fold).
- Images: LFW deep-funneled 160x160 crops.
- Framings (``--framings``, default ``lfw``): the clean image is first reframed about its
  centre c = (159/2, 159/2) in pixel-index coordinates, a point p going to
  c + z (p - c): ``lfw`` z = 1 (the crop as LFW gives it, the face about 110 px wide);
  ``tight`` z = 1.2 (the central 160/1.2 = 133.3 px square enlarged to 160, bicubic
  warpAffine: tight like ArcFace-style 112x112 crops); ``loose`` z = 1/1.2 (16 px of
  BORDER_REFLECT_101 on every side, 192 -> 160 area resize). Everything below happens on
  the reframed image: it is the clean reference, it is degraded, and the restorers see its
  degraded version as a user would give it (no restorer is told the framing; that is what
  this measures).
- For each preset: clean (reframed) image -> ``tools.convert.restore.degrade.degrade(clean,
  preset, rng)`` with a seeded rng per (image, preset) (seed = crc32 of "relpath|preset"
  and ``--seed``, the same for every framing), so every restorer sees the same degraded
  input and an image's degradation does not depend on N -> restorer -> 160x160 BGR
  (output resized with INTER_AREA when larger, INTER_CUBIC when smaller).
- PSNR and SSIM on the luma Y = 0.299 R + 0.587 G + 0.114 B (full range 0..255, float),
  against the clean (reframed) image; SSIM of Wang et al. (11x11 Gaussian window, sigma 1.5,
  K1 0.01, K2 0.03, L 255, 'valid' region: 5-pixel border dropped). Averaged over the
  distinct images of the selected pairs.
- Identity, dlib as an independent judge: each image (clean, or one restorer's output for
  one preset) at 160x160, dlib's 5-point landmarks on a fixed box, then the 128-d
  ``dlib_face_recognition_resnet_model_v1`` descriptor (no jitter). The box is where the
  face is in that framing: (22, 22, 138, 138) (left, top, right, bottom) for ``lfw``, its
  corners moved by the framing's p -> c + z (p - c) and rounded to the nearest pixel for the
  others (``judge_box``: tight (11, 11, 150, 150), loose (32, 32, 128, 128)); dlib then
  aligns the face from its landmarks as usual, so the judge is given a correctly placed face
  in every framing. A pair is compared within one condition (both images clean, or both
  degraded by the preset and restored by the same restorer, same framing); d = Euclidean
  distance of the descriptors, and a pair is called "same person" when d < threshold.
- Identity metrics per (framing, preset, restorer), and for the clean images per framing:

  - ``acc_at_0.6``: accuracy of d < 0.6 (dlib's own operating point), with ``tar_at_0.6``
    and ``far_at_0.6``: the fractions of same- and different-person pairs with d < 0.6.
  - ``acc_best_10fold``: accuracy at the best threshold chosen on the other folds of
    pairs.txt, tested on each fold, averaged (a per-method threshold: it hides a restorer
    that pulls every face towards the mean).
  - ``auc``: ROC AUC = P(d_same < d_diff) + P(d_same = d_diff) / 2 over all (same,
    different) pair combinations (Mann-Whitney, ties counted half).
  - ``tar_at_far``: for FAR targets 1 % and 0.1 %, a fixed operating point per reference
    distribution: the threshold t is the largest one with FAR_ref(t) <= target on the
    reference's different-person distances, i.e. t = the (k+1)-th smallest of them with
    k = floor(target * n_different) (ties at t are rejected, so FAR_ref never exceeds the
    target). References: ``clean`` (the clean pairs of the same framing: the recognizer
    calibrated on good images, its threshold then used unchanged for every method and
    preset) and ``bicubic`` (the degraded-bicubic pairs of the same preset and framing).
    Every method is then scored at that t: TAR = fraction of same-person pairs with d < t,
    and the FAR it actually reaches = fraction of different-person pairs with d < t (a
    restorer that pulls faces together raises FAR at a fixed threshold). A target needs at
    least 1/target different-person pairs (100 for 1 %, 1,000 for 0.1 %), else it is
    reported as "n/a (fewer than 1,000 negatives)". With all 6,000 pairs there are 3,000
    different-person pairs: FAR 1 % is 30 of them, FAR 0.1 % is 3.

Restorers are a small registry (``RESTORERS``): ``bicubic``, ``classical`` and model files
``onnx:PATH``, ``tflite:PATH``, ``torch:PATH`` (TorchScript). A spec may carry a label,
``student_int8=onnx:models/quantized/student_int8.onnx``; the sha256 of each model file is
recorded in ``meta.restorer_files`` (the release gate in ``tools.convert.restore.ship`` finds
the model it ships there). The model I/O contract is in
``edge.enhance.restorer.to_model_input`` / ``from_model_output``.

Output in ``--out``: ``results.json`` (``results[framing]["clean" | preset][restorer]``),
``results.md``, ``dist_<preset>.png`` (same- and different-person distance histograms, one
row per framing, one column per condition), ``bars_<preset>[_<framing>].png``,
``grid_<preset>[_<framing>].png``, ``distances.npz`` (every pair distance, for ``--replot``)
and ``per_image.npz`` (per-image PSNR/SSIM and descriptors, to score other pair subsets
without recomputing). Clean-image descriptors are cached under ``--cache-dir``, one file per
judge box. dlib, matplotlib and tqdm are imported lazily (the ``eval`` extra);
``--no-identity`` runs without dlib. Other options: ``--workers`` (2: one process per core
for dlib, measured 1.5x faster than 1 on this shared 2-core machine), ``--seed``,
``--grid-faces``, ``--model-input`` (side for models without a static input size),
``--replot`` (rewrite results.md and the charts from OUT/results.json and distances.npz).
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.enhance.restorer import from_model_output, resize_to, to_model_input
from edge.runtime.manifest import sha256_of
from tools.convert.restore.degrade import EVAL_PRESETS, degrade

SIZE = 160
JUDGE_BOX = (22, 22, 138, 138)  # left, top, right, bottom on the 160x160 image
THRESHOLD = 0.6
DEFAULT_MODEL_INPUT = 128  # used only when a model does not declare its input size


# ----------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Pair:
    a: str  # image path relative to the LFW root
    b: str
    same: bool
    fold: int


def _img_rel(name: str, i: str | int) -> str:
    return f"{name}/{name}_{int(i):04d}.jpg"


def parse_pairs(spec: str) -> tuple[str, int | None]:
    """``all`` -> ("all", None); ``N`` -> ("first", N); ``stratified:N`` -> ("stratified", N)."""
    spec = spec.strip()
    if spec == "all":
        return "all", None
    how, _, n = spec.rpartition(":")
    if how not in ("", "first", "stratified"):
        raise ValueError(f"--pairs {spec!r}: use N, stratified:N or all")
    try:
        return how or "first", int(n)
    except ValueError:
        raise ValueError(f"--pairs {spec!r}: use N, stratified:N or all") from None


def pairs_label(how: str, n: int | None) -> str:
    """The selection as results.json and the release gate name it: all, first:N, stratified:N."""
    return "all" if how == "all" else f"{how}:{n}"


def read_pairs(
    pairs_path: Path | str, n: int | None = None, how: str = "first"
) -> tuple[list[Pair], int]:
    """The standard LFW ``pairs.txt``: header ``folds  per_class``, then per fold
    ``per_class`` same-person lines and ``per_class`` different-person lines. ``n``: keep
    n/(2*folds) of each class in every fold (None: all): the first ones (``how="first"``),
    or (``how="stratified"``) the ones whose line has the smallest crc32, in file order."""
    if how not in ("first", "stratified", "all"):
        raise ValueError(f"unknown pair selection {how!r}")
    lines = Path(pairs_path).read_text().split("\n")
    folds, per_class = (int(v) for v in lines[0].split()[:2])
    if n is None or how == "all":
        keep = per_class
    else:
        if n <= 0 or n % (2 * folds):
            raise ValueError(f"--pairs must be a positive multiple of {2 * folds} (or 'all')")
        keep = n // (2 * folds)
        if keep > per_class:
            raise ValueError(f"--pairs {n}: at most {2 * folds * per_class} pairs in {pairs_path}")
    rows = [ln.split() for ln in lines[1:] if ln.strip()]
    if len(rows) < 2 * folds * per_class:
        raise ValueError(f"{pairs_path}: {len(rows)} pair lines, expected {2 * folds * per_class}")

    def pick(block: list[list[str]]) -> list[list[str]]:
        if how != "stratified":
            return block[:keep]
        order = sorted(
            range(len(block)), key=lambda i: (zlib.crc32("\t".join(block[i]).encode()), i)
        )
        return [block[i] for i in sorted(order[:keep])]

    pairs: list[Pair] = []
    for f in range(folds):
        block = rows[2 * f * per_class : 2 * (f + 1) * per_class]
        for r in pick(block[:per_class]):
            pairs.append(Pair(_img_rel(r[0], r[1]), _img_rel(r[0], r[2]), True, f))
        for r in pick(block[per_class:]):
            pairs.append(Pair(_img_rel(r[0], r[1]), _img_rel(r[2], r[3]), False, f))
    return pairs, folds


def unique_images(pairs: Sequence[Pair]) -> list[str]:
    return sorted({p.a for p in pairs} | {p.b for p in pairs})


def load_clean(lfw: Path, rel: str) -> np.ndarray:
    img = cv2.imread(str(lfw / rel), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(lfw / rel)
    return to_size(img)


def to_size(img: np.ndarray, size: int = SIZE) -> np.ndarray:
    return resize_to(img, (size, size))


def degrade_seeded(clean: np.ndarray, rel: str, preset: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(f"{rel}|{preset}".encode())])
    return degrade(clean, preset, rng)


# ----------------------------------------------------------------------------- framing

# zoom about the image centre: > 1 tighter (the face larger), < 1 looser
FRAMINGS: dict[str, float] = {"lfw": 1.0, "tight": 1.2, "loose": 1 / 1.2}


def framing_point(xy: tuple[float, float], framing: str, size: int = SIZE) -> tuple[float, float]:
    """Where pixel ``xy`` (x, y; pixel-index coordinates) of an LFW-framed ``size`` image
    lands in the same image reframed: c + z (p - c) with c = (size - 1) / 2."""
    z, c = FRAMINGS[framing], (size - 1) / 2
    return c + z * (xy[0] - c), c + z * (xy[1] - c)


def reframe(img: np.ndarray, framing: str) -> np.ndarray:
    """The square image reframed about its centre (``framing_point``): ``tight`` enlarges
    the central side/1.2 square with bicubic warpAffine; ``loose`` reflects side/10 px of
    border on every side (BORDER_REFLECT_101) and area-resizes back to the side."""
    z = FRAMINGS[framing]
    side = img.shape[0]
    if img.shape[1] != side:
        raise ValueError(f"expected a square image, got {img.shape[1]}x{side}")
    if z == 1.0:
        return img
    if z > 1:
        c = (side - 1) / 2
        m = np.array([[z, 0.0, c * (1 - z)], [0.0, z, c * (1 - z)]])
        return cv2.warpAffine(
            img, m, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
        )
    pad = side * (1 / z - 1) / 2
    if abs(pad - round(pad)) > 1e-9:
        raise ValueError(f"side {side}: the {framing} border ({pad:g} px) is not whole pixels")
    p = round(pad)
    big = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_REFLECT_101)
    return cv2.resize(big, (side, side), interpolation=cv2.INTER_AREA)


def judge_box(framing: str) -> tuple[int, int, int, int]:
    """The judge's face box (left, top, right, bottom) in that framing: JUDGE_BOX's corners
    moved by ``framing_point`` and rounded to the nearest pixel (halves up)."""
    left, top = framing_point(JUDGE_BOX[:2], framing)
    right, bottom = framing_point(JUDGE_BOX[2:], framing)
    return tuple(int(math.floor(v + 0.5)) for v in (left, top, right, bottom))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- metrics


def luma(bgr: np.ndarray) -> np.ndarray:
    x = bgr.astype(np.float64)
    return 0.114 * x[:, :, 0] + 0.587 * x[:, :, 1] + 0.299 * x[:, :, 2]


def psnr(a_bgr: np.ndarray, b_bgr: np.ndarray) -> float:
    """PSNR on luma Y (0..255); inf for identical images."""
    mse = float(np.mean((luma(a_bgr) - luma(b_bgr)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim(a_bgr: np.ndarray, b_bgr: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) on luma Y: 11x11 Gaussian, sigma 1.5, valid region."""
    x, y = luma(a_bgr), luma(b_bgr)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def g(v: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(v, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    mx, my = g(x), g(y)
    sxx, syy, sxy = g(x * x) - mx * mx, g(y * y) - my * my, g(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def acc_at(d: np.ndarray, same: np.ndarray, t: float = THRESHOLD) -> float:
    return float(np.mean((d < t) == same))


def best_threshold(d: np.ndarray, same: np.ndarray) -> float:
    """The threshold (midpoint between sorted distances) that maximises accuracy."""
    order = np.argsort(d, kind="stable")
    ds, s = d[order], same[order].astype(np.int64)
    # k pairs below the threshold are called "same": correct = same among them + diff above
    pos_below = np.concatenate([[0], np.cumsum(s)])
    neg_below = np.concatenate([[0], np.cumsum(1 - s)])
    correct = pos_below + (neg_below[-1] - neg_below)
    k = int(np.argmax(correct))
    if k == 0:
        return float(ds[0] - 1e-6)
    if k == len(ds):
        return float(ds[-1] + 1e-6)
    return float((ds[k - 1] + ds[k]) / 2)


def acc_best_kfold(d: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """Mean accuracy over folds, each with the threshold chosen on the other folds; and the
    mean chosen threshold."""
    accs, ts = [], []
    for f in np.unique(folds):
        test = folds == f
        t = best_threshold(d[~test], same[~test]) if (~test).any() else THRESHOLD
        accs.append(acc_at(d[test], same[test], t))
        ts.append(t)
    return float(np.mean(accs)), float(np.mean(ts))


FAR_TARGETS: dict[str, float] = {"1%": 0.01, "0.1%": 0.001}
# The distributions a FAR threshold is set on. "own": each method's own different-person
# distances, so every method is compared at the same FAR (the ROC's TAR). A threshold set on
# another distribution lets a method that pulls faces together buy TAR with FAR.
REFERENCES = ("clean", "bicubic", "own")
SET_ON = {
    "clean": "different-person distances of the clean pairs, same framing",
    "bicubic": "different-person distances of the degraded-bicubic pairs, same preset and framing",
    "own": "this method's own different-person distances (equal FAR: the ROC's TAR)",
}


def min_negatives(far: float) -> int:
    """The fewest different-person pairs that can express ``far`` (one pair = far)."""
    return math.ceil(1 / far - 1e-9)


def far_na(far: float) -> str:
    return f"n/a (fewer than {min_negatives(far):,} negatives)"


def threshold_at_far(d_neg: np.ndarray, far: float) -> float | str:
    """The largest threshold t with FAR(t) = mean(d_neg < t) <= far: the (k+1)-th smallest
    different-person distance, k = floor(far * n). Ties at t are rejected, so FAR(t) may
    fall below the target but never above it. ``far_na(far)`` when fewer than 1/far
    negatives."""
    d = np.sort(np.asarray(d_neg, np.float64))
    if len(d) < min_negatives(far):
        return far_na(far)
    k = int(math.floor(far * len(d) + 1e-9))
    return float(d[k]) if k < len(d) else float(np.nextafter(d[-1], np.inf))


def operating_point(d: np.ndarray, same: np.ndarray, t: float) -> dict[str, float]:
    """TAR and FAR at threshold t (a pair is called "same" when d < t)."""
    accept = d < t
    return {
        "threshold": float(t),
        "tar": float(accept[same].mean()),
        "far": float(accept[~same].mean()),
    }


def roc_auc(d: np.ndarray, same: np.ndarray) -> float:
    """P(d_same < d_diff) + P(d_same == d_diff) / 2 (Mann-Whitney U with mid-ranks)."""
    d = np.asarray(d, np.float64)
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(d, kind="stable")
    ds = d[order]
    ranks = np.empty(len(d))
    # mid-rank (1-based) of every run of equal distances
    starts = np.flatnonzero(np.r_[True, ds[1:] != ds[:-1]])
    ends = np.r_[starts[1:], len(ds)]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + 1 + b) / 2
    r_neg = ranks[~same].sum()
    return float((r_neg - n_neg * (n_neg + 1) / 2) / (n_pos * n_neg))


def far_thresholds(d: np.ndarray, same: np.ndarray) -> dict[str, float | str]:
    """The FAR-target thresholds set on one reference distribution."""
    return {name: threshold_at_far(d[~same], far) for name, far in FAR_TARGETS.items()}


def identity_metrics(
    d: np.ndarray,
    same: np.ndarray,
    folds: np.ndarray,
    refs: dict[str, dict[str, float | str]],
) -> dict:
    """Every identity metric of one condition; ``refs``: reference name -> FAR target ->
    threshold (``far_thresholds``) or its n/a reason."""
    best, t = acc_best_kfold(d, same, folds)
    at06 = operating_point(d, same, THRESHOLD)
    tar_at_far: dict[str, dict | str] = {}
    for name, far in FAR_TARGETS.items():
        if len(d[~same]) < min_negatives(far):
            tar_at_far[name] = far_na(far)
            continue
        tar_at_far[name] = {
            ref: {"set_on": SET_ON[ref], **operating_point(d, same, ts[name])}
            for ref, ts in refs.items()
            if not isinstance(ts[name], str)
        }
        own = threshold_at_far(d[~same], far)
        tar_at_far[name]["own"] = {"set_on": SET_ON["own"], **operating_point(d, same, own)}
    return {
        "acc_at_0.6": acc_at(d, same),
        "tar_at_0.6": at06["tar"],
        "far_at_0.6": at06["far"],
        "acc_best_10fold": best,
        "best_threshold": t,
        "auc": roc_auc(d, same),
        "tar_at_far": tar_at_far,
    }


# ----------------------------------------------------------------------------- restorers


def bicubic_up(deg: np.ndarray, size: int = SIZE) -> np.ndarray:
    return cv2.resize(deg, (size, size), interpolation=cv2.INTER_CUBIC)


class Bicubic:
    """Plain bicubic upscale of the degraded image to 160x160."""

    def __call__(self, deg: np.ndarray) -> np.ndarray:
        return bicubic_up(deg)


class Classical:
    """Named classical baseline: bicubic upscale, non-local-means colour denoise, unsharp
    mask, CLAHE on the L channel of Lab. Parameters are fixed (they are part of the name)."""

    nlm_h = 7.0  # luminance and colour strength on the upscaled image
    nlm_template, nlm_search = 5, 11  # the product's Denoise windows (4x faster than 7/21)
    unsharp_sigma, unsharp_amount = 1.5, 0.4
    clahe_clip, clahe_tiles = 1.5, (4, 4)

    def __init__(self) -> None:
        self._clahe = cv2.createCLAHE(clipLimit=self.clahe_clip, tileGridSize=self.clahe_tiles)

    def __call__(self, deg: np.ndarray) -> np.ndarray:
        x = bicubic_up(deg)
        x = cv2.fastNlMeansDenoisingColored(
            x, None, self.nlm_h, self.nlm_h, self.nlm_template, self.nlm_search
        )
        blur = cv2.GaussianBlur(x, (0, 0), self.unsharp_sigma)
        x = cv2.addWeighted(x, 1 + self.unsharp_amount, blur, -self.unsharp_amount, 0)
        lab = cv2.cvtColor(x, cv2.COLOR_BGR2LAB)
        lab[:, :, 0] = self._clahe.apply(lab[:, :, 0])
        return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def _static_hw(shape: Sequence, layout: str, default: int) -> tuple[int, int]:
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    ok = all(isinstance(v, (int, np.integer)) and v > 0 for v in (h, w))
    return (int(h), int(w)) if ok else (default, default)


class OnnxRestorer:
    def __init__(self, path: str, model_input: int = DEFAULT_MODEL_INPUT) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        inp = self.sess.get_inputs()[0]
        self.name = inp.name
        self.hw = _static_hw(inp.shape, "NCHW", model_input)

    def __call__(self, deg: np.ndarray) -> np.ndarray:
        y = self.sess.run(None, {self.name: to_model_input(deg, self.hw)})[0]
        return from_model_output(y)


class TFLiteRestorer:
    """LiteRT model; float or full-integer (int8/uint8 I/O quantised with the tensor's scale
    and zero point). NCHW per the contract; an NHWC model (last dim 3) is transposed."""

    def __init__(self, path: str, model_input: int = DEFAULT_MODEL_INPUT) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover
            from tflite_runtime.interpreter import Interpreter
        self.it = Interpreter(model_path=path, num_threads=1)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]
        shape = list(self.inp["shape"])
        self.layout = "NHWC" if shape[-1] == 3 and shape[1] != 3 else "NCHW"
        self.hw = _static_hw(shape, self.layout, model_input)

    @staticmethod
    def _q(x: np.ndarray, d: dict) -> np.ndarray:
        if d["dtype"] in (np.int8, np.uint8):
            scale, zp = d["quantization"]
            info = np.iinfo(d["dtype"])
            return np.clip(np.round(x / scale + zp), info.min, info.max).astype(d["dtype"])
        return x.astype(d["dtype"])

    @staticmethod
    def _dq(y: np.ndarray, d: dict) -> np.ndarray:
        if d["dtype"] in (np.int8, np.uint8):
            scale, zp = d["quantization"]
            return (y.astype(np.float32) - zp) * scale
        return y.astype(np.float32)

    def __call__(self, deg: np.ndarray) -> np.ndarray:
        x = to_model_input(deg, self.hw)
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        self.it.set_tensor(self.inp["index"], self._q(x, self.inp))
        self.it.invoke()
        y = self._dq(self.it.get_tensor(self.out["index"]), self.out)
        if y.ndim == 4 and y.shape[-1] == 3 and y.shape[1] != 3:
            y = y.transpose(0, 3, 1, 2)
        return from_model_output(y)


class TorchRestorer:
    """TorchScript model (e.g. the teacher), CPU, one thread."""

    def __init__(self, path: str, model_input: int = DEFAULT_MODEL_INPUT) -> None:
        import torch

        torch.set_num_threads(1)
        self.torch = torch
        self.model = torch.jit.load(path, map_location="cpu").eval()
        self.hw = (model_input, model_input)

    def __call__(self, deg: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            y = self.model(self.torch.from_numpy(to_model_input(deg, self.hw)))
        if isinstance(y, (tuple, list)):
            y = y[0]
        return from_model_output(y.float().numpy())


class ProductChain:
    """The product's own enhancement steps in a given order, e.g. ``edge:lowlight+restore``:
    ``denoise`` (NL-means), ``lowlight`` (gamma + CLAHE), ``restore`` (the shipped student,
    ``restore@tflite/fp32`` for another runtime/precision). The degraded image is first
    upscaled to 160x160 by bicubic, as the daemon's aligned crop is upsampled from the frame;
    the restorer then sees the crop in the framing being evaluated (``--framings``), without
    being told which."""

    def __init__(self, arg: str, model_input: int = DEFAULT_MODEL_INPUT) -> None:
        from edge.enhance.classical import Denoise, LowLightCorrection
        from edge.enhance.restorer import FaceRestorer

        self.steps: list[Callable[[np.ndarray], np.ndarray]] = []
        for name in arg.split("+"):
            name, _, variant = name.partition("@")
            if name == "denoise":
                self.steps.append(Denoise(5.0))
            elif name == "lowlight":
                self.steps.append(LowLightCorrection())
            elif name == "restore":
                backend, _, precision = (variant or "onnx/int8").partition("/")
                self.steps.append(FaceRestorer(backend, precision or "int8"))
            else:
                raise ValueError(f"unknown product step {name!r}: denoise, lowlight, restore")

    def __call__(self, deg: np.ndarray) -> np.ndarray:
        x = bicubic_up(deg)
        for step in self.steps:
            x = step(x)
        return x


def wrapped_restorer(
    kind: str,
    arg: str,
    usage: str,
    convert: Callable[[str], Any],
    valid: Callable[[Any], bool],
    model_input: int = DEFAULT_MODEL_INPUT,
) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    """``VALUE:SPEC`` of a restorer that wraps another: (VALUE converted, the SPEC restorer);
    a ValueError naming `kind` and the `usage` when VALUE does not convert or is not valid."""
    text, _, inner = arg.partition(":")
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not inner or not valid(value):
        raise ValueError(f"{kind}:{arg}: use {usage}")
    return value, build_restorer(parse_restorer(inner), model_input)


def restored_float(fn: Callable[[np.ndarray], np.ndarray], deg: np.ndarray) -> np.ndarray:
    """A restorer's output at 160x160 as float32, for blending."""
    return restore_to_size(fn, deg).astype(np.float32)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


class Blend:
    """``blend:S:SPEC``: S x the restorer SPEC's output + (1 - S) x the bicubic upscale, per
    pixel (the product's ``enhance.restore.strength``, like CodeFormer's fidelity weight):
    how much of the network's change to keep."""

    def __init__(self, arg: str, model_input: int = DEFAULT_MODEL_INPUT) -> None:
        self.strength, self.inner = wrapped_restorer(
            "blend", arg, "blend:S:SPEC with S a number in [0, 1]", float,
            lambda v: 0.0 <= v <= 1.0, model_input,
        )  # fmt: skip

    def __call__(self, deg: np.ndarray) -> np.ndarray:
        net = restored_float(self.inner, deg)
        plain = bicubic_up(deg).astype(np.float32)
        return to_uint8(self.strength * net + (1.0 - self.strength) * plain)


class LowPassFromPlain:
    """``lowpass:SIGMA:SPEC``: the bicubic upscale's low frequencies (Gaussian, SIGMA output
    pixels) with the restorer SPEC's high frequencies on top: out + G(plain - out). Tests
    whether the network loses identity by moving the face's coarse shape (which the camera did
    see) or by the detail it adds."""

    def __init__(self, arg: str, model_input: int = DEFAULT_MODEL_INPUT) -> None:
        self.sigma, self.inner = wrapped_restorer(
            "lowpass", arg, "lowpass:SIGMA:SPEC, SIGMA > 0", float, lambda v: v > 0, model_input
        )

    def __call__(self, deg: np.ndarray) -> np.ndarray:
        net = restored_float(self.inner, deg)
        plain = bicubic_up(deg).astype(np.float32)
        return to_uint8(net + cv2.GaussianBlur(plain - net, (0, 0), self.sigma))


class Consistent:
    """``consistent:N:SPEC``: N rounds of back-projection (Irani and Peleg 1991) on the
    restorer SPEC's output: out += bicubic_up(deg - area_down(out)), so that shrunk back to the
    camera's size the face is what the camera saw."""

    def __init__(self, arg: str, model_input: int = DEFAULT_MODEL_INPUT) -> None:
        self.rounds, self.inner = wrapped_restorer(
            "consistent", arg, "consistent:N:SPEC, N rounds >= 1", int, lambda v: v >= 1,
            model_input,
        )  # fmt: skip

    def __call__(self, deg: np.ndarray) -> np.ndarray:
        out = restored_float(self.inner, deg)
        h, w = deg.shape[:2]
        d = deg.astype(np.float32)
        for _ in range(self.rounds):
            small = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
            out += cv2.resize(d - small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        return to_uint8(out)


RESTORERS: dict[str, Callable[..., Callable[[np.ndarray], np.ndarray]]] = {
    "edge": ProductChain,
    "blend": Blend,
    "lowpass": LowPassFromPlain,
    "consistent": Consistent,
    "bicubic": lambda arg, model_input: Bicubic(),
    "classical": lambda arg, model_input: Classical(),
    "onnx": OnnxRestorer,
    "tflite": TFLiteRestorer,
    "torch": TorchRestorer,
}


@dataclass(frozen=True)
class RestorerSpec:
    label: str
    kind: str
    arg: str = ""


def parse_restorer(spec: str) -> RestorerSpec:
    """``bicubic`` | ``classical`` | ``[label=]onnx:PATH`` | ``[label=]tflite:PATH`` |
    ``[label=]torch:PATH`` | ``[label=]blend:S:SPEC``."""
    label = None
    if "=" in spec.split(":", 1)[0]:
        label, spec = spec.split("=", 1)
    kind, _, arg = spec.partition(":")
    if kind not in RESTORERS:
        raise ValueError(f"unknown restorer {kind!r}; one of {', '.join(RESTORERS)}")
    if kind in ("onnx", "tflite", "torch", "edge", "blend", "lowpass", "consistent") and not arg:
        raise ValueError(f"restorer {kind!r} needs a model path: {kind}:PATH")
    if label is None:
        label = kind if not arg else f"{kind}:{Path(arg).stem}"
    return RestorerSpec(label, kind, arg)


def build_restorer(spec: RestorerSpec, model_input: int = DEFAULT_MODEL_INPUT):
    return RESTORERS[spec.kind](spec.arg, model_input)


def restore_to_size(fn: Callable[[np.ndarray], np.ndarray], deg: np.ndarray) -> np.ndarray:
    return to_size(np.ascontiguousarray(fn(deg)))


# ----------------------------------------------------------------------------- judge


def dlib_model_paths() -> tuple[Path, Path]:
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face_recognition_models is not installed (the eval extra)")
    base = Path(list(spec.submodule_search_locations)[0]) / "models"
    return (
        base / "shape_predictor_5_face_landmarks.dat",
        base / "dlib_face_recognition_resnet_model_v1.dat",
    )


def judge_available() -> bool:
    try:
        import dlib  # noqa: F401

        return all(p.exists() for p in dlib_model_paths())
    except ImportError:
        return False


class DlibJudge:
    """dlib 5-point landmarks on a fixed box (JUDGE_BOX, or the framing's ``judge_box``),
    then the 128-d ResNet descriptor."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        sp, fr = dlib_model_paths()
        self.sp = dlib.shape_predictor(str(sp))
        self.fr = dlib.face_recognition_model_v1(str(fr))
        self.box = dlib.rectangle(*JUDGE_BOX)

    def __call__(self, bgr: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        rgb = np.ascontiguousarray(to_size(bgr)[:, :, ::-1])
        rect = self.box if box is None else self._dlib.rectangle(*box)
        shape = self.sp(rgb, rect)
        return np.asarray(self.fr.compute_face_descriptor(rgb, shape), np.float32)


def judge_signature(framing: str = "lfw") -> str:
    """Names the clean-descriptor cache: the judge's model files, box and framing."""
    sp, fr = dlib_model_paths()
    h = hashlib.sha256()
    for p in (sp, fr):
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    h.update(repr((judge_box(framing), SIZE, "rgb", "jitter0")).encode())
    if FRAMINGS[framing] != 1.0:  # the lfw signature is the one caches had before framings
        h.update(f"reframe {framing} zoom {FRAMINGS[framing]!r}".encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- evaluation


@dataclass
class _Ctx:
    lfw: Path
    presets: list[str]
    specs: list[RestorerSpec]
    identity: bool
    need_clean: dict[str, set[str]]  # framing -> images whose clean descriptor is not cached
    grid: set[str]
    seed: int
    model_input: int
    framings: list[str] = field(default_factory=lambda: ["lfw"])
    restorers: list = field(default_factory=list)
    judge: DlibJudge | None = None


_CTX: _Ctx | None = None


def _init_worker(ctx: _Ctx) -> None:
    global _CTX
    cv2.setNumThreads(1)
    ctx.restorers = [build_restorer(s, ctx.model_input) for s in ctx.specs]
    ctx.judge = DlibJudge() if ctx.identity else None
    _CTX = ctx


def _process(task: tuple[int, str]) -> dict:
    """All framings, presets and restorers for one image."""
    idx, rel = task
    c = _CTX
    assert c is not None
    base = load_clean(c.lfw, rel)
    out: dict = {"idx": idx, "rel": rel, "q": {}, "desc": {}, "clean_desc": {}, "grid": {}}
    in_grid = rel in c.grid
    for fr in c.framings:
        clean = reframe(base, fr)
        box = judge_box(fr)
        if c.judge is not None and rel in c.need_clean[fr]:
            out["clean_desc"][fr] = c.judge(clean, box)
        for preset in c.presets:
            deg = degrade_seeded(clean, rel, preset, c.seed)
            if in_grid:
                out["grid"][(fr, preset, "degraded")] = deg
            for spec, fn in zip(c.specs, c.restorers, strict=True):
                img = restore_to_size(fn, deg)
                key = (fr, preset, spec.label)
                out["q"][key] = (psnr(img, clean), ssim(img, clean))
                if c.judge is not None:
                    out["desc"][key] = c.judge(img, box)
                if in_grid:
                    out["grid"][key] = img
        if in_grid:
            out["grid"][(fr, "clean", "clean")] = clean
    return out


def _progress(it: Iterable, total: int, desc: str) -> Iterable:
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return tqdm(it, total=total, desc=desc, unit="img", smoothing=0.05, file=sys.stderr)


class CleanCache:
    """Clean-image descriptors by relative path, one .npz per judge signature (framing)."""

    def __init__(self, cache_dir: Path, framing: str = "lfw") -> None:
        self.path = cache_dir / f"clean_dlib_{judge_signature(framing)}.npz"
        self.data: dict[str, np.ndarray] = {}
        if self.path.exists():
            z = np.load(self.path)
            self.data = dict(zip(z["keys"].tolist(), z["desc"], strict=True))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.data)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), desc=np.stack([self.data[k] for k in keys]))
        os.replace(tmp, self.path)


def restorer_files(specs: Sequence[RestorerSpec]) -> dict[str, dict[str, str]]:
    """label -> {path, sha256} for every restorer that is a model file."""
    return {
        s.label: {"path": s.arg, "sha256": sha256_of(Path(s.arg))}
        for s in specs
        if s.kind in ("onnx", "tflite", "torch") and Path(s.arg).is_file()
    }


def far_budget(n_neg: int) -> dict[str, str]:
    """What each FAR target means on ``n_neg`` different-person pairs."""
    out = {}
    for name, far in FAR_TARGETS.items():
        if n_neg < min_negatives(far):
            out[name] = f"{far_na(far)}: {n_neg:,} different-person pairs"
        else:
            k = math.floor(far * n_neg + 1e-9)
            out[name] = f"at most {k:,} of {n_neg:,} different-person pairs"
    return out


def evaluate(
    lfw: Path,
    pairs: list[Pair],
    presets: list[str],
    specs: list[RestorerSpec],
    out_dir: Path,
    *,
    identity: bool = True,
    workers: int = 2,
    seed: int = 0,
    grid_faces: int = 4,
    model_input: int = DEFAULT_MODEL_INPUT,
    cache_dir: Path | None = None,
    framings: Sequence[str] = ("lfw",),
    pairs_selection: str | None = None,
) -> dict:
    """Runs the protocol; returns the results dict (also the content of results.json).
    Clean descriptors are cached in ``cache_dir`` (default ``out_dir/cache``).
    ``pairs_selection``: how ``pairs`` were chosen (``pairs_label``), recorded in meta."""
    t0 = time.time()
    framings = list(framings)
    unknown = [f for f in framings if f not in FRAMINGS]
    if unknown or not framings:
        raise ValueError(f"unknown framing(s) {unknown}; use some of {', '.join(FRAMINGS)}")
    images = unique_images(pairs)
    index = {r: i for i, r in enumerate(images)}
    labels = [s.label for s in specs]
    caches = (
        {f: CleanCache(cache_dir or out_dir / "cache", f) for f in framings} if identity else {}
    )
    need_clean = {f: set(images) - set(caches[f].data) if identity else set() for f in framings}
    # grid faces: evenly spaced over the distinct images, deterministic
    grid = {images[i] for i in np.linspace(0, len(images) - 1, grid_faces).astype(int)}
    ctx = _Ctx(lfw, presets, specs, identity, need_clean, grid, seed, model_input, framings)

    n = len(images)
    keys = [(f, p, lb) for f in framings for p in presets for lb in labels]
    q = {k: np.zeros((n, 2)) for k in keys}
    desc = {k: np.zeros((n, 128), np.float32) for k in keys}
    grid_imgs: dict[str, dict] = {}
    tasks = list(enumerate(images))
    if workers <= 1:
        _init_worker(ctx)
        results: Iterable[dict] = map(_process, tasks)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(ctx,))
        results = pool.imap_unordered(_process, tasks, chunksize=2)
    try:
        for r in _progress(results, len(tasks), "images"):
            i = r["idx"]
            for k, v in r["q"].items():
                q[k][i] = v
            for k, v in r["desc"].items():
                desc[k][i] = v
            for f, v in r["clean_desc"].items():
                caches[f].data[r["rel"]] = v
            if r["grid"]:
                grid_imgs[r["rel"]] = r["grid"]
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    for f, cache in caches.items():
        if need_clean[f]:
            cache.save()
    # per-image values, for other pair subsets or protocols without recomputing
    per_image = {"images": np.array(images)}
    for (f, p, lb), v in q.items():
        per_image[f"psnr_ssim|{f}|{p}|{lb}"] = v
        if identity:
            per_image[f"desc|{f}|{p}|{lb}"] = desc[(f, p, lb)]
    for f, cache in caches.items():
        per_image[f"desc|{f}|clean|clean"] = np.stack([cache.data[r] for r in images])
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "per_image.npz", **per_image)
    elapsed = time.time() - t0

    ia = np.array([index[p.a] for p in pairs])
    ib = np.array([index[p.b] for p in pairs])
    same = np.array([p.same for p in pairs], bool)
    folds = np.array([p.fold for p in pairs])

    def dist(d: np.ndarray) -> np.ndarray:
        return np.linalg.norm(d[ia] - d[ib], axis=1)

    quality = {f"{f}|{p}|{lb}": q[(f, p, lb)].mean(0) for f, p, lb in keys}
    dists: dict[str, np.ndarray] | None = None
    if identity:
        dists = {f"{f}|{p}|{lb}": dist(desc[(f, p, lb)]) for f, p, lb in keys}
        dists.update(
            {f"{f}|clean|clean": dist(per_image[f"desc|{f}|clean|clean"]) for f in framings}
        )
    res = score(framings, presets, labels, same, folds, quality, dists)
    if dists is not None:
        dists = {"same": same, "folds": folds, **dists}
        np.savez_compressed(out_dir / "distances.npz", **dists)
    n_neg = int((~same).sum())
    meta = {
        "lfw": str(lfw),
        "pairs": pairs_selection or f"custom:{len(pairs)}",
        "n_pairs": len(pairs),
        "n_same": int(same.sum()),
        "n_different": n_neg,
        "n_folds": int(len(np.unique(folds))),
        "n_images": n,
        "presets": presets,
        "framings": {f: {"zoom": FRAMINGS[f], "judge_box": list(judge_box(f))} for f in framings},
        "restorers": {s.label: f"{s.kind}:{s.arg}" if s.arg else s.kind for s in specs},
        "restorer_files": restorer_files(specs),
        "identity": identity,
        "far_targets": far_budget(n_neg) if identity else {},
        "threshold_rule": THRESHOLD_RULE,
        "seed": seed,
        "workers": workers,
        "seconds": round(elapsed, 1),
        "clean_descriptors_cached": (
            {f: n - len(need_clean[f]) for f in framings} if identity else {}
        ),
        "protocol": PROTOCOL,
        "command": " ".join(["python -m tools.eval.restore_eval", *sys.argv[1:]]),
    }
    out = {"meta": meta, "results": res}
    write_report(out, out_dir, grid_imgs, dists)
    return out


def score(
    framings: Sequence[str],
    presets: Sequence[str],
    labels: Sequence[str],
    same: np.ndarray,
    folds: np.ndarray,
    quality: dict[str, np.ndarray],
    dists: dict[str, np.ndarray] | None,
) -> dict:
    """``results`` of results.json from the measurements: ``quality["framing|preset|label"]``
    = mean (PSNR, SSIM); ``dists`` (None: no identity) = pair distances by the same keys and
    ``"framing|clean|clean"``. The FAR thresholds are set here: on the clean pairs of each
    framing and on the bicubic pairs of each (framing, preset)."""
    same = np.asarray(same, bool)
    res: dict = {}
    for f in framings:
        rf: dict = {}
        refs: dict[str, dict[str, float | str]] = {}
        if dists is not None:
            d = dists[f"{f}|clean|clean"]
            refs["clean"] = far_thresholds(d, same)
            rf["clean"] = identity_metrics(d, same, folds, {"clean": refs["clean"]})
            rf["clean"]["far_thresholds"] = refs["clean"]
        for p in presets:
            rf[p] = {}
            prefs = dict(refs)
            if dists is not None and "bicubic" in labels:
                prefs["bicubic"] = far_thresholds(dists[f"{f}|{p}|bicubic"], same)
            for lb in labels:
                qv = quality[f"{f}|{p}|{lb}"]
                m: dict = {"psnr": float(qv[0]), "ssim": float(qv[1])}
                if dists is not None:
                    m.update(identity_metrics(dists[f"{f}|{p}|{lb}"], same, folds, prefs))
                    if lb == "bicubic":
                        m["far_thresholds"] = prefs["bicubic"]
                rf[p][lb] = m
            if "bicubic" in labels:
                base = rf[p]["bicubic"]
                for lb in labels:
                    rf[p][lb]["delta_vs_bicubic"] = {
                        k: rf[p][lb][k] - base[k] for k in METRICS if k in rf[p][lb]
                    }
        res[f] = rf
    return res


PROTOCOL = (
    "LFW 160x160 images of pairs.txt (meta.pairs: all, first:N or stratified:N, balanced "
    "per fold and class); each framing reframes the clean image about its centre by zoom z "
    "(meta.framings) before anything else; degrade(clean, preset, rng seeded by "
    "crc32(relpath|preset)); restorer -> 160x160 BGR; PSNR/SSIM on luma Y "
    "(0.299R+0.587G+0.114B, 0..255) against the reframed clean image, SSIM 11x11 Gaussian "
    "sigma 1.5 valid; averaged over distinct images. Identity: dlib 5-point landmarks on the "
    "framing's box (meta.framings.judge_box; (22,22,138,138) for lfw) of the 160x160 image, "
    "dlib_face_recognition_resnet_model_v1 descriptor (no jitter), both images of a pair in "
    "the same condition; 'same' when distance < threshold; accuracy at 0.6, at the best "
    "threshold chosen on the other folds (10-fold CV over the pairs.txt folds), ROC AUC, and "
    "TAR at fixed FAR thresholds (threshold_rule)."
)
THRESHOLD_RULE = (
    "TAR at FAR: threshold t = the largest with FAR <= target on a reference distribution's "
    "different-person distances (the (k+1)-th smallest, k = floor(target * n_different)); "
    "reference 'clean' = the clean pairs of the same framing, 'bicubic' = the degraded-bicubic "
    "pairs of the same preset and framing; every method scored at that t: tar = P(d < t | same), "
    "far = P(d < t | different), the FAR it actually reaches."
)

METRICS = ["psnr", "ssim", "acc_at_0.6", "acc_best_10fold", "auc"]
METRIC_TITLES = {
    "psnr": "PSNR (dB, luma)",
    "ssim": "SSIM (luma)",
    "acc_at_0.6": "Verification accuracy at distance 0.6 (%)",
    "acc_best_10fold": "Verification accuracy at the best 10-fold threshold (%)",
    "auc": "ROC AUC",
}
SHORT_TITLES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "acc_at_0.6": "accuracy @ 0.6 (%)",
    "acc_best_10fold": "accuracy, best 10-fold (%)",
    "auc": "ROC AUC",
    "tar@1%|clean": "TAR @ FAR 1 %, clean thr. (%)",
}
REF_TITLES = {
    "clean": "threshold set on the clean pairs (same framing)",
    "bicubic": "threshold set on the degraded-bicubic pairs (same preset and framing)",
    "own": "each method's threshold set on its own different-person pairs (equal FAR, ROC)",
}


def tar_entry(m: dict, target: str, ref: str) -> dict | None:
    """``{"threshold", "tar", "far"}`` of one result at one FAR target and reference, or None
    (n/a, or no such reference)."""
    v = m.get("tar_at_far", {}).get(target)
    return v.get(ref) if isinstance(v, dict) else None


def metric_value(m: dict, metric: str) -> float | None:
    """A scalar metric, or ``tar@<target>|<ref>`` (TAR at that operating point)."""
    if metric.startswith("tar@"):
        target, _, ref = metric[4:].partition("|")
        e = tar_entry(m, target, ref)
        return None if e is None else e["tar"]
    return m.get(metric)


# ----------------------------------------------------------------------------- report


def _fmt(metric: str, v: float | None, delta: float | None = None) -> str:
    if v is None:
        return "-"
    if metric.startswith(("acc", "tar")):
        s = f"{100 * v:.1f}"
        d = None if delta is None else f"{100 * delta:+.1f}"
    elif metric == "psnr":
        s, d = f"{v:.2f}", None if delta is None else f"{delta:+.2f}"
    else:
        s, d = f"{v:.4f}", None if delta is None else f"{delta:+.4f}"
    return s if d is None else f"{s} ({d})"


def upgrade(out: dict) -> dict:
    """A results.json written before framings (``results[preset]``) in today's layout."""
    meta = out["meta"]
    if "framings" not in meta:
        meta["framings"] = {"lfw": {"zoom": 1.0, "judge_box": list(JUDGE_BOX)}}
        out["results"] = {"lfw": out["results"]}
    meta.setdefault("pairs", f"custom:{meta['n_pairs']}")
    meta.setdefault("n_different", meta["n_pairs"] - meta["n_same"])
    meta.setdefault("far_targets", {})
    return out


def _columns(meta: dict, res: dict, with_clean: bool) -> list[tuple[str, str, str]]:
    """(framing, preset or "clean", header) for each table column."""
    framings = list(meta["framings"])
    cols = []
    for f in framings:
        suffix = "" if len(framings) == 1 else f" {f}"
        if with_clean and "clean" in res[f]:
            cols.append((f, "clean", f"clean{suffix}"))
        cols += [(f, p, f"{p}{suffix}") for p in meta["presets"]]
    return cols


def _table(meta: dict, res: dict, title: str, cols: list, cell: Callable) -> list[str]:
    lines = ["", f"## {title}", ""]
    lines.append("| restorer | " + " | ".join(h for _, _, h in cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for lb in meta["restorers"]:
        cells = []
        for f, p, _ in cols:
            m = res[f]["clean"] if p == "clean" else res[f][p][lb]
            base = None if p == "clean" or lb == "bicubic" else res[f][p].get("bicubic")
            cells.append(cell(m, base, p == "clean"))
        lines.append(f"| {lb} | " + " | ".join(cells) + " |")
    return lines


def _fmt_thr(t: float | str) -> str:
    return t if isinstance(t, str) else f"{t:.4f}"


def markdown(out: dict) -> str:
    out = upgrade(out)
    meta, res = out["meta"], out["results"]
    framings = list(meta["framings"])
    lines = [
        "# Restoration evaluation on LFW",
        "",
        f"{meta['n_pairs']:,} pairs (`--pairs {meta['pairs']}`: {meta['n_same']:,} same, "
        f"{meta['n_different']:,} different, {meta['n_folds']} folds), {meta['n_images']:,} "
        f"distinct images; {meta['seconds']} s with {meta['workers']} worker(s).",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Protocol: {meta['protocol']}",
        "",
        "Framings (zoom about the image centre; the judge's landmark box in that framing): "
        + "; ".join(
            f"{f} zoom {v['zoom']:.4g}, box {tuple(v['judge_box'])}"
            for f, v in meta["framings"].items()
        )
        + ".",
        "",
        "Values in brackets: difference to bicubic on the same preset and framing.",
    ]
    for metric in METRICS:
        ident = metric not in ("psnr", "ssim")
        if ident and not meta["identity"]:
            continue

        def cell(m: dict, base: dict | None, is_clean: bool, metric: str = metric) -> str:
            v = m.get(metric)
            delta = None if base is None or v is None else v - base[metric]
            return _fmt(metric, v, delta)

        lines += _table(meta, res, METRIC_TITLES[metric], _columns(meta, res, ident), cell)
    if not meta["identity"]:
        return "\n".join(lines) + "\n"

    def at06(m: dict, base: dict | None, is_clean: bool) -> str:
        return f"{100 * m['tar_at_0.6']:.1f} / {100 * m['far_at_0.6']:.2f}"

    lines += _table(meta, res, "TAR / FAR (%) at distance 0.6", _columns(meta, res, True), at06)
    lines += [
        "",
        "## TAR at fixed FAR",
        "",
        f"Rule: {meta['threshold_rule']}",
        "",
    ]
    lines += [f"- FAR {t}: {v}." for t, v in meta["far_targets"].items()]
    lines += ["", "Thresholds set on the clean pairs (one per framing, used for every preset):"]
    for f in framings:
        ts = res[f]["clean"]["far_thresholds"]
        lines.append(f"- {f}: " + ", ".join(f"FAR {t}: {_fmt_thr(v)}" for t, v in ts.items()))
    if "bicubic" in meta["restorers"]:
        lines += ["", "Thresholds set on the degraded-bicubic pairs (per preset and framing):"]
        for f in framings:
            for p in meta["presets"]:
                ts = res[f][p]["bicubic"]["far_thresholds"]
                lines.append(
                    f"- {p} {f}: " + ", ".join(f"FAR {t}: {_fmt_thr(v)}" for t, v in ts.items())
                )
    for target in FAR_TARGETS:
        for ref in REFERENCES:
            if ref == "bicubic" and "bicubic" not in meta["restorers"]:
                continue
            title = f"TAR at FAR {target} (%), {REF_TITLES[ref]}; cell: TAR (FAR reached)"
            some = res[framings[0]]["clean"]["tar_at_far"].get(target)
            if isinstance(some, str):
                lines += ["", f"## {title}", "", f"{some}: {meta['n_different']:,} in this run."]
                continue

            def tcell(
                m: dict, base: dict | None, is_clean: bool, target: str = target, ref: str = ref
            ) -> str:
                e = tar_entry(m, target, ref)
                if e is None:
                    return "-"
                b = None if base is None else tar_entry(base, target, ref)
                d = "" if b is None else f" {100 * (e['tar'] - b['tar']):+.1f}"
                return f"{100 * e['tar']:.1f}{d} (FAR {100 * e['far']:.2f})"

            lines += _table(meta, res, title, _columns(meta, res, ref == "clean"), tcell)
    return "\n".join(lines) + "\n"


def _suffix(framing: str) -> str:
    return "" if framing == "lfw" else f"_{framing}"


def _bar_charts(out: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, res = out["meta"], out["results"]
    labels = list(meta["restorers"])
    metrics = ["psnr", "ssim"]
    if meta["identity"]:
        metrics += ["acc_at_0.6", "acc_best_10fold", "auc", "tar@1%|clean"]
    paths = []
    for f in meta["framings"]:
        for p in meta["presets"]:
            fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2))
            for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
                scale = 100 if metric.startswith(("acc", "tar")) else 1
                vals = [metric_value(res[f][p][lb], metric) for lb in labels]
                vals = [math.nan if v is None else v * scale for v in vals]
                bars = ax.bar(labels, vals, color=[f"C{i}" for i in range(len(labels))])
                ax.bar_label(
                    bars, fmt="%.1f" if metric not in ("ssim", "auc") else "%.3f", fontsize=7
                )
                clean = metric_value(res[f].get("clean", {}), metric)
                if metric not in ("psnr", "ssim") and clean is not None:
                    ax.axhline(clean * scale, color="k", ls="--", lw=1, label="clean")
                    ax.legend(fontsize=7, loc="lower right")
                finite = [v for v in vals if math.isfinite(v)]
                if finite:
                    lo = min(finite)
                    ax.set_ylim(
                        lo - 0.15 * abs(lo) if metric not in ("ssim", "auc") else max(0, lo - 0.1),
                        None,
                    )
                ax.set_title(SHORT_TITLES[metric], fontsize=9)
                ax.tick_params(axis="x", labelrotation=30, labelsize=8)
            fig.suptitle(f"preset {p}, framing {f}: {meta['n_pairs']} LFW pairs", fontsize=10)
            fig.tight_layout()
            path = out_dir / f"bars_{p}{_suffix(f)}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths.append(path)
    return paths


def _distance_histograms(out: dict, out_dir: Path, dists: dict[str, np.ndarray]) -> list[Path]:
    """dist_<preset>.png: same- and different-person distances, one row per framing, one
    column per condition (clean, then each restorer), with 0.6 and the clean-set FAR 1 %
    threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, res = out["meta"], out["results"]
    framings, labels = list(meta["framings"]), list(meta["restorers"])
    same = np.asarray(dists["same"], bool)
    cols = ["clean", *labels]
    top = max(1.2, *(float(np.max(v)) for k, v in dists.items() if "|" in k))
    bins = np.linspace(0, top, 49)
    paths = []
    for p in meta["presets"]:
        fig, axes = plt.subplots(
            len(framings), len(cols), figsize=(2.9 * len(cols), 2.4 * len(framings)),
            squeeze=False, sharex=True,
        )  # fmt: skip
        for r, f in enumerate(framings):
            thr = res[f]["clean"]["far_thresholds"].get("1%")
            for c, col in enumerate(cols):
                key = f"{f}|clean|clean" if col == "clean" else f"{f}|{p}|{col}"
                ax = axes[r][c]
                d = np.asarray(dists[key])
                ax.hist(d[same], bins=bins, color="C2", alpha=0.6, label="same person")
                ax.hist(d[~same], bins=bins, color="C3", alpha=0.6, label="different")
                ax.axvline(THRESHOLD, color="k", ls="--", lw=1, label="0.6")
                title = col
                if not isinstance(thr, str) and thr is not None:
                    ax.axvline(thr, color="C0", ls=":", lw=1.5, label="FAR 1 % (clean)")
                    m = res[f]["clean"] if col == "clean" else res[f][p][col]
                    e = tar_entry(m, "1%", "clean")
                    if e is not None:
                        title += f"\nTAR {100 * e['tar']:.1f} / FAR {100 * e['far']:.2f} %"
                ax.set_title(title, fontsize=8)
                ax.tick_params(labelsize=7)
                if c == 0:
                    ax.set_ylabel(f"{f}: pairs", fontsize=8)
                if r == len(framings) - 1:
                    ax.set_xlabel("dlib distance", fontsize=8)
        axes[0][0].legend(fontsize=6, loc="upper right")
        fig.suptitle(
            f"preset {p}: dlib distances, {meta['n_pairs']} LFW pairs ({meta['pairs']}); "
            "clean = undegraded images\ntitles: TAR / FAR at the threshold set for FAR 1 % on "
            "the clean pairs (dotted); dashed: 0.6",
            fontsize=9,
        )
        fig.tight_layout()
        path = out_dir / f"dist_{p}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def _grids(out: dict, out_dir: Path, grid_imgs: dict[str, dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(out["meta"]["restorers"])
    paths = []
    rows = sorted(grid_imgs)
    if not rows:
        return paths
    for f in out["meta"]["framings"]:
        for p in [p for p in ("x4", "x8") if p in out["meta"]["presets"]]:
            cols = ["degraded", *labels, "clean"]
            fig, axes = plt.subplots(
                len(rows), len(cols), figsize=(1.9 * len(cols), 1.9 * len(rows)), squeeze=False
            )
            for r, rel in enumerate(rows):
                for c, col in enumerate(cols):
                    img = grid_imgs[rel][(f, "clean", "clean") if col == "clean" else (f, p, col)]
                    if col == "degraded":  # show the real pixels: nearest-neighbour to 160
                        img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
                    ax = axes[r][c]
                    ax.imshow(img[:, :, ::-1])
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if r == 0:
                        ax.set_title(col, fontsize=9)
                    if c == 0:
                        ax.set_ylabel(Path(rel).parent.name.replace("_", " ")[:18], fontsize=7)
            fig.suptitle(f"preset {p}, framing {f}", fontsize=10)
            fig.tight_layout()
            path = out_dir / f"grid_{p}{_suffix(f)}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            paths.append(path)
    return paths


def write_report(
    out: dict,
    out_dir: Path,
    grid_imgs: dict[str, dict] | None = None,
    dists: dict[str, np.ndarray] | None = None,
) -> None:
    """results.json, results.md, bars_*.png, (given the images) grid_*.png and (given the
    distances, or OUT/distances.npz) dist_<preset>.png."""
    out = upgrade(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    (out_dir / "results.md").write_text(markdown(out))
    _bar_charts(out, out_dir)
    if grid_imgs:
        _grids(out, out_dir, grid_imgs)
    if dists is None and out["meta"]["identity"] and (out_dir / "distances.npz").exists():
        dists = dict(np.load(out_dir / "distances.npz"))
    if dists is not None and out["meta"]["identity"]:
        _distance_histograms(out, out_dir, dists)


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=Path("../shared/data/faces/lfw"))
    ap.add_argument("--pairs-file", type=Path, default=None, help="default: LFW/pairs.txt")
    ap.add_argument(
        "--pairs",
        default="600",
        help="all (the 6,000 that count), stratified:N (N/(2*folds) per fold and class, fixed "
        "pick) or N (the first N/(2*folds) per fold and class)",
    )
    ap.add_argument("--presets", default=",".join(EVAL_PRESETS))
    ap.add_argument(
        "--framings", default="lfw", help=f"comma-separated, some of {', '.join(FRAMINGS)}"
    )
    ap.add_argument("--restorers", default="bicubic,classical")
    ap.add_argument("--out", type=Path, default=Path("var/eval/restore"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid-faces", type=int, default=4)
    ap.add_argument("--model-input", type=int, default=DEFAULT_MODEL_INPUT)
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("var/eval/restore/cache"),
        help="clean-image descriptor cache, shared by runs",
    )
    ap.add_argument("--no-identity", action="store_true", help="PSNR/SSIM only (no dlib)")
    ap.add_argument(
        "--replot",
        action="store_true",
        help="only rewrite results.md and the charts from OUT/results.json (and distances.npz)",
    )
    a = ap.parse_args(argv)
    if a.replot:
        out = json.loads((a.out / "results.json").read_text())
        write_report(out, a.out)
        print(markdown(out))
        return 0

    presets = [p.strip() for p in a.presets.split(",") if p.strip()]
    bad = [p for p in presets if p not in EVAL_PRESETS]
    if bad:
        ap.error(f"unknown preset(s) {bad}; one of {EVAL_PRESETS}")
    framings = [f.strip() for f in a.framings.split(",") if f.strip()]
    bad = [f for f in framings if f not in FRAMINGS]
    if bad or not framings or len(set(framings)) != len(framings):
        ap.error(f"--framings {a.framings!r}: distinct names among {', '.join(FRAMINGS)}")
    try:
        specs = [parse_restorer(s.strip()) for s in a.restorers.split(",") if s.strip()]
        how, n = parse_pairs(a.pairs)
        pairs, _ = read_pairs(a.pairs_file or a.lfw / "pairs.txt", n, how)
    except ValueError as e:
        ap.error(str(e))
    if len({s.label for s in specs}) != len(specs):
        ap.error("restorer labels must be distinct (use label=kind:PATH)")
    if "clean" in {s.label for s in specs}:
        ap.error("'clean' names the undegraded images: label the restorer otherwise")
    identity = not a.no_identity
    if identity and not judge_available():
        ap.error(
            "dlib / face_recognition_models missing: pip install -e '.[eval]' or --no-identity"
        )
    out = evaluate(
        a.lfw,
        pairs,
        presets,
        specs,
        a.out,
        identity=identity,
        workers=a.workers,
        seed=a.seed,
        grid_faces=a.grid_faces,
        model_input=a.model_input,
        cache_dir=a.cache_dir,
        framings=framings,
        pairs_selection=pairs_label(how, n),
    )
    print(markdown(out))
    print(f"report: {a.out}/results.json, results.md, dist_*.png, bars_*.png, grid_*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
