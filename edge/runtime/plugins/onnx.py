"""ONNX Runtime on the CPU: sequential sessions, `threads` intra-op threads, one inter-op."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.runtime.registry import register_runner


class OnnxModel:
    backend = "onnx"
    suffix = ".onnx"

    def __init__(
        self,
        path: Path | str,
        threads: int = 1,
        *,
        fixed_shape: bool = True,
        arena: bool | None = None,
    ):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # The arena keeps the peak of every input shape it has seen: whole pyramid levels and
        # varying batches grew it by ~100 MB (measured); models with one fixed shape keep it,
        # and so does P-Net on strips of bounded size (`arena=True`): there it cost less than
        # malloc per call (whole-frame P-Net FP32 on 30 crowd frames: +29 against +101 MB peak
        # RSS, 51 against 67 ms). Memory patterns are planned per shape: only for a fixed one.
        opts.enable_cpu_mem_arena = fixed_shape if arena is None else arena
        opts.enable_mem_pattern = fixed_shape
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input_name: str = first.name
        # Symbolic dimensions ("batch", "h") come back as strings: any size.
        self.input_shape = tuple(d if isinstance(d, int) else None for d in first.shape)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(self.output_names, {self.input_name: x})


register_runner(OnnxModel.backend, OnnxModel)
