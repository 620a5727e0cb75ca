"""Export the GFPGAN-class timing baseline (tools/bench/gfpgan_class_arch.py, random
weights) to ONNX for `face-edge bench`, with its parameter count and MACs beside it.

    python -m tools.bench.export_gfpgan_class [--out PATH]

Default PATH: edge.commands.bench.baseline.default_gfpgan_path() (the user's face-edge cache), where
`face-edge bench` looks for it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from edge.commands.bench.baseline import SIDE, default_gfpgan_path
from tools.bench.gfpgan_class_arch import GFPGANClass


def count_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (torch's FLOP counter counts 2 per MAC)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=default_gfpgan_path())
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model = GFPGANClass().eval()
    x = torch.rand(1, 3, SIDE, SIDE) * 2 - 1
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, x)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            model, (x,), str(tmp), input_names=["face"], output_names=["restored"],
            opset_version=17, dynamo=False,
        )  # fmt: skip
    tmp.replace(args.out)
    facts = {
        "structure": "GFPGANv1Clean (v1.3/v1.4 config: 512x512, channel_multiplier 2, "
        "num_style_feat 512, different_w, sft_half), random weights",
        "params_m": round(params / 1e6, 2),
        "gmacs": round(macs / 1e9, 1),
        "input": [1, 3, SIDE, SIDE],
        "torch": torch.__version__,
    }
    args.out.with_suffix(".json").write_text(json.dumps(facts, indent=2) + "\n")
    print(f"wrote {args.out} ({facts['params_m']} M params, {facts['gmacs']} GMACs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
