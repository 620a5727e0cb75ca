"""The one face of a face-crop image, for `face-edge restore`: the project's detector on the
image resized to DETECT_SIDE, the largest and most central face kept, mapped back.

A crop from a camera is small (a face filling 40-64 px): at its own size a face can be
below the detector's smallest face, and a large photo is slower than it needs to be. Resized
so its longer side is 160 px (bicubic up, area down) with min_face_px 20, a face of 1/8 of
the longer side or more is found (~10 ms, 1 thread). The shipped photos cut tight (ArcFace-
like), loose, off-centre and as the model's crops, shrunk to 40, 48, 64, 96 and 160 px: every
face found, its landmarks within 0.13 eye distances of those found on the full-size photo
(1.1 px at 40-64 px; tests/test_restore_align.py checks those sizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.detect.base import Detector
from edge.enhance.face_frame import apply, resize_matrix
from edge.enhance.restorer import resize_to
from edge.types import Detection

DETECT_SIDE = 160
MIN_FACE_PX = 20


def crop_detector(
    backend: str = "onnx", threads: int = 1, models_dir: Path | str | None = None
) -> Detector:
    """The shipped INT8 detector, set for faces that fill much of a small image."""
    from edge.detect.mtcnn import FaceDetector

    return FaceDetector(
        backend=backend, threads=threads, min_face_px=MIN_FACE_PX, models_dir=models_dir
    )


def pick_face(faces: list[Detection], hw: tuple[int, int]) -> Detection | None:
    """The largest face, weighed against its distance from the image's centre (a face in a
    corner counts up to half its area less)."""
    if not faces:
        return None
    h, w = hw
    centre = np.array([w, h]) / 2

    def weight(d: Detection) -> float:
        off = np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - centre) / np.linalg.norm(centre)
        return d.width * d.height * (1.0 - 0.5 * min(1.0, float(off)))

    return max(faces, key=weight)


def find_face(detector: Detector, image: np.ndarray) -> Detection | None:
    """The face of `image` (box and landmarks in its pixels), or None."""
    h, w = image.shape[:2]
    k = DETECT_SIDE / max(h, w)
    hw = (max(1, round(h * k)), max(1, round(w * k)))
    face = pick_face(detector.detect(resize_to(image, hw)), hw)
    if face is None:
        return None
    back = resize_matrix(hw, (h, w))
    box = apply(back, face.box.reshape(2, 2)).reshape(4)
    return Detection(
        box=box.astype(np.float32),
        score=face.score,
        landmarks=apply(back, face.landmarks).astype(np.float32),
    )
