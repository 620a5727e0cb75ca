"""What a loaded model offers the detector and the restorer, whatever runtime runs it.
Imports neither torch nor anything from the conversion tools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np


@runtime_checkable
class ModelRunner(Protocol):
    """A model opened in one runtime. `run(x)` takes the model's one input, float32 NCHW
    (batch, 3, H, W), and returns its outputs as float32 arrays in the order of the torch
    module the model was exported from; layout and int8 I/O quantization stay inside."""

    @property
    def backend(self) -> str:
        """The registry name the runner was opened under ("onnx", "tflite")."""
        ...

    @property
    def input_name(self) -> str: ...

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The input's shape as the model file declares it; None where any size goes."""
        ...

    @property
    def output_names(self) -> list[str]:
        """In the order `run` returns the outputs."""
        ...

    def run(self, x: np.ndarray) -> list[np.ndarray]: ...


class RunnerPlugin(Protocol):
    """What `register_runner` takes: a runner class and the file suffix of its models.
    `fixed_shape=False` tells a runtime to expect inputs of many shapes (MTCNN's pyramid);
    `arena=True` that those shapes are bounded in size, so a runtime may keep a memory pool
    sized for the largest (None: only for a fixed shape)."""

    suffix: str

    def __call__(
        self,
        path: Path | str,
        threads: int = 1,
        *,
        fixed_shape: bool = True,
        arena: bool | None = None,
    ) -> ModelRunner: ...
