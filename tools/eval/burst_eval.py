"""Multi-frame restoration on LFW bursts (issue 11): does fusing K frames of a face make it
more recognisable than one frame?

    python -m tools.eval.burst_eval --pairs stratified:1200 --presets x4,x8 --out var/eval/burst

Protocol (fixed so numbers compare across runs; pairs, images, judge and metrics as in
`tools.eval.restore_eval`, LFW framing; `--framing tight|loose` reframes each clean image first,
as restore_eval's `--framings` does, and the bursts are made from that with the same seeds):

- Each image of the selected pairs becomes a burst of 8 frames
  (`tools.convert.restore.bursts.make_burst`, default motion: up to 1 camera pixel of shift,
  3 degrees, 3 % scale; the preset's blur, light and codec; independent noise per frame),
  seeded by crc32("relpath|preset") and `--seed`. K = 1, 2, 4, 8 use its first K frames, so
  a larger K only adds frames. Frame 0 is the clean image's own position: the reference.
- Frames are resized to the buffered view (80 px) and registered onto frame 0 with the
  product's code and frame rule (`edge.enhance.burst.register_burst`); frames it drops are
  not fused (the count kept is reported).
- Methods (output 160x160, compared with the clean image):
  `bicubic` (frame 0, the one frame, enlarged bicubic: the baseline every target is read
  against), `student` (the shipped single-frame INT8 student on frame 0's view),
  `average` (frame averaging, the classical baseline: registered views' mean, bicubic),
  `average_student` (the K = 8 mean through the single-frame student), `fusion` (the fusion
  INT8 network on the registered views; at K = 1 the product runs `student` instead, the
  network's own K = 1 output is reported for the card; below strength 1 blended over frame
  0's upscale) and `fusion_over_average` (below strength 1, the fusion network's output
  blended over the frame average's upscale instead: K >= 2).
- Identity: dlib descriptors, accuracy at 0.6, TAR at FAR 1 % with the threshold set on the
  clean pairs and on the preset's bicubic pairs, AUC (`restore_eval.identity_metrics`).

Writes OUT/results.json and OUT/results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from edge.enhance.burst import average_frames, register_burst
from edge.enhance.fusion import FusionNetwork
from edge.enhance.restorer import FaceRestorer, blend_with_plain, resize_to
from edge.runtime.int8_variant import describe_choice
from tools.convert.restore.bursts import make_burst, to_views
from tools.convert.restore.degrade import PRESETS, DegradeParams
from tools.eval.restore_eval import (
    FRAMINGS,
    SIZE,
    CleanCache,
    DlibJudge,
    far_thresholds,
    identity_metrics,
    judge_box,
    load_clean,
    pairs_label,
    parse_pairs,
    psnr,
    read_pairs,
    reframe,
    ssim,
    unique_images,
)

KS = (1, 2, 4, 8)
METHODS = ("bicubic", "student", "average", "average_student", "fusion", "fusion_over_average")
# x2: a face seen with the eyes 20.6 px apart, the buffered 80 px view's own resolution (the
# largest face frame averaging can fuse without shrinking it), twice the network's gate.
# x3: eyes 13.7 px apart, between the network's input (10.3 px) and the view's (20.6 px), with
# x4's and x8's blur (factor / 2), noise and codec.
BURST_PRESETS: dict[str, DegradeParams] = {
    **PRESETS,
    "x2": DegradeParams(factor=2, blur_sigma=1),
    "x3": DegradeParams(factor=3, blur_sigma=1.5),
}
DEFAULT_LFW = Path(__file__).resolve().parents[2].parent / "shared/data/faces/lfw"


def conditions(
    methods: tuple[str, ...] = METHODS, ks: tuple[int, ...] = KS
) -> list[tuple[str, int]]:
    """(method, K) pairs evaluated; `ks`: the burst sizes (bicubic and student: one frame)."""
    many = [k for k in ks if k > 1]
    out = [("bicubic", 1), ("student", 1)]
    out += [("average", k) for k in many]
    out += [("average_student", max(KS))] if max(KS) in ks else []
    out += [("fusion", k) for k in ks]
    out += [("fusion_over_average", k) for k in many]
    return [(m, k) for m, k in out if m in methods]


class Methods:
    def __init__(self, precision: str = "int8", strength: float = 1.0):
        """`strength`: the product's enhance.restore.strength, applied as the daemon does: the
        student's and the fusion network's change blended over frame 0's plain upscale."""
        self.student = FaceRestorer("onnx", precision, 1, strength=strength)
        self.fusion = FusionNetwork(precision, 1)
        self.strength = strength

    def restore(
        self,
        frames: list[np.ndarray],
        views: list[np.ndarray],
        methods: tuple[str, ...] = METHODS,
        ks: tuple[int, ...] = KS,
    ) -> dict:
        """{(method, K): 160x160 BGR} for one burst and the `methods` asked for; also the
        frames kept per K."""
        out: dict = {}
        out[("bicubic", 1)] = cv2.resize(frames[0], (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        if "student" in methods:
            out[("student", 1)] = self.student(views[0])
        kept = {}
        for k in ks:
            reg = register_burst(views[0], views[1:k])
            kept[k] = len(reg.views)
            if "fusion" in methods or "fusion_over_average" in methods:
                fused = self.fusion(reg.views)
                if "fusion" in methods:
                    out[("fusion", k)] = blend_with_plain(fused, views[0], self.strength)
            if k > 1:
                mean = average_frames(reg.views)
                if "fusion_over_average" in methods:
                    out[("fusion_over_average", k)] = blend_with_plain(fused, mean, self.strength)
                if "average" in methods:
                    out[("average", k)] = resize_to(mean, (SIZE, SIZE))
                if k == max(KS) and "average_student" in methods:
                    out[("average_student", k)] = self.student(mean)
        return {"images": out, "kept": kept}


_M: Methods | None = None
_J: DlibJudge | None = None
_ARGS: dict = {}


def _init(args: dict) -> None:
    global _M, _J, _ARGS
    cv2.setNumThreads(1)
    _M, _ARGS = Methods(args["precision"], args["strength"]), args
    _J = DlibJudge() if args["identity"] else None


def _process(task: tuple[int, str]) -> dict:
    idx, rel = task
    framing = _ARGS["framing"]
    clean = reframe(load_clean(Path(_ARGS["lfw"]), rel), framing)
    box = judge_box(framing)
    res = {"idx": idx, "q": {}, "desc": {}, "kept": {}}
    for preset in _ARGS["presets"]:
        rng = np.random.default_rng([_ARGS["seed"], zlib.crc32(f"{rel}|{preset}".encode())])
        burst = make_burst(clean, BURST_PRESETS[preset], max(KS), rng)
        out = _M.restore(burst.frames, to_views(burst), _ARGS["methods"], _ARGS["ks"])
        for (method, k), img in out["images"].items():
            key = (preset, method, k)
            res["q"][key] = (psnr(img, clean), ssim(img, clean))
            if _J is not None:
                res["desc"][key] = _J(img, box)
        for k, n in out["kept"].items():
            res["kept"][(preset, k)] = n
    return res


def evaluate(args) -> dict:
    how, n = parse_pairs(args.pairs)
    pairs, _ = read_pairs(args.lfw / "pairs.txt", n, how)
    images = unique_images(pairs)
    index = {r: i for i, r in enumerate(images)}
    presets = args.presets.split(",")
    methods = tuple(m for m in args.methods.split(",") if m) + ("bicubic",)
    unknown = sorted((set(methods) - set(METHODS)) | (set(presets) - set(BURST_PRESETS)))
    if unknown:
        raise SystemExit(f"unknown methods or presets: {unknown}")
    ks = tuple(sorted({int(k) for k in args.ks.split(",")}))
    if not ks or not set(ks) <= set(KS):
        raise SystemExit(f"--ks: some of {KS}")
    keys = [(p, m, k) for p in presets for m, k in conditions(methods, ks)]
    q = {key: np.zeros((len(images), 2)) for key in keys}
    desc = {key: np.zeros((len(images), 128), np.float32) for key in keys}
    kept = {(p, k): np.zeros(len(images)) for p in presets for k in ks}
    shared = {"lfw": str(args.lfw), "presets": presets, "seed": args.seed,
              "identity": not args.no_identity, "precision": args.precision,
              "methods": methods, "strength": args.strength, "ks": ks,
              "framing": args.framing}  # fmt: skip
    t0 = time.time()
    tasks = list(enumerate(images))
    if args.workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(args.workers, initializer=_init, initargs=(shared,))
        results = pool.imap_unordered(_process, tasks, chunksize=2)
    else:
        _init(shared)
        pool, results = None, map(_process, tasks)
    try:
        from tqdm import tqdm

        results = tqdm(results, total=len(tasks), desc="images", file=sys.stderr)
    except ImportError:
        pass
    for r in results:
        i = r["idx"]
        for key, v in r["q"].items():
            q[key][i] = v
        for key, v in r["desc"].items():
            desc[key][i] = v
        for key, v in r["kept"].items():
            kept[key][i] = v
    if pool is not None:
        pool.close()
        pool.join()

    same = np.array([p.same for p in pairs], bool)
    folds = np.array([p.fold for p in pairs])
    ia = np.array([index[p.a] for p in pairs])
    ib = np.array([index[p.b] for p in pairs])
    results: dict = {}
    clean_refs = None
    if not args.no_identity:
        cache = CleanCache(args.cache_dir, args.framing)
        missing = [r for r in images if r not in cache.data]
        if missing:
            judge = DlibJudge()
            for r in missing:
                clean = reframe(load_clean(args.lfw, r), args.framing)
                cache.data[r] = judge(clean, judge_box(args.framing))
            cache.save()
        clean_desc = np.stack([cache.data[r] for r in images])
        d_clean = np.linalg.norm(clean_desc[ia] - clean_desc[ib], axis=1)
        clean_refs = far_thresholds(d_clean, same)
        results["clean"] = identity_metrics(d_clean, same, folds, {"clean": clean_refs})
    for p in presets:
        results[p] = {}
        d_bic = None
        if clean_refs is not None:
            d_bic = np.linalg.norm(
                desc[(p, "bicubic", 1)][ia] - desc[(p, "bicubic", 1)][ib], axis=1
            )
        for m, k in conditions(methods, ks):
            row = {"psnr": round(float(q[(p, m, k)][:, 0].mean()), 3),
                   "ssim": round(float(q[(p, m, k)][:, 1].mean()), 4),
                   "frames_kept": round(float(kept[(p, k)].mean()), 2) if k > 1 else 1.0}  # fmt: skip
            if clean_refs is not None:
                d = np.linalg.norm(desc[(p, m, k)][ia] - desc[(p, m, k)][ib], axis=1)
                refs = {"clean": clean_refs, "bicubic": far_thresholds(d_bic, same)}
                row["identity"] = identity_metrics(d, same, folds, refs)
            results[p][f"{m}_k{k}"] = row
    meta = {
        "pairs": pairs_label(how, n),
        "n_pairs": len(pairs),
        "n_images": len(images),
        "presets": presets,
        "framing": args.framing,
        "ks": list(ks),
        "precision": args.precision,
        "strength": args.strength,
        # Which integer format the INT8 ONNX networks ran in (U8S8 on VNNI CPUs, else U8U8).
        "onnx_int8": describe_choice(),
        "seed": args.seed,
        "seconds": round(time.time() - t0, 1),
        "command": " ".join(["python -m tools.eval.burst_eval", *sys.argv[1:]]),
    }
    return {"meta": meta, "results": results}


def _pct(v) -> str:
    return f"{100 * v:.1f}" if isinstance(v, (int, float)) else "n/a"


def report_md(out: dict) -> str:
    """The tables of OUT/results.md. TAR columns: at equal FAR 1 % (each method's threshold
    set on its own different-person pairs, the ROC point) and at the threshold that gives FAR
    1 % to the preset's one-frame bicubic pairs (with the FAR the method reaches there)."""
    meta, res = out["meta"], out["results"]
    lines = [f"# Multi-frame restoration on LFW bursts ({meta['pairs']}, {meta['n_pairs']} pairs)",
             "", f"`{meta['command']}`", "",
             f"Network strength (enhance.restore.strength): {meta.get('strength', 1.0):g}", "",
             f"Framing: {meta.get('framing', 'lfw')}", "",
             *([meta["onnx_int8"], ""] if meta.get("onnx_int8") else [])]  # fmt: skip
    for p in meta["presets"]:
        lines += [f"## {p}", "", "| method | K | frames kept | PSNR | SSIM | acc@0.6 | "
                  "TAR / FAR @0.6 | TAR@FAR1% (equal FAR) | TAR (FAR) at bicubic thr. | AUC |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, row in res[p].items():
            method, k = name.rsplit("_k", 1)
            ident = row.get("identity", {})
            at1 = ident.get("tar_at_far", {}).get("1%", {})
            at1 = at1 if isinstance(at1, dict) else {}
            own, bic = at1.get("own", {}), at1.get("bicubic", {})
            lines.append(
                f"| {method} | {k} | {row['frames_kept']} | {row['psnr']:.2f} | "
                f"{row['ssim']:.4f} | {_pct(ident.get('acc_at_0.6'))} | "
                f"{_pct(ident.get('tar_at_0.6'))} / {_pct(ident.get('far_at_0.6'))} | "
                f"{_pct(own.get('tar'))} | {_pct(bic.get('tar'))} ({_pct(bic.get('far'))}) | "
                f"{ident.get('auc', float('nan')):.4f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    ap.add_argument("--pairs", default="stratified:1200")
    ap.add_argument("--presets", default="x4,x8",
                    help=f"of {', '.join(BURST_PRESETS)}")  # fmt: skip
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="methods to run (bicubic always runs: the baseline)")  # fmt: skip
    ap.add_argument("--precision", choices=["int8", "fp32"], default="int8")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ks", default=",".join(map(str, KS)),
                    help="burst sizes K to evaluate (bursts are always made of 8 frames)")  # fmt: skip
    ap.add_argument("--strength", type=float, default=1.0,
                    help="enhance.restore.strength for the student and the fusion network")  # fmt: skip
    ap.add_argument("--framing", choices=sorted(FRAMINGS), default="lfw",
                    help="the clean image reframed first, as restore_eval --framings: "
                    "tight = 20 %% closer (ArcFace-like crops), loose = 20 %% wider")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-identity", action="store_true")
    ap.add_argument("--cache-dir", type=Path, default=Path("var/eval/cache"))
    ap.add_argument("--out", type=Path, default=Path("var/eval/burst"))
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite OUT/results.md from OUT/results.json, evaluating nothing")  # fmt: skip
    args = ap.parse_args(argv)
    if args.report_only:
        out = json.loads((args.out / "results.json").read_text())
    else:
        out = evaluate(args)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(out, indent=1) + "\n")
    md = report_md(out)
    (args.out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
