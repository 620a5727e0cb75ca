"""Identity-preserving objectives for the restorer (issue 10, "identity first"), no
pretrained recognizer anywhere: dlib stays the judge at evaluation only.

- `IdentityEncoder`: a small self-supervised face encoder (6 convs + BatchNorm + ReLU on
  64x64 RGB [0, 1] crops, a 128-d L2-normalised output), trained here on UTKFace by instance
  discrimination (SimCLR InfoNCE): the two positives are two augmentations of the same face
  (photometric: brightness, contrast, saturation, blur, noise, downscale-upscale, JPEG via
  `degrade.jpeg`; geometric: shift, scale, rotation, flip via `data.frame_face`), every other
  face of the batch is a negative. Its input is the central 96x96 of the restorer's
  160x160 LFW-framed output (`face_crop`: eyebrows to chin, hair and background cut off, so
  that matching cannot lean on them), area down-sampled to 64x64; in training the same
  region of a 107x107 LFW-framed chip.
- `identity_contrastive_loss(encoder, restored, clean, tau, bank)`: InfoNCE across the
  batch so a restored face is closer (in the frozen encoder's space) to its own clean face
  than to the other clean faces of the batch (symmetric: restored -> clean and clean ->
  restored); `bank`: extra negatives, clean-face embeddings of earlier batches.
- `frequency_loss(restored, clean)`: L1 of the 2-D FFT magnitudes (orthonormal) weighted by
  the radial frequency (0 at DC, 1 at Nyquist): penalises missing high-frequency energy
  (over-smoothing) and ignores a global brightness offset or a circular shift.
- `load_student_from_onnx(path)`: the shipped FP32 ONNX student's initializers into the torch
  `Student` (mapped by graph order and shape), `check_onnx_match` verifies it against ONNX
  Runtime.

Train the encoder (one thread; validation = top-1 retrieval among held-out faces, of a second
augmentation and of the `x4`-degraded bicubic version, against the clean face):

    python -m tools.convert.restore.identity --minutes 20 --out var/restore2/encoder
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tools.convert.restore.models import STUDENT_CONFIGS, Student

ENC_SIDE = 64  # encoder input side
CROP = (32, 128)  # the face interior of a 160x160 LFW-framed image (rows and columns)
# Training views: LFW framing at this side puts the CROP region on exactly ENC_SIDE pixels.
TRAIN_FRAME = round(160 * ENC_SIDE / (CROP[1] - CROP[0]))  # 107
TRAIN_OFF = round(CROP[0] * TRAIN_FRAME / 160)  # 21


# ----------------------------------------------------------------------------- encoder


class IdentityEncoder(nn.Module):
    """6 convs (3x3, BatchNorm, ReLU; strides 2,1,2,1,2,1: 64 -> 8) -> global average pool ->
    linear 128 -> L2 normalisation. ~0.3 M parameters, ~38 MMAC per face."""

    def __init__(self, width: int = 32, dim: int = 128):
        super().__init__()
        w = width
        chans = [3, w, w, 2 * w, 2 * w, 4 * w, 4 * w]
        strides = [2, 1, 2, 1, 2, 1]
        layers: list[nn.Module] = []
        for i, s in enumerate(strides):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, stride=s, padding=1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(chans[-1], dim)
        self.config = {"width": width, "dim": dim}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features((x - 0.5) / 0.25)
        return F.normalize(self.fc(h.mean((2, 3))), dim=1)

    def with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(the embedding, the feature maps after the 2nd, 4th and 6th ReLU: 32, 16 and 8
        pixels on a side)."""
        h = (x - 0.5) / 0.25
        maps = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i % 6 == 5:  # every second conv block (conv, BN, ReLU) ends here
                maps.append(h)
        return F.normalize(self.fc(h.mean((2, 3))), dim=1), maps


def face_crop(x: torch.Tensor) -> torch.Tensor:
    """Restorer-framed images (N, 3, 160, 160) -> the encoder's 64x64 face crops (area)."""
    if x.shape[-1] != 160 or x.shape[-2] != 160:
        x = F.interpolate(x, size=(160, 160), mode="bilinear", align_corners=False)
    c = x[..., CROP[0] : CROP[1], CROP[0] : CROP[1]]
    return F.adaptive_avg_pool2d(c, ENC_SIDE)


def load_encoder(path: Path) -> IdentityEncoder:
    s = torch.load(path, map_location="cpu", weights_only=False)
    enc = IdentityEncoder(**s["config"])
    enc.load_state_dict(s["encoder"])
    enc.eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc


