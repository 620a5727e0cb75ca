"""Restoration evaluation on LFW (issue 3, item 5): image quality and identity, per preset.

    python -m tools.eval.restore_eval --lfw ../shared/data/faces/lfw --pairs 600 \
        --presets x4,x8,warm,cold,low,medium,bright,motion \
        --restorers bicubic,classical[,student_int8=onnx:PATH,tflite:PATH,teacher=torch:PATH] \
        --out var/eval/restore

Protocol (fixed so numbers compare across runs):

- Images: LFW deep-funneled 160x160 crops, the images named by the standard ``pairs.txt``.
  ``--pairs N`` takes, in every fold, the first N/(2*folds) same-person pairs and the first
  N/(2*folds) different-person pairs (600 -> 30 + 30 per fold, 10 folds); ``all`` = 6,000.
- For each preset: clean image -> ``tools.convert.restore.degrade.degrade(clean, preset, rng)`` with a
  seeded rng per (image, preset) (seed = crc32 of "relpath|preset" and ``--seed``), so every
  restorer sees the same degraded input and an image's degradation does not depend on N ->
  restorer -> 160x160 BGR (output resized with INTER_AREA when larger, INTER_CUBIC when
  smaller).
- PSNR and SSIM on the luma Y = 0.299 R + 0.587 G + 0.114 B (full range 0..255, float),
  against the clean image; SSIM of Wang et al. (11x11 Gaussian window, sigma 1.5, K1 0.01,
  K2 0.03, L 255, 'valid' region: 5-pixel border dropped). Averaged over the distinct images
  of the selected pairs.
- Identity, dlib as an independent judge: each image (clean, or one restorer's output for
  one preset) at 160x160, dlib's 5-point landmarks on the fixed box (22, 22, 138, 138),
  then the 128-d ``dlib_face_recognition_resnet_model_v1`` descriptor (no jitter). A pair
  is compared within one condition (both images clean, or both degraded by the preset and
  restored by the same restorer). Accuracy at Euclidean distance < 0.6, and at the best
  threshold by cross-validation over the folds of ``pairs.txt`` (threshold chosen on the
  other folds, tested on each fold, averaged).

Restorers are a small registry (``RESTORERS``): ``bicubic``, ``classical`` and model files
``onnx:PATH``, ``tflite:PATH``, ``torch:PATH`` (TorchScript). A spec may carry a label,
``student_int8=onnx:models/quantized/student_int8.onnx``. The model I/O contract is in
``edge.enhance.restorer.to_model_input`` / ``from_model_output``.

Clean-image descriptors are cached under ``--cache-dir`` (var/eval/restore/cache); per-image
PSNR/SSIM and descriptors go to ``OUT/per_image.npz`` (to score other pair subsets without
recomputing). dlib, matplotlib and tqdm are imported lazily (the ``eval`` extra);
``--no-identity`` runs without dlib. Other options: ``--workers`` (2: one process per core
for dlib, measured 1.5x faster than 1 on this shared 2-core machine), ``--seed``,
``--grid-faces``, ``--model-input`` (side for models without a static input size),
``--replot`` (rewrite results.md and the bar charts from OUT/results.json).
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

import cv2
import numpy as np

from edge.enhance.restorer import from_model_output, resize_to, to_model_input
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


def read_pairs(pairs_path: Path | str, n: int | None = None) -> tuple[list[Pair], int]:
    """The standard LFW ``pairs.txt``: header ``folds  per_class``, then per fold
    ``per_class`` same-person lines and ``per_class`` different-person lines. ``n``: keep the
    first n/(2*folds) of each class in every fold (None: all)."""
    lines = Path(pairs_path).read_text().split("\n")
    folds, per_class = (int(v) for v in lines[0].split()[:2])
    if n is None:
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
    pairs: list[Pair] = []
    for f in range(folds):
        block = rows[2 * f * per_class : 2 * (f + 1) * per_class]
        for r in block[:keep]:
            pairs.append(Pair(_img_rel(r[0], r[1]), _img_rel(r[0], r[2]), True, f))
        for r in block[per_class : per_class + keep]:
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
    the restorer then sees the crop in its own (LFW) framing, so no reframing happens."""

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


