"""`face-edge bench --quick`: the smoke run CI keeps working (real models, real mosquitto, the
demo clip). No speed is asserted: only that every measurement is there and plausible."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from conftest import require

from edge.app.cli import main
from edge.commands.bench.baseline import EXPORT_COMMAND, time_gfpgan_class
from edge.commands.bench.timing import QUICK, Budget, time_calls

MODEL_KEYS = {"name", "runtime", "precision", "threads", "input", "p50_ms", "p95_ms"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, str, Path]:
    """One `face-edge bench --quick` for the module: (the JSON, the Markdown, its folder)."""
    require("mosquitto")
    out = tmp_path_factory.mktemp("bench")
    args = ["bench", "--quick", "--json", str(out / "bench.json"), "--plot", str(out / "bench.png")]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(args) == 0
    return json.loads((out / "bench.json").read_text()), stdout.getvalue(), out


def test_quick_bench_pipeline(quick_run):
    result, _, _ = quick_run
    p = result["pipeline"]
    assert p["fps"] > 0 and p["frames"] > 0 and p["dropped"] >= 0
    assert p["events"] > 0, "the demo clip's faces must reach the broker and be acknowledged"
    assert 0 < p["latency_ms"]["p50"] <= p["latency_ms"]["p95"]
    assert 0 < p["rss_mb"] < 10_000
    fast = p["fast"]
    assert fast["frame_size"] == [1280, 720] and fast["all_acked"]
    assert fast["events"] == fast["events_published"]
    assert fast["cpu_percent"] > 0
    searched = fast["detect_regions"]  # region-of-interest detection, on by default
    assert searched["enabled"] and 0 < searched["full_frame_share"] < 1
    assert 0 < searched["area_fraction"] < 1
    for stage, ms in fast["stage_ms"].items():
        assert ms["p50"] is not None and ms["p50"] >= 0, stage


def test_quick_bench_models_and_outputs(quick_run):
    result, stdout, out = quick_run
    rows = result["models"]
    assert all(MODEL_KEYS <= set(r) for r in rows)
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in rows)
    detector = {(r["input"], r["precision"]) for r in rows if r["name"] == "detector"}
    sizes = ("640x360", "1280x720")
    # Plus the daemon's default detector where first_stage_precision "auto" picks FP32 P-Net
    # on this CPU (the probe's choice, so one row for each size or none).
    auto = {(s, p) for s, p in detector if p.endswith("(auto)")}
    assert auto in (set(), {(s, "int8, P-Net fp32 (auto)") for s in sizes}), auto
    assert detector - auto == {(s, p) for s in sizes for p in ("int8", "fp32")}
    assert {r["precision"] for r in rows if r["name"] == "restorer"} == {"int8", "fp32"}
    assert set(result["baselines"]) >= {"gfpgan_class_ms", "ratio_per_face"}
    assert result["targets"] and all(t["met"] in (True, False) for t in result["targets"])
    assert "| detector | 640x360 | onnxruntime | int8 | 1 |" in stdout
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.requires("mosquitto")
def test_crowd_clip_is_a_second_pipeline_run_with_its_own_target(tmp_path):
    """The 'up to 5 faces' budget: the pipeline also runs on a crowd clip, reported as its own
    run and fps target; peak RSS covers it too. (Small clip: the test is about the plumbing.)"""
    from edge.capture.demo import load_asset_faces, make_demo_clip

    clip = make_demo_clip(
        tmp_path / "crowd.mp4",
        faces=load_asset_faces(),
        seconds=2.0,
        size=(640, 360),
        scene="crowd",
    )
    args = ["bench", "--quick", "--skip", "models", "--crowd-video", str(clip)]
    args += ["--json", str(tmp_path / "bench.json")]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(args) == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    crowd = result["pipeline"]["crowd fast"]
    assert crowd["video"] == "crowd.mp4" and crowd["frames"] > 0
    assert crowd["faces_per_frame"]["max"] >= 4
    fps_rows = [t for t in result["targets"] if t["target"].startswith("pipeline fps")]
    assert len(fps_rows) == 2 and any("crowd.mp4" in t["target"] for t in fps_rows)
    runs = [result["pipeline"]["fast"], crowd]
    (rss,) = [t for t in result["targets"] if t["target"] == "pipeline peak RSS MB"]
    assert rss["value"] == max(r["rss_mb"] for r in runs)
    assert "| crowd fast | crowd.mp4 (640x360) |" in stdout.getvalue()


def test_baseline_missing_says_how_to_make_it(tmp_path):
    rows, note = time_gfpgan_class(tmp_path / "absent.onnx", [1], QUICK)
    assert rows == [] and EXPORT_COMMAND in note


def test_time_calls_warms_up_and_meets_the_minimum():
    calls = []
    timing = time_calls(calls.append, Budget(warmup=3, min_runs=10, min_s=0.0, max_s=5.0))
    assert timing.runs >= 10 and len(calls) == timing.runs + 3
    assert 0 <= timing.p50_ms <= timing.p95_ms
