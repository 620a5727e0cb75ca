"""MTCNN face detection cascade (P-Net over an image pyramid, R-Net, O-Net with 5 landmarks),
running the shipped INT8 or FP32 models in ONNX Runtime or LiteRT. No torch here.

The shipped models take raw BGR pixels (0..255): the original normalisation and RGB order
were folded into their first convolution by tools/convert/detector."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import ArrayLike

from edge.geometry import iou_matrix
from edge.runtime import ModelRunner, known_backends, model_suffix, open_runner
from edge.runtime.manifest import default_models_dir, load_manifest
from edge.types import Box, Detection

PNET_STRIDE, PNET_CELL = 2, 12
# P-Net looks at a pyramid level (or a region of one) in horizontal strips of at most this many
# level pixels. A 1280x720 frame's first level (768x432 at min_face_px 20) in one call holds
# tens of MB of float temporaries (conv outputs, the PReLU pieces) at once. P-Net is fully
# convolutional (stride 2, 12 px cell), so strips that overlap by PNET_CELL - PNET_STRIDE rows
# and start on even rows give exactly the whole level's output cells.
PNET_STRIP_PX = 96 * 1024
# first_stage_precision "auto" keeps FP32 P-Net only where it takes less than this share of
# INT8's time on this CPU: near a tie the INT8 file (the shipped default) stays.
AUTO_FP32_SHARE = 0.85
# Both P-Nets are timed on this input (LiteRT's traced P-Net shape: no resize), warm, runs
# interleaved so a CPU that changes speed meanwhile slows both alike.
AUTO_PROBE_SHAPE = (1, 3, 216, 384)
AUTO_PROBE_RUNS = 7

log = logging.getLogger(__name__)
# Candidate caps keep a busy frame (crowds, textures) from exploding the later stages.
MAX_PNET_PER_LEVEL = 1000
MAX_RNET_INPUTS = 400
MAX_ONET_INPUTS = 100
# A P-Net candidate overlapping a followed face this much (IoU), or centred on it, is that face
# again: R-Net and O-Net need not look at it. Two different faces rarely overlap this much.
FOLLOWED_IOU = 0.25


def model_file(net: str, precision: str, backend: str) -> str:
    return f"mtcnn_{net}_{precision}{model_suffix(backend)}"


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union"
) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best first. IoU ("union") runs in
    OpenCV's C++ NMS (scores are probabilities, >= 0); "min" (overlap over the smaller box)
    in numpy."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    if method == "union":
        xywh = np.empty((len(boxes), 4), np.float64)
        xywh[:, :2] = boxes[:, :2]
        xywh[:, 2:] = boxes[:, 2:4] - boxes[:, :2] + 1
        keep = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float64), 0.0, float(threshold))
        return np.asarray(keep, dtype=np.int64).reshape(-1)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        overlap = inter / np.minimum(area[i], area[rest])
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def on_faces(cand: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Which candidates (N, >=4) are one of `faces` (M, 4) again: IoU >= FOLLOWED_IOU or the
    candidate's centre inside the face's box (P-Net's smaller boxes on parts of the face)."""
    iou = iou_matrix(cand[:, :4], faces)
    cx, cy = (cand[:, 0] + cand[:, 2]) / 2, (cand[:, 1] + cand[:, 3]) / 2
    inside = (
        (cx[:, None] > faces[None, :, 0])
        & (cx[:, None] < faces[None, :, 2])
        & (cy[:, None] > faces[None, :, 1])
        & (cy[:, None] < faces[None, :, 3])
    )
    return ((iou >= FOLLOWED_IOU) | inside).any(axis=1)