RESTORERS: dict[str, Callable[..., Callable[[np.ndarray], np.ndarray]]] = {
    "edge": ProductChain,
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
    ``[label=]torch:PATH``."""
    label = None
    if "=" in spec.split(":", 1)[0]:
        label, spec = spec.split("=", 1)
    kind, _, arg = spec.partition(":")
    if kind not in RESTORERS:
        raise ValueError(f"unknown restorer {kind!r}; one of {', '.join(RESTORERS)}")
    if kind in ("onnx", "tflite", "torch", "edge") and not arg:
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
    """dlib 5-point landmarks on the fixed box, then the 128-d ResNet descriptor."""

    def __init__(self) -> None:
        import dlib

        sp, fr = dlib_model_paths()
        self.sp = dlib.shape_predictor(str(sp))
        self.fr = dlib.face_recognition_model_v1(str(fr))
        self.box = dlib.rectangle(*JUDGE_BOX)

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        rgb = np.ascontiguousarray(to_size(bgr)[:, :, ::-1])
        shape = self.sp(rgb, self.box)
        return np.asarray(self.fr.compute_face_descriptor(rgb, shape), np.float32)


def judge_signature() -> str:
    sp, fr = dlib_model_paths()
    h = hashlib.sha256()
    for p in (sp, fr):
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    h.update(repr((JUDGE_BOX, SIZE, "rgb", "jitter0")).encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- evaluation


@dataclass
class _Ctx:
    lfw: Path
    presets: list[str]
    specs: list[RestorerSpec]
    identity: bool
    need_clean: set[str]
    grid: set[str]
    seed: int
    model_input: int
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
    """All presets and restorers for one image."""
    idx, rel = task
    c = _CTX
    assert c is not None
    clean = load_clean(c.lfw, rel)
    out: dict = {"idx": idx, "rel": rel, "q": {}, "desc": {}, "grid": {}}
    if c.judge is not None and rel in c.need_clean:
        out["clean_desc"] = c.judge(clean)
    for preset in c.presets:
        deg = degrade_seeded(clean, rel, preset, c.seed)
        if rel in c.grid:
            out["grid"][(preset, "degraded")] = deg
        for spec, fn in zip(c.specs, c.restorers, strict=True):
            img = restore_to_size(fn, deg)
            out["q"][(preset, spec.label)] = (psnr(img, clean), ssim(img, clean))
            if c.judge is not None:
                out["desc"][(preset, spec.label)] = c.judge(img)
            if rel in c.grid:
                out["grid"][(preset, spec.label)] = img
    if rel in c.grid:
        out["grid"][("clean", "clean")] = clean
    return out


def _progress(it: Iterable, total: int, desc: str) -> Iterable:
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return tqdm(it, total=total, desc=desc, unit="img", smoothing=0.05, file=sys.stderr)


class CleanCache:
    """Clean-image descriptors by relative path, one .npz per judge signature."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / f"clean_dlib_{judge_signature()}.npz"
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
) -> dict:
    """Runs the protocol; returns the results dict (also the content of results.json).
    Clean descriptors are cached in ``cache_dir`` (default ``out_dir/cache``)."""
    t0 = time.time()
    images = unique_images(pairs)
    index = {r: i for i, r in enumerate(images)}
    labels = [s.label for s in specs]
    cache = CleanCache(cache_dir or out_dir / "cache") if identity else None
    need_clean = set(images) - set(cache.data) if cache else set()
    # grid faces: evenly spaced over the distinct images, deterministic
    grid = {images[i] for i in np.linspace(0, len(images) - 1, grid_faces).astype(int)}
    ctx = _Ctx(lfw, presets, specs, identity, need_clean, grid, seed, model_input)

    n = len(images)
    q = {(p, lb): np.zeros((n, 2)) for p in presets for lb in labels}
    desc = {(p, lb): np.zeros((n, 128), np.float32) for p in presets for lb in labels}
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
            if "clean_desc" in r and cache is not None:
                cache.data[r["rel"]] = r["clean_desc"]
            if r["grid"]:
                grid_imgs[r["rel"]] = r["grid"]
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    if cache is not None and need_clean:
        cache.save()
    # per-image values, for other pair subsets or protocols without recomputing
    per_image = {"images": np.array(images)}
    for (p, lb), v in q.items():
        per_image[f"psnr_ssim|{p}|{lb}"] = v
        if identity:
            per_image[f"desc|{p}|{lb}"] = desc[(p, lb)]
    if cache is not None:
        per_image["desc|clean|clean"] = np.stack([cache.data[r] for r in images])
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "per_image.npz", **per_image)
    elapsed = time.time() - t0

    ia = np.array([index[p.a] for p in pairs])
    ib = np.array([index[p.b] for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])

    def ident(d: np.ndarray) -> dict:
        dist = np.linalg.norm(d[ia] - d[ib], axis=1)
        best, t = acc_best_kfold(dist, same, folds)
        return {"acc_at_0.6": acc_at(dist, same), "acc_best_10fold": best, "best_threshold": t}

    res: dict = {}
    if cache is not None:
        res["clean"] = ident(per_image["desc|clean|clean"])
    for p in presets:
        res[p] = {}
        for lb in labels:
            m = {"psnr": float(np.mean(q[(p, lb)][:, 0])), "ssim": float(np.mean(q[(p, lb)][:, 1]))}
            if identity:
                m.update(ident(desc[(p, lb)]))
            res[p][lb] = m
        if "bicubic" in labels:
            for lb in labels:
                base = res[p]["bicubic"]
                res[p][lb]["delta_vs_bicubic"] = {
                    k: res[p][lb][k] - base[k] for k in METRICS if k in res[p][lb]
                }
    meta = {
        "lfw": str(lfw),
        "n_pairs": len(pairs),
        "n_same": int(same.sum()),
        "n_folds": int(len(np.unique(folds))),
        "n_images": n,
        "presets": presets,
        "restorers": {s.label: f"{s.kind}:{s.arg}" if s.arg else s.kind for s in specs},
        "identity": identity,
        "seed": seed,
        "workers": workers,
        "seconds": round(elapsed, 1),
        "clean_descriptors_cached": (n - len(need_clean)) if identity else 0,
        "protocol": PROTOCOL,
        "command": " ".join(["python -m tools.eval.restore_eval", *sys.argv[1:]]),
    }
    out = {"meta": meta, "results": res}
    write_report(out, out_dir, grid_imgs)
    return out


