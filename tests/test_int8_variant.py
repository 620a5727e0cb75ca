"""The two integer formats of the shipped INT8 ONNX models: which one opens on which CPU, that
both are listed with checksums, and that the one this CPU opens agrees with FP32."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR
from edge.enhance.fusion import FusionNetwork
from edge.enhance.restorer import FaceRestorer
from edge.runtime import open_runner
from edge.runtime.int8_variant import (
    ENV,
    has_vnni,
    preferred_file,
    this_cpu_has_vnni,
    variant_file,
    wanted_variant,
)
from edge.runtime.manifest import ModelIntegrityError, default_models_dir, load_manifest

XEON = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512bw\n"
EPYC_ZEN2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
ALDER_LAKE = "flags\t\t: fpu avx2 avx_vnni\n"
# Models whose VNNI twin ships (the face check is rebuilt only from hand-labelled crops, which
# a checkout does not have).
WITH_VNNI = [
    "mtcnn_pnet_int8.onnx",
    "mtcnn_rnet_int8.onnx",
    "mtcnn_onet_int8.onnx",
    "restore_student_int8.onnx",
    "restore_fusion_int8.onnx",
]


def test_vnni_is_read_from_the_cpu_flags_on_x86_only():
    assert has_vnni(XEON, "x86_64")
    assert has_vnni(ALDER_LAKE, "x86_64")
    assert not has_vnni(EPYC_ZEN2, "x86_64")
    assert not has_vnni(XEON, "aarch64")  # ARM keeps the portable U8U8 files
    assert not has_vnni("", "x86_64")


def test_the_override_wins_and_a_bad_value_names_the_variable(monkeypatch):
    assert wanted_variant("auto", vnni=True) == "vnni"
    assert wanted_variant("auto", vnni=False) == "portable"
    assert wanted_variant("portable", vnni=True) == "portable"
    assert wanted_variant("vnni", vnni=False) == "vnni"
    monkeypatch.setenv(ENV, "fast")
    with pytest.raises(ValueError, match=ENV):
        wanted_variant()


def test_file_names():
    assert variant_file("restore_student_int8.onnx", "vnni") == "restore_student_int8_vnni.onnx"
    assert variant_file("restore_student_int8.onnx", "portable") == "restore_student_int8.onnx"
    v1, v2 = {"version": "net-1"}, {"version": "net-2"}
    listed = {"a_int8.onnx": v1, "a_int8_vnni.onnx": v1, "b_int8.onnx": v1,
              "c_int8.onnx": v2, "c_int8_vnni.onnx": v1}  # fmt: skip
    assert preferred_file("a_int8.onnx", listed, "vnni") == "a_int8_vnni.onnx"
    assert preferred_file("a_int8.onnx", listed, "portable") == "a_int8.onnx"
    assert preferred_file("b_int8.onnx", listed, "vnni") == "b_int8.onnx"  # no twin: portable
    assert preferred_file("c_int8.onnx", listed, "vnni") == "c_int8.onnx"  # a stale twin
    assert preferred_file("a_fp32.onnx", listed, "vnni") == "a_fp32.onnx"
    assert preferred_file("a_int8.tflite", listed, "vnni") == "a_int8.tflite"


def test_every_twin_is_listed_with_its_format_and_the_same_version():
    models = load_manifest(default_models_dir())["models"]
    for name in WITH_VNNI:
        twin = variant_file(name, "vnni")
        assert twin in models, f"{twin} not in the manifest"
        assert models[twin]["version"] == models[name]["version"]
        assert "U8S8" in models[twin]["format"] and "U8U8" in models[name]["format"]


@pytest.mark.parametrize("variant", ["portable", "vnni"])
def test_the_variant_asked_for_is_the_file_opened(monkeypatch, variant):
    monkeypatch.setenv(ENV, variant)
    for name in WITH_VNNI:
        runner = open_runner("onnx", default_models_dir() / name, 1, fixed_shape=False)
        assert runner.path.name == variant_file(name, variant)


def test_a_corrupt_twin_is_refused_when_it_is_the_one_to_open(monkeypatch, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(default_models_dir(), models)
    twin = models / "restore_student_int8_vnni.onnx"
    data = bytearray(twin.read_bytes())
    data[100] ^= 0xFF
    twin.write_bytes(bytes(data))
    monkeypatch.setenv(ENV, "vnni")
    with pytest.raises(ModelIntegrityError, match="corrupt"):
        FaceRestorer("onnx", "int8", models_dir=models)
    monkeypatch.setenv(ENV, "portable")
    FaceRestorer("onnx", "int8", models_dir=models)  # the intact portable file still opens


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def test_the_files_this_cpu_opens_agree_with_fp32(monkeypatch):
    """U8S8 on a CPU with VNNI, U8U8 elsewhere: whichever opens here is exact enough."""
    monkeypatch.delenv(ENV, raising=False)
    expected = "_int8_vnni.onnx" if this_cpu_has_vnni() else "_int8.onnx"
    restorer, reference = FaceRestorer("onnx", "int8"), FaceRestorer("onnx", "fp32")
    fusion, fusion_fp32 = FusionNetwork("int8"), FusionNetwork("fp32")
    assert restorer.model.path.name.endswith(expected)
    assert fusion.model.path.name.endswith(expected)
    for photo in ("astronaut.jpg", "grace_hopper.jpg"):
        image = cv2.imread(str(ASSETS_DIR / photo))
        # Small faces as the camera gives them: the photo's face region at 40 px, shifted a
        # few pixels per frame for a burst.
        faces = [cv2.resize(image[60 + d : 300 + d, 120 + d : 360 + d], (40, 40),
                            interpolation=cv2.INTER_AREA) for d in range(0, 8, 2)]  # fmt: skip
        assert _psnr(restorer(faces[0]), reference(faces[0])) > 40.0
        assert _psnr(fusion(faces), fusion_fp32(faces)) > 40.0


@pytest.mark.requires("onnx")
def test_no_shape_node_reads_a_dequantized_tensor():
    """The fusion network's dynamic frame axis exports Shape ops; reading them off the float
    tensor made ONNX Runtime dequantize a whole K x 48 x 40 x 40 map for nothing."""
    import onnx

    for name in ("restore_fusion_int8.onnx", "restore_fusion_int8_vnni.onnx"):
        graph = onnx.load(str(default_models_dir() / name)).graph
        producer = {out: node.op_type for node in graph.node for out in node.output}
        shapes = [node for node in graph.node if node.op_type == "Shape"]
        assert shapes, "the fusion network has a dynamic frame axis"
        assert all(producer.get(n.input[0]) != "DequantizeLinear" for n in shapes), name
