"""Networks of the face-restoration chain.

Tensors are NCHW float32 RGB in [0, 1]. Both generators take the degraded face resized to
`lr` x `lr` (default 40) and return the restored face at `lr * scale` (default 160, the
framing of the LFW deep-funneled 160x160 evaluation crops), as a residual over a bilinear
upsample of their input.

- `Teacher`: a GAN generator, a U-Net over the low-resolution grid (40 -> 20 -> 10, residual
  blocks at every level, a wide bottleneck) followed by a two-stage PixelShuffle upsampler.
  LeakyReLU, no normalisation. Sized for CPU training: ~5 M parameters, ~1 GMAC per face.
- `PatchDiscriminator`: a spectrally normalised PatchGAN that also returns its intermediate
  feature maps, for the feature-matching loss.
- `Student`: small, conv-only, quantization-friendly: Conv2d + ReLU only (no normalisation, no
  attention), a long skip in feature space, two PixelShuffle x2 stages, the image-space
  residual over a bilinear upsample and a final clamp to [0, 1]. Every op maps to ONNX
  (Conv, Relu, Add, DepthToSpace, Resize, Clip) and TFLite builtins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


def upsample_input(x: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def gaussian_kernel_1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (radius 3 sigma)."""
    radius = max(1, int(3.0 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def separable_blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Per-channel Gaussian blur (reflected borders) as two depthwise convs (ONNX Pad + Conv);
    `taps`: (channels, 1, 1, n), the 1-D kernel per channel."""
    c, n = taps.shape[0], taps.shape[-1]
    pad = n // 2
    x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), taps, groups=c)
    return F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), taps.transpose(2, 3), groups=c)


class ResBlock(nn.Module):
    def __init__(self, c: int, res_scale: float = 0.2):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.c2(F.leaky_relu(self.c1(x), 0.2))


def _blocks(c: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(c) for _ in range(n)])


class Teacher(nn.Module):
    """U-Net generator on the LR grid + PixelShuffle upsampler (x4 by default)."""

    def __init__(self, nf: int = 64, scale: int = 4, blocks: tuple[int, int, int] = (1, 1, 3)):
        super().__init__()
        if scale != 4:
            raise ValueError("the teacher upsamples by 4 (two PixelShuffle x2 stages)")
        self.scale = scale
        c1, c2, c3 = nf, nf * 2, nf * 4
        self.head = nn.Conv2d(3, c1, 3, padding=1)
        self.enc1 = _blocks(c1, blocks[0])
        self.down1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.enc2 = _blocks(c2, blocks[1])
        self.down2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.mid = _blocks(c3, blocks[2])
        self.up2 = nn.Sequential(nn.Conv2d(c3, c2 * 4, 3, padding=1), nn.PixelShuffle(2))
        self.fuse2 = nn.Conv2d(c2 * 2, c2, 1)
        self.dec2 = _blocks(c2, blocks[1])
        self.up1 = nn.Sequential(nn.Conv2d(c2, c1 * 4, 3, padding=1), nn.PixelShuffle(2))
        self.fuse1 = nn.Conv2d(c1 * 2, c1, 1)
        self.dec1 = _blocks(c1, blocks[0])
        h1, h2 = nf // 2, nf // 4
        self.hr1 = nn.Sequential(nn.Conv2d(c1, h1 * 4, 3, padding=1), nn.PixelShuffle(2))
        self.hr1b = nn.Conv2d(h1, h1, 3, padding=1)
        self.hr2 = nn.Sequential(nn.Conv2d(h1, h2 * 4, 3, padding=1), nn.PixelShuffle(2))
        self.hr2b = nn.Conv2d(h2, h2, 3, padding=1)
        self.out = nn.Conv2d(h2, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        if not torch.jit.is_tracing() and (x.shape[-1] % 4 or x.shape[-2] % 4):
            raise ValueError("the teacher's input side must be a multiple of 4")
        f1 = self.enc1(act(self.head(x)))
        f2 = self.enc2(act(self.down1(f1)))
        f3 = self.mid(act(self.down2(f2)))
        u2 = act(self.fuse2(torch.cat([act(self.up2(f3)), f2], 1)))
        u2 = self.dec2(u2)
        u1 = act(self.fuse1(torch.cat([act(self.up1(u2)), f1], 1)))
        u1 = self.dec1(u1)
        h = act(self.hr1b(act(self.hr1(u1))))
        h = act(self.hr2b(act(self.hr2(h))))
        return upsample_input(x, self.scale) + self.out(h)


class PatchDiscriminator(nn.Module):
    """PatchGAN (70x70-like receptive field) returning (logits map, [feature maps])."""

    def __init__(self, nf: int = 32):
        super().__init__()
        sn = spectral_norm
        chans = [3, nf, nf * 2, nf * 4, nf * 4]
        strides = [2, 2, 2, 1]
        self.layers = nn.ModuleList(
            sn(nn.Conv2d(chans[i], chans[i + 1], 4, stride=strides[i], padding=1)) for i in range(4)
        )
        self.head = sn(nn.Conv2d(chans[-1], 1, 4, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        h = x * 2.0 - 1.0
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            feats.append(h)
        return self.head(h), feats


class Student(nn.Module):
    """Conv + ReLU only; image-space residual over a bilinear x4 upsample; output in [0, 1]."""

    def __init__(
        self, nf: int = 32, n_body: int = 6, hr_nf: int = 16, scale: int = 4,
        detail_sigma: float = 0.0,
    ):  # fmt: skip
        super().__init__()
        if scale != 4:
            raise ValueError("the student upsamples by 4 (two PixelShuffle x2 stages)")
        self.scale = scale
        # > 0: the residual is high-passed (minus its Gaussian blur of this sigma, output
        # pixels), so the network can add detail but cannot move the face's coarse shape,
        # which the camera did see (restore-2.x, issue 10).
        self.set_detail_sigma(detail_sigma)
        self.head = nn.Conv2d(3, nf, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(nf, nf, 3, padding=1) for _ in range(n_body))
        self.up1 = nn.Conv2d(nf, hr_nf * 4, 3, padding=1)
        self.up2 = nn.Conv2d(hr_nf, 3 * 4, 3, padding=1)
        self.ps = nn.PixelShuffle(2)
        nn.init.zeros_(self.up2.weight)
        nn.init.zeros_(self.up2.bias)

    def set_detail_sigma(self, sigma: float) -> None:
        self.detail_sigma = float(sigma)
        taps = gaussian_kernel_1d(self.detail_sigma) if self.detail_sigma > 0 else torch.ones(1)
        self.register_buffer("gauss", taps.view(1, 1, 1, -1).repeat(3, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = F.relu(self.head(x))
        h = f
        for conv in self.body:
            h = F.relu(conv(h))
        h = F.relu(self.ps(self.up1(h + f)))
        r = self.ps(self.up2(h))
        if self.detail_sigma > 0:
            r = r - separable_blur(r, self.gauss)
        return torch.clamp(upsample_input(x, self.scale) + r, 0.0, 1.0)


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def count_macs(net: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of the Conv2d/Linear layers for one input of `shape` (NCHW)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += int(out.numel() // out.shape[0]) * k
        elif isinstance(mod, nn.Linear):
            total += int(out.numel() // out.shape[0]) * mod.in_features

    hooks = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(shape))
    finally:
        for h in hooks:
            h.remove()
    return total


STUDENT_CONFIGS = {
    "s": dict(nf=24, n_body=5, hr_nf=12),
    "m": dict(nf=32, n_body=6, hr_nf=16),
    "l": dict(nf=48, n_body=6, hr_nf=16),
    "xl": dict(nf=48, n_body=12, hr_nf=16),
}


@torch.no_grad()
def grow_student(small: Student, n_body: int) -> Student:
    """A deeper student computing exactly what `small` computes: its body convs, in order,
    with identity (Dirac) convs spread between them. Each body conv is followed by a ReLU and
    fed a ReLU output (>= 0), so an identity conv plus ReLU passes its input through unchanged;
    training then starts from the small model's quality instead of from scratch (CPU time is
    the scarce resource here)."""
    old = len(small.body)
    if n_body < old:
        raise ValueError(f"cannot grow {old} body convs into {n_body}")
    nf, hr_nf = small.head.out_channels, small.up2.in_channels
    big = Student(nf=nf, n_body=n_body, hr_nf=hr_nf, scale=small.scale)
    # Old conv i lands at slot round(i * n_body / old); the slots in between are identities.
    slots = {round(i * n_body / old): i for i in range(old)}
    for j, conv in enumerate(big.body):
        if j in slots:
            conv.load_state_dict(small.body[slots[j]].state_dict())
        else:
            nn.init.dirac_(conv.weight)
            nn.init.zeros_(conv.bias)
    for name in ("head", "up1", "up2"):
        getattr(big, name).load_state_dict(getattr(small, name).state_dict())
    return big
