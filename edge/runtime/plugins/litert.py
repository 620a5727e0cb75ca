"""LiteRT (TFLite) interpreter: `ai_edge_litert`, else the older `tflite_runtime`.

The TFLite models are traced from the same NCHW torch modules as the ONNX ones, so they take
NCHW too; int8/uint8 input and output tensors, where a model has them, are (de)quantized here
(the shipped INT8 models have float32 I/O)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edge.runtime.registry import register_runner


def tflite_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as e:
            raise RuntimeError(
                "no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime on old systems)"
            ) from e
    return Interpreter


class TfliteModel:
    """Resizes the input tensor when a new shape comes in (P-Net's pyramid levels; R-Net/O-Net
    batch sizes), so `fixed_shape` and `arena` change nothing here."""

    backend = "tflite"
    suffix = ".tflite"

    def __init__(
        self,
        path: Path | str,
        threads: int = 1,
        *,
        fixed_shape: bool = True,
        arena: bool | None = None,
    ):
        interpreter_cls = tflite_interpreter_class()
        self.interp = interpreter_cls(model_path=str(path), num_threads=max(1, int(threads)))
        self.interp.allocate_tensors()
        self.input = self.interp.get_input_details()[0]
        self.input_name: str = self.input["name"]
        signature = self.input.get("shape_signature", self.input["shape"])
        self.input_shape = tuple(int(d) if d >= 0 else None for d in signature)
        # litert-torch names outputs "..._output_<i>": sort to get the torch module's order.
        self._names = [o["name"] for o in sorted(self.interp.get_output_details(), key=_out_key)]
        self.outputs = [self._detail(n) for n in self._names]
        self._shape = tuple(self.input["shape"])
        self._batch_fixed = False

    @property
    def output_names(self) -> list[str]:
        return list(self._names)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        if self._batch_fixed and x.shape[0] != self._shape[0]:
            return self._run_chunks(x)
        if tuple(x.shape) != self._shape:
            try:
                self._resize(x.shape)
            except (RuntimeError, ValueError):
                # A graph with a baked-in batch size (a reshape before a dense layer) cannot be
                # resized along the batch: run it one item at a time instead.
                self._batch_fixed = True
                self._resize((1, *x.shape[1:]))
                return self._run_chunks(x)
        return self._invoke(x)

    def _resize(self, shape: tuple) -> None:
        self.interp.resize_tensor_input(self.input["index"], list(shape), strict=False)
        self.interp.allocate_tensors()
        self.input = self.interp.get_input_details()[0]
        self.outputs = [self._detail(n) for n in self._names]
        self._shape = tuple(shape)

    def _run_chunks(self, x: np.ndarray) -> list[np.ndarray]:
        parts = [self._invoke(x[i : i + 1]) for i in range(len(x))]
        if not parts:
            return [np.zeros((0, *o["shape"][1:]), np.float32) for o in self.outputs]
        return [np.concatenate(p) for p in zip(*parts, strict=True)]

    def _invoke(self, x: np.ndarray) -> list[np.ndarray]:
        self.interp.set_tensor(self.input["index"], self._quantize(x, self.input))
        self.interp.invoke()
        return [self._dequantize(self.interp.get_tensor(o["index"]), o) for o in self.outputs]

    def _detail(self, name: str) -> dict:
        return next(o for o in self.interp.get_output_details() if o["name"] == name)

    @staticmethod
    def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
        if detail["dtype"] == np.float32:
            return np.ascontiguousarray(x, dtype=np.float32)
        scale, zero = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])

    @staticmethod
    def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
        if detail["dtype"] == np.float32:
            return y
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale


def _out_key(detail: dict) -> tuple:
    m = re.search(r"output_(\d+)", detail["name"])
    return (0, int(m.group(1)), detail["name"]) if m else (1, 0, detail["name"])


register_runner(TfliteModel.backend, TfliteModel)
