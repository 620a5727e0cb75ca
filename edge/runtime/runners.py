"""One small interface over ONNX Runtime and LiteRT/TFLite for the detector's models.

`load_model(path, backend, threads)` returns an object whose `run(x)` takes float32 NCHW
(batch, 3, H, W; raw BGR pixel values 0..255) and returns the model's outputs as float32
arrays in NCHW / (batch, k) layout, in the order of the torch module the model was exported
from. Layout (the TFLite models are traced from the same NCHW torch modules, so they take
NCHW too) and int8 input/output quantization, where a model has it, are handled here.

Imports neither torch nor anything from the conversion tools. ONNX Runtime sessions run
sequentially with `intra_op_num_threads=threads` and one inter-op thread.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edge.runtime.manifest import verified_model_path


class OnnxModel:
    def __init__(self, path: Path | str, threads: int = 1, memory_arena: bool = True):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # The arena keeps the peak of every input shape it has seen: MTCNN's pyramid and varying
        # batches grow it by ~100 MB (measured); models with one fixed shape keep it.
        opts.enable_cpu_mem_arena = memory_arena
        opts.enable_mem_pattern = memory_arena
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(self.output_names, {self.input_name: x})


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
    """LiteRT interpreter. Resizes the input tensor when a new shape comes in (P-Net's pyramid
    levels; R-Net/O-Net batch sizes) and quantizes/dequantizes int8/uint8 input and output
    tensors where the model has them (the shipped INT8 models have float32 I/O)."""

    def __init__(self, path: Path | str, threads: int = 1):
        interpreter_cls = tflite_interpreter_class()
        self.interp = interpreter_cls(model_path=str(path), num_threads=max(1, int(threads)))
        self.interp.allocate_tensors()
        self.input = self.interp.get_input_details()[0]
        # litert-torch names outputs "..._output_<i>": sort to get the torch module's order.
        self._names = [o["name"] for o in sorted(self.interp.get_output_details(), key=_out_key)]
        self.outputs = [self._detail(n) for n in self._names]
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


def load_model(
    path: Path | str,
    backend: str,
    threads: int = 1,
    *,
    verify: bool = True,
    fixed_shape: bool = True,
) -> OnnxModel | TfliteModel:
    """Open a model file in the given backend. With verify (the default) the file must be listed
    in the manifest.json beside it with a matching sha256, else ModelIntegrityError.
    `fixed_shape=False` (inputs of many shapes) turns ONNX Runtime's memory arena off."""
    if verify:
        path = verified_model_path(Path(path).parent, Path(path).name)
    if backend == "onnx":
        return OnnxModel(path, threads, memory_arena=fixed_shape)
    if backend == "tflite":
        return TfliteModel(path, threads)
    raise ValueError(f"unknown backend {backend!r}: use onnx or tflite")
