"""Training data for face restoration: UTKFace, reframed like the LFW evaluation crops.

Framing (the reason a previous probe lost identity: it learned faces at another scale).
Measured with the project's detector (`edge.detect.FaceDetector`, INT8 ONNX, min_face_px 20,
images padded by 40 px so faces touching the border are found), medians over 100 random
images of each set (seed 0; 96/100 UTKFace and 100/100 LFW detected;
`python -m tools.convert.restore.data --measure` repeats it):

| set (side)            | box w | box h | eye dist | eyes-mouth | eye centre (x, y) |
|-----------------------|-------|-------|----------|------------|-------------------|
| UTKFace chips (200)   | 166.7 | 210.8 | 78.9     | 80.8       | (99.3, 58.3)      |
| LFW deep-funneled (160)| 92.8 | 123.6 | 41.2     | 45.9       | (78.1, 64.9)      |

So a UTKFace face fills 0.83 of its chip's width (eye distance 0.39 of the side) and an LFW
face 0.58 (eye distance 0.26). Scale ratios LFW/UTKFace: eye distance 0.522, eyes-mouth 0.568,
box width 0.557: we scale UTKFace by `UTK_TO_LFW_SCALE` = 0.55 (for a 160 px frame; x hr/160
for others) and put its eye centre where LFW has it, (78.1, 64.9) / 160. The 200 px chip then
covers ~110x110 px of the 160x160 frame; the rest (hair, neck, background in LFW) is filled
by reflection and weighted `PAD_WEIGHT` in the losses (the returned mask). Training adds
jitter of the size of LFW's own spread (scale +-8 %, shift +-4 px, rotation +-5 deg, flips).

Each item: (degraded LR input, `lr` x `lr`, RGB float [0,1] CHW; clean HR target `hr` x `hr`;
loss weight mask 1 x hr x hr). The LR input is `tools.convert.restore.degrade.degrade` of the HR crop
with, in training, `random_params` or (share `preset_mix`) `around_preset`, a jittered
evaluation preset; in validation a fixed seeded `random_params` draw or a named preset. It is
resized to `lr` x `lr` (area when shrinking; bilinear/bicubic when enlarging, as a runtime
would). With `keep_light` the training target keeps the draw's exposure and colour (see
`FaceRestoreDataset`); validation targets are always the clean crop.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from tools.convert.restore.degrade import PRESETS, DegradeParams, degrade, random_params

DEFAULT_UTK = Path(__file__).resolve().parents[3].parent / "shared/data/faces/utkface"
DEFAULT_LFW = Path(__file__).resolve().parents[3].parent / "shared/data/faces/lfw"

UTK_SIDE = 200
UTK_EYE_CENTRE = (99.3, 58.3)  # in the 200x200 chip
LFW_EYE_CENTRE = (78.1, 64.9)  # in the 160x160 deep-funneled crop
UTK_TO_LFW_SCALE = 0.55  # at a 160 px output frame
PAD_WEIGHT = 0.25
CACHE_MARGIN = 1.1  # cache chips this much above the target scale: jitter only downsamples


def list_split(root: Path, n_val: int, seed: int, max_images: int | None = None):
    """Held-out validation split by file, seeded. Returns (train files, val files)."""
    files = sorted(str(p) for p in Path(root).glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no UTKFace images under {root}")
    random.Random(seed).shuffle(files)
    val, train = files[:n_val], files[n_val:]
    if max_images:
        train = train[:max_images]
    return train, val


def cache_images(files: list[str], hr: int, progress: bool = True) -> np.ndarray:
    """Decode and pre-scale the chips (INTER_AREA) into one uint8 BGR array (N, S, S, 3)."""
    side = round(UTK_SIDE * UTK_TO_LFW_SCALE * hr / 160 * CACHE_MARGIN)
    out = np.empty((len(files), side, side, 3), np.uint8)
    it = files
    if progress:
        from tqdm import tqdm

        it = tqdm(files, desc=f"decode {len(files)} images", leave=False)
    for i, f in enumerate(it):
        img = cv2.imread(f, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot read {f}")
        if img.shape[:2] != (UTK_SIDE, UTK_SIDE):
            img = cv2.resize(img, (UTK_SIDE, UTK_SIDE), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    return out


def frame_face(
    chip: np.ndarray, hr: int, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A cached chip -> (hr x hr BGR crop framed like LFW, float mask of real pixels)."""
    side = chip.shape[0]
    base = UTK_TO_LFW_SCALE * hr / 160 * UTK_SIDE / side  # cached px -> output px
    scale, angle, dx, dy, flip = 1.0, 0.0, 0.0, 0.0, False
    if rng is not None:
        scale = float(rng.uniform(0.92, 1.08))
        angle = float(rng.uniform(-5, 5))
        dx, dy = (float(v) for v in rng.uniform(-4, 4, 2) * hr / 160)
        flip = bool(rng.random() < 0.5)
    if flip:
        chip = chip[:, ::-1]
    src = np.array(UTK_EYE_CENTRE) * side / UTK_SIDE
    if flip:
        src[0] = side - 1 - src[0]
    dst = np.array(LFW_EYE_CENTRE) * hr / 160 + (dx, dy)
    m = cv2.getRotationMatrix2D((float(src[0]), float(src[1])), angle, base * scale)
    m[:, 2] += dst - src
    img = cv2.warpAffine(
        np.ascontiguousarray(chip), m, (hr, hr), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )  # fmt: skip
    ones = np.ones((side, side), np.float32)
    valid = cv2.warpAffine(ones, m, (hr, hr), flags=cv2.INTER_LINEAR, borderValue=0.0)
    mask = PAD_WEIGHT + (1.0 - PAD_WEIGHT) * valid
    return img, mask


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))).float() / 255


