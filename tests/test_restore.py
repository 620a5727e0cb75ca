"""The shipped restoration network at run time: both runtimes and precisions, quality against
the bicubic baseline on real faces, INT8/FP32 and ONNX/TFLite parity, the checksum refusal,
the enhancement stage and `face-edge restore`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.commands.restore import SUMMARY_FILE
from edge.enhance import EnhancementStage
from edge.enhance.face_frame import output_hw
from edge.enhance.restorer import (
    MODEL_FRAMING,
    FaceRestorer,
    FramedRestorer,
    aligned_crop_framing,
    framing_matrix,
)
from edge.runtime.manifest import ModelIntegrityError, default_models_dir
from edge.settings import EnhanceSettings
from edge.shots.align import align_face
from tests.test_shots import ASTRONAUT_LM
from tools.convert.restore.degrade import degrade

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "faces" / "lfw"
VARIANTS = [(b, p) for b in ("onnx", "tflite") for p in ("int8", "fp32")]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


@pytest.fixture(scope="module")
def restorers() -> dict[tuple[str, str], FaceRestorer]:
    return {v: FaceRestorer(*v) for v in VARIANTS}


@pytest.fixture(scope="module")
def astronaut_crop() -> np.ndarray:
    image = cv2.imread(str(ROOT / "edge" / "assets" / "astronaut.jpg"))
    crop, _ = align_face(image, ASTRONAUT_LM, 160, 0.35)
    return crop


@pytest.fixture(scope="module")
def lfw_faces() -> list[np.ndarray]:
    if not LFW.is_dir():  # the prefix: an allowed skip under CI=true (tests/conftest.py)
        pytest.skip(f"optional part missing: shared-data: no LFW at {LFW}")
    files = sorted(LFW.glob("*/*_0001.jpg"))[::97][:24]
    return [cv2.imread(str(f)) for f in files]


def bicubic(small: np.ndarray, side: int = 160) -> np.ndarray:
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v[0]}-{v[1]}")
def test_every_variant_loads_and_returns_the_model_size(restorers, variant):
    r = restorers[variant]
    assert r.output_side == 160
    small = np.random.default_rng(0).integers(0, 255, (23, 31, 3), np.uint8)  # any size
    out = r(small)
    assert out.shape == (160, 160, 3) and out.dtype == np.uint8
    assert r.version != "unknown"


@pytest.mark.parametrize("preset", ["x4", "x8"])
def test_student_int8_beats_bicubic_on_lfw_faces(restorers, lfw_faces, preset):
    """Held-out evaluation faces (LFW; training used UTKFace only). The model card has the
    full numbers; here a margin well inside them so the test is stable."""
    r = restorers[("onnx", "int8")]
    gains = []
    for i, clean in enumerate(lfw_faces):
        small = degrade(clean, preset, np.random.default_rng(i))
        gains.append(psnr(r(small), clean) - psnr(bicubic(small), clean))
    assert np.mean(gains) > 0.3, f"mean PSNR gain over bicubic {np.mean(gains):.2f} dB"
    assert np.mean(np.array(gains) > 0) >= 0.8


def test_framed_restorer_beats_bicubic_on_the_daemons_aligned_crop(restorers, astronaut_crop):
    """The daemon's crops (margin 0.35) are framed wider than the model's: the face is moved
    into the model's framing and back."""
    framed = FramedRestorer(restorers[("onnx", "int8")], aligned_crop_framing(160, 0.35))
    small = degrade(astronaut_crop, "x4", np.random.default_rng(0))
    up = bicubic(small)
    out = framed(up)
    assert out.shape == astronaut_crop.shape
    # judged on the face (the central part the model sees), not the margin
    face = np.s_[30:130, 30:130]
    assert psnr(out[face], astronaut_crop[face]) > psnr(up[face], astronaut_crop[face]) + 0.3


