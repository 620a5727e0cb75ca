"""The shipped detector models, in both runtimes and both precisions, on real face photos
that ship inside dependencies (scikit-image's astronaut, matplotlib's Grace Hopper)."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from edge.detect import FaceDetector
from edge.geometry import iou_matrix
from edge.runtime.manifest import ModelIntegrityError, default_models_dir
from edge.runtime.runners import load_model

skimage_data = pytest.importorskip("skimage.data")
cbook = pytest.importorskip("matplotlib.cbook")

VARIANTS = [("onnx", "int8"), ("onnx", "fp32"), ("tflite", "int8"), ("tflite", "fp32")]
# Agreement between runtimes / precisions (stated in the model card): box IoU, landmark error
# as a fraction of the face box height (the photos' faces are 110-230 px high, so 4 % is
# 4.5-9 px) and the O-Net score.
MIN_BOX_IOU = 0.85
MAX_LANDMARK_FRAC = 0.04
MAX_SCORE_DIFF = 0.05


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        data = np.frombuffer(f.read(), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


@pytest.fixture(scope="module")
def detectors() -> dict:
    return {f"{b}-{p}": FaceDetector(backend=b, precision=p) for b, p in VARIANTS}


def _one_face(dets):
    assert len(dets) == 1, f"expected one face, got {len(dets)}"
    return dets[0]


@pytest.mark.parametrize("variant", [f"{b}-{p}" for b, p in VARIANTS])
def test_finds_the_face_with_sensible_landmarks(variant, detectors, astronaut, hopper):
    for image in (astronaut, hopper):
        d = _one_face(detectors[variant].detect(image))
        x1, y1, x2, y2 = d.box
        lm = d.landmarks
        assert d.score > 0.9
        assert (
            (lm[:, 0] > x1).all()
            and (lm[:, 0] < x2).all()
            and (lm[:, 1] > y1).all()
            and (lm[:, 1] < y2).all()
        )
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # left before right
        assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])  # eyes, nose, mouth


def test_runtimes_and_precisions_agree(detectors, astronaut, hopper):
    for image in (astronaut, hopper):
        ref = _one_face(detectors["onnx-fp32"].detect(image))
        for name, det in detectors.items():
            d = _one_face(det.detect(image))
            iou = iou_matrix(ref.box[None], d.box[None])[0, 0]
            assert iou >= MIN_BOX_IOU, (name, iou)
            assert np.abs(d.landmarks - ref.landmarks).max() <= MAX_LANDMARK_FRAC * ref.height, name
            assert abs(d.score - ref.score) <= MAX_SCORE_DIFF, name


def test_onnx_and_tflite_int8_agree(detectors, astronaut, hopper):
    for image in (astronaut, hopper):
        a = _one_face(detectors["onnx-int8"].detect(image))
        b = _one_face(detectors["tflite-int8"].detect(image))
        assert iou_matrix(a.box[None], b.box[None])[0, 0] >= MIN_BOX_IOU
        assert np.abs(a.landmarks - b.landmarks).max() <= MAX_LANDMARK_FRAC * a.height
        assert abs(a.score - b.score) <= MAX_SCORE_DIFF


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_runtime_hides_layout_and_quantization(backend, precision):
    ext = "onnx" if backend == "onnx" else "tflite"
    d = default_models_dir()
    rng = np.random.default_rng(0)
    # P-Net on pyramid levels of any (even) size; the TFLite graph is resized to each.
    pnet = load_model(d / f"mtcnn_pnet_{precision}.{ext}", backend, 1)
    for h, w in [(24, 36), (56, 98), (216, 384)]:
        x = (rng.random((1, 3, h, w)) * 255).astype(np.float32)
        reg, prob = pnet.run(x)
        grid = ((h - 2) // 2 - 4, (w - 2) // 2 - 4)
        assert reg.shape == (1, 4, *grid) and prob.shape == (1, 2, *grid)
        assert reg.dtype == prob.dtype == np.float32
        np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=0.02)
    # R-Net / O-Net take batches of crops.
    onet = load_model(d / f"mtcnn_onet_{precision}.{ext}", backend, 1)
    x = (rng.random((5, 3, 48, 48)) * 255).astype(np.float32)
    reg, points, prob = onet.run(x)
    assert reg.shape == (5, 4) and points.shape == (5, 10) and prob.shape == (5, 2)


def test_info_names_the_models(detectors):
    info = detectors["tflite-int8"].info()
    assert info["name"] == "mtcnn" and info["backend"] == "tflite" and info["precision"] == "int8"
    assert set(info) == {"name", "version", "backend", "precision"}  # the event schema's fields
    files = detectors["onnx-int8"].info(with_files=True)["files"]
    assert files["pnet"]["file"] == "mtcnn_pnet_int8.onnx"
    assert all(f["version"] == info["version"] for f in files.values())


@pytest.mark.parametrize("variant", ["onnx-int8", "tflite-int8"])
def test_finds_a_small_face_in_a_720p_frame(variant, detectors, astronaut):
    face = astronaut[40:200, 150:300]  # head and a little context
    scale = 30.0 / 160  # the face box is ~113 px in 160: ~24 px after scaling
    small = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 70, np.uint8)
    y, x = 400, 900
    frame[y : y + small.shape[0], x : x + small.shape[1]] = small
    dets = detectors[variant].detect(frame)
    hits = [
        d
        for d in dets
        if x - 5 < d.box[0] < x + small.shape[1] and y - 5 < d.box[1] < y + small.shape[0]
    ]
    assert hits, f"no face found near ({x},{y}); got {[d.box for d in dets]}"
    assert 14 <= hits[0].height <= 40


def test_corrupt_model_is_refused(tmp_path):
    src = default_models_dir()
    shutil.copytree(src, tmp_path / "models")
    victim = tmp_path / "models" / "mtcnn_onet_int8.onnx"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        FaceDetector(backend="onnx", precision="int8", models_dir=tmp_path / "models")
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        load_model(victim, "onnx", 1)  # the runtime layer checks on its own too
    tfl = tmp_path / "models" / "mtcnn_pnet_int8.tflite"
    raw = bytearray(tfl.read_bytes())
    raw[-1] ^= 0x01
    tfl.write_bytes(bytes(raw))
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        FaceDetector(backend="tflite", precision="int8", models_dir=tmp_path / "models")
    # An intact set next to it still loads.
    FaceDetector(backend="onnx", precision="int8", models_dir=src)


def test_wrong_frame_is_a_clear_error(detectors):
    with pytest.raises(ValueError, match="BGR uint8"):
        detectors["onnx-int8"].detect(np.zeros((10, 10), np.uint8))