def to_bgr(t: torch.Tensor) -> np.ndarray:
    """CHW RGB float [0,1] -> HWC BGR uint8."""
    a = t.detach().clamp(0, 1).mul(255).add(0.5).byte().cpu().numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(a[:, :, ::-1])


def around_preset(rng: np.random.Generator) -> DegradeParams:
    """A jittered evaluation preset: factor x0.8-1.25 (blur scaled with it), noise x0.5-1.5,
    JPEG quality +-15, exposure/cast of the lighting presets +-10/5 % (neutral ones stay
    neutral). Training draws mix these with
    `random_params` (which alone is centred on harder, photometrically shifted cases: a
    teacher trained on it only fell 2 dB below bicubic on the `x4` preset)."""
    p = PRESETS[str(rng.choice(list(PRESETS)))]
    k = float(rng.uniform(0.8, 1.25))
    return replace(
        p,
        factor=p.factor * k,
        blur_sigma=p.blur_sigma * k * float(rng.uniform(0.8, 1.2)),
        motion_angle=float(rng.uniform(0, 180)) if p.blur == "motion" else p.motion_angle,
        gain=p.gain * float(rng.uniform(0.9, 1.1)) if p.gain != 1.0 else 1.0,
        cast=tuple(c * float(rng.uniform(0.95, 1.05)) for c in p.cast)
        if p.cast != (1.0, 1.0, 1.0)
        else p.cast,
        noise_sigma=p.noise_sigma * float(rng.uniform(0.5, 1.5)),
        jpeg_quality=int(np.clip(p.jpeg_quality + rng.integers(-15, 16), 15, 95)),
    )


def apply_light(img: np.ndarray, p: DegradeParams) -> np.ndarray:
    """The photometric part of `degrade` (exposure gain, gamma, colour cast), noise-free, at
    full resolution: the target of `keep_light` training."""
    if p.gain == 1.0 and p.gamma == 1.0 and p.cast == (1.0, 1.0, 1.0):
        return img
    x = img.astype(np.float32) / 255.0
    if p.gain != 1.0 or p.gamma != 1.0:
        x = np.clip(x * p.gain, 0.0, 1.0) ** p.gamma
    x = np.clip(x * np.asarray(p.cast, np.float32), 0.0, 1.0)
    return (x * 255.0 + 0.5).astype(np.uint8)


UP_INTERPS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC)