def test_framing_geometry():
    same = framing_matrix(MODEL_FRAMING, 160, MODEL_FRAMING, 160)
    np.testing.assert_allclose(same, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    wide = aligned_crop_framing(160, 0.35)
    assert wide.eye_distance < MODEL_FRAMING.eye_distance  # more context around the face
    m = framing_matrix(wide, 160, MODEL_FRAMING, 160)
    assert m[0, 0] == pytest.approx(MODEL_FRAMING.eye_distance / wide.eye_distance)


@pytest.mark.parametrize(
    "a,b,min_db",
    [
        # INT8 against its FP32 model (quantization error only)
        (("onnx", "int8"), ("onnx", "fp32"), 40.0),
        (("tflite", "int8"), ("tflite", "fp32"), 40.0),
        # the two runtimes on the same weights
        (("onnx", "fp32"), ("tflite", "fp32"), 60.0),
        (("onnx", "int8"), ("tflite", "int8"), 40.0),
    ],
)
def test_parity_between_precisions_and_runtimes(restorers, lfw_faces, a, b, min_db):
    agree = [
        psnr(restorers[a](s), restorers[b](s))
        for i, clean in enumerate(lfw_faces[:12])
        for s in [degrade(clean, "x4", np.random.default_rng(i))]
    ]
    assert min(agree) > min_db, f"{a} vs {b}: worst agreement {min(agree):.1f} dB"


def test_corrupt_restorer_model_is_refused_by_checksum(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(default_models_dir(), models)
    for name in ("restore_student_int8.onnx", "restore_student_int8_vnni.onnx"):
        target = models / name
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        FaceRestorer("onnx", "int8", models_dir=models)
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        EnhancementStage.from_settings(EnhanceSettings(), models_dir=models)
    FaceRestorer("onnx", "fp32", models_dir=models)  # the intact files still load


@pytest.mark.parametrize("crop_size", [112, 160, 224])
def test_enhancement_stage_runs_the_network_before_low_light_at_the_crop_size(
    astronaut_crop, crop_size
):
    stage = EnhancementStage.from_settings(EnhanceSettings(), crop_size=crop_size, margin=0.35)
    names = [s["name"] for s in stage.describe()]
    assert names == ["restore_student", "low_light_gamma_clahe"]
    model_step = stage.describe()[0]
    assert model_step["kind"] == "model" and model_step["params"]["precision"] == "int8"
    crop = cv2.resize(astronaut_crop, (crop_size, crop_size), interpolation=cv2.INTER_AREA)
    out = stage(crop)
    assert out.image.shape == crop.shape and out.image.dtype == np.uint8
    assert psnr(out.image, crop) > 20  # the same face, same framing, not another picture


def test_restore_command_on_a_folder(tmp_path, astronaut_crop):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    names = []
    for i, clean in enumerate([astronaut_crop, cv2.flip(astronaut_crop, 1)] * 2):
        small = degrade(clean, "x4", np.random.default_rng(i))
        small = cv2.resize(small, (40 + 7 * i, 40 + 5 * i))  # any size, not even square
        name = f"face_{i}.{'png' if i % 2 else 'jpg'}"
        cv2.imwrite(str(src / name), small)
        names.append(name)
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (src / "notes.txt").write_text("not an image, ignored")
    cmd = [sys.executable, "-m", "edge", "restore", str(src), str(dst)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr  # one image could not be read
    assert "broken.jpg" in res.stderr and "restored 4 faces" in res.stdout
    assert sorted(p.name for p in dst.iterdir()) == sorted([*names, SUMMARY_FILE])
    records = {r["file"]: r for r in json.loads((dst / SUMMARY_FILE).read_text())["files"]}
    assert records["broken.jpg"]["error"] == "not a readable image"
    for name in names:
        out = cv2.imread(str(dst / name))
        # each face found and restored where it is: the input's framing and aspect, longer
        # side 160 (tests/test_restore_align.py)
        assert records[name]["face_found"], records[name]
        assert out.shape[:2] == output_hw(cv2.imread(str(src / name)).shape[:2], 160)
    # the same folder for input and output would overwrite the originals: refused
    res = subprocess.run([*cmd[:-1], str(src)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "OUT_DIR must differ" in res.stderr
    # TFLite FP32 as asked, and the daemon's framing
    res = subprocess.run(
        [*cmd, "--backend", "tflite", "--precision", "fp32", "--margin", "0.35"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "restore_student_fp32.tflite" in res.stdout


def test_strength_keeps_that_share_of_the_network_over_the_plain_upscale(astronaut_crop):
    small = cv2.resize(astronaut_crop, (40, 40), interpolation=cv2.INTER_AREA)
    plain = cv2.resize(small, (160, 160), interpolation=cv2.INTER_CUBIC).astype(float)
    full = FaceRestorer("onnx", "int8")(small).astype(float)
    assert np.abs(full - plain).mean() > 2  # the network changes the face
    for s in (0.0, 0.6):
        out = FaceRestorer("onnx", "int8", strength=s)(small).astype(float)
        assert np.abs(out - (s * full + (1 - s) * plain)).max() <= 1.0
    with pytest.raises(ValueError, match="strength"):
        FaceRestorer("onnx", "int8", strength=1.5)
