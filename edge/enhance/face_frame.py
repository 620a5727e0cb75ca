"""Restore a face wherever it sits in an image, from its 5 landmarks.

The network learned faces framed like LFW deep-funneled crops (`MODEL_FRAMING`). A tight
(ArcFace-style), loose or off-centre crop is moved into that framing with the similarity
transform that puts the face's 5 landmarks where the framing has them, restored there, and
moved back into the image's own framing:

- `model_landmarks(side)`: the 5-point template of `edge.shots.align` scaled and shifted so
  its eyes land on MODEL_FRAMING's eyes (the eyes-onto-eyes move `framing_matrix` makes for
  the daemon's crops). On 100 LFW crops (seed 0) the detector's median landmarks are within
  2.2 px of these at 160 px.
- `output_hw`: the result keeps the image's framing and aspect; its longer side is the model's
  output side (160 px, as every restored crop has always been).
- Only the face is restored: a feathered ellipse around it (`face_mask`) takes the network's
  output, the rest of the result is the image resized (`resize_to`, bicubic when enlarging),
  so nothing outside the face is invented.

The caller finds the landmarks (a command may run the detector; this layer may not).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.enhance.restorer import (
    MODEL_FRAMING,
    FaceRestorer,
    aligned_crop_framing,
    framing_matrix,
    resize_to,
)
from edge.shots.align import TEMPLATE_112, similarity_transform

# The restored region in the model's framing, in eye distances: an ellipse centred halfway
# between the eye centre and the mouth centre (forehead, cheeks, chin and the face's outline),
# feathered over FEATHER of the model's output side.
FACE_AXES = (1.4, 1.8)
FEATHER = 4 / 160


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points through a 2x3 affine matrix."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 matrix doing `inner`, then `outer`."""
    m = outer[:, :2] @ inner
    m[:, 2] += outer[:, 2]
    return m


def resize_matrix(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """The 2x3 matrix `cv2.resize` applies from src to dst pixels (pixel centres aligned)."""
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    return np.array([[sx, 0.0, 0.5 * (sx - 1)], [0.0, sy, 0.5 * (sy - 1)]])


def model_landmarks(side: int) -> np.ndarray:
    """Where the model's framing puts the 5 landmarks (eyes, nose, mouth corners) in a crop
    of `side` pixels: the 112 template (no margin) moved eyes onto MODEL_FRAMING's eyes."""
    move = framing_matrix(aligned_crop_framing(112, 0.0), 112, MODEL_FRAMING, side)
    return apply(move, TEMPLATE_112)


def to_model_matrix(landmarks: np.ndarray, side: int) -> np.ndarray:
    """2x3 similarity from image pixels to the model's framing at `side` pixels: the least-
    squares fit of the face's 5 landmarks onto `model_landmarks(side)`."""
    return similarity_transform(np.asarray(landmarks, np.float64), model_landmarks(side))


def output_hw(hw: tuple[int, int], side: int) -> tuple[int, int]:
    """The result's size for an image of `hw` (height, width): same aspect, longer side `side`."""
    h, w = hw
    k = side / max(h, w)
    return max(1, round(h * k)), max(1, round(w * k))


def face_mask(side: int) -> np.ndarray:
    """float32 (side, side) in [0, 1]: 1 on the face in the model's framing, 0 beyond the
    ellipse and the crop's edge, feathered between."""
    lm = model_landmarks(side)
    eyes, mouth = lm[:2].mean(0), lm[3:].mean(0)
    centre = (eyes + mouth) / 2
    ed = MODEL_FRAMING.eye_distance * side
    f = max(1.0, FEATHER * side)
    axes = (round(FACE_AXES[0] * ed - f), round(FACE_AXES[1] * ed - f))
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (round(centre[0]), round(centre[1])), axes, 0, 0, 360, 1.0, -1)
    inset = int(np.ceil(1.5 * f))  # 3 sigma of the feather: ~0 at the crop's edge
    mask[:inset], mask[-inset:], mask[:, :inset], mask[:, -inset:] = 0, 0, 0, 0
    return cv2.GaussianBlur(mask, (0, 0), f / 2)


@dataclass(frozen=True, slots=True)
class FramedFace:
    """One restoration: `image` (output_hw of the input, the input's framing), `view` (what
    the network was given: the input in its framing at the model's output side, before its
    resize to the model's input) and `to_model` (input pixels -> view pixels)."""

    image: np.ndarray
    view: np.ndarray
    to_model: np.ndarray


class AlignedRestorer:
    """Restores the face with these landmarks wherever it sits in an image (any size and
    aspect): into the model's framing, through the network, back into the image's framing."""

    def __init__(self, restorer: FaceRestorer):
        self.restorer = restorer
        self.side = restorer.output_side
        self.mask = face_mask(self.side)

    def model_view(self, image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(view, to_model): the image warped into the model's framing at its output side.
        Bicubic; the image's border is replicated where the framing reaches beyond it, so the
        network never sees black. The network's input is then this view area-averaged to its
        input side (FaceRestorer's resize), as its training inputs were."""
        to_model = to_model_matrix(landmarks, self.side)
        view = cv2.warpAffine(
            image, to_model, (self.side, self.side), flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        return view, to_model

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> FramedFace:
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 2:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {image.shape}")
        view, to_model = self.model_view(image, landmarks)
        restored = self.restorer(view)
        hw = image.shape[:2]
        out_h, out_w = output_hw(hw, self.side)
        # model framing -> the input's pixels -> the output's pixels
        back = compose(resize_matrix(hw, (out_h, out_w)), cv2.invertAffineTransform(to_model))
        face = cv2.warpAffine(
            restored, back, (out_w, out_h), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        mask = cv2.warpAffine(
            self.mask, back, (out_w, out_h), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
        )[:, :, None]  # fmt: skip
        context = resize_to(image, (out_h, out_w)).astype(np.float32)
        blended = face.astype(np.float32) * mask + context * (1.0 - mask)
        return FramedFace(np.clip(blended + 0.5, 0, 255).astype(np.uint8), view, to_model)
