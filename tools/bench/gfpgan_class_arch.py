"""A GFPGAN-class face restorer for timing: GFPGANv1Clean's published architecture.

This is the structure of `gfpgan/archs/gfpganv1_clean_arch.py` and
`gfpgan/archs/stylegan2_clean_arch.py` (GFPGAN v1.3/v1.4, Apache-2.0), written out again
because the `gfpgan` package pulls basicsr and torchvision, which have no CPU build here.
Configuration as in GFPGAN's inference code for v1.3/v1.4: out_size 512, num_style_feat 512,
channel_multiplier 2, num_mlp 8, input_is_latent, different_w, narrow 1, sft_half.

- encoder: a U-Net of ResBlocks (bilinear down/up-sampling, leaky ReLU) from 512x512 to 4x4,
  a linear layer from the 4x4 features to 16 style codes of 512 (different_w);
- SFT conditions: two small conv branches per scale (scale and shift) from the U-Net's
  up-path features;
- decoder: a StyleGAN2 generator (modulated/demodulated 3x3 convolutions, noise injection,
  ToRGB skips) whose upper half of channels is modulated by the conditions (sft_half).

86.44 M parameters (GFPGANv1.4.pth holds about as many values: 348 MB of float32) and
198 GMACs per 512x512 face, as counted by tools/bench/export_gfpgan_class.py.

Weights are random: the benchmark needs its cost, not its output. At inference GFPGAN
draws fresh noise per call; here the generator's fixed noise buffers are used instead (same
operations, deterministic, and no random op in the ONNX graph). The style MLP is built, so
the parameter count matches, but, as in GFPGAN with input_is_latent, it is never run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ModulatedConv2d(nn.Module):
    """StyleGAN2's convolution: per-sample weights scaled by the style, then demodulated."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
        eps: float = 1e-8,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.demodulate = kernel_size, demodulate
        self.sample_mode, self.eps = sample_mode, eps
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
            / math.sqrt(in_channels * kernel_size**2)
        )
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        style = self.modulation(style).view(b, 1, c, 1, 1)
        weight = self.weight * style
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps)
            weight = weight * demod.view(b, self.out_channels, 1, 1, 1)
        weight = weight.view(b * self.out_channels, c, self.kernel_size, self.kernel_size)
        if self.sample_mode == "upsample":
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        elif self.sample_mode == "downsample":
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        b, c, h, w = x.shape
        out = F.conv2d(x.view(1, b * c, h, w), weight, padding=self.padding, groups=b)
        return out.view(b, self.out_channels, *out.shape[2:4])


class StyleConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, num_style_feat, sample_mode=None):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, num_style_feat, sample_mode=sample_mode
        )
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.activate = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x, style, noise):
        out = self.modulated_conv(x, style) * 2**0.5
        out = out + self.weight * noise
        return self.activate(out + self.bias)


class ToRGB(nn.Module):
    def __init__(self, in_channels, num_style_feat, upsample=True):
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out