def square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def crop_batch(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Square crops of `boxes` (zero outside the image) resized to size x size, as NCHW float32."""
    h, w = image.shape[:2]
    out = np.empty((len(boxes), 3, size, size), dtype=np.float32)
    for k, (bx1, by1, bx2, by2) in enumerate(boxes[:, :4].astype(np.int64)):
        bw, bh = max(1, bx2 - bx1 + 1), max(1, by2 - by1 + 1)
        sx1, sy1, sx2, sy2 = max(bx1, 0), max(by1, 0), min(bx2 + 1, w), min(by2 + 1, h)
        if sx1 == bx1 and sy1 == by1 and sx2 == bx2 + 1 and sy2 == by2 + 1:
            patch = image[sy1:sy2, sx1:sx2]
        else:
            patch = np.zeros((bh, bw, 3), dtype=np.uint8)
            if sx2 > sx1 and sy2 > sy1:
                patch[sy1 - by1 : sy2 - by1, sx1 - bx1 : sx2 - bx1] = image[sy1:sy2, sx1:sx2]
        interp = cv2.INTER_AREA if bw > size else cv2.INTER_LINEAR
        out[k] = cv2.resize(patch, (size, size), interpolation=interp).transpose(2, 0, 1)
    return out


def pnet_strips(h: int, w: int, max_px: int | None = None) -> list[tuple[int, int]]:
    """Level rows [r0, r1) of the strips P-Net runs on for an h x w level (h even): each
    strip starts on an even row and overlaps the next by PNET_CELL - PNET_STRIDE rows, so
    every output cell comes from exactly one strip; strips of about equal height, each at
    most `max_px` (default PNET_STRIP_PX) pixels (or the smallest strip that still gives 8
    rows of cells)."""
    max_px = PNET_STRIP_PX if max_px is None else max_px
    cells = (h - PNET_CELL) // PNET_STRIDE + 1
    if cells <= 0:
        return [(0, h)]
    overlap = PNET_CELL - PNET_STRIDE
    per_strip = max(8, (max_px // max(1, w) - overlap) // PNET_STRIDE)
    n = -(-cells // per_strip)
    size = -(-cells // n)
    strips = []
    for first in range(0, cells, size):
        last = min(cells, first + size)
        strips.append((PNET_STRIDE * first, PNET_STRIDE * (last - 1) + PNET_CELL))
    return strips


def time_first_stage(runners: dict[str, ModelRunner]) -> dict[str, float]:
    """Median ms per call of each P-Net runner on the probe input (fixed pixels)."""
    x = np.random.default_rng(0).integers(0, 256, AUTO_PROBE_SHAPE).astype(np.float32)
    for runner in runners.values():
        runner.run(x)
        runner.run(x)
    ms: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(AUTO_PROBE_RUNS):
        for k, runner in runners.items():
            t0 = time.perf_counter()
            runner.run(x)
            ms[k].append((time.perf_counter() - t0) * 1000.0)
    return {k: round(float(np.median(v)), 3) for k, v in ms.items()}


def pyramid_scales(h: int, w: int, min_face_px: float, factor: float = 0.709) -> list[float]:
    scale = PNET_CELL / float(min_face_px)
    min_side = min(h, w) * scale
    scales = []
    while min_side >= PNET_CELL:
        scales.append(scale)
        scale *= factor
        min_side *= factor
    return scales


class FaceDetector:
    """Boxes, scores and 5 landmarks of the faces in a BGR frame (an `edge.detect.Detector`)."""

    def __init__(
        self,
        *,
        backend: str = "onnx",
        precision: str = "int8",
        first_stage_precision: str | None = None,
        threads: int = 1,
        min_face_px: float = 20,
        score_threshold: float = 0.8,
        models_dir: str | Path | None = None,
        stage_thresholds: tuple[float, float] = (0.6, 0.7),
    ):
        self.backend, self.precision = backend, precision
        self.min_face_px = float(min_face_px)
        self.thresholds = (stage_thresholds[0], stage_thresholds[1], float(score_threshold))
        self.models_dir = Path(models_dir) if models_dir else default_models_dir()
        if backend not in known_backends():
            names = " or ".join(known_backends())
            raise ValueError(f"unknown detector backend {backend!r}: use {names}")
        if precision not in ("int8", "fp32"):
            raise ValueError(f"unknown detector precision {precision!r}: use int8 or fp32")
        entries = load_manifest(self.models_dir).get("models", {})
        pnet_precision = self._first_stage_choices(first_stage_precision, entries)
        # P-Net sees strips of bounded size (PNET_STRIP_PX): ONNX Runtime's arena may stay on.
        pnets = {
            p: open_runner(
                backend, self.models_dir / model_file("pnet", p, backend), threads,
                fixed_shape=False, arena=True,
            )  # fmt: skip
            for p in pnet_precision
        }
        # ms per probe call of each P-Net when "auto" had two to choose from, else empty.
        self.first_stage_ms = time_first_stage(pnets) if len(pnets) > 1 else {}
        chosen = pnet_precision[0]
        if self.first_stage_ms:
            ms = self.first_stage_ms
            chosen = "fp32" if ms["fp32"] < AUTO_FP32_SHARE * ms["int8"] else "int8"
            log.info(
                "detector first stage (P-Net): %s on this CPU (%.2f ms fp32, %.2f ms int8 "
                "per 384x216 probe; fp32 is kept below %.0f %% of int8's time)",
                chosen, ms["fp32"], ms["int8"], 100 * AUTO_FP32_SHARE,
            )  # fmt: skip
        self.first_stage_precision = chosen
        self.files = {
            "pnet": model_file("pnet", chosen, backend),
            **{n: model_file(n, precision, backend) for n in ("rnet", "onet")},
        }
        # Every file is checked against the manifest's sha256 before a runtime opens it.
        self.nets: dict[str, ModelRunner] = {"pnet": pnets[chosen]}
        for n in ("rnet", "onet"):
            self.nets[n] = open_runner(
                backend, self.models_dir / self.files[n], threads, fixed_shape=False
            )
        self.versions = {
            n: str(entries[f].get("version", "unknown")) for n, f in self.files.items()
        }

    def _first_stage_choices(self, wanted: str | None, listed: dict) -> tuple[str, ...]:
        """The P-Net precisions to open: one, or ("int8", "fp32") to time for "auto" (when
        `precision` is int8 and the FP32 P-Net is in the manifest)."""
        wanted = self.precision if wanted is None else wanted
        if wanted not in ("auto", "int8", "fp32"):
            raise ValueError(
                f"unknown detector first_stage_precision {wanted!r}: use auto, int8 or fp32"
            )
        if wanted != "auto":
            return (wanted,)
        if self.precision == "fp32":
            return ("fp32",)
        if model_file("pnet", "fp32", self.backend) not in listed:
            return ("int8",)
        return ("int8", "fp32")

    def info(self, with_files: bool = False) -> dict:
        """Detector metadata for events: name, version, backend, precision (the fields the face
        event schema allows; `precision` is R-Net's and O-Net's, which decide every box and
        landmark); with_files=True adds each net's model file and version and the first
        stage's precision and, for "auto", its timings."""
        out = {
            "name": "mtcnn",
            "version": self.versions["onet"],
            "backend": self.backend,
            "precision": self.precision,
        }
        if with_files:
            out["files"] = {
                n: {"file": f, "version": self.versions[n]} for n, f in self.files.items()
            }
            out["first_stage_precision"] = self.first_stage_precision
            if self.first_stage_ms:
                out["first_stage_ms"] = dict(self.first_stage_ms)
        return out

    # -- stages ------------------------------------------------------------------------------
    def _pyramid(
        self, image: np.ndarray, up_to: float | None = None
    ) -> Iterator[tuple[float, np.ndarray]]:
        """(scale, level) for each pyramid level of the whole frame, sides padded to even;
        with `up_to`, only the levels where that many frame pixels still span a P-Net cell."""
        h, w = image.shape[:2]
        prev, prev_scale = image, 1.0
        for scale in pyramid_scales(h, w, self.min_face_px):
            if up_to is not None and up_to * scale < PNET_CELL:
                return
            hs, ws = int(h * scale + 1), int(w * scale + 1)
            # Each level from the one before (a 0.709 step): bilinear is then alias-free enough
            # and ~20x faster than INTER_AREA at a fractional scale of the full frame.
            step = scale / prev_scale
            interp = cv2.INTER_LINEAR if step >= 0.5 else cv2.INTER_AREA
            level = cv2.resize(prev, (ws, hs), interpolation=interp)
            prev, prev_scale = level, scale
            # Even sides make P-Net's ceil-mode pooling equal floor-mode, so every runtime
            # (LiteRT resizes a static graph) gives the same output grid.
            if hs % 2 or ws % 2:
                level = cv2.copyMakeBorder(level, 0, hs % 2, 0, ws % 2, cv2.BORDER_REPLICATE)
            yield scale, level

    def _pnet(self, level: np.ndarray, scale: float, cx: int = 0, cy: int = 0) -> np.ndarray:
        """P-Net on one pyramid level, or on a part of it starting at output cell (cx, cy),
        i.e. at level pixel (2*cx, 2*cy), strip by strip (`pnet_strips`): candidates (N, 9) =
        box x1 y1 x2 y2, score, 4 regression offsets, in frame pixels."""
        h, w = level.shape[:2]
        found = [
            self._pnet_cells(level[r0:r1], scale, cx, cy + r0 // PNET_STRIDE)
            for r0, r1 in pnet_strips(h, w)
        ]
        cand = np.vstack(found) if found else np.zeros((0, 9), np.float32)
        if len(cand) > MAX_PNET_PER_LEVEL:
            cand = cand[np.argpartition(-cand[:, 4], MAX_PNET_PER_LEVEL)[:MAX_PNET_PER_LEVEL]]
        if not len(cand):
            return cand
        return cand[nms(cand[:, :4], cand[:, 4], 0.5)]

    def _pnet_cells(self, level: np.ndarray, scale: float, cx: int, cy: int) -> np.ndarray:
        """P-Net's cells above the first threshold in one strip, before any cap or NMS."""
        x = np.ascontiguousarray(level.transpose(2, 0, 1)[None], dtype=np.float32)
        reg, prob = self.nets["pnet"].run(x)
        prob = prob[0, 1]
        ys, xs = np.nonzero(prob >= self.thresholds[0])
        if len(ys) == 0:
            return np.zeros((0, 9), np.float32)
        score = prob[ys, xs]
        offsets = reg[0][:, ys, xs].T
        gx, gy = xs + cx, ys + cy
        boxes = np.stack(
            [
                np.floor((PNET_STRIDE * gx + 1) / scale),
                np.floor((PNET_STRIDE * gy + 1) / scale),
                np.floor((PNET_STRIDE * gx + PNET_CELL) / scale),
                np.floor((PNET_STRIDE * gy + PNET_CELL) / scale),
                score,
            ],
            axis=1,
        ).astype(np.float32)
        return np.hstack([boxes, offsets.astype(np.float32)])

    def _stage1(self, image: np.ndarray, regions: Sequence[Box] | None = None) -> np.ndarray:
        found = []
        # Levels where every region is smaller than P-Net's cell need not even be made.
        largest = None
        if regions is not None:
            largest = max((min(x2 - x1, y2 - y1) for x1, y1, x2, y2 in regions), default=0)
        for scale, level in self._pyramid(image, largest):
            if regions is None:
                found.append(self._pnet(level, scale))
                continue
            # A region is a view of the whole frame's level, cut at even level pixels: P-Net
            # (stride 2, fully convolutional) then gives exactly the full frame's outputs
            # there, so region and full-frame detection agree on a face inside a region.
            lh, lw = level.shape[:2]
            for x1, y1, x2, y2 in regions:
                lx1, ly1 = int(x1 * scale) & ~1, int(y1 * scale) & ~1
                lx2 = min(lw, lx1 + ((int(np.ceil(x2 * scale)) - lx1 + 1) & ~1))
                ly2 = min(lh, ly1 + ((int(np.ceil(y2 * scale)) - ly1 + 1) & ~1))
                if lx2 - lx1 >= PNET_CELL and ly2 - ly1 >= PNET_CELL:
                    view = level[ly1:ly2, lx1:lx2]
                    found.append(self._pnet(view, scale, lx1 // 2, ly1 // 2))
        cand = np.vstack(found) if found else np.zeros((0, 9), np.float32)
        if not len(cand):
            return np.zeros((0, 5), np.float32)
        # Across levels (and where regions touch: a face found twice).
        keep = nms(cand, cand[:, 4], 0.7)
        cand = cand[keep]
        boxes = regress(cand[:, :4], cand[:, 5:9])
        return np.hstack([square(boxes), cand[:, 4:5]])

    def _stage2(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = boxes[:MAX_RNET_INPUTS]
        reg, prob = self.nets["rnet"].run(crop_batch(image, boxes, 24))
        score = prob[:, 1]
        ok = score > self.thresholds[1]
        boxes, reg, score = boxes[ok], reg[ok], score[ok]
        keep = nms(boxes, score, 0.7)
        out = regress(boxes[keep, :4], reg[keep])
        return np.hstack([square(out), score[keep, None]])

    def _stage3(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = boxes[:MAX_ONET_INPUTS]
        reg, points, prob = self.nets["onet"].run(crop_batch(image, boxes, 48))
        score = prob[:, 1]
        ok = score > self.thresholds[2]
        boxes, reg, points, score = boxes[ok], reg[ok], points[ok], score[ok]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        lm = np.stack(
            [boxes[:, 0:1] + w * points[:, :5], boxes[:, 1:2] + h * points[:, 5:]], axis=2
        )
        out = regress(boxes[:, :4], reg)
        keep = nms(out, score, 0.7, "min")
        return np.hstack([out[keep], score[keep, None]]), lm[keep]

    def _follow(self, image: np.ndarray, follow: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """O-Net on the squared boxes of faces seen in the previous frame: (boxes with score,
        landmarks) of those still there. O-Net's box regression re-centres a face that moved
        a little; one that moved too far or left scores low and is dropped."""
        seeds = np.asarray(follow, dtype=np.float32).reshape(-1, 4)
        if not len(seeds):
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        seeds = np.hstack([square(seeds), np.ones((len(seeds), 1), np.float32)])
        return self._stage3(image, seeds)

    def detect(
        self,
        image: np.ndarray,
        regions: Sequence[Box] | None = None,
        follow: ArrayLike | None = None,
    ) -> list[Detection]:
        """Faces in the frame; with `regions` (x1, y1, x2, y2 in frame pixels, x2/y2
        exclusive) only those found by P-Net inside them. R-Net and O-Net then look at the
        candidates in the whole frame, so a face at a region's edge keeps its context, and
        boxes, landmarks and min_face_px are in frame pixels either way.

        `follow`: boxes of the faces found in the previous frame. O-Net checks each where it
        was (see _follow); P-Net candidates on a face it confirms are dropped, so R-Net and
        O-Net spend their time on new faces only. With 5 people in view this removes ~200
        R-Net and ~35 O-Net crops per frame. A face O-Net does not confirm is searched for
        as usual."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 frame, got shape {image.shape} {image.dtype}")
        boxes = self._stage1(image, regions)
        kept, kept_lm = self._follow(image, follow if follow is not None else ())
        if len(kept) and len(boxes):
            boxes = boxes[~on_faces(boxes, square(kept[:, :4]))]
        if len(boxes):
            boxes = self._stage2(image, boxes)
        if len(boxes):
            boxes, landmarks = self._stage3(image, boxes)
        else:
            boxes, landmarks = np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        if len(kept):
            boxes, landmarks = np.vstack([kept, boxes]), np.concatenate([kept_lm, landmarks])
            # A followed face found again through P-Net too (its candidates just outside
            # FOLLOWED_IOU): one detection.
            keep = nms(boxes[:, :4], boxes[:, 4], 0.7, "min")
            boxes, landmarks = boxes[keep], landmarks[keep]
        return [
            Detection(
                box=b[:4].astype(np.float32), score=float(b[4]), landmarks=lm.astype(np.float32)
            )
            for b, lm in zip(boxes, landmarks, strict=True)
        ]