class FaceRestoreDataset(Dataset):
    """(LR input, HR target, loss mask) from cached chips.

    train=True: random framing jitter; degradations from `random_params` or, with probability
    `preset_mix`, `around_preset`, drawn from a per-worker generator (seed it with
    `worker_init`). With probability `keep_light` the target keeps the draw's exposure,
    gamma and colour cast (`apply_light`): the network then restores detail only and leaves
    light to the classical low-light stage -- exposure cannot be told from the face itself,
    and a network trained to guess it shifted the photometry of neutral (`x4`) inputs and
    fell ~2 dB below bicubic there. train=False: no jitter, the degradation of item i
    is fixed by (seed, i) -- or a named preset -- so validation numbers compare across runs.
    """

    def __init__(
        self,
        images: np.ndarray,
        lr: int = 40,
        hr: int = 160,
        train: bool = True,
        seed: int = 0,
        preset: str | None = None,
        preset_mix: float = 0.5,
        keep_light: float = 0.0,
    ):
        self.images, self.lr, self.hr = images, lr, hr
        self.preset_mix, self.keep_light = preset_mix, keep_light
        self.train, self.seed, self.preset = train, seed, preset
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        rng = self.rng if self.train else np.random.default_rng([self.seed, i])
        img, mask = frame_face(self.images[i], self.hr, rng if self.train else None)
        if self.preset:
            params = PRESETS[self.preset]
        elif self.train and rng.random() < self.preset_mix:
            params = around_preset(rng)
        else:
            params = random_params(rng)
        small = degrade(img, params, rng)
        if small.shape[0] == self.lr and small.shape[1] == self.lr:
            lr_img = small
        else:
            if small.shape[0] > self.lr:
                interp = cv2.INTER_AREA
            else:
                interp = UP_INTERPS[int(rng.integers(2))] if self.train else cv2.INTER_CUBIC
            lr_img = cv2.resize(small, (self.lr, self.lr), interpolation=interp)
        if self.train and self.keep_light > 0 and rng.random() < self.keep_light:
            img = apply_light(img, params)
        return to_tensor(lr_img), to_tensor(img), torch.from_numpy(mask)[None]


def worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    ds = info.dataset
    ds.rng = np.random.default_rng([ds.seed, int(info.seed) % (2**32), worker_id])


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of float [0,1] batches, on the 8-bit quantized images."""
    a = (a.clamp(0, 1) * 255).round()
    b = (b.clamp(0, 1) * 255).round()
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


def bicubic(x: torch.Tensor, hr: int) -> torch.Tensor:
    """The baseline: OpenCV bicubic upsampling of the LR input (as the evaluation does)."""
    out = [to_tensor(cv2.resize(to_bgr(t), (hr, hr), interpolation=cv2.INTER_CUBIC)) for t in x]
    return torch.stack(out)


def measure(n: int = 100, seed: int = 0) -> dict:
    """Detector-measured face geometry of n random UTKFace and LFW images (medians)."""
    from edge.detect import FaceDetector

    det = FaceDetector(min_face_px=20)
    rnd = random.Random(seed)
    sets = {
        "utkface": rnd.sample(sorted(str(p) for p in DEFAULT_UTK.glob("*.jpg")), n),
        "lfw": rnd.sample(sorted(str(p) for p in DEFAULT_LFW.glob("*/*.jpg")), n),
    }
    out = {}
    for name, files in sets.items():
        rows = []
        for f in files:
            im = cv2.imread(f)
            pad = 40
            d = det.detect(cv2.copyMakeBorder(im, pad, pad, pad, pad, cv2.BORDER_CONSTANT))
            if not d:
                continue
            d = max(d, key=lambda t: (t.box[2] - t.box[0]) * (t.box[3] - t.box[1]))
            b, lm = d.box - pad, d.landmarks - pad
            eye = (lm[0] + lm[1]) / 2
            rows.append(
                [
                    b[2] - b[0],
                    b[3] - b[1],
                    np.linalg.norm(lm[1] - lm[0]),
                    np.linalg.norm((lm[3] + lm[4]) / 2 - eye),
                    eye[0],
                    eye[1],
                    im.shape[1],
                ]
            )
        a = np.median(np.array(rows), 0)
        keys = ["box_w", "box_h", "eye_dist", "eye_mouth", "eye_x", "eye_y", "side"]
        out[name] = {
            "detected": len(rows),
            **{k: round(float(v), 1) for k, v in zip(keys, a, strict=True)},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", action="store_true", help="measure face framing in both sets")
    ap.add_argument("--preview", type=Path, help="write a grid of (LR, HR) training pairs here")
    args = ap.parse_args()
    if args.measure:
        r = measure()
        print(r)
        u, lf = r["utkface"], r["lfw"]
        for k in ("box_w", "eye_dist", "eye_mouth"):
            ratio = (lf[k] / lf["side"]) / (u[k] / u["side"]) * lf["side"] / u["side"]
            print(f"scale LFW/UTK by {k}: {ratio:.3f}")
    if args.preview:
        train, _ = list_split(DEFAULT_UTK, 300, 0, 16)
        ds = FaceRestoreDataset(cache_images(train, 160, False), seed=1)
        rows = []
        for i in range(8):
            x, y, m = ds[i]
            up = cv2.resize(to_bgr(x), (160, 160), interpolation=cv2.INTER_NEAREST)
            rows.append(np.hstack([up, to_bgr(y), to_bgr(m.expand(3, -1, -1))]))
        cv2.imwrite(str(args.preview), np.vstack(rows))


if __name__ == "__main__":
    main()
