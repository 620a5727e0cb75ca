"""Calibration inputs for the three nets, recorded while the FP32 cascade runs on real images,
so each net is calibrated on what it really sees (P-Net: whole pyramid levels; R-Net/O-Net:
the crops the previous stage proposes).

Images: UTKFace faces as they are and UTKFace faces composited small (24-130 px) into dim
640x360 scenes. Training-side data only: nothing the recall evaluation measures on
(../shared/data/detect, ../shared/data/video) is used here."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np


class Recorder:
    """Wraps a model runner and keeps a uniform random sample (reservoir, seeded) of the
    inputs it sees."""

    def __init__(self, runner, max_items: int = 400, seed: int = 0):
        self.runner, self.max_items = runner, max_items
        self.rng = random.Random(seed)
        self.inputs: list[np.ndarray] = []
        self._n = 0

    def run(self, x: np.ndarray):
        if len(self.inputs) < self.max_items:
            self.inputs.append(x.copy())
        else:
            j = self.rng.randint(0, self._n)
            if j < self.max_items:
                self.inputs[j] = x.copy()
        self._n += 1
        return self.runner.run(x)


def utkface_files(data_dir: Path, count: int, seed: int) -> list[Path]:
    files = sorted((data_dir / "faces" / "utkface").glob("*.jpg"))
    if not files:
        raise SystemExit(f"no UTKFace images under {data_dir / 'faces' / 'utkface'}")
    return random.Random(seed).sample(files, min(count, len(files)))


def composite_scene(faces: list[np.ndarray], rng: random.Random, size=(640, 360)) -> np.ndarray:
    """Faces of 20..110 px pasted on a dim, blurred background: the small-face regime of CCTV."""
    w, h = size
    bg = np.full((h, w, 3), rng.randint(30, 140), np.uint8)
    noise = np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, 25, (h // 8, w // 8, 3))
    bg = np.clip(bg + cv2.resize(noise, (w, h)), 0, 255).astype(np.uint8)
    for face in faces:
        side = rng.randint(24, 130)
        f = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        x, y = rng.randint(0, w - side), rng.randint(0, h - side)
        bg[y : y + side, x : x + side] = f
    gain = rng.uniform(0.4, 1.1)
    return np.clip(bg.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def calibration_images(
    data_dir: Path, seed: int = 0, n_faces: int = 60, n_scenes: int = 80
) -> list[np.ndarray]:
    rng = random.Random(seed)
    files = utkface_files(data_dir, n_faces + n_scenes * 4, seed)
    faces = [cv2.imread(str(p)) for p in files]
    images = faces[:n_faces]
    pool = faces[n_faces:]
    for i in range(n_scenes):
        images.append(composite_scene(pool[i * 4 : i * 4 + 4], rng))
    return images
