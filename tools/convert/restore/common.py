"""Shared plumbing of the restoration training scripts: arguments, data loaders, seeded
state, atomic checkpoints with resume, validation PSNR and a JSONL log."""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tools.convert.restore.data import (
    DEFAULT_UTK,
    FaceRestoreDataset,
    bicubic,
    cache_images,
    list_split,
    psnr,
    worker_init,
)

VAL_PRESETS = ("random", "x4", "x8")


def base_parser(desc: str, out: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=desc)
    ap.add_argument("--data", type=Path, default=DEFAULT_UTK, help="UTKFace folder")
    ap.add_argument("--out", type=Path, default=Path(out), help="checkpoints and log")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--steps", type=int, default=100_000, help="stop at this step")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this wall time")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr-size", type=int, default=40, help="network input side")
    ap.add_argument("--hr-size", type=int, default=160, help="network output side")
    ap.add_argument("--n-val", type=int, default=300, help="held-out validation files")
    ap.add_argument("--val-images", type=int, default=150, help="of them, used at checkpoints")
    ap.add_argument("--max-images", type=int, default=None, help="cap the training files")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--keep-light",
        type=float,
        default=1.0,
        help="share of targets that keep the degradation's exposure/colour (detail-only)",
    )
    ap.add_argument(
        "--preset-mix", type=float, default=0.5, help="share of degradations around the presets"
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    return ap


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(args) -> torch.device:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    args.out.mkdir(parents=True, exist_ok=True)
    seed_all(args.seed)
    return torch.device(args.device)


def make_data(args, start_step: int = 0):
    """(infinite training iterator, validation batches by preset)."""
    # The split depends on the data seed only (not on --seed), so every stage holds out the
    # same files.
    train_files, val_files = list_split(args.data, args.n_val, 0, args.max_images)
    (args.out / "val_files.txt").write_text("\n".join(Path(f).name for f in val_files) + "\n")
    images = cache_images(train_files, args.hr_size)
    ds = FaceRestoreDataset(
        images,
        args.lr_size,
        args.hr_size,
        True,
        args.seed + start_step,
        None,
        args.preset_mix,
        args.keep_light,
    )
    gen = torch.Generator().manual_seed(args.seed + start_step)
    loader = DataLoader(
        ds,
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        worker_init_fn=worker_init,
        generator=gen,
        persistent_workers=args.workers > 0,
        pin_memory=args.device == "cuda",
    )

    def forever():
        while True:
            yield from loader

    val_imgs = cache_images(val_files[: args.val_images], args.hr_size, progress=False)
    val = {}
    for name in VAL_PRESETS:
        vds = FaceRestoreDataset(
            val_imgs, args.lr_size, args.hr_size, False, 1234, None if name == "random" else name
        )
        items = [vds[i] for i in range(len(vds))]
        val[name] = tuple(torch.stack(t) for t in zip(*items, strict=True))
    return forever(), val


@torch.no_grad()
def validate(net: nn.Module, val: dict, device: torch.device, hr: int) -> dict:
    """Mean PSNR (dB, full hr x hr crop) of the network and of bicubic, per validation set."""
    was = net.training
    net.eval()
    out = {}
    for name, (x, y, _m) in val.items():
        preds = torch.cat([net(x[i : i + 32].to(device)).cpu() for i in range(0, len(x), 32)])
        out[name] = {
            "psnr": round(float(psnr(preds, y).mean()), 3),
            "bicubic": round(float(psnr(bicubic(x, hr), y).mean()), 3),
        }
    net.train(was)
    return out


def save_ckpt(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_ckpt(path: Path, device: torch.device) -> dict:
    return torch.load(path, map_location=device, weights_only=False)


def log(out: Path, record: dict) -> None:
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


class Ema:
    """Exponential moving average of a network's weights (the one validated and exported)."""

    def __init__(self, net: nn.Module, decay: float = 0.999):
        import copy

        self.net = copy.deepcopy(net).eval()
        self.decay = decay
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.net.state_dict().values(), net.state_dict().values(), strict=True):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(p.detach(), alpha=1 - d)
            else:
                e.copy_(p)


class Budget:
    def __init__(self, minutes: float | None):
        self.t0, self.minutes = time.monotonic(), minutes

    def over(self) -> bool:
        return self.minutes is not None and time.monotonic() - self.t0 > self.minutes * 60

    def elapsed_min(self) -> float:
        return (time.monotonic() - self.t0) / 60


def gradient_l1(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical finite differences, weighted."""
    dxa, dxb = a[..., :, 1:] - a[..., :, :-1], b[..., :, 1:] - b[..., :, :-1]
    dya, dyb = a[..., 1:, :] - a[..., :-1, :], b[..., 1:, :] - b[..., :-1, :]
    return ((dxa - dxb).abs() * w[..., :, 1:]).mean() + ((dya - dyb).abs() * w[..., 1:, :]).mean()


def weighted_l1(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return ((a - b).abs() * w).mean()