PROTOCOL = (
    "LFW 160x160 images of pairs.txt (first N/(2*folds) same + different pairs per fold); "
    "degrade(clean, preset, rng seeded by crc32(relpath|preset)); restorer -> 160x160 BGR; "
    "PSNR/SSIM on luma Y (0.299R+0.587G+0.114B, 0..255), SSIM 11x11 Gaussian sigma 1.5 valid; "
    "averaged over distinct images. Identity: dlib 5-point landmarks on box (22,22,138,138) "
    "of the 160x160 image, dlib_face_recognition_resnet_model_v1 descriptor (no jitter), both "
    "images of a pair in the same condition; accuracy at distance < 0.6 and at the best "
    "threshold chosen on the other folds (10-fold CV over the pairs.txt folds)."
)

METRICS = ["psnr", "ssim", "acc_at_0.6", "acc_best_10fold"]
METRIC_TITLES = {
    "psnr": "PSNR (dB, luma)",
    "ssim": "SSIM (luma)",
    "acc_at_0.6": "Verification accuracy at distance 0.6 (%)",
    "acc_best_10fold": "Verification accuracy at the best 10-fold threshold (%)",
}
SHORT_TITLES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "acc_at_0.6": "accuracy @ 0.6 (%)",
    "acc_best_10fold": "accuracy, best 10-fold (%)",
}


# ----------------------------------------------------------------------------- report


def _fmt(metric: str, v: float | None, delta: float | None = None) -> str:
    if v is None:
        return "-"
    if metric.startswith("acc"):
        s = f"{100 * v:.1f}"
        d = None if delta is None else f"{100 * delta:+.1f}"
    elif metric == "psnr":
        s, d = f"{v:.2f}", None if delta is None else f"{delta:+.2f}"
    else:
        s, d = f"{v:.4f}", None if delta is None else f"{delta:+.4f}"
    return s if d is None else f"{s} ({d})"


