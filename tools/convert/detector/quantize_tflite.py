"""Full-integer INT8 TFLite through litert-torch with the PT2E quantizer (per-channel
symmetric weights, static int8 activations calibrated on real inputs). Inputs and outputs
stay float32 at the model's boundary; every conv/matmul inside runs in int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def export_tflite_fp32(net: torch.nn.Module, sample: np.ndarray, path: Path) -> None:
    import litert_torch

    model = litert_torch.convert(net.eval(), (torch.from_numpy(sample),))
    model.export(str(path))


def export_tflite_int8(
    net: torch.nn.Module, sample: np.ndarray, inputs: list[np.ndarray], path: Path
) -> None:
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    args = (torch.from_numpy(sample),)
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    )
    exported = torch.export.export(net.eval(), args).module()
    prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for x in inputs:
            prepared(torch.from_numpy(x))
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    model = litert_torch.convert(
        converted, args, quant_config=QuantConfig(pt2e_quantizer=quantizer)
    )
    model.export(str(path))
