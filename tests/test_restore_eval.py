"""The restoration evaluation tool on a tiny fake LFW (no ../shared needed), and its identity
metrics (TAR at a fixed FAR, AUC, thresholds set on a reference distribution) on synthetic
distances; the dlib run skips when dlib or face_recognition_models (an optional part, see
tests/conftest.py) is missing."""

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


def test_blend_keeps_the_given_share_of_the_network():
    deg = np.random.default_rng(4).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    model = "onnx:models/quantized/restore_student_int8.onnx"
    net = re.restore_to_size(re.build_restorer(re.parse_restorer(model)), deg).astype(float)
    plain = re.bicubic_up(deg).astype(float)
    for s in (0.0, 0.3, 1.0):
        out = re.build_restorer(re.parse_restorer(f"blend:{s}:{model}"))(deg).astype(float)
        assert np.abs(out - (s * net + (1 - s) * plain)).max() <= 0.5 + 1e-6
    assert np.abs(net - plain).mean() > 2  # the network changes the image: s matters
    for bad in ("blend:x:" + model, "blend:1.5:" + model, "blend:0.5"):
        with pytest.raises(ValueError, match="blend"):
            re.build_restorer(re.parse_restorer(bad))


def test_low_pass_split_and_back_projection_keep_what_the_camera_saw():
    """`lowpass:S:SPEC` takes the coarse face from the plain upscale and the detail from the
    network; `consistent:N:SPEC` makes the output, shrunk back, closer to the camera's image."""
    img = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))[40:210, 140:310]
    deg = cv2.resize(cv2.resize(img, (160, 160)), (40, 40), interpolation=cv2.INTER_AREA)
    model = "onnx:models/quantized/restore_student_int8.onnx"
    net = re.restore_to_size(re.build_restorer(re.parse_restorer(model)), deg).astype(float)
    plain = re.bicubic_up(deg).astype(float)
    split = re.build_restorer(re.parse_restorer(f"lowpass:3:{model}"))(deg).astype(float)

    def coarse(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), 9)[30:-30, 30:-30]

    def fine(x: np.ndarray) -> np.ndarray:
        return (x - cv2.GaussianBlur(x, (0, 0), 1))[30:-30, 30:-30]

    def gap(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).mean())

    assert gap(coarse(split), coarse(plain)) < 0.3 * gap(coarse(net), coarse(plain))
    assert gap(fine(split), fine(net)) < 0.3 * gap(fine(plain), fine(net))

    def mismatch(x: np.ndarray) -> float:
        return float(np.abs(cv2.resize(x, (40, 40), interpolation=cv2.INTER_AREA) - deg).mean())

    bp = re.build_restorer(re.parse_restorer(f"consistent:2:{model}"))(deg).astype(np.float32)
    assert mismatch(bp) < 0.5 * mismatch(net.astype(np.float32))
    for bad in ("lowpass:0:" + model, "lowpass:3", "consistent:x:" + model, "consistent:1"):
        with pytest.raises(ValueError):
            re.build_restorer(re.parse_restorer(bad))


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


