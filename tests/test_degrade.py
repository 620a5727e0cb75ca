"""The CCTV degradation model: exact evaluation presets, varied training draws."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR
from tools.convert.restore.degrade import EVAL_PRESETS, PRESETS, degrade, random_params


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    img = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))
    return cv2.resize(img[30:210, 130:310], (160, 160), interpolation=cv2.INTER_AREA)


def test_presets_are_the_fixed_evaluation_ones():
    assert EVAL_PRESETS == ["x4", "x8", "warm", "cold", "low", "medium", "bright", "motion"]
    for name, f in (("x4", 4), ("x8", 8)):
        p = PRESETS[name]
        assert (p.factor, p.blur, p.blur_sigma, p.noise_sigma, p.jpeg_quality) == (
            f,
            "gaussian",
            f / 2,
            5.0,
            40,
        )
    assert PRESETS["motion"].blur == "motion"
    assert PRESETS["low"].gain < 1 < PRESETS["bright"].gain


@pytest.mark.parametrize("preset", EVAL_PRESETS)
def test_preset_output_size_and_determinism(face, preset):
    a = degrade(face, preset, np.random.default_rng(1))
    b = degrade(face, preset, np.random.default_rng(1))
    f = int(PRESETS[preset].factor)
    assert a.shape == (160 // f, 160 // f, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_lighting_presets_change_light_and_colour(face):
    x4 = degrade(face, "x4").astype(float)
    assert degrade(face, "low").mean() < 0.5 * x4.mean()
    assert degrade(face, "bright").mean() > x4.mean()
    warm = degrade(face, "warm").astype(float)
    assert warm[:, :, 2].mean() / warm[:, :, 0].mean() > x4[:, :, 2].mean() / x4[:, :, 0].mean()


def test_training_draws_vary_and_stay_valid(face):
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(30):
        p = random_params(rng)
        assert 2 <= p.factor <= 10
        out = degrade(face, p, rng)
        assert out.dtype == np.uint8 and out.ndim == 3
        sizes.add(out.shape[0])
    assert len(sizes) > 5
