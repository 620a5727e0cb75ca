"""Multi-frame restoration at run time: a track's frames of one face, registered onto the
published one and fused into one restored face.

Two methods (`enhance.multi_frame.method`):

- `network`: the fusion student (`restore_fusion_{int8,fp32}.{onnx,tflite}`, see
  models/quantized/FUSION_MODEL_CARD.md): input `frames` K x 3 x 40 x 40, RGB in [0, 1],
  output 1 x 3 x 160 x 160, the restorer's framing. K is dynamic in the ONNX files; the LiteRT
  files take a fixed K (8), and a burst of fewer frames is repeated to fill it
  (`fill_frames`).
- `average`: the named classical baseline, frame averaging: the registered views' per-pixel
  mean, enlarged bicubic to 160.

When only the published frame is left (no other frame was buffered or registered), the
single-frame student restores it as before, so multi-frame never does worse than one frame
for lack of frames.

Imports neither torch nor anything from the conversion tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.enhance.burst import BurstFrame, average_frames, register_burst
from edge.enhance.restorer import from_model_output, resize_to, to_model_input
from edge.runtime import model_suffix, open_runner
from edge.runtime.manifest import default_models_dir, model_version

NETWORK_INPUT = 40
OUTPUT_SIDE = 160


def fusion_file_name(precision: str, backend: str = "onnx") -> str:
    if precision not in ("int8", "fp32"):
        raise ValueError(f"unknown precision {precision!r}: use int8 or fp32")
    return f"restore_fusion_{precision}{model_suffix(backend)}"


def fill_frames(x: np.ndarray, n: int) -> np.ndarray:
    """K frames -> exactly n for a model with a fixed frame count: repeated in turn
    (0, 1, .., K-1, 0, 1, ..), or the first n when K > n. The network pools with a softmax
    over frames, so a burst repeated a whole number of times fuses exactly as itself (K = 1,
    2, 4, 8 for n = 8); otherwise the first frames (the published one first) weigh a little
    more."""
    return x[np.arange(n) % len(x)] if len(x) < n else x[:n]


class FusionNetwork:
    """Registered views (BGR, any equal size) -> the fused face, BGR 160x160, model framing."""

    def __init__(
        self,
        precision: str = "int8",
        threads: int = 1,
        models_dir: Path | str | None = None,
        backend: str = "onnx",
    ):
        models_dir = Path(models_dir) if models_dir else default_models_dir()
        self.file_name = fusion_file_name(precision, backend)
        # ONNX Runtime's arena stays on although K varies per call: over K = 2, 4, 8, 1, 3, 8
        # it peaked no higher (76.7 against 75.2-75.9 MB RSS) and 8 frames took 6.2 against
        # 6.6-7.4 ms (U8S8, one thread; malloc per call without it).
        self.model = open_runner(backend, models_dir / self.file_name, threads)
        self.version = model_version(models_dir, self.file_name)
        self.precision, self.backend = precision, backend
        # None: any number of frames (ONNX); else the model's fixed frame count (LiteRT).
        self.frame_count = self.model.input_shape[0] if backend != "onnx" else None

    def __call__(self, views: list[np.ndarray]) -> np.ndarray:
        if not views:
            raise ValueError("no frames to fuse")
        side = (NETWORK_INPUT, NETWORK_INPUT)
        x = np.concatenate([to_model_input(v, side) for v in views])
        if self.frame_count:
            x = fill_frames(x, self.frame_count)
        return from_model_output(self.model.run(x)[0])


@dataclass(slots=True)
class FusionOutcome:
    """What fusing a burst did: the restored face in the model's framing at 160 px (None: too
    few frames, restore the single frame instead), the frames used (0 = the published one)
    and their wall-clock times; `average`: the registered views' mean at the view's size (the
    plain face a partial strength blends the network's over: it carries the burst's
    averaged noise, not frame 0's)."""

    restored: np.ndarray | None
    frames_fused: int
    wall_times: list[float] = field(default_factory=list)
    dropped: int = 0
    average: np.ndarray | None = None


class BurstFusion:
    """Registers a burst onto its first frame and fuses what registers."""

    def __init__(self, method: str, network: FusionNetwork | None = None):
        if method not in ("network", "average"):
            raise ValueError(f"unknown multi-frame method {method!r}: use network or average")
        if method == "network" and network is None:
            raise ValueError("the network method needs the fusion network")
        self.method = method
        self.network = network

    @property
    def version(self) -> str:
        return self.network.version if self.method == "network" else "frame-average-1"

    def __call__(self, burst: list[BurstFrame]) -> FusionOutcome:
        if len(burst) < 2:
            return FusionOutcome(None, 1, [f.wall_time for f in burst])
        reg = register_burst(burst[0].view, [f.view for f in burst[1:]])
        times = [burst[i].wall_time for i in reg.used]
        dropped = len(burst) - len(reg.used)
        if len(reg.views) < 2:
            return FusionOutcome(None, 1, times, dropped)
        average = average_frames(reg.views)
        if self.method == "network":
            restored = self.network(reg.views)
        else:
            restored = resize_to(average, (OUTPUT_SIDE, OUTPUT_SIDE))
        return FusionOutcome(restored, len(reg.views), times, dropped, average)