def _check_report(out: dict, out_dir: Path, identity: bool, framings=("lfw",)) -> None:
    names = ["results.json", "results.md"]
    for f in framings:
        suffix = "" if f == "lfw" else f"_{f}"
        names += [f"bars_x4{suffix}.png", f"grid_x4{suffix}.png"]
    if identity:
        names.append("dist_x4.png")
    for name in names:
        assert (out_dir / name).stat().st_size > 0, name
    assert (out_dir / "dist_x4.png").exists() == identity
    saved = json.loads((out_dir / "results.json").read_text())
    assert saved["meta"]["n_pairs"] == 8 and saved["meta"]["n_images"] == 6
    assert list(saved["meta"]["framings"]) == list(framings)
    for f in framings:
        res = saved["results"][f]["x4"]
        assert set(res) == {"bicubic", "classical"}
        for m in res.values():
            assert 10 < m["psnr"] < 50 and 0 < m["ssim"] < 1
            if identity:
                assert 0 <= m["acc_at_0.6"] <= 1 and 0 <= m["acc_best_10fold"] <= 1
                assert 0 <= m["auc"] <= 1
                # 4 different-person pairs: neither FAR target can be expressed
                assert m["tar_at_far"] == {
                    "1%": "n/a (fewer than 100 negatives)",
                    "0.1%": "n/a (fewer than 1,000 negatives)",
                }
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
    out = re.evaluate(
        fake_lfw, pairs, ["x4"], specs, tmp_path, identity=False, workers=1,
        framings=["lfw", "tight"], pairs_selection="all",
    )  # fmt: skip
    _check_report(out, tmp_path, identity=False, framings=("lfw", "tight"))
    assert out["meta"]["pairs"] == "all"
    # the degradation happens on the reframed image: PSNR differs between framings
    assert out["results"]["lfw"]["x4"]["bicubic"] != out["results"]["tight"]["x4"]["bicubic"]


@pytest.mark.requires("dlib", "matplotlib")
def test_report_with_dlib_identity(fake_lfw, tmp_path):
    pairs, _ = re.read_pairs(fake_lfw / "pairs.txt")
    specs = [re.parse_restorer("bicubic"), re.parse_restorer("classical")]
    framings = ["lfw", "loose"]
    out = re.evaluate(
        fake_lfw, pairs, ["x4"], specs, tmp_path, identity=True, workers=1, framings=framings
    )
    _check_report(out, tmp_path, identity=True, framings=tuple(framings))
    for f in framings:
        clean = out["results"][f]["clean"]
        assert 0.5 <= clean["acc_at_0.6"] <= 1 and 0.5 <= clean["acc_best_10fold"] <= 1
    # one cache file per framing (the judge box differs)
    assert len(list((tmp_path / "cache").glob("clean_dlib_*.npz"))) == 2
    # the second run takes every clean descriptor from the cache, with the same numbers
    again = re.evaluate(
        fake_lfw, pairs, ["x4"], specs[:1], tmp_path, identity=True, workers=1, framings=framings
    )
    assert again["meta"]["clean_descriptors_cached"] == {"lfw": 6, "loose": 6}
    for f in framings:
        assert again["results"][f]["clean"] == out["results"][f]["clean"]
        bicubic = dict(again["results"][f]["x4"]["bicubic"])
        assert bicubic == out["results"][f]["x4"]["bicubic"]


# ----------------------------------------------------------------- identity at a fixed FAR


def test_tar_at_far_ties_and_direction():
    # 200 different-person pairs: FAR 1 % allows at most 2 of them below the threshold
    neg = np.array([0.30, 0.35, 0.35, 0.40] + [0.9] * 196)
    t = re.threshold_at_far(neg, 0.01)
    # the 3rd smallest (k = 2): 0.35, tied with the 2nd, so only 0.30 is accepted (d < t)
    assert t == 0.35
    pos = np.array([0.10, 0.34, 0.35, 0.36, 0.80])
    d = np.r_[pos, neg]
    same = np.r_[np.ones(5, bool), np.zeros(200, bool)]
    op = re.operating_point(d, same, t)
    assert op == {"threshold": 0.35, "tar": 2 / 5, "far": 1 / 200}  # 0.35 itself is "different"
    # without ties the target is met exactly
    neg2 = np.linspace(0.3, 1.0, 200)
    t2 = re.threshold_at_far(neg2, 0.01)
    assert np.mean(neg2 < t2) == 0.01 and t2 == neg2[2]
    # a threshold set on FAR 0.1 % needs 1,000 negatives; with 3,000 it is the 4th smallest
    assert re.threshold_at_far(neg, 0.001) == "n/a (fewer than 1,000 negatives)"
    neg3 = np.arange(3000) / 3000
    assert re.threshold_at_far(neg3, 0.001) == neg3[3]
    assert np.sum(neg3 < re.threshold_at_far(neg3, 0.001)) == 3