class NormStyleCode(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


def _channels(base_multiplier: float, channel_multiplier: int) -> dict[int, int]:
    m, n = channel_multiplier, base_multiplier
    return {
        4: int(512 * n), 8: int(512 * n), 16: int(512 * n), 32: int(512 * n),
        64: int(256 * m * n), 128: int(128 * m * n), 256: int(64 * m * n),
        512: int(32 * m * n), 1024: int(16 * m * n),
    }  # fmt: skip


class StyleGAN2GeneratorCSFT(nn.Module):
    """StyleGAN2GeneratorClean with spatial feature transforms from the U-Net (sft_half)."""

    def __init__(self, out_size=512, num_style_feat=512, num_mlp=8, channel_multiplier=2):
        super().__init__()
        layers: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            layers += [nn.Linear(num_style_feat, num_style_feat), nn.LeakyReLU(0.2, True)]
        self.style_mlp = nn.Sequential(*layers)  # unused with input_is_latent (see module doc)
        ch = _channels(1, channel_multiplier)
        self.constant_input = nn.Parameter(torch.randn(1, ch[4], 4, 4))
        self.style_conv1 = StyleConv(ch[4], ch[4], 3, num_style_feat)
        self.to_rgb1 = ToRGB(ch[4], num_style_feat, upsample=False)
        self.log_size = int(math.log(out_size, 2))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for i in range(3, self.log_size + 1):
            out_ch = ch[2**i]
            self.style_convs.append(StyleConv(in_ch, out_ch, 3, num_style_feat, "upsample"))
            self.style_convs.append(StyleConv(out_ch, out_ch, 3, num_style_feat))
            self.to_rgbs.append(ToRGB(out_ch, num_style_feat))
            in_ch = out_ch

    def forward(self, latent: torch.Tensor, conditions: list[torch.Tensor]) -> torch.Tensor:
        noise = [getattr(self, f"noise{i}") for i in range(self.num_layers)]
        out = self.constant_input.repeat(latent.shape[0], 1, 1, 1)
        out = self.style_conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv1, conv2, n1, n2, to_rgb in zip(
            self.style_convs[::2], self.style_convs[1::2], noise[1::2], noise[2::2], self.to_rgbs,
            strict=True,
        ):  # fmt: skip
            out = conv1(out, latent[:, i], n1)
            if i < len(conditions):
                same, sft = torch.split(out, int(out.size(1) // 2), dim=1)
                out = torch.cat([same, sft * conditions[i - 1] + conditions[i]], dim=1)
            out = conv2(out, latent[:, i + 1], n2)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, mode: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.scale_factor = 0.5 if mode == "down" else 2.0

    def forward(self, x):
        out = F.leaky_relu(self.conv1(x), negative_slope=0.2)
        out = F.interpolate(
            out, scale_factor=self.scale_factor, mode="bilinear", align_corners=False
        )
        out = F.leaky_relu(self.conv2(out), negative_slope=0.2)
        x = F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return out + self.skip(x)


class GFPGANClass(nn.Module):
    """GFPGANv1Clean (v1.3/v1.4 configuration): 1x3x512x512 in [-1, 1] -> 1x3x512x512."""

    def __init__(self, out_size=512, num_style_feat=512, channel_multiplier=2, num_mlp=8):
        super().__init__()
        self.num_style_feat = num_style_feat
        ch = _channels(0.5, channel_multiplier)  # the U-Net has half the decoder's channels
        self.log_size = int(math.log(out_size, 2))
        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        in_ch = ch[out_size]
        self.conv_body_down = nn.ModuleList()
        for i in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(in_ch, ch[2 ** (i - 1)], "down"))
            in_ch = ch[2 ** (i - 1)]
        self.final_conv = nn.Conv2d(in_ch, ch[4], 3, 1, 1)
        in_ch = ch[4]
        self.conv_body_up = nn.ModuleList()
        for i in range(3, self.log_size + 1):
            self.conv_body_up.append(ResBlock(in_ch, ch[2**i], "up"))
            in_ch = ch[2**i]
        # toRGB heads exist in GFPGAN (training losses); inference runs with return_rgb=False.
        self.toRGB = nn.ModuleList(nn.Conv2d(ch[2**i], 3, 1) for i in range(3, self.log_size + 1))
        self.final_linear = nn.Linear(ch[4] * 4 * 4, (self.log_size * 2 - 2) * num_style_feat)
        self.stylegan_decoder = StyleGAN2GeneratorCSFT(
            out_size, num_style_feat, num_mlp, channel_multiplier
        )
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for i in range(3, self.log_size + 1):
            c = ch[2**i]
            for branch in (self.condition_scale, self.condition_shift):
                branch.append(
                    nn.Sequential(
                        nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(c, c, 3, 1, 1)
                    )
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.leaky_relu(self.conv_body_first(x), negative_slope=0.2)
        skips = []
        for down in self.conv_body_down:
            feat = down(feat)
            skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), negative_slope=0.2)
        style = self.final_linear(feat.view(feat.size(0), -1))
        latent = style.view(style.size(0), -1, self.num_style_feat)
        conditions = []
        for i, up in enumerate(self.conv_body_up):
            feat = up(feat + skips[i])
            conditions.append(self.condition_scale[i](feat).clone())
            conditions.append(self.condition_shift[i](feat).clone())
        return self.stylegan_decoder(latent, conditions)
