"""Train the multi-frame fusion student on synthetic bursts (CPU or GPU).

    python -m tools.convert.restore.train_fusion --minutes 40 --threads 1
    python -m tools.convert.restore.train_fusion --resume --minutes 20

Starts from the shipped single-frame student (`--student`, the FP32 ONNX file read back into
torch). Every step draws `--batch` bursts, each of K frames (K from `--k-choices`, the same K
for the whole batch; K = 1 keeps the single-frame case trained):

- a UTKFace training chip framed like LFW with the restorer's training jitter (`frame_face`);
- camera settings as the student's last stage drew them: `--preset-mix` jittered evaluation
  presets, otherwise `random_params`;
- a burst (`tools.convert.restore.bursts.make_burst`): frame 0 as it is, the others moved by
  landmark-sized errors and degraded with independent noise and codec; with probability
  `--outlier` one frame is another face;
- the frames resized to the buffered view (80 px) and registered onto frame 0 with the
  product's own code (`edge.enhance.burst.register_burst`, its frame rule included), so the
  network learns from what the daemon will give it, dropped frames and all; then area-resized
  to the network's 40 px input;
- target: the clean face with the draw's light kept (as the student's `--keep-light 1.0`).

Loss: L1 + `--w-grad` image-gradient L1, weighted by the framing mask (reflected padding
counts less), as the student's. Validation every `--ckpt-every` steps on fixed held-out
bursts (x4 and x8, K = 1 and 8): PSNR of the fusion student, of the single-frame student on
frame 0, and of bicubic on frame 0. Checkpoints and a JSONL log go to `--out` (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from edge.enhance.burst import register_burst
from tools.convert.restore.bursts import make_burst, to_views
from tools.convert.restore.common import Ema, gradient_l1, log, save_ckpt, seed_all, weighted_l1
from tools.convert.restore.data import (
    DEFAULT_UTK,
    apply_light,
    around_preset,
    cache_images,
    frame_face,
    list_split,
    psnr,
    to_tensor,
)
from tools.convert.restore.degrade import PRESETS, random_params
from tools.convert.restore.fusion import FusionStudent
from tools.convert.restore.identity import load_student_from_onnx

DEFAULT_STUDENT = Path(__file__).resolve().parents[3] / "models/quantized/restore_student_fp32.onnx"
HR, LR = 160, 40


def burst_tensors(
    clean: np.ndarray, params, k: int, rng: np.random.Generator, outlier: np.ndarray | None
) -> torch.Tensor:
    """The network's input for one burst: K' x 3 x 40 x 40 (K' = frames kept)."""
    burst = make_burst(clean, params, k, rng, outlier=outlier)
    views = to_views(burst)
    reg = register_burst(views[0], views[1:])
    small = [cv2.resize(v, (LR, LR), interpolation=cv2.INTER_AREA) for v in reg.views]
    return torch.stack([to_tensor(s) for s in small])


class Bursts(IterableDataset):
    """Infinite batches: (frames B x K x 3 x 40 x 40, mask B x K, target B x 3 x 160 x 160,
    loss weight B x 1 x 160 x 160)."""

    def __init__(self, chips: np.ndarray, args, seed: int):
        self.chips, self.args, self.seed = chips, args, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        a = self.args
        ks = [int(k) for k in a.k_choices.split(",")]
        while True:
            k = int(rng.choice(ks))
            xs, targets, masks = [], [], []
            for _ in range(a.batch):
                i = int(rng.integers(len(self.chips)))
                clean, mask = frame_face(self.chips[i], HR, rng)
                params = around_preset(rng) if rng.random() < a.preset_mix else random_params(rng)
                other = None
                if k > 1 and rng.random() < a.outlier:
                    j = int(rng.integers(len(self.chips)))
                    other = frame_face(self.chips[j], HR, rng)[0]
                xs.append(burst_tensors(clean, params, k, rng, other))
                targets.append(to_tensor(apply_light(clean, params)))
                masks.append(torch.from_numpy(mask)[None])
            kmax = max(len(x) for x in xs)
            frames = torch.zeros(len(xs), kmax, 3, LR, LR)
            valid = torch.zeros(len(xs), kmax, dtype=torch.bool)
            for b, x in enumerate(xs):
                frames[b, : len(x)] = x
                valid[b, : len(x)] = True
            yield frames, valid, torch.stack(targets), torch.stack(masks)


def make_val(chips: np.ndarray, seed: int = 1234) -> dict:
    """Fixed held-out bursts: {(preset, K): (frames, valid, target)}."""
    out = {}
    for preset in ("x4", "x8"):
        for k in (1, 8):
            xs, ys = [], []
            for i, chip in enumerate(chips):
                rng = np.random.default_rng([seed, i, k, 8 if preset == "x8" else 4])
                clean, _ = frame_face(chip, HR)
                xs.append(burst_tensors(clean, PRESETS[preset], k, rng, None))
                ys.append(to_tensor(clean))
            kmax = max(len(x) for x in xs)
            frames = torch.zeros(len(xs), kmax, 3, LR, LR)
            valid = torch.zeros(len(xs), kmax, dtype=torch.bool)
            for b, x in enumerate(xs):
                frames[b, : len(x)], valid[b, : len(x)] = x, True
            out[(preset, k)] = (frames, valid, torch.stack(ys))
    return out


@torch.no_grad()
def validate(net: FusionStudent, student, val: dict) -> dict:
    was = net.training
    net.eval()
    res = {}
    for (preset, k), (frames, valid, y) in val.items():
        pred = torch.cat([net(frames[i : i + 16], valid[i : i + 16]) for i in range(0, len(y), 16)])
        row = {"fusion": round(float(psnr(pred, y).mean()), 3)}
        if k == 1:
            single = torch.cat([student(frames[i : i + 16, 0]) for i in range(0, len(y), 16)])
            row["student"] = round(float(psnr(single, y).mean()), 3)
            up = torch.nn.functional.interpolate(frames[:, 0], size=HR, mode="bicubic")
            row["bicubic"] = round(float(psnr(up.clamp(0, 1), y).mean()), 3)
        row["frames_kept"] = round(float(valid.sum(1).float().mean()), 2)
        res[f"{preset}_k{k}"] = row
    net.train(was)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_UTK)
    ap.add_argument("--student", type=Path, default=DEFAULT_STUDENT)
    ap.add_argument("--out", type=Path, default=Path("var/fusion"))
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--k-choices", default="1,2,4,8,8")
    ap.add_argument("--n-enc", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--w-grad", type=float, default=0.5)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--preset-mix", type=float, default=0.7)
    ap.add_argument("--outlier", type=float, default=0.1)
    ap.add_argument("--max-images", type=int, default=6000)
    ap.add_argument("--val-images", type=int, default=48)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_all(args.seed)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(1)

    student = load_student_from_onnx(args.student).eval()
    net = FusionStudent(student, n_enc=args.n_enc).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    # The weights validated and exported are an EMA of the trained ones (as the student's):
    # Adam's step noise alone cost the single-frame case 0.1 dB in a first run.
    ema = Ema(net, args.ema)
    step = 0
    ckpt = args.out / "last.pt"
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        net.load_state_dict(state["net"])
        ema.net.load_state_dict(state.get("ema", state["net"]))
        opt.load_state_dict(state["opt"])
        step = state["step"]
        print(f"resumed at step {step}")

    def save() -> None:
        save_ckpt(ckpt, {"net": net.state_dict(), "ema": ema.net.state_dict(), "step": step,
                         "opt": opt.state_dict(), "n_enc": args.n_enc})  # fmt: skip

    train_files, val_files = list_split(args.data, 300, 0, args.max_images)
    chips = cache_images(train_files, HR)
    val = make_val(cache_images(val_files[: args.val_images], HR, progress=False))
    if step == 0:
        log(args.out, {"step": 0, "val": validate(net, student, val)})
    loader = DataLoader(
        Bursts(chips, args, args.seed + step), batch_size=None, num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )  # fmt: skip
    start = time.monotonic()
    budget = args.minutes * 60 if args.minutes else math.inf
    losses = []
    net.train()
    for frames, valid, target, mask in loader:
        if step >= args.steps or time.monotonic() - start > budget:
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup)
        lr *= 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        frames, valid = frames.to(device), valid.to(device)
        target, mask = target.to(device), mask.to(device)
        pred = net(frames, valid)
        loss = weighted_l1(pred, target, mask) + args.w_grad * gradient_l1(pred, target, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(net, step)
        losses.append(float(loss.detach()))
        step += 1
        if step % args.ckpt_every == 0:
            rec = {
                "step": step,
                "loss": round(float(np.mean(losses)), 5),
                "lr": lr,
                "min": round((time.monotonic() - start) / 60, 1),
                "val": validate(ema.net, student, val),
            }
            losses = []
            log(args.out, rec)
            print(json.dumps(rec), flush=True)
            save()
    save()
    rec = {"step": step, "final": True, "val": validate(ema.net, student, val)}
    log(args.out, rec)
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