# ----------------------------------------------------------------------------- losses


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE of L2-normalised embeddings: row i of `a` matches row i of `b`."""
    logits = a @ b.t() / tau
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def identity_contrastive_loss(
    encoder: nn.Module,
    restored: torch.Tensor,
    clean: torch.Tensor,
    tau: float = 0.1,
    bank: torch.Tensor | None = None,
    return_clean: bool = False,
):
    """InfoNCE across the batch: each restored face should be nearer its own clean face than
    the batch's other clean faces (and than the `bank`'s embeddings, K x dim, clean faces of
    earlier batches), in `encoder`'s space (the encoder is used as is: freeze it and put it
    in eval mode; gradients flow to `restored` only). `return_clean`: also return the clean
    embeddings (to push into the bank)."""
    e_r = encoder(face_crop(restored))
    with torch.no_grad():
        e_c = encoder(face_crop(clean))
    loss = info_nce(e_r, e_c, tau)
    if bank is not None and len(bank):
        # restored -> {own clean, batch's other clean faces, the bank}
        logits = torch.cat([e_r @ e_c.t(), e_r @ bank.t()], 1) / tau
        labels = torch.arange(len(e_r), device=e_r.device)
        loss = 0.5 * (loss + F.cross_entropy(logits, labels))
    return (loss, e_c) if return_clean else loss


def identity_distance_loss(
    encoder: IdentityEncoder, restored: torch.Tensor, clean: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """How far each restored face is from its own clean face in the frozen encoder, absolutely
    (no negatives, so a batch of easy faces still teaches): (mean 1 - cosine of the
    embeddings, mean over the 3 feature maps of the L1 between them, each map divided by the
    clean map's mean magnitude). Gradients reach `restored` only."""
    e_r, f_r = encoder.with_features(face_crop(restored))
    with torch.no_grad():
        e_c, f_c = encoder.with_features(face_crop(clean))
    embed = (1.0 - (e_r * e_c).sum(1)).mean()
    feat = sum(
        (a - b).abs().mean() / b.abs().mean().clamp_min(1e-6)
        for a, b in zip(f_r, f_c, strict=True)
    )
    return embed, feat / len(f_c)


_WEIGHTS: dict[tuple[int, int, str], torch.Tensor] = {}


def _radial_weight(h: int, w: int, device) -> torch.Tensor:
    key = (h, w, str(device))
    if key not in _WEIGHTS:
        fy = torch.fft.fftfreq(h, device=device).abs()[:, None]
        fx = torch.fft.fftfreq(w, device=device).abs()[None, :]
        r = torch.sqrt(fx**2 + fy**2) / (0.5 * 2**0.5)  # 0 at DC, 1 at the corner
        _WEIGHTS[key] = r
    return _WEIGHTS[key]


def frequency_loss(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean over batch/channels/frequencies of w(f) * | |FFT(restored)| - |FFT(clean)| |,
    orthonormal 2-D FFT per channel, w = radial frequency (0 at DC, 1 at the corner)."""
    fa = torch.fft.fft2(restored.float(), norm="ortho").abs()
    fb = torch.fft.fft2(clean.float(), norm="ortho").abs()
    w = _radial_weight(restored.shape[-2], restored.shape[-1], restored.device)
    return ((fa - fb).abs() * w).mean()


# ----------------------------------------------------------------------------- ONNX -> torch


def load_student_from_onnx(path: Path, size: str = "xl") -> Student:
    """The torch `Student` with the weights of an exported FP32 ONNX student: the Conv nodes,
    in graph order, are the student's convs in forward order (head, body..., up1, up2);
    every weight and bias shape is checked."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    net = Student(**STUDENT_CONFIGS[size])
    modules = [net.head, *net.body, net.up1, net.up2]
    if len(convs) != len(modules):
        raise ValueError(
            f"{path}: {len(convs)} Conv nodes, the '{size}' student has {len(modules)}"
        )
    with torch.no_grad():
        for node, mod in zip(convs, modules, strict=True):
            w, b = inits[node.input[1]], inits[node.input[2]]
            if tuple(w.shape) != tuple(mod.weight.shape) or tuple(b.shape) != tuple(mod.bias.shape):
                raise ValueError(f"{node.name}: shape {w.shape}/{b.shape} != {mod.weight.shape}")
            mod.weight.copy_(torch.from_numpy(w.copy()))
            mod.bias.copy_(torch.from_numpy(b.copy()))
    return net.eval()


def check_onnx_match(net: Student, path: Path, n: int = 2, seed: int = 0) -> float:
    """Max |torch - ONNX Runtime| on `n` random 1x3x40x40 inputs (the caller asserts it)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    with torch.no_grad():
        for _ in range(n):
            x = rng.random((1, 3, 40, 40), dtype=np.float32)
            ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
            out = net.eval()(torch.from_numpy(x)).numpy()
            worst = max(worst, float(np.abs(ref - out).max()))
    return worst


# ----------------------------------------------------------------------------- training data


def augment(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random view (64x64 BGR uint8) of a cached chip (`data.cache_images(.., 107)`)."""
    from tools.convert.restore.data import frame_face
    from tools.convert.restore.degrade import jpeg

    img, _ = frame_face(chip, TRAIN_FRAME, rng)  # scale +-8 %, rot +-5 deg, shift, flip
    c = TRAIN_OFF
    img = img[c : c + ENC_SIDE, c : c + ENC_SIDE].astype(np.float32)
    # photometric: brightness, contrast, saturation, per-channel colour
    if rng.random() < 0.8:
        gray = img.mean(2, keepdims=True)
        img = gray + (img - gray) * rng.uniform(0.5, 1.5)  # saturation
        img = (img - img.mean()) * rng.uniform(0.7, 1.3) + img.mean()  # contrast
        img = img * rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3)  # brightness, colour
    if rng.random() < 0.2:
        img = np.repeat(img.mean(2, keepdims=True), 3, 2)
    if rng.random() < 0.3:  # cut-out: no single region may carry the match
        h = int(rng.integers(12, 29))
        y0, x0 = (int(v) for v in rng.integers(0, ENC_SIDE - h, 2))
        img[y0 : y0 + h, x0 : x0 + h] = img.mean((0, 1))
    img = np.clip(img, 0, 255)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.5)))
    if rng.random() < 0.5:  # downscale-upscale: 64 -> 16..48 -> 64
        s = int(rng.integers(16, 49))
        small = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (ENC_SIDE, ENC_SIDE), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        img = img + rng.normal(0, rng.uniform(1, 8), img.shape)
    img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        img = jpeg(img, int(rng.integers(30, 96)))
    return img


