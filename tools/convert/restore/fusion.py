"""The multi-frame fusion student: several registered frames of one face in, one restored face out.

Built from the shipped single-frame `Student` (`xl`: head, 12 body convs, two PixelShuffle
stages) by cutting it after `n_enc` body convs:

- **Per-frame encoder** (shared): the student's head and first `n_enc` body convs, run on
  every frame (K x 3 x 40 x 40 -> K x 48 x 40 x 40).
- **Per-pixel weighted pooling across frames**: a small gate sees each frame's features and
  their difference from the frames' mean (so a frame unlike the others can be weighted down)
  and gives one logit per frame and pixel; a softmax over the frames turns them into weights
  that sum to 1 at every pixel. The encoder features, the head features (the student's long
  skip) and the input images are pooled with the same weights. Sums and means over the frame
  axis make it permutation invariant and valid for any K >= 1.
- **The rest of the student** on the pooled features: its remaining body convs, the long
  skip, the upsampler, and the image residual over a bilinear upsample of the pooled input.

The gate's last conv starts at zero, so the weights start uniform; with K = 1 the network is
then exactly the student (pooling one frame returns it), and with K > 1 it starts as the
student run on a feature-space average. Conv + ReLU only besides Softmax, Mul, ReduceSum and
ReduceMean over the frame axis: every op is in ONNX and the convs quantize per channel.

Export form (`FusionExport`): input `frames` float32 K x 3 x 40 x 40 (K dynamic), RGB in
[0, 1], the reference frame first by convention (the network does not depend on the order);
output `restored` 1 x 3 x 160 x 160.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from tools.convert.restore.models import Student, upsample_input

GATE_NF = 16


class FusionStudent(nn.Module):
    def __init__(self, student: Student, n_enc: int = 2, gate_nf: int = GATE_NF):
        super().__init__()
        student = copy.deepcopy(student)
        nf = student.head.out_channels
        if not 0 <= n_enc <= len(student.body):
            raise ValueError(f"n_enc {n_enc}: the student has {len(student.body)} body convs")
        self.scale = student.scale
        self.head = student.head
        self.enc = nn.ModuleList(student.body[:n_enc])
        self.body = nn.ModuleList(student.body[n_enc:])
        self.up1, self.up2, self.ps = student.up1, student.up2, student.ps
        self.gate1 = nn.Conv2d(2 * nf, gate_nf, 1)
        self.gate2 = nn.Conv2d(gate_nf, 1, 3, padding=1)
        nn.init.zeros_(self.gate2.weight)
        nn.init.zeros_(self.gate2.bias)
        self.gate_split: tuple[nn.Conv2d, nn.Conv2d] | None = None

    @torch.no_grad()
    def split_gate(self) -> None:
        """The same gate without concatenating [e, e - mean] (a K x 96-channel tensor): gate1
        is linear, so W [e; e - m] = (W_e + W_d) e - W_d m, one 1x1 conv on every frame and
        one on the mean. Exact; for export (ONNX Runtime spent ~15 % of the time in Concat)."""
        nf = self.gate1.in_channels // 2
        w = self.gate1.weight
        on_e = nn.Conv2d(nf, self.gate1.out_channels, 1)
        on_mean = nn.Conv2d(nf, self.gate1.out_channels, 1, bias=False)
        on_e.weight.copy_(w[:, :nf] + w[:, nf:])
        on_e.bias.copy_(self.gate1.bias)
        on_mean.weight.copy_(-w[:, nf:])
        for p in (*on_e.parameters(), *on_mean.parameters()):
            p.requires_grad_(False)
        self.gate_split = (on_e, on_mean)

    def pool(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: B x K x 3 x H x W; mask: B x K bool (False = padding), None = all frames real.
        Returns the pooled input, head features, encoder features, and the weights."""
        b, k = x.shape[0], x.shape[1]
        flat = x.flatten(0, 1)
        f = F.relu(self.head(flat))
        e = f
        for conv in self.enc:
            e = F.relu(conv(e))
        f = f.unflatten(0, (b, k))
        e = e.unflatten(0, (b, k))
        if mask is None:
            mean_e = e.mean(1, keepdim=True)
        else:
            m = mask[:, :, None, None, None].to(e.dtype)
            mean_e = (e * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)
        if self.gate_split is None:
            g = F.relu(self.gate1(torch.cat([e, e - mean_e], 2).flatten(0, 1))).unflatten(0, (b, k))
        else:
            on_e, on_mean = self.gate_split
            g = F.relu(
                on_e(e.flatten(0, 1)).unflatten(0, (b, k)) + on_mean(mean_e.flatten(0, 1))[:, None]
            )
        logit = self.gate2(g.flatten(0, 1)).unflatten(0, (b, k))
        if mask is not None:
            logit = logit.masked_fill(~mask[:, :, None, None, None], -1e4)
        w = torch.softmax(logit, dim=1)
        return (w * x).sum(1), (w * f).sum(1), (w * e).sum(1), w

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        xb, fb, h, _ = self.pool(x, mask)
        for conv in self.body:
            h = F.relu(conv(h))
        h = F.relu(self.ps(self.up1(h + fb)))
        r = self.ps(self.up2(h))
        return torch.clamp(upsample_input(xb, self.scale) + r, 0.0, 1.0)


class FusionExport(nn.Module):
    """One burst, K x 3 x H x W -> 1 x 3 x 4H x 4W (the ONNX form)."""

    def __init__(self, net: FusionStudent):
        super().__init__()
        self.net = net

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames[None])


class FusionFrames4d(nn.Module):
    """The same network with the frames on the batch axis and no 5-D tensor (K x 3 x H x W ->
    1 x 3 x 4H x 4W): the LiteRT form, whose converters handle 4-D ops best. Needs
    `split_gate()` first; equal to `FusionExport` to float rounding."""

    def __init__(self, net: FusionStudent):
        super().__init__()
        if net.gate_split is None:
            raise ValueError("call split_gate() first")
        self.net = net
        self.on_e, self.on_mean = net.gate_split

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        n = self.net
        f = F.relu(n.head(frames))
        e = f
        for conv in n.enc:
            e = F.relu(conv(e))
        g = F.relu(self.on_e(e) + self.on_mean(e.mean(0, keepdim=True)))
        w = torch.softmax(n.gate2(g), dim=0)
        xb = (w * frames).sum(0, keepdim=True)
        fb = (w * f).sum(0, keepdim=True)
        h = (w * e).sum(0, keepdim=True)
        for conv in n.body:
            h = F.relu(conv(h))
        h = F.relu(n.ps(n.up1(h + fb)))
        r = n.ps(n.up2(h))
        return torch.clamp(upsample_input(xb, n.scale) + r, 0.0, 1.0)


def export_fusion_onnx(net: FusionStudent, path, lr: int = 40, opset: int = 17) -> None:
    """FP32 ONNX with a dynamic frame axis (`frames`: K x 3 x lr x lr -> `restored`)."""
    net = copy.deepcopy(net).eval()
    net.split_gate()
    wrapper = FusionExport(net).eval()
    dummy = torch.rand(3, 3, lr, lr)
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(path),
        input_names=["frames"],
        output_names=["restored"],
        dynamic_axes={"frames": {0: "frames"}},
        opset_version=opset,
        dynamo=False,
    )
