"""Per-model timings: the MTCNN detector per frame (640x360 and 1280x720), the restoration
network per face, the face check per candidate and multi-frame fusion per published face,
for each runtime, precision and thread count."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.commands.bench.timing import Budget, time_calls
from edge.detect.mtcnn import FaceDetector
from edge.enhance.burst import BurstFrame, face_view
from edge.enhance.fusion import BurstFusion, FusionNetwork, fusion_file_name
from edge.enhance.restorer import FaceRestorer, model_file_name
from edge.runtime.manifest import ModelIntegrityError, default_models_dir, load_manifest
from edge.shots.face_check import MODEL_FILES as FACE_CHECK_FILES
from edge.shots.face_check import FaceCheck

log = logging.getLogger(__name__)

DETECTOR_SIZES = ((640, 360), (1280, 720))
RUNTIME_NAMES = {"onnx": "onnxruntime", "tflite": "litert"}


@dataclass(frozen=True)
class Variant:
    backend: str  # "onnx" or "tflite"
    precision: str  # "int8" or "fp32"
    threads: int

    def fields(self) -> dict:
        return {
            "runtime": RUNTIME_NAMES[self.backend],
            "precision": self.precision,
            "threads": self.threads,
        }


def variants(backends: list[str], threads: list[int]) -> list[Variant]:
    return [Variant(b, p, t) for b in backends for p in ("int8", "fp32") for t in threads]


def sample_frames(video: Path, count: int = 8) -> list[np.ndarray]:
    """`count` frames spread over the clip: detector time depends on what is in the frame."""
    cap = cv2.VideoCapture(str(video))
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
        frames = []
        for k in range(count):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int((k + 0.5) * total / count))
            ok, image = cap.read()
            if ok:
                frames.append(image)
    finally:
        cap.release()
    if not frames:
        raise RuntimeError(f"cannot read frames from {video}")
    return frames


def largest_face(frames: list[np.ndarray]):
    """(frame, detection) of the largest face the detector finds in the frames, or None."""
    detector = FaceDetector()
    best = None
    for image in frames:
        for d in detector.detect(image):
            if best is None or d.height > best[1].height:
                best = (image, d)
    return best


def face_crop(frames: list[np.ndarray]) -> np.ndarray:
    """A real face from the frames (the largest detection), else the middle of a frame."""
    best = largest_face(frames)
    if best is None:
        h, w = frames[0].shape[:2]
        s = min(h, w) // 3
        return frames[0][h // 2 - s // 2 : h // 2 + s // 2, w // 2 - s // 2 : w // 2 + s // 2]
    image, d = best
    x1, y1, x2, y2 = (int(round(v)) for v in d.box)
    h, w = image.shape[:2]
    return image[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]


def detector_rows(
    frames: list[np.ndarray], todo: list[Variant], budget: Budget, models_dir: Path | None
) -> list[dict]:
    rows = []
    for size in DETECTOR_SIZES:
        scaled = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        for v in todo:
            det = FaceDetector(
                backend=v.backend, precision=v.precision, threads=v.threads, models_dir=models_dir
            )
            timing = time_calls(lambda i, d=det, fs=scaled: d.detect(fs[i % len(fs)]), budget)
            rows.append(
                {
                    "name": "detector",
                    **v.fields(),
                    "input": f"{size[0]}x{size[1]}",
                    **timing.as_dict(),
                }
            )
            log.info("detector %s %s: %s", size, v, timing)
        rows += first_stage_auto_rows(scaled, size, todo, budget, models_dir)
    return rows


def first_stage_auto_rows(
    scaled: list[np.ndarray],
    size: tuple[int, int],
    todo: list[Variant],
    budget: Budget,
    models_dir: Path | None,
) -> list[dict]:
    """The daemon's default detector (`first_stage_precision: auto`) where auto picks another
    P-Net than INT8's on this CPU: one row per backend at one thread, precision named
    "int8, P-Net fp32 (auto)"."""
    rows = []
    for v in todo:
        if v.precision != "int8" or v.threads != 1:
            continue
        det = FaceDetector(
            backend=v.backend, precision="int8", first_stage_precision="auto", threads=1,
            models_dir=models_dir,
        )  # fmt: skip
        if det.first_stage_precision == "int8":
            continue
        timing = time_calls(lambda i, d=det, fs=scaled: d.detect(fs[i % len(fs)]), budget)
        fields = {**v.fields(), "precision": f"int8, P-Net {det.first_stage_precision} (auto)"}
        rows.append(
            {"name": "detector", **fields, "input": f"{size[0]}x{size[1]}", **timing.as_dict()}
        )
        log.info("detector %s %s, first stage auto: %s", size, v, timing)
    return rows


def restorer_rows(
    crop: np.ndarray, todo: list[Variant], budget: Budget, models_dir: Path | None
) -> tuple[list[dict], str]:
    """Rows for the restorer variants listed in the models' manifest (checksums verified),
    and a note naming the ones that are not."""
    models_dir = Path(models_dir) if models_dir else default_models_dir()
    try:
        listed = load_manifest(models_dir).get("models", {})
    except ModelIntegrityError as e:
        return [], f"restorer skipped: {e}"
    rows, missing = [], []
    for v in todo:
        name = model_file_name(v.backend, v.precision)
        if name not in listed:
            missing.append(name)
            continue
        restorer = FaceRestorer(v.backend, v.precision, v.threads, models_dir)
        # The whole per-face cost: resize to the model's input, the network, back to BGR uint8.
        timing = time_calls(lambda _i, r=restorer: r(crop), budget)
        side = restorer.input_side
        rows.append(
            {"name": "restorer", **v.fields(), "input": f"{side}x{side} face", **timing.as_dict()}
        )
        log.info("restorer %s: %s", v, timing)
    note = ""
    if missing:
        names = ", ".join(sorted(set(missing)))
        note = f"restorer rows skipped: {names} not listed in {models_dir / 'manifest.json'}"
    return rows, note


def face_check_rows(
    frames: list[np.ndarray], backends: list[str], threads: list[int], budget: Budget,
    models_dir: Path | None,
) -> tuple[list[dict], str]:
    """The face check's whole cost per shot candidate (warp by the landmarks, geometry, the
    INT8 classifier), on a real face of the frames."""
    best = largest_face(frames)
    if best is None:
        return [], "face check rows skipped: no face in the sample frames"
    image, det = best
    models_dir = Path(models_dir) if models_dir else default_models_dir()
    listed = load_manifest(models_dir).get("models", {})
    rows = []
    for backend in backends:
        if FACE_CHECK_FILES[backend] not in listed:
            continue
        for n in threads:
            check = FaceCheck.open(backend, n, models_dir)
            timing = time_calls(
                lambda _i, c=check: c.check(image, det.landmarks, det.box), budget
            )
            v = Variant(backend, "int8", n)
            rows.append({"name": "face_check", **v.fields(), "input": "one candidate",
                         **timing.as_dict()})
            log.info("face check %s: %s", v, timing)
    return rows, ""


FUSION_KS = (2, 4, 8)


def fusion_rows(
    frames: list[np.ndarray],
    backends: list[str],
    threads: list[int],
    budget: Budget,
    models_dir: Path | None,
) -> tuple[list[dict], str]:
    """Multi-frame restoration's whole cost per published face: registering K - 1 frames
    onto the published one and fusing them (the fusion network, INT8 and FP32, ONNX Runtime
    and LiteRT; frame averaging), on a real face of the frames moved by sub-pixel amounts frame to frame."""
    best = largest_face(frames)
    if best is None:
        return [], "fusion rows skipped: no face in the sample frames"
    image, det = best
    models_dir = Path(models_dir) if models_dir else default_models_dir()
    listed = load_manifest(models_dir).get("models", {})
    rng = np.random.default_rng(0)
    burst = []
    for i in range(max(FUSION_KS)):
        moved = det.landmarks + (rng.uniform(-1, 1, 2) if i else 0.0)
        burst.append(BurstFrame(face_view(image, moved), i * -0.04, 0.0, 0.5, 0.0, 0.0))
    methods: list[tuple[str, str, str, BurstFusion]] = []
    for backend in backends:
        runtime = RUNTIME_NAMES[backend]
        for precision in ("int8", "fp32"):
            if fusion_file_name(precision, backend) not in listed:
                continue
            for n in threads:
                net = FusionNetwork(precision, n, models_dir, backend)
                methods.append((runtime, precision, str(n), BurstFusion("network", net)))
    methods.append(("opencv", "classical", "1", BurstFusion("average")))
    rows = []
    for runtime, precision, n, fusion in methods:
        for k in FUSION_KS:
            timing = time_calls(lambda _i, f=fusion, b=burst[:k]: f(b), budget)
            name = "fusion" if fusion.method == "network" else "frame_average"
            rows.append({"name": name, "runtime": runtime, "precision": precision,
                         "threads": int(n), "input": f"{k} frames", **timing.as_dict()})  # fmt: skip
            log.info("%s %s %s %s threads, %d frames: %s", name, runtime, precision, n, k, timing)
    return rows, ""
