"""Fold MTCNN's input normalisation and RGB order into the first convolution, so the runtime
feeds raw BGR pixels (0..255) straight from OpenCV, and export FP32 ONNX."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

# MTCNN was trained on (rgb - 127.5) * 0.0078125
MEAN, SCALE = 127.5, 0.0078125


def fold_input_normalisation(net: nn.Module) -> nn.Module:
    """conv1(normalise(rgb)) == conv1'(bgr): exact, because conv1 has no padding."""
    net = copy.deepcopy(net)
    conv: nn.Conv2d = net.conv1
    with torch.no_grad():
        w = conv.weight.clone()  # out, in(RGB), kh, kw
        conv.bias += -MEAN * SCALE * w.sum(dim=(1, 2, 3))
        conv.weight.copy_((w * SCALE).flip(1))  # BGR input order
    return net


class DecomposedPReLU(nn.Module):
    """PReLU as a*x + (1-a)*relu(x): the same function, but ONNX Runtime's PRelu kernel is
    ~10x slower than Mul/Relu/Add on the CPU (measured 3.3 ms vs 0.3 ms on a 10x214x382
    map), which made PReLU most of P-Net's time."""

    def __init__(self, prelu: nn.PReLU):
        super().__init__()
        self.register_buffer("a", prelu.weight.detach().clone())

    def forward(self, x):
        a = self.a.view(1, -1, *([1] * (x.dim() - 2)))
        return x * a + torch.relu(x) * (1 - a)


def decompose_prelu(net: nn.Module) -> nn.Module:
    """A copy of `net` with every PReLU child replaced by DecomposedPReLU (for ONNX export)."""
    net = copy.deepcopy(net)
    for name, child in list(net.named_children()):
        if isinstance(child, nn.PReLU):
            setattr(net, name, DecomposedPReLU(child))
    return net


INPUTS = {"pnet": (1, 3, 216, 384), "rnet": (1, 3, 24, 24), "onet": (1, 3, 48, 48)}
OUTPUTS = {"pnet": ["reg", "prob"], "rnet": ["reg", "prob"], "onet": ["reg", "landmarks", "prob"]}


def export_onnx(name: str, net: nn.Module, path: Path) -> None:
    sample = torch.rand(INPUTS[name]) * 255
    if name == "pnet":
        dyn = {"image": {2: "height", 3: "width"}, **{o: {2: "oh", 3: "ow"} for o in OUTPUTS[name]}}
    else:
        dyn = {"image": {0: "batch"}, **{o: {0: "batch"} for o in OUTPUTS[name]}}
    torch.onnx.export(
        net,
        (sample,),
        str(path),
        input_names=["image"],
        output_names=OUTPUTS[name],
        dynamic_axes=dyn,
        opset_version=17,
        dynamo=False,
    )
