"""The track separability metric on tiny synthetic descriptors (no dlib, no videos)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from tools.eval import track_separability as ts


def test_pairs_and_labels():
    i, j, same = ts.shot_pairs([7, 7, 3])
    assert list(zip(i.tolist(), j.tolist(), same.tolist(), strict=True)) == [
        (0, 1, True),
        (0, 2, False),
        (1, 2, False),
    ]
    desc = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    assert ts.pair_distances(desc, i, j).tolist() == pytest.approx([5.0, 1.0, math.sqrt(18)])


def test_perfectly_separated_tracks():
    # Two tight tracks far apart, and a single-shot track: it adds different-track pairs only.
    desc = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.0, 0.2], [0.0, 9.0]])
    r = ts.track_separability(desc, [1, 1, 2, 2, 3])
    assert (r["same_pairs"], r["diff_pairs"]) == (2, 8)
    assert r["auc"] == pytest.approx(1.0)
    assert r["mean_d_same"] == pytest.approx(0.15)


def test_known_auc_with_a_crossing():
    # Same-track distances 1 and 4, different-track distances 3, 7, 2 and 6:
    # 1 beats all four, 4 beats 7 and 6, so P(d_same < d_diff) = 6 / 8.
    desc = np.array([[0.0], [1.0], [3.0], [7.0]])
    tracks = [1, 1, 2, 2]  # pairs: 01 same d1, 02 d3, 03 d7, 12 d2, 13 d6, 23 same d4
    r = ts.track_separability(desc, tracks)
    assert r["auc"] == pytest.approx(6 / 8)
    # the same by the definition
    i, j, same = ts.shot_pairs(tracks)
    d = ts.pair_distances(desc, i, j)
    wins = [(a < b) + 0.5 * (a == b) for a in d[same] for b in d[~same]]
    assert r["auc"] == pytest.approx(np.mean(wins))


def test_no_auc_without_both_kinds_of_pair():
    desc = np.zeros((3, 4))
    assert ts.track_separability(desc, [1, 1, 1])["auc"] is None
    assert ts.skip_reason([1, 1, 1]) == "1 track(s): no different-track pairs"
    assert ts.track_separability(desc, [1, 2, 3])["auc"] is None
    assert "single shot" in ts.skip_reason([1, 2, 3])
    assert ts.skip_reason([1, 1, 2]) is None


def test_scoring_and_pooling_keep_pairs_within_videos():
    rows_a = [{"track": t, "eye_px": e, "burst": 3} for t, e in ((1, 5.0), (1, 6.0), (2, 20.0))]
    rows_b = [{"track": t, "eye_px": 4.0, "burst": 1} for t in (1, 2)]  # track 1 again: not A's
    for rows in (rows_a, rows_b):
        for r in rows:
            r["frames_fused_fusion"] = r["frames_fused_average"] = min(r["burst"], 2)
    desc_a = {m: np.array([[0.0], [0.5], [4.0]]) for m in ts.METHODS}
    desc_b = {m: np.array([[0.0], [0.1]]) for m in ts.METHODS}
    videos = {"a": ts.score_video(desc_a, rows_a, 9.0), "b": ts.score_video(desc_b, rows_b, 9.0)}
    assert videos["a"]["methods"]["single"]["auc"] == pytest.approx(1.0)
    assert videos["a"]["shots_eyes_within_gate"] == 2
    assert videos["a"]["gate_pairs"]["single"]["same_pairs"] == 1
    assert videos["b"]["skipped"] is not None
    pooled = ts.pool(videos)
    # 3 pairs in a + 1 in b; a cross-video pair would be a 5th
    m = pooled["methods"]["fusion"]
    assert (m["same_pairs"], m["diff_pairs"]) == (1, 3)
    # same 0.5 against different 4.0, 3.5 and 0.1 (b's pair)
    assert m["auc"] == pytest.approx(2 / 3)
    assert pooled["mean_frames_fused_fusion"] == pytest.approx((2 * 3 + 1 * 2) / 5)
    assert "a" in ts.markdown(
        {
            "meta": {"product_max_eye_px": 9.0, "command": "x"},
            "videos": videos,
            "pooled": pooled,
        }
    )


def test_imports_neither_torch_nor_dlib():
    code = (
        "import sys, tools.eval.track_separability; "
        "print(any(m in sys.modules for m in ('torch', 'dlib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
