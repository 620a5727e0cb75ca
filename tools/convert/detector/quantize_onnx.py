"""Static QDQ INT8 (per-channel weights, calibrated activations) for ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


class ListReader(CalibrationDataReader):
    def __init__(self, inputs: list[np.ndarray]):
        self._it = iter([{"image": x} for x in inputs])

    def get_next(self):
        return next(self._it, None)


def quantize_onnx(fp32_path: Path, int8_path: Path, inputs: list[np.ndarray]) -> None:
    prep = int8_path.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32_path), str(prep), skip_symbolic_shape=True)
    # Softmax and the PReLU pieces (Mul/Relu/Add, see export.DecomposedPReLU) stay in float
    # between DequantizeLinear/QuantizeLinear: scores keep their resolution near the
    # thresholds, and in ONNX Runtime's NHWC int8 graph a per-channel QLinearMul is slower
    # than the float ops. Every Conv and Gemm (all the MACs) runs in int8.
    names = [n.name for n in onnx.load(str(prep)).graph.node]
    keep_float = [n for n in names if "Softmax" in n or n.startswith("/prelu")]
    quantize_static(
        str(prep),
        str(int8_path),
        ListReader(inputs),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=keep_float,
    )
    prep.unlink()
