"""The distilled face-restoration network at run time (ONNX Runtime or LiteRT, INT8 or FP32).

Model I/O (see models/quantized/RESTORER_MODEL_CARD.md): input float32 NCHW 1x3x40x40, RGB
in [0, 1], the face crop resized to 40x40; output 1x3x160x160 RGB in [0, 1]. The network
learned faces framed like the LFW deep-funneled 160x160 crops (`MODEL_FRAMING`). Crops framed
otherwise (the daemon's aligned crops) go through `FramedRestorer`, which moves the face into
the model's framing, restores it, and puts it back.

Imports neither torch nor anything from the conversion tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.runtime import model_suffix, open_runner
from edge.runtime.manifest import default_models_dir, model_version
from edge.shots.align import template_for


@dataclass(frozen=True, slots=True)
class Framing:
    """Where the eyes sit in a square crop, as fractions of its side."""

    eye_distance: float
    eye_centre_x: float
    eye_centre_y: float

    def at(self, side: float) -> tuple[float, np.ndarray]:
        return self.eye_distance * side, np.array([self.eye_centre_x, self.eye_centre_y]) * side


# Medians of the project's detector on 100 LFW deep-funneled 160x160 crops (see
# tools/convert/restore/data.py): eye distance 41.2 px, eye centre (78.1, 64.9).
MODEL_FRAMING = Framing(41.2 / 160, 78.1 / 160, 64.9 / 160)


def aligned_crop_framing(crop_size: int, margin: float) -> Framing:
    """The framing `edge.shots.align.align_face` gives a crop of `crop_size` with `margin`."""
    t = template_for(crop_size, margin)
    eyes = t[:2]
    centre = eyes.mean(0) / crop_size
    return Framing(float(np.linalg.norm(eyes[1] - eyes[0]) / crop_size), *map(float, centre))


def model_file_name(backend: str, precision: str) -> str:
    suffix = model_suffix(backend)  # ValueError naming the registered backends
    if precision not in ("int8", "fp32"):
        raise ValueError(f"unknown precision {precision!r}: use int8 or fp32")
    return f"restore_student_{precision}{suffix}"


def resize_to(bgr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """`bgr` resized to hw (height, width): area averaging to shrink, bicubic to enlarge."""
    h, w = hw
    if bgr.shape[:2] == (h, w):
        return bgr
    interp = cv2.INTER_AREA if bgr.shape[0] * bgr.shape[1] > h * w else cv2.INTER_CUBIC
    return cv2.resize(bgr, (w, h), interpolation=interp)


def to_model_input(deg_bgr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The model's input: the crop resized to the model's input size (resize_to), RGB,
    float32 in [0, 1], NCHW (1, 3, H, W)."""
    x = cv2.cvtColor(resize_to(deg_bgr, hw), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def blend_with_plain(restored: np.ndarray, source: np.ndarray, strength: float) -> np.ndarray:
    """`strength` x the network's face + (1 - strength) x `source` enlarged to its size (the
    plain upscale the network replaces): how much of the network's change is kept."""
    if strength >= 1.0:
        return restored
    plain = resize_to(source, restored.shape[:2]).astype(np.float32)
    out = strength * restored.astype(np.float32) + (1.0 - strength) * plain
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def from_model_output(y: np.ndarray) -> np.ndarray:
    """The model's output, NCHW (1, 3, H, W) RGB in [0, 1] -> BGR uint8 (H, W, 3)."""
    y = np.asarray(y, np.float32)[0].transpose(1, 2, 0)
    y = np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(y, cv2.COLOR_RGB2BGR)


class FaceRestorer:
    """Any-size BGR face crop (model framing) in, restored BGR crop out at the model's size.

    `strength` (`enhance.restore.strength`, in [0, 1]) keeps that share of the network's change
    over the plain bicubic upscale, like CodeFormer's fidelity weight: below 1 the face keeps
    more of what the camera saw."""

    def __init__(
        self,
        backend: str = "onnx",
        precision: str = "int8",
        threads: int = 1,
        models_dir: Path | str | None = None,
        strength: float = 1.0,
    ):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"restore strength {strength!r} is outside [0, 1]")
        self.strength = float(strength)
        models_dir = Path(models_dir) if models_dir else default_models_dir()
        name = model_file_name(backend, precision)
        # Checked against the manifest's sha256 before the runtime opens it.
        self.model = open_runner(backend, models_dir / name, threads)
        self.backend, self.precision, self.file_name = backend, precision, name
        self.model_threads, self.models_dir = threads, models_dir
        self.version = model_version(models_dir, name)
        self.input_side = 40
        self.output_side = int(
            self.model.run(self._input(np.zeros((8, 8, 3), np.uint8)))[0].shape[-1]
        )

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim != 3 or bgr.shape[2] != 3 or min(bgr.shape[:2]) < 2:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {bgr.shape}")
        restored = from_model_output(self.model.run(self._input(bgr))[0])
        return blend_with_plain(restored, bgr, self.strength)

    def _input(self, bgr: np.ndarray) -> np.ndarray:
        return to_model_input(bgr, (self.input_side, self.input_side))


def framing_matrix(src: Framing, src_side: int, dst: Framing, dst_side: int) -> np.ndarray:
    """2x3 scale + shift taking crop `src` pixels to crop `dst` pixels (eyes onto eyes)."""
    d_src, c_src = src.at(src_side)
    d_dst, c_dst = dst.at(dst_side)
    k = d_dst / d_src
    t = c_dst - k * c_src
    return np.array([[k, 0.0, t[0]], [0.0, k, t[1]]])


class FramedRestorer:
    """Restores crops with another framing: warps the face into the model's framing, restores,
    warps back at the crop's size. The part of the crop the model does not see (context beyond
    its field) keeps the input, blended over a few pixels so no seam shows."""

    FEATHER_PX = 6

    def __init__(self, restorer: FaceRestorer, framing: Framing):
        self.restorer = restorer
        self.framing = framing
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _geometry(self, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if side not in self._cache:
            out = self.restorer.output_side
            fwd = framing_matrix(self.framing, side, MODEL_FRAMING, out)
            back = cv2.invertAffineTransform(fwd)
            mask = cv2.warpAffine(
                np.ones((out, out), np.float32), back, (side, side), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
            )  # fmt: skip
            f = self.FEATHER_PX
            mask = cv2.erode(mask, np.ones((2 * f + 1, 2 * f + 1), np.uint8))
            mask = cv2.GaussianBlur(mask, (0, 0), f / 2)[:, :, None]
            self._cache[side] = (fwd, back, mask)
        return self._cache[side]

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        if h != w:
            raise ValueError(f"expected a square aligned crop, got {w}x{h}")
        fwd, _, _ = self._geometry(h)
        out = self.restorer.output_side
        # Replicate the border so the model never sees black where the crop ends.
        view = cv2.warpAffine(
            bgr, fwd, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return self.put_back(bgr, self.restorer(view))

    def put_back(self, bgr: np.ndarray, restored: np.ndarray) -> np.ndarray:
        """`restored` (the face in the model's framing at its output side, from this crop or
        from frames registered onto it) warped into the crop's framing over `bgr`."""
        h, w = bgr.shape[:2]
        if h != w:
            raise ValueError(f"expected a square aligned crop, got {w}x{h}")
        _, back, mask = self._geometry(h)
        back_img = cv2.warpAffine(
            restored, back, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        blended = back_img.astype(np.float32) * mask + bgr.astype(np.float32) * (1.0 - mask)
        return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
