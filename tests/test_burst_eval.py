"""The multi-frame evaluation (tools/eval/burst_eval.py) end to end on a tiny LFW-like folder
made from the shipped photos: which (method, K) it runs, and that fusing a burst of 8 frames
of a face beats one frame enlarged. dlib is not needed (--no-identity)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from edge.capture.demo import ASSETS_DIR
from tools.eval import burst_eval as be


@pytest.fixture(scope="module")
def tiny_lfw(tmp_path_factory) -> Path:
    """Two people, two 160x160 crops each, and a pairs.txt of one fold with one pair a class."""
    root = tmp_path_factory.mktemp("lfw")
    for name, photo, (cx, cy, side) in (
        ("Eileen_Collins", "astronaut", (225, 125, 170)),
        ("Grace_Hopper", "grace_hopper", (213, 188, 256)),
    ):
        img = cv2.imread(str(ASSETS_DIR / f"{photo}.jpg"))
        for i, dx in enumerate((0, 6), 1):
            x0, y0 = cx + dx - side // 2, cy - side // 2
            crop = cv2.resize(img[y0 : y0 + side, x0 : x0 + side], (160, 160))
            (root / name).mkdir(exist_ok=True)
            cv2.imwrite(str(root / name / f"{name}_{i:04d}.jpg"), crop)
    (root / "pairs.txt").write_text(
        "1\t1\nEileen_Collins\t1\t2\nEileen_Collins\t1\tGrace_Hopper\t2\n"
    )
    return root


def test_conditions_follow_the_methods_and_burst_sizes():
    assert be.conditions(("bicubic", "fusion_over_average"), (8,)) == [
        ("bicubic", 1), ("fusion_over_average", 8)
    ]  # fmt: skip
    full = be.conditions()
    assert ("average_student", 8) in full and ("fusion", 1) in full
    assert ("fusion_over_average", 1) not in full and ("average", 1) not in full
    assert ("average_student", 8) not in be.conditions(be.METHODS, (2, 4))


def test_fusing_a_burst_beats_one_frame_end_to_end(tiny_lfw, tmp_path):
    out = tmp_path / "burst"
    be.main(["--lfw", str(tiny_lfw), "--pairs", "all", "--presets", "x8", "--methods",
             "fusion_over_average", "--ks", "2,8", "--strength", "0.5", "--no-identity",
             "--workers", "1", "--out", str(out)])  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert res["meta"]["ks"] == [2, 8] and res["meta"]["strength"] == 0.5
    rows = res["results"]["x8"]
    assert set(rows) == {"bicubic_k1", "fusion_over_average_k2", "fusion_over_average_k8"}
    assert rows["fusion_over_average_k8"]["frames_kept"] == 8.0  # every frame registered
    assert rows["fusion_over_average_k8"]["psnr"] > rows["bicubic_k1"]["psnr"] + 0.3
    assert "| fusion_over_average | 8 |" in (out / "results.md").read_text()
    with pytest.raises(SystemExit):
        be.main(["--lfw", str(tiny_lfw), "--pairs", "all", "--ks", "3", "--no-identity",
                 "--out", str(out)])  # fmt: skip


def test_framing_reframes_the_clean_images_first(tiny_lfw, tmp_path):
    """--framing tight makes its bursts from the reframed clean image (restore_eval's
    reframe): another image, so another one-frame PSNR, recorded in the meta."""
    psnr = {}
    for framing in ("lfw", "tight"):
        out = tmp_path / framing
        be.main(["--lfw", str(tiny_lfw), "--pairs", "all", "--presets", "x4", "--methods",
                 "average", "--ks", "2", "--no-identity", "--workers", "1", "--framing",
                 framing, "--out", str(out)])  # fmt: skip
        res = json.loads((out / "results.json").read_text())
        assert res["meta"]["framing"] == framing
        assert f"Framing: {framing}" in (out / "results.md").read_text()
        psnr[framing] = res["results"]["x4"]["bicubic_k1"]["psnr"]
    assert psnr["tight"] != pytest.approx(psnr["lfw"], abs=0.05)