def _to_t(bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))).float() / 255


class PairViews(torch.utils.data.IterableDataset):
    """Endless batches (view1, view2) of `batch` distinct random faces."""

    def __init__(self, chips: np.ndarray, batch: int, seed: int):
        self.chips, self.batch, self.seed = chips, batch, seed

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        n = len(self.chips)
        while True:
            idx = rng.choice(n, self.batch, replace=False)
            v1 = torch.stack([_to_t(augment(self.chips[i], rng)) for i in idx])
            v2 = torch.stack([_to_t(augment(self.chips[i], rng)) for i in idx])
            yield v1, v2


@torch.no_grad()
def retrieval_top1(enc: nn.Module, queries: torch.Tensor, gallery: torch.Tensor) -> float:
    """Share of queries whose nearest gallery embedding is their own (row i <-> row i)."""
    enc.eval()
    q = torch.cat([enc(queries[i : i + 128]) for i in range(0, len(queries), 128)])
    g = torch.cat([enc(gallery[i : i + 128]) for i in range(0, len(gallery), 128)])
    return float(((q @ g.t()).argmax(1) == torch.arange(len(q))).float().mean())


def make_val(files: list[str], seed: int = 1234) -> dict:
    """Held-out faces: clean 64x64 crop, a second augmented view, and the `x4` preset's
    degraded input restored by bicubic (the encoder's crop of the 160 px image)."""
    from tools.convert.restore.data import FaceRestoreDataset, bicubic, cache_images

    chips80 = cache_images(files, TRAIN_FRAME, progress=False)
    rng = np.random.default_rng(seed)
    clean, aug = [], []
    for ch in chips80:
        from tools.convert.restore.data import frame_face

        img, _ = frame_face(ch, TRAIN_FRAME, None)
        c = TRAIN_OFF
        clean.append(_to_t(img[c : c + ENC_SIDE, c : c + ENC_SIDE]))
        aug.append(_to_t(augment(ch, rng)))
    chips160 = cache_images(files, 160, progress=False)
    out = {"clean": torch.stack(clean), "aug": torch.stack(aug)}
    for preset in ("x4", "x8"):
        ds = FaceRestoreDataset(chips160, 40, 160, False, seed, preset)
        items = [ds[i] for i in range(len(ds))]
        x = torch.stack([t[0] for t in items])
        y = torch.stack([t[1] for t in items])
        out[f"{preset}_bicubic"] = face_crop(bicubic(x, 160))
        out[f"{preset}_clean160"] = face_crop(y)
    return out