def markdown(out: dict) -> str:
    meta, res = out["meta"], out["results"]
    presets, labels = meta["presets"], list(meta["restorers"])
    lines = [
        "# Restoration evaluation on LFW",
        "",
        f"{meta['n_pairs']} pairs ({meta['n_same']} same, {meta['n_folds']} folds), "
        f"{meta['n_images']} distinct images; {meta['seconds']} s with {meta['workers']} "
        "worker(s).",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Protocol: {meta['protocol']}",
        "",
        "Values in brackets: difference to bicubic on the same preset.",
    ]
    for metric in METRICS:
        if metric.startswith("acc") and not meta["identity"]:
            continue
        with_clean = metric.startswith("acc") and "clean" in res
        cols = (["clean"] if with_clean else []) + presets
        lines += ["", f"## {METRIC_TITLES[metric]}", ""]
        lines.append("| restorer | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---:|" * len(cols))
        for lb in labels:
            cells = []
            for c in cols:
                if c == "clean":
                    cells.append(_fmt(metric, res["clean"][metric]))
                    continue
                m = res[c][lb]
                delta = m.get("delta_vs_bicubic", {}).get(metric) if lb != "bicubic" else None
                cells.append(_fmt(metric, m.get(metric), delta))
            lines.append(f"| {lb} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _bar_charts(out: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, res = out["meta"], out["results"]
    labels = list(meta["restorers"])
    metrics = [m for m in METRICS if meta["identity"] or not m.startswith("acc")]
    paths = []
    for p in meta["presets"]:
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2))
        for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
            scale = 100 if metric.startswith("acc") else 1
            vals = [res[p][lb][metric] * scale for lb in labels]
            bars = ax.bar(labels, vals, color=[f"C{i}" for i in range(len(labels))])
            ax.bar_label(bars, fmt="%.1f" if metric != "ssim" else "%.3f", fontsize=7)
            if metric.startswith("acc") and "clean" in res:
                ax.axhline(res["clean"][metric] * 100, color="k", ls="--", lw=1, label="clean")
                ax.legend(fontsize=7, loc="lower right")
            lo = min(vals)
            ax.set_ylim(lo - 0.15 * abs(lo) if metric != "ssim" else max(0, lo - 0.1), None)
            ax.set_title(SHORT_TITLES[metric], fontsize=9)
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        fig.suptitle(f"preset {p}: {meta['n_pairs']} LFW pairs", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"bars_{p}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _grids(out: dict, out_dir: Path, grid_imgs: dict[str, dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(out["meta"]["restorers"])
    paths = []
    for p in [p for p in ("x4", "x8") if p in out["meta"]["presets"]]:
        rows = sorted(grid_imgs)
        if not rows:
            continue
        cols = ["degraded", *labels, "clean"]
        fig, axes = plt.subplots(
            len(rows), len(cols), figsize=(1.9 * len(cols), 1.9 * len(rows)), squeeze=False
        )
        for r, rel in enumerate(rows):
            for c, col in enumerate(cols):
                img = grid_imgs[rel][("clean", "clean") if col == "clean" else (p, col)]
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
        fig.suptitle(f"preset {p}", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"grid_{p}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(out: dict, out_dir: Path, grid_imgs: dict[str, dict] | None = None) -> None:
    """results.json, results.md, bars_<preset>.png and (given the images) grid_<preset>.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    (out_dir / "results.md").write_text(markdown(out))
    _bar_charts(out, out_dir)
    if grid_imgs:
        _grids(out, out_dir, grid_imgs)


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=Path("../shared/data/faces/lfw"))
    ap.add_argument("--pairs-file", type=Path, default=None, help="default: LFW/pairs.txt")
    ap.add_argument("--pairs", default="600", help="N (multiple of 2*folds) or 'all'")
    ap.add_argument("--presets", default=",".join(EVAL_PRESETS))
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
        help="only rewrite results.md and bars from OUT/results.json",
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
    try:
        specs = [parse_restorer(s.strip()) for s in a.restorers.split(",") if s.strip()]
        n = None if a.pairs == "all" else int(a.pairs)
        pairs, _ = read_pairs(a.pairs_file or a.lfw / "pairs.txt", n)
    except ValueError as e:
        ap.error(str(e))
    if len({s.label for s in specs}) != len(specs):
        ap.error("restorer labels must be distinct (use label=kind:PATH)")
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
    )
    print(markdown(out))
    print(f"report: {a.out}/results.json, results.md, bars_*.png, grid_*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
