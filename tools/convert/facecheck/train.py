"""Train the face check's classifier (face / non-face on 32x32 aligned crops), export it to
ONNX and evaluate it leave-one-source-out.

Data: what ``mine.py`` stored (``var/facecheck/mined``) with the labels of the demo clips
(renderer ground truth), UTKFace (faces) and the hand labels of ``labels.py`` (the shared
videos and photos). Both classes get the same augmentation (small misalignment, flips,
downscaling to tiny-face sizes, blur, noise, JPEG, exposure, greyscale), so that a
degradation can never tell the classes apart.

    python -m tools.convert.facecheck.train --out var/facecheck/model            # ship model
    python -m tools.convert.facecheck.train --holdout crowd-night --out var/facecheck/loso-crowd-night
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
import torch.nn.functional as F
from torch import nn

from edge.shots.face_check import INPUT_CROP, INPUT_SIZE, STORE_SIZE
from tools.convert.facecheck.labels import load_labelled

TEXTURE_SHARE = 0.2  # of a whole batch, on average (two fifths of its negatives)
SOURCES = ("demo-corridor", "demo-crowd", "stage-speaker", "crowd-night", "photos")


class FaceNet(nn.Module):
    """Conv + ReLU only (INT8-friendly): 32 -> 16 -> 8 -> 4 -> one logit."""

    def __init__(self, c: tuple[int, int, int] = (16, 32, 48)):
        super().__init__()
        self.c1 = nn.Conv2d(3, c[0], 3, stride=2, padding=1)
        self.c1b = nn.Conv2d(c[0], c[0], 3, padding=1)
        self.c2 = nn.Conv2d(c[0], c[1], 3, stride=2, padding=1)
        self.c2b = nn.Conv2d(c[1], c[1], 3, padding=1)
        self.c3 = nn.Conv2d(c[1], c[2], 3, stride=2, padding=1)
        self.head = nn.Conv2d(c[2], 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c1(x))
        x = F.relu(self.c1b(x))
        x = F.relu(self.c2(x))
        x = F.relu(self.c2b(x))
        x = F.relu(self.c3(x))
        return self.head(x).flatten(1)


def augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stored 64x64 crop -> a degraded, slightly misaligned 32x32 network input (RGB 0..1)."""
    c = STORE_SIZE / 2
    angle = rng.uniform(-8, 8)
    scale = rng.uniform(0.92, 1.08)
    m = cv2.getRotationMatrix2D((c, c), angle, scale)
    m[:, 2] += rng.uniform(-2.5, 2.5, 2)
    img = cv2.warpAffine(crop, m, (STORE_SIZE, STORE_SIZE), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    o = (STORE_SIZE - INPUT_CROP) // 2
    img = np.ascontiguousarray(img[o : o + INPUT_CROP, o : o + INPUT_CROP])
    if rng.random() < 0.6:  # a small face: fewer real pixels than the network's input
        side = int(rng.uniform(10, INPUT_CROP))
        img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
        img = cv2.resize(img, (INPUT_CROP, INPUT_CROP), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.8))
    img = img.astype(np.float32)
    if rng.random() < 0.5:
        img = img * rng.uniform(0.35, 1.4) + rng.uniform(-25, 25)
    if rng.random() < 0.3:  # stage light, sodium lamps, dusk: dark and colour-cast
        img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** rng.uniform(1.0, 2.5)
        img = img * rng.uniform(0.7, 1.3, 3)
    if rng.random() < 0.4:
        img = img + rng.normal(0, rng.uniform(2, 10), img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        q = int(rng.uniform(25, 90))
        img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], 1)
    if rng.random() < 0.2:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    small = cv2.resize(img, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return small[:, :, ::-1].astype(np.float32).transpose(2, 0, 1) / 255.0


def texture_negative(rng: np.random.Generator) -> np.ndarray:
    """A synthetic textured non-face (64x64 BGR): gratings, checks, dots or colour blobs with
    soft folds. Clothing and furnishings at face size are what the mined negatives have too
    few of; none of it is a face, whatever the detector's landmarks say."""
    n = STORE_SIZE
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    a, b = rng.uniform(40, 230, 3), rng.uniform(40, 230, 3)
    period = rng.uniform(3, 20)
    theta = rng.uniform(0, np.pi)
    u = xs * np.cos(theta) + ys * np.sin(theta)
    v = -xs * np.sin(theta) + ys * np.cos(theta)
    kind = rng.integers(4)
    if kind == 0:  # stripes
        t = (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    elif kind == 1:  # checks
        t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    elif kind == 2:  # dots on a ground
        t = (np.hypot(u % period - period / 2, v % period - period / 2) < period / 4)
        t = t.astype(np.float32)
    else:  # blobs
        t = cv2.GaussianBlur(rng.random((n, n)).astype(np.float32), (0, 0), rng.uniform(2, 8))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = a * t[..., None] + b * (1 - t[..., None])
    folds = 1 + rng.uniform(0, 0.3) * np.sin(xs / n * rng.uniform(3, 9) + rng.uniform(0, 6))
    img = np.ascontiguousarray(img * folds[..., None])
    if rng.random() < 0.5:  # garment details: a placket with buttons, seams, a pocket
        x = int(rng.uniform(0.3, 0.7) * n)
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        for k in range(int(rng.integers(2, 5))):
            y = int(n * (0.15 + k * rng.uniform(0.18, 0.3)))
            cv2.circle(img, (x, y), int(rng.uniform(1.5, 4)), colour, -1)
        if rng.random() < 0.5:
            cv2.line(img, (x - 4, 0), (x - 4, n), tuple(c * 0.7 for c in colour), 1)
        if rng.random() < 0.4:
            px, py = int(rng.uniform(0, n * 0.6)), int(rng.uniform(0.4, 0.8) * n)
            cv2.rectangle(img, (px, py), (px + n // 4, py + n // 5), colour, 1)
    return np.clip(img, 0, 255).astype(np.uint8)


def plain(crop: np.ndarray) -> np.ndarray:
    """The inference path (edge.shots.face_check.network_input) without the batch axis."""
    from edge.shots.face_check import network_input

    return network_input(crop)[0]


def batches(crops, labels, batch, rng):
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    while True:  # balanced batches: the negatives are fewer but as important
        idx = np.concatenate([rng.choice(pos, batch // 2), rng.choice(neg, batch // 2)])
        x = np.stack([augment(crops[i], rng) for i in idx])
        for j in range(batch // 2, batch):  # some negatives: synthetic textures
            if rng.random() < TEXTURE_SHARE * 2:
                x[j] = augment(texture_negative(rng), rng)
        yield torch.from_numpy(x), torch.from_numpy(labels[idx].astype(np.float32))


def train(crops, labels, minutes: float, batch: int, seed: int, log=print) -> FaceNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = FaceNet()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    start, step = time.monotonic(), 0
    total_s = minutes * 60
    for x, y in batches(crops, labels, batch, rng):
        frac = (time.monotonic() - start) / total_s
        if frac >= 1:
            break
        for g in opt.param_groups:  # cosine decay over the time budget
            g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * frac))
        loss = F.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            log(f"step {step} loss {float(loss.detach()):.4f} ({frac * 100:.0f} %)")
    return net.eval()


@torch.no_grad()
def predict(net: FaceNet, crops: np.ndarray) -> np.ndarray:
    if len(crops) == 0:
        return np.zeros(0, np.float32)
    x = torch.from_numpy(np.stack([plain(c) for c in crops]))
    return torch.sigmoid(net(x).squeeze(1)).numpy()


def export_onnx(net: FaceNet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        net.eval(), (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), str(path), dynamo=False,
        input_names=["image"], output_names=["face_logit"], opset_version=17,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mined", type=Path, default=Path("var/facecheck/mined"))
    ap.add_argument("--out", type=Path, default=Path("var/facecheck/model"))
    ap.add_argument("--holdout", default="", help="leave this source out (evaluate on it)")
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_labelled(args.mined)
    keep = np.array([s != args.holdout for s in data.group])
    crops, labels = data.crops[keep], data.labels[keep]
    print(f"training on {len(labels)} crops: {int((labels == 1).sum())} faces, "
          f"{int((labels == 0).sum())} non-faces (held out: {args.holdout or 'none'})")
    net = train(crops, labels, args.minutes, args.batch, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out / "facenet.pt")
    export_onnx(net, args.out / "face_check_fp32.onnx")
    report = {}
    if args.holdout:
        held = ~keep
        p = predict(net, data.crops[held])
        report = {"holdout": args.holdout, "probs": p.tolist(),
                  "labels": data.labels[held].tolist(), "keys": [data.keys[i] for i in
                                                            np.flatnonzero(held)]}
    (args.out / "report.json").write_text(json.dumps(report))
    print("saved", args.out)


if __name__ == "__main__":
    main()