def evaluate_encoder(enc: nn.Module, val: dict) -> dict:
    return {
        "aug_top1": round(retrieval_top1(enc, val["aug"], val["clean"]), 4),
        "x4_bicubic_top1": round(retrieval_top1(enc, val["x4_bicubic"], val["x4_clean160"]), 4),
        "x8_bicubic_top1": round(retrieval_top1(enc, val["x8_bicubic"], val["x8_clean160"]), 4),
        "n": len(val["clean"]),
    }


def main(argv=None) -> None:
    from tools.convert.restore.data import DEFAULT_UTK, cache_images, list_split

    ap = argparse.ArgumentParser(description="Train the self-supervised identity encoder")
    ap.add_argument("--data", type=Path, default=DEFAULT_UTK, help="UTKFace folder")
    ap.add_argument("--out", type=Path, default=Path("var/restore2/encoder"))
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=96, help="faces per step (2 views each)")
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--max-images", type=int, default=12000, help="training faces")
    ap.add_argument("--n-val", type=int, default=300, help="held-out files (same split as common)")
    ap.add_argument("--val-images", type=int, default=256)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1, choices=[0, 1])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    # Same held-out split as the restorer's training (common.make_data): never trained on.
    train_files, val_files = list_split(args.data, args.n_val, 0, args.max_images)
    t0 = time.monotonic()
    chips = cache_images(train_files, TRAIN_FRAME)
    val = make_val(val_files[: args.val_images])
    print(
        f"cached {len(chips)} training faces, {args.val_images} val in {time.monotonic() - t0:.0f} s"
    )
    loader = torch.utils.data.DataLoader(
        PairViews(chips, args.batch, args.seed),
        batch_size=None,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    enc = IdentityEncoder(args.width)
    opt = torch.optim.AdamW(enc.parameters(), lr=args.lr, weight_decay=1e-4)
    log_path = args.out / "log.jsonl"
    log_f = open(log_path, "a")

    def log(rec: dict) -> None:
        log_f.write(json.dumps(rec) + "\n")
        log_f.flush()

    v = evaluate_encoder(enc, val)
    log({"step": 0, "val": v})
    print(f"step 0 val {v}")
    t_start = time.monotonic()
    budget = args.minutes * 60
    step, run_loss = 0, None

    def save(tag: str = "last.pt") -> None:
        torch.save(
            {"config": enc.config, "encoder": enc.state_dict(), "step": step,
             "args": {k: str(v) for k, v in vars(args).items()}},
            args.out / tag,
        )  # fmt: skip

    it = iter(loader)
    while step < args.steps and time.monotonic() - t_start < budget:
        frac = (time.monotonic() - t_start) / budget
        for g in opt.param_groups:  # warm-up 3 %, then cosine on the time budget
            g["lr"] = args.lr * min(1.0, frac / 0.03) * 0.5 * (1 + np.cos(np.pi * min(frac, 1)))
        v1, v2 = next(it)
        enc.train()
        z = enc(torch.cat([v1, v2]))
        z1, z2 = z[: len(v1)], z[len(v1) :]
        # SimCLR NT-Xent: each view against the other view and all other 2N-2 views
        sim = z @ z.t() / args.tau
        sim.fill_diagonal_(-1e9)
        n = len(v1)
        labels = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
        loss = F.cross_entropy(sim, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        lv = float(loss.detach())
        run_loss = lv if run_loss is None else 0.95 * run_loss + 0.05 * lv
        del z1, z2
        if step % 20 == 0:
            log({"step": step, "loss": round(run_loss, 4),
                 "min": round((time.monotonic() - t_start) / 60, 2)})  # fmt: skip
        if step % args.eval_every == 0:
            v = evaluate_encoder(enc, val)
            log({"step": step, "val": v})
            print(
                f"step {step} ({(time.monotonic() - t_start) / 60:.1f} min) loss {run_loss:.3f} val {v}"
            )
            save()
    v = evaluate_encoder(enc, val)
    save()
    final = {"step": step, "val": v, "final": True, "loss": run_loss,
             "min": round((time.monotonic() - t_start) / 60, 2)}  # fmt: skip
    log(final)
    print(f"done: {final}")


if __name__ == "__main__":
    main()
