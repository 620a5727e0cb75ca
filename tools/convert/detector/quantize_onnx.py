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
    def __init__(self, inputs: list[np.ndarray], name: str = "image"):
        self._it = iter([{name: x} for x in inputs])

    def get_next(self):
        return next(self._it, None)


def quantize_onnx(
    fp32_path: Path,
    int8_path: Path,
    inputs: list[np.ndarray],
    reduce_range: bool = False,
    weight_type: QuantType = QuantType.QUInt8,
    keep_float: tuple[str, ...] = (),
    calibrate_method: CalibrationMethod = CalibrationMethod.MinMax,
    input_name: str = "image",
) -> None:
    """Static QDQ with per-channel **uint8** weights and uint8 activations (U8U8).

    Why not int8 weights (U8S8): ONNX Runtime's x86 kernels without VNNI (AVX2 only, such as
    AMD EPYC before Zen 4) add pairs of u8 x s8 products in int16, which saturates. Measured
    on such a CPU with the earlier U8S8 files: the restorer's INT8 output was 31.2 dB PSNR
    from its FP32 output and the detector's landmarks moved by up to 8 px. 7-bit weights
    (`reduce_range`) avoid the saturation (45.0 dB) but cost precision: the crowd clip's
    recall fell from 0.97 to 0.75. U8U8 is exact on every CPU (landmarks within 1.1 px of
    FP32 on the astronaut photo) at full 8-bit precision."""
    prep = int8_path.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32_path), str(prep), skip_symbolic_shape=True)
    # Softmax and the PReLU pieces (Mul/Relu/Add, see export.DecomposedPReLU) stay in float
    # between DequantizeLinear/QuantizeLinear: scores keep their resolution near the
    # thresholds, and in ONNX Runtime's NHWC int8 graph a per-channel QLinearMul is slower
    # than the float ops. Every Conv and Gemm (all the MACs) runs in int8.
    names = [n.name for n in onnx.load(str(prep)).graph.node]
    keep = ("Softmax", "/prelu", *keep_float)
    keep_float_nodes = [n for n in names if any(k in n for k in keep)]
    quantize_static(
        str(prep),
        str(int8_path),
        ListReader(inputs, input_name),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=weight_type,
        calibrate_method=calibrate_method,
        nodes_to_exclude=keep_float_nodes,
        reduce_range=reduce_range,
    )
    prep.unlink()
    shapes_from_quantized(int8_path)


def shapes_from_quantized(path: Path) -> int:
    """Rewire every Shape node that reads a DequantizeLinear output to read the quantized
    tensor instead (same shape), in place; returns how many. Exact. Why: the dynamic frame
    axis of the fusion network exports `Shape` ops on its K x 48 x 40 x 40 features, and ONNX
    Runtime then dequantized the whole tensor only to read its shape: 1 ms of 7.9 at K = 8."""
    model = onnx.load(str(path))
    producer = {out: node for node in model.graph.node for out in node.output}
    rewired = 0
    for node in model.graph.node:
        source = producer.get(node.input[0]) if node.op_type == "Shape" else None
        if source is not None and source.op_type == "DequantizeLinear":
            node.input[0] = source.input[0]
            rewired += 1
    if rewired:
        onnx.save(model, str(path))
    return rewired
