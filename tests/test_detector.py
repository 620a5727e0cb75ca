"""The shipped detector models, in both runtimes and both precisions, on real face photos
(the public-domain portraits shipped in edge/assets)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR
from edge.detect import Detector, FaceDetector, mtcnn
from edge.enhance.restorer import model_file_name
from edge.geometry import iou_matrix
from edge.runtime import ModelRunner, known_backends, open_runner, register_runner, registry
from edge.runtime.manifest import ModelIntegrityError, default_models_dir
from edge.runtime.plugins.litert import TfliteModel
from edge.runtime.plugins.onnx import OnnxModel

VARIANTS = [("onnx", "int8"), ("onnx", "fp32"), ("tflite", "int8"), ("tflite", "fp32")]
# Agreement between runtimes / precisions (stated in the model card): box IoU, landmark error
# as a fraction of the face box height (the photos' faces are 110-230 px high, so 4 % is
# 4.5-9 px) and the O-Net score.
MIN_BOX_IOU = 0.85
MAX_LANDMARK_FRAC = 0.04
MAX_SCORE_DIFF = 0.05


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))  # 512x512


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    return cv2.imread(str(ASSETS_DIR / "grace_hopper.jpg"))  # 437x512


@pytest.fixture(scope="module")
def detectors() -> dict:
    return {f"{b}-{p}": FaceDetector(backend=b, precision=p) for b, p in VARIANTS}


def _one_face(dets):
    """The photo's one face: the only confident detection. Since the U8U8 requantization the
    ONNX INT8 O-Net scores a patch on the astronaut's suit 0.83 (FP32: 0.70, over the 0.8
    threshold); anything else found must stay under 0.9, and the face check turns that patch
    down (tests/test_face_check.py)."""
    confident = [d for d in dets if d.score >= 0.9]
    assert len(confident) == 1, f"expected one face, got {[round(d.score, 3) for d in dets]}"
    return confident[0]


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
    pnet = open_runner(backend, d / f"mtcnn_pnet_{precision}.{ext}", 1)
    for h, w in [(24, 36), (56, 98), (216, 384)]:
        x = (rng.random((1, 3, h, w)) * 255).astype(np.float32)
        reg, prob = pnet.run(x)
        grid = ((h - 2) // 2 - 4, (w - 2) // 2 - 4)
        assert reg.shape == (1, 4, *grid) and prob.shape == (1, 2, *grid)
        assert reg.dtype == prob.dtype == np.float32
        np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=0.02)
    # R-Net / O-Net take batches of crops.
    onet = open_runner(backend, d / f"mtcnn_onet_{precision}.{ext}", 1)
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


@pytest.mark.parametrize("h, w", [(12, 12), (14, 40), (432, 768), (720, 1280), (100, 4000)])
def test_pnet_strips_cover_every_output_cell_once(h, w):
    cells = (h - mtcnn.PNET_CELL) // mtcnn.PNET_STRIDE + 1
    strips = mtcnn.pnet_strips(h, w)
    covered = []
    for r0, r1 in strips:
        assert r0 % 2 == 0 and 0 <= r0 < r1 <= h
        covered += range(r0 // 2, r0 // 2 + (r1 - r0 - mtcnn.PNET_CELL) // 2 + 1)
        # Bounded, except where even the smallest strip (8 rows of cells) is wider.
        assert (r1 - r0) * w <= max(mtcnn.PNET_STRIP_PX, (2 * 7 + mtcnn.PNET_CELL) * w)
    assert covered == list(range(cells))
    if h * w > mtcnn.PNET_STRIP_PX:
        assert len(strips) > 1


@pytest.mark.parametrize("variant", ["onnx-int8", "onnx-fp32", "tflite-int8"])
def test_pnet_in_strips_equals_pnet_on_the_whole_level(variant, detectors, astronaut, monkeypatch):
    """Strips give exactly the candidates of one call on the whole level (a 720p frame, the
    astronaut pasted at two sizes: many candidates, some on strip borders)."""
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[100:612, 50:562] = astronaut
    frame[300:428, 900:1028] = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
    det = detectors[variant]
    monkeypatch.setattr(mtcnn, "PNET_STRIP_PX", 10**9)  # one strip per level
    whole = det._stage1(frame)
    monkeypatch.setattr(mtcnn, "PNET_STRIP_PX", 20_000)  # many thin strips
    assert len(mtcnn.pnet_strips(432, 768)) > 10
    strips = det._stage1(frame)
    assert len(whole) > 20

    def rows(c):
        return c[np.lexsort(c.T[::-1])]

    np.testing.assert_allclose(rows(strips), rows(whole), rtol=0, atol=1e-5)


def test_first_stage_precision_auto_times_both_and_keeps_the_faster(caplog):
    with caplog.at_level("INFO", logger="edge.detect.mtcnn"):
        det = FaceDetector(backend="onnx", precision="int8", first_stage_precision="auto")
    ms = det.first_stage_ms
    assert set(ms) == {"int8", "fp32"} and all(v > 0 for v in ms.values())
    wanted = "fp32" if ms["fp32"] < mtcnn.AUTO_FP32_SHARE * ms["int8"] else "int8"
    assert det.first_stage_precision == wanted
    info = det.info(with_files=True)
    assert info["files"]["pnet"]["file"] == f"mtcnn_pnet_{wanted}.onnx"
    assert info["files"]["onet"]["file"] == "mtcnn_onet_int8.onnx"
    assert info["first_stage_ms"] == ms and info["precision"] == "int8"
    assert set(det.info()) == {"name", "version", "backend", "precision"}
    assert f"first stage (P-Net): {wanted}" in caplog.text
    # Fixed, nothing is timed; with the cascade in fp32, auto means fp32.
    fixed = FaceDetector(backend="onnx", precision="int8", first_stage_precision="fp32")
    assert fixed.first_stage_ms == {} and fixed.files["pnet"] == "mtcnn_pnet_fp32.onnx"
    assert fixed.files["rnet"] == "mtcnn_rnet_int8.onnx"
    ref = FaceDetector(backend="onnx", precision="fp32", first_stage_precision="auto")
    assert ref.first_stage_ms == {} and ref.first_stage_precision == "fp32"
    with pytest.raises(ValueError, match="first_stage_precision 'fast'"):
        FaceDetector(first_stage_precision="fast")


def test_first_stage_auto_keeps_int8_without_the_fp32_file(tmp_path):
    """A models folder without FP32 P-Net (a slimmed install): auto opens INT8, times nothing."""
    src = default_models_dir()
    shutil.copytree(src, tmp_path / "models")
    manifest = tmp_path / "models" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["models"]["mtcnn_pnet_fp32.onnx"]
    manifest.write_text(json.dumps(data))
    (tmp_path / "models" / "mtcnn_pnet_fp32.onnx").unlink()
    det = FaceDetector(first_stage_precision="auto", models_dir=tmp_path / "models")
    assert det.first_stage_precision == "int8" and det.first_stage_ms == {}


@pytest.mark.parametrize("first_stage", ["int8", "fp32"])
def test_mixed_precisions_find_the_face(first_stage, astronaut, hopper):
    det = FaceDetector(precision="int8", first_stage_precision=first_stage)
    for image in (astronaut, hopper):
        _one_face(det.detect(image))


def test_corrupt_model_is_refused(tmp_path):
    src = default_models_dir()
    shutil.copytree(src, tmp_path / "models")
    # Both integer formats of O-Net (the CPU decides which one opens, edge.runtime.int8_variant).
    for name in ("mtcnn_onet_int8_vnni.onnx", "mtcnn_onet_int8.onnx"):
        victim = tmp_path / "models" / name
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        FaceDetector(backend="onnx", precision="int8", models_dir=tmp_path / "models")
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        open_runner("onnx", victim, 1)  # the runtime layer checks on its own too
    tfl = tmp_path / "models" / "mtcnn_pnet_int8.tflite"
    raw = bytearray(tfl.read_bytes())
    raw[-1] ^= 0x01
    tfl.write_bytes(bytes(raw))
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        FaceDetector(backend="tflite", precision="int8", models_dir=tmp_path / "models")
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        open_runner("tflite", tfl, 1)
    # A file the manifest does not list is refused too, even with a registered suffix.
    (tmp_path / "models" / "extra.onnx").write_bytes((src / "mtcnn_onet_int8.onnx").read_bytes())
    with pytest.raises(ModelIntegrityError, match="not listed"):
        open_runner("onnx", tmp_path / "models" / "extra.onnx", 1)
    # An intact set next to it still loads.
    FaceDetector(backend="onnx", precision="int8", models_dir=src)


def test_wrong_frame_is_a_clear_error(detectors):
    with pytest.raises(ValueError, match="BGR uint8"):
        detectors["onnx-int8"].detect(np.zeros((10, 10), np.uint8))


def test_runner_plugins_are_picked_by_backend_name():
    d = default_models_dir()
    assert {"onnx", "tflite"} <= set(known_backends())
    for backend, cls, f in [
        ("onnx", OnnxModel, "mtcnn_rnet_int8.onnx"),
        ("tflite", TfliteModel, "mtcnn_rnet_int8.tflite"),
    ]:
        runner = open_runner(backend, d / f, 1)
        assert type(runner) is cls and runner.backend == backend
        assert isinstance(runner, ModelRunner)
        assert len(runner.input_shape) == 4 and runner.input_shape[1:] == (3, 24, 24)
        assert len(runner.output_names) == 2  # box regression, face probability
        reg, prob = runner.run(np.zeros((3, 3, 24, 24), np.float32))
        assert reg.shape == (3, 4) and prob.shape == (3, 2)


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'tpu': use onnx or tflite"):
        open_runner("tpu", default_models_dir() / "mtcnn_pnet_int8.onnx")
    with pytest.raises(ValueError, match=r"unknown detector backend 'tpu': use onnx or tflite"):
        FaceDetector(backend="tpu")
    with pytest.raises(ValueError, match=r"unknown backend 'tpu': use onnx or tflite"):
        model_file_name("tpu", "int8")


class OnnxCopy(OnnxModel):
    """A second backend over the same .onnx files: what a new plugin module registers."""

    backend = "onnx-copy"


def test_a_registered_backend_runs_the_detector(monkeypatch, tmp_path, detectors, astronaut):
    monkeypatch.setattr(registry, "_RUNNERS", dict(registry._RUNNERS))
    register_runner(OnnxCopy.backend, OnnxCopy)
    assert "onnx-copy" in known_backends()
    det = FaceDetector(backend="onnx-copy", precision="int8")
    assert isinstance(det, Detector)
    assert all(type(n) is OnnxCopy for n in det.nets.values())
    assert det.info()["backend"] == "onnx-copy"
    got, ref = det.detect(astronaut), detectors["onnx-int8"].detect(astronaut)
    assert len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)
    # Its models go through the same checksum as the built-in backends.
    shutil.copytree(default_models_dir(), tmp_path / "models")
    for name in ("mtcnn_rnet_int8.onnx", "mtcnn_rnet_int8_vnni.onnx"):  # either may open
        victim = tmp_path / "models" / name
        data = bytearray(victim.read_bytes())
        data[-1] ^= 0x01
        victim.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        FaceDetector(backend="onnx-copy", precision="int8", models_dir=tmp_path / "models")
