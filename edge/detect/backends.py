"""Run a model file in ONNX Runtime or LiteRT/TFLite behind one small interface:
float32 NCHW in, a list of float32 arrays out (in the model's declared output order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxModel:
    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})


def _tflite_interpreter_class():
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
    """LiteRT interpreter; resizes the input tensor when a new shape comes in (P-Net's pyramid
    levels, batch sizes of R-Net/O-Net) and handles int8/uint8 quantized input/output tensors."""

    def __init__(self, path: Path, threads: int = 1, output_order: list[str] | None = None):
        interpreter_cls = _tflite_interpreter_class()
        self.interp = interpreter_cls(model_path=str(path), num_threads=max(1, threads))
        self.interp.allocate_tensors()
        self.input = self.interp.get_input_details()[0]
        # litert-torch names outputs serving_default_output_<i>_…: keep the torch order.
        self.outputs = sorted(self.interp.get_output_details(), key=lambda o: o["name"])
        self._shape = tuple(self.input["shape"])
        self._batch_fixed = False

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
        names = [o["name"] for o in self.outputs]
        self.outputs = [self._detail(n) for n in names]
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
            return x.astype(np.float32, copy=False)
        scale, zero = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])

    @staticmethod
    def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
        if detail["dtype"] == np.float32:
            return y
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale


def load_model(path: Path, backend: str, threads: int = 1, output_order: list[str] | None = None):
    if backend == "onnx":
        return OnnxModel(path, threads)
    if backend == "tflite":
        return TfliteModel(path, threads, output_order)
    raise ValueError(f"unknown backend {backend!r}: use onnx or tflite")