def test_auc_hand_computed():
    same = np.array([True, True, True, False, False, False])
    d = np.array([0.1, 0.4, 0.5, 0.3, 0.5, 0.9])
    # (same, different) pairs with d_same < d_diff: 0.1 beats 3, 0.4 beats 2, 0.5 beats 1 and
    # ties 1 (counts half) -> 6.5 of 9
    assert re.roc_auc(d, same) == pytest.approx(6.5 / 9)
    assert re.roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), same[[0, 1, 3, 4]]) == 1.0
    assert re.roc_auc(np.array([0.8, 0.9, 0.1, 0.2]), same[[0, 1, 3, 4]]) == 0.0
    assert re.roc_auc(np.full(6, 0.5), same) == 0.5


def _synthetic(n_pairs: int, pull: float, seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """Distances like dlib's: clean separated, bicubic blurred; ``pull`` moves the "model"'s
    distances towards their mean (a restorer that makes faces alike)."""
    rng = np.random.default_rng(seed)
    same = np.arange(n_pairs) % 2 == 0
    folds = np.arange(n_pairs) * 10 // n_pairs
    clean = np.where(same, rng.normal(0.40, 0.06, n_pairs), rng.normal(0.80, 0.07, n_pairs))
    bic = np.where(same, rng.normal(0.45, 0.08, n_pairs), rng.normal(0.70, 0.08, n_pairs))
    model = bic.mean() + (bic - bic.mean()) * (1 - pull) - 0.2 * pull
    dists = {"lfw|clean|clean": clean, "lfw|x4|bicubic": bic, "lfw|x4|model": model}
    return dists, same, folds


def test_thresholds_set_on_a_reference_apply_to_other_methods():
    dists, same, folds = _synthetic(6000, pull=0.5)
    quality = {"lfw|x4|bicubic": np.array([25.0, 0.7]), "lfw|x4|model": np.array([26.0, 0.75])}
    res = re.score(["lfw"], ["x4"], ["bicubic", "model"], same, folds, quality, dists)
    clean_t = res["lfw"]["clean"]["far_thresholds"]
    bic_t = res["lfw"]["x4"]["bicubic"]["far_thresholds"]
    neg = ~same
    assert clean_t["1%"] == np.sort(dists["lfw|clean|clean"][neg])[30]  # 30 of 3,000
    assert clean_t["0.1%"] == np.sort(dists["lfw|clean|clean"][neg])[3]  # 3 of 3,000
    assert bic_t["1%"] == np.sort(dists["lfw|x4|bicubic"][neg])[30]
    for lb in ("bicubic", "model"):
        d = dists[f"lfw|x4|{lb}"]
        for target in ("1%", "0.1%"):
            for ref, ts in (("clean", clean_t), ("bicubic", bic_t)):
                e = res["lfw"]["x4"][lb]["tar_at_far"][target][ref]
                assert e["threshold"] == ts[target] and e["set_on"] == re.SET_ON[ref]
                assert e["tar"] == np.mean(d[same] < ts[target])
                assert e["far"] == np.mean(d[neg] < ts[target])
    m = res["lfw"]["x4"]["model"]["tar_at_far"]["1%"]
    # bicubic reaches the target on its own threshold, the model that pulls faces together
    # does not: its FAR at the same threshold is visible and higher
    assert res["lfw"]["x4"]["bicubic"]["tar_at_far"]["1%"]["bicubic"]["far"] <= 0.01
    assert m["bicubic"]["far"] > 0.05 and m["clean"]["far"] > 0.05
    # the clean threshold is tighter than the degraded one: the clean set's own FAR is <= 1 %
    assert res["lfw"]["clean"]["tar_at_far"]["1%"]["clean"]["far"] <= 0.01
    assert "bicubic" not in res["lfw"]["clean"]["tar_at_far"]["1%"]
    assert res["lfw"]["x4"]["model"]["auc"] == pytest.approx(
        re.roc_auc(dists["lfw|x4|model"], same)
    )


def test_far_targets_not_a_number_below_their_negative_count():
    dists, same, folds = _synthetic(1200, pull=0.0)  # 600 different-person pairs
    quality = {"lfw|x4|bicubic": np.array([25.0, 0.7]), "lfw|x4|model": np.array([26.0, 0.75])}
    res = re.score(["lfw"], ["x4"], ["bicubic", "model"], same, folds, quality, dists)
    m = res["lfw"]["x4"]["model"]["tar_at_far"]
    assert m["0.1%"] == "n/a (fewer than 1,000 negatives)"
    assert set(m["1%"]) == {"clean", "bicubic", "own"}
    own = m["1%"]["own"]  # equal FAR: the model's threshold set on its own negatives
    assert own["far"] <= 0.01 and own["set_on"] == re.SET_ON["own"]
    assert res["lfw"]["clean"]["far_thresholds"]["0.1%"] == "n/a (fewer than 1,000 negatives)"
    assert re.far_budget(600) == {
        "1%": "at most 6 of 600 different-person pairs",
        "0.1%": "n/a (fewer than 1,000 negatives): 600 different-person pairs",
    }
    assert re.far_budget(3000)["0.1%"] == "at most 3 of 3,000 different-person pairs"
    assert re.far_budget(99)["1%"].startswith("n/a (fewer than 100 negatives)")


@pytest.mark.requires("matplotlib")
def test_report_states_the_operating_points(tmp_path):
    dists, same, folds = _synthetic(6000, pull=0.5)
    quality = {"lfw|x4|bicubic": np.array([25.0, 0.7]), "lfw|x4|model": np.array([26.0, 0.75])}
    res = re.score(["lfw"], ["x4"], ["bicubic", "model"], same, folds, quality, dists)
    meta = {
        "lfw": "fake", "pairs": "all", "n_pairs": 6000, "n_same": 3000, "n_different": 3000,
        "n_folds": 10, "n_images": 7701, "presets": ["x4"],
        "framings": {"lfw": {"zoom": 1.0, "judge_box": [22, 22, 138, 138]}},
        "restorers": {"bicubic": "bicubic", "model": "onnx:m.onnx"}, "identity": True,
        "far_targets": re.far_budget(3000), "threshold_rule": re.THRESHOLD_RULE, "seconds": 1.0,
        "workers": 1, "protocol": re.PROTOCOL, "command": "test",
    }  # fmt: skip
    re.write_report({"meta": meta, "results": res}, tmp_path, dists={"same": same, **dists})
    md = (tmp_path / "results.md").read_text()
    assert "FAR 0.1%: at most 3 of 3,000 different-person pairs" in md
    assert "threshold set on the clean pairs (same framing)" in md
    assert "threshold set on the degraded-bicubic pairs (same preset and framing)" in md
    e = res["lfw"]["x4"]["model"]["tar_at_far"]["1%"]["clean"]
    assert f"(FAR {100 * e['far']:.2f})" in md
    assert (tmp_path / "dist_x4.png").stat().st_size > 10_000
    # --replot rebuilds the histograms from distances.npz
    np.savez(tmp_path / "distances.npz", same=same, **dists)
    (tmp_path / "dist_x4.png").unlink()
    assert re.main(["--replot", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "dist_x4.png").exists()


# ----------------------------------------------------------------------------- framings


def _spot(xy: tuple[float, float], size: int = 160) -> np.ndarray:
    """A bright Gaussian spot (sigma 2 px) centred on ``xy`` on black."""
    yy, xx = np.mgrid[0:size, 0:size]
    g = 255 * np.exp(-((xx - xy[0]) ** 2 + (yy - xy[1]) ** 2) / (2 * 2.0**2))
    return np.repeat(g[:, :, None], 3, 2).round().astype(np.uint8)


def _centroid(img: np.ndarray, near: tuple[float, float], r: int = 10) -> tuple[float, float]:
    x0, y0 = round(near[0]) - r, round(near[1]) - r
    w = img[y0 : y0 + 2 * r + 1, x0 : x0 + 2 * r + 1, 0].astype(np.float64)
    yy, xx = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return x0 + float((xx * w).sum() / w.sum()), y0 + float((yy * w).sum() / w.sum())


@pytest.mark.parametrize("framing", ["lfw", "tight", "loose"])
def test_framing_puts_a_known_point_where_expected(framing):
    p = (40.0, 100.0)
    expected = {
        "lfw": p,
        "tight": (79.5 + 1.2 * (40 - 79.5), 79.5 + 1.2 * (100 - 79.5)),  # (32.1, 104.1)
        "loose": (79.5 + (40 - 79.5) / 1.2, 79.5 + (100 - 79.5) / 1.2),  # (46.6, 96.6)
    }[framing]
    assert re.framing_point(p, framing) == pytest.approx(expected)
    out = re.reframe(_spot(p), framing)
    assert out.shape == (160, 160, 3) and out.dtype == np.uint8
    assert _centroid(out, expected) == pytest.approx(expected, abs=0.15)


def test_tight_and_loose_undo_each_other():
    for p in ((79.5, 79.5), (60.0, 95.0)):
        back = re.reframe(re.reframe(_spot(p), "tight"), "loose")
        assert _centroid(back, p) == pytest.approx(p, abs=0.25)
        back = re.reframe(re.reframe(_spot(p), "loose"), "tight")
        assert _centroid(back, p) == pytest.approx(p, abs=0.25)
    # a real face comes back close to itself in the middle (tight drops the border)
    face = _faces()["Grace_Hopper/Grace_Hopper_0001.jpg"]
    back = re.reframe(re.reframe(face, "loose"), "tight")
    assert re.psnr(back[30:130, 30:130], face[30:130, 30:130]) > 30


def test_judge_box_follows_the_face():
    assert re.judge_box("lfw") == re.JUDGE_BOX
    # corners moved by the framing, rounded: tight 10.5 -> 11, 149.7 -> 150
    assert re.judge_box("tight") == (11, 11, 150, 150)
    assert re.judge_box("loose") == (32, 32, 128, 128)
    for f in ("tight", "loose"):
        box = re.judge_box(f)
        for corner, moved in ((re.JUDGE_BOX[:2], box[:2]), (re.JUDGE_BOX[2:], box[2:])):
            assert re.framing_point(corner, f) == pytest.approx(moved, abs=0.5)


# ----------------------------------------------------------------------------- pairs


def test_stratified_pairs(tmp_path):
    """stratified:N: N/(2*folds) of each class in every fold, not the first ones, the same
    every time."""
    folds, per_class = 10, 30
    lines = [f"{folds}\t{per_class}"]
    for f in range(folds):
        lines += [f"P{f}_{i:02d}\t1\t2" for i in range(per_class)]
        lines += [f"P{f}_{i:02d}\t1\tQ{f}_{i:02d}\t1" for i in range(per_class)]
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    pairs, n_folds = re.read_pairs(path, 120, "stratified")
    assert n_folds == 10 and len(pairs) == 120
    for f in range(folds):
        fold = [p for p in pairs if p.fold == f]
        assert sum(p.same for p in fold) == 6 and sum(not p.same for p in fold) == 6
    assert pairs == re.read_pairs(path, 120, "stratified")[0]
    first, _ = re.read_pairs(path, 120)
    assert pairs != first and set(pairs) <= set(re.read_pairs(path)[0])
    # names are P<fold>_<i>: in file order within each fold and class
    same0 = [p.a for p in pairs if p.fold == 0 and p.same]
    assert same0 == sorted(same0)
    assert re.parse_pairs("stratified:1200") == ("stratified", 1200)
    assert re.parse_pairs("all") == ("all", None) and re.parse_pairs("600") == ("first", 600)
    assert re.pairs_label("stratified", 1200) == "stratified:1200"
    with pytest.raises(ValueError):
        re.parse_pairs("random:5")
    with pytest.raises(ValueError):
        re.read_pairs(path, 130, "stratified")
