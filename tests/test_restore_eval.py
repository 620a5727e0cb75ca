"""The restoration evaluation tool on a tiny fake LFW (no ../shared needed); identity parts
skip when dlib or face_recognition_models (an optional part, see tests/conftest.py) is missing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from edge.capture.demo import ASSETS_DIR
from tools.eval import restore_eval as re


def _faces() -> dict[str, np.ndarray]:
    """Two identities from the real photos shipped in edge/assets, three crops each."""
    astronaut = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))  # 512x512
    hopper = cv2.imread(str(ASSETS_DIR / "grace_hopper.jpg"))  # 437x512
    out = {}
    for name, img, (cx, cy, side) in (
        ("Eileen_Collins", astronaut, (225, 125, 170)),
        ("Grace_Hopper", hopper, (213, 188, 256)),
    ):
        for i, (dx, dy, gain) in enumerate(((0, 0, 1.0), (6, -4, 0.9), (-5, 5, 1.1)), 1):
            x0, y0 = cx + dx - side // 2, cy + dy - side // 2
            crop = img[y0 : y0 + side, x0 : x0 + side].astype(np.float32) * gain
            crop = cv2.resize(np.clip(crop, 0, 255).astype(np.uint8), (160, 160))
            out[f"{name}/{name}_{i:04d}.jpg"] = crop
    return out


@pytest.fixture(scope="module")
def fake_lfw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lfw")
    for rel, img in _faces().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    a, b = "Eileen_Collins", "Grace_Hopper"
    (root / "pairs.txt").write_text(
        "2\t2\n"
        f"{a}\t1\t2\n{b}\t1\t2\n{a}\t1\t{b}\t1\n{a}\t2\t{b}\t2\n"
        f"{a}\t1\t3\n{b}\t2\t3\n{a}\t3\t{b}\t3\n{a}\t2\t{b}\t3\n"
    )
    return root


def test_psnr_ssim_known_inputs():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 2)
    assert re.psnr(img, img) == math.inf
    assert re.ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(img + rng.normal(0, 30, img.shape), 0, 255).astype(np.uint8)
    assert 20 < re.psnr(noisy, img) < 35
    assert re.psnr(noisier, img) < re.psnr(noisy, img)
    assert re.ssim(noisier, img) < re.ssim(noisy, img) < 1.0
    # uniform error of 1 grey level on every channel: MSE 1 on luma -> 48.13 dB
    assert re.psnr(img.astype(np.int16).clip(0, 254).astype(np.uint8) + 1, img) == pytest.approx(
        20 * math.log10(255), abs=0.2
    )


def _ssim_by_definition(a_bgr: np.ndarray, b_bgr: np.ndarray) -> float:
    """SSIM as Wang et al. (2004) define it, one window at a time: luma Y (BT.601), 11x11
    Gaussian weights (sigma 1.5), each window's weighted means, variances and covariance,
    valid windows only. The same definition as scikit-image's structural_similarity with
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255."""
    x, y = (img.astype(np.float64) @ [0.114, 0.587, 0.299] for img in (a_bgr, b_bgr))
    g = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    wx, wy = sliding_window_view(x, (11, 11)), sliding_window_view(y, (11, 11))
    mx, my = (wx * w).sum((-2, -1)), (wy * w).sum((-2, -1))
    dx, dy = wx - mx[..., None, None], wy - my[..., None, None]
    vx, vy, cxy = ((w * p * q).sum((-2, -1)) for p, q in ((dx, dx), (dy, dy), (dx, dy)))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(ssim_map.mean())


def test_ssim_matches_its_definition():
    rng = np.random.default_rng(1)
    a = cv2.GaussianBlur(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8), (0, 0), 1.5)
    for sigma in (4, 12, 40):
        b = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        assert re.ssim(a, b) == pytest.approx(_ssim_by_definition(a, b), abs=1e-6), sigma


def test_read_pairs_balanced_per_fold(fake_lfw):
    pairs, folds = re.read_pairs(fake_lfw / "pairs.txt", 4)
    assert folds == 2 and len(pairs) == 4
    assert [(p.fold, p.same) for p in pairs] == [(0, True), (0, False), (1, True), (1, False)]
    assert pairs[0].a == "Eileen_Collins/Eileen_Collins_0001.jpg"
    assert pairs[1].b == "Grace_Hopper/Grace_Hopper_0001.jpg"
    assert len(re.read_pairs(fake_lfw / "pairs.txt")[0]) == 8
    with pytest.raises(ValueError):
        re.read_pairs(fake_lfw / "pairs.txt", 6)


def test_thresholds_and_kfold():
    rng = np.random.default_rng(2)
    same = np.arange(400) % 2 == 0
    d = np.where(same, rng.uniform(0.2, 0.5, 400), rng.uniform(0.7, 1.0, 400))
    folds = np.arange(400) // 40
    assert re.acc_at(d, same, 0.6) == 1.0
    assert 0.5 < re.best_threshold(d, same) < 0.7
    acc, t = re.acc_best_kfold(d, same, folds)
    assert acc == 1.0 and 0.5 < t < 0.7
    # shifted distances: 0.6 fails, the cross-validated threshold follows
    acc06 = re.acc_at(d + 0.3, same, 0.6)
    acc_best, _ = re.acc_best_kfold(d + 0.3, same, folds)
    assert acc06 < 0.7 and acc_best == 1.0


def test_restorers_and_model_contract():
    deg = np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    for spec in ("bicubic", "classical"):
        out = re.restore_to_size(re.build_restorer(re.parse_restorer(spec)), deg)
        assert out.shape == (160, 160, 3) and out.dtype == np.uint8
    s = re.parse_restorer("student_int8=onnx:models/quantized/student.onnx")
    assert (s.label, s.kind, s.arg) == ("student_int8", "onnx", "models/quantized/student.onnx")
    assert re.parse_restorer("tflite:a/b/m.tflite").label == "tflite:m"
    with pytest.raises(ValueError):
        re.parse_restorer("onnx")
    with pytest.raises(ValueError):
        re.parse_restorer("magic")
    x = re.to_model_input(deg, (40, 40))
    assert x.shape == (1, 3, 40, 40) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    np.testing.assert_array_equal(re.from_model_output(x), deg)  # RGB/NCHW round trip
    # a model returning another size is brought back to 160x160
    assert re.restore_to_size(lambda d: cv2.resize(d, (256, 256)), deg).shape == (160, 160, 3)


def test_degradation_is_seeded_per_image(fake_lfw):
    rel = "Grace_Hopper/Grace_Hopper_0001.jpg"
    clean = re.load_clean(fake_lfw, rel)
    a = re.degrade_seeded(clean, rel, "x4")
    np.testing.assert_array_equal(a, re.degrade_seeded(clean, rel, "x4"))
    assert a.shape == (40, 40, 3)
    other = re.degrade_seeded(clean, "Grace_Hopper/Grace_Hopper_0002.jpg", "x4")
    assert not np.array_equal(a, other)


def _check_report(out: dict, out_dir: Path, identity: bool) -> None:
    for name in ("results.json", "results.md", "bars_x4.png", "grid_x4.png"):
        assert (out_dir / name).stat().st_size > 0, name
    saved = json.loads((out_dir / "results.json").read_text())
    assert saved["meta"]["n_pairs"] == 8 and saved["meta"]["n_images"] == 6
    res = saved["results"]["x4"]
    assert set(res) == {"bicubic", "classical"}
    for m in res.values():
        assert 10 < m["psnr"] < 50 and 0 < m["ssim"] < 1
        if identity:
            assert 0 <= m["acc_at_0.6"] <= 1 and 0 <= m["acc_best_10fold"] <= 1
        else:
            assert "acc_at_0.6" not in m
    assert res["bicubic"]["delta_vs_bicubic"]["psnr"] == 0
    assert res["classical"]["delta_vs_bicubic"]["psnr"] == pytest.approx(
        res["classical"]["psnr"] - res["bicubic"]["psnr"]
    )
    md = (out_dir / "results.md").read_text()
    assert "| bicubic |" in md and "PSNR" in md and ("## Verification accuracy" in md) == identity


@pytest.mark.requires("matplotlib")
def test_report_without_identity(fake_lfw, tmp_path):
    pairs, _ = re.read_pairs(fake_lfw / "pairs.txt")
    specs = [re.parse_restorer("bicubic"), re.parse_restorer("classical")]
    out = re.evaluate(fake_lfw, pairs, ["x4"], specs, tmp_path, identity=False, workers=1)
    _check_report(out, tmp_path, identity=False)


@pytest.mark.requires("dlib", "matplotlib")
def test_report_with_dlib_identity(fake_lfw, tmp_path):
    pairs, _ = re.read_pairs(fake_lfw / "pairs.txt")
    specs = [re.parse_restorer("bicubic"), re.parse_restorer("classical")]
    out = re.evaluate(fake_lfw, pairs, ["x4"], specs, tmp_path, identity=True, workers=1)
    _check_report(out, tmp_path, identity=True)
    clean = out["results"]["clean"]
    assert 0.5 <= clean["acc_at_0.6"] <= 1 and 0.5 <= clean["acc_best_10fold"] <= 1
    assert list((tmp_path / "cache").glob("clean_dlib_*.npz"))
    # the second run takes every clean descriptor from the cache, with the same numbers
    again = re.evaluate(fake_lfw, pairs, ["x4"], specs[:1], tmp_path, identity=True, workers=1)
    assert again["meta"]["clean_descriptors_cached"] == 6
    assert again["results"]["clean"] == clean
    assert again["results"]["x4"]["bicubic"] == out["results"]["x4"]["bicubic"]
