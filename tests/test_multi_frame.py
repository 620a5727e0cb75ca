"""Multi-frame restoration: registration of a track's frames, the frame buffer's bound,
fusion (network and frame averaging) and what the event says about it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR
from edge.detect import FaceDetector
from edge.enhance import EnhancementStage
from edge.enhance.burst import (
    VIEW_SIDE,
    BurstFrame,
    _ecc,
    _lucas_kanade,
    average_frames,
    face_view,
    prepare_reference,
    register,
    register_burst,
)
from edge.enhance.fusion import BurstFusion, FusionNetwork, fill_frames, fusion_file_name
from edge.enhance.restore_step import RestoreStep, buffered_max_eye_px
from edge.enhance.restorer import (
    FaceRestorer,
    FramedRestorer,
    aligned_crop_framing,
    blend_with_plain,
    resize_to,
)
from edge.runtime.int8_variant import variant_file
from edge.runtime.manifest import ModelIntegrityError, default_models_dir
from edge.settings import (
    BestShotSettings,
    EnhanceSettings,
    MultiFrameSettings,
    RestoreSettings,
)
from edge.shots.best_shot import BestShotSelector
from edge.shots.frame_buffer import VIEW_BYTES, TrackFrames, max_bytes_per_track
from edge.track import Tracker
from edge.types import Detection, Frame
from tools.convert.restore.bursts import BurstMotion, make_burst, to_views
from tools.convert.restore.degrade import PRESETS
from tools.eval.burst_register import view_move
from tools.eval.restore_eval import psnr

PHOTOS = ("grace_hopper", "astronaut")


@pytest.fixture(scope="module")
def clean_faces() -> dict[str, np.ndarray]:
    """Each shipped photo's face in the restorer's framing at 160 px (LFW-like)."""
    finder = FaceDetector()
    out = {}
    for name in PHOTOS:
        image = cv2.imread(str(ASSETS_DIR / f"{name}.jpg"))
        face = max(finder.detect(image), key=lambda d: d.height)
        out[name] = face_view(image, face.landmarks, 160)
    return out


@pytest.fixture(scope="module")
def fusion() -> FusionNetwork:
    return FusionNetwork("int8")


@pytest.fixture(scope="module")
def student() -> FaceRestorer:
    return FaceRestorer("onnx", "int8")


def face_centre_error(found: np.ndarray, true: np.ndarray, lr_side: int) -> float:
    """How far apart two view moves put the view's centre, in camera (degraded) pixels."""
    c = np.array([(VIEW_SIDE - 1) / 2, (VIEW_SIDE - 1) / 2, 1.0])
    return float(np.linalg.norm(found @ c - true @ c)) / (VIEW_SIDE / lr_side)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("preset", ["x4", "x8"])
def test_registration_recovers_known_subpixel_shifts(clean_faces, name, preset):
    params = PRESETS[preset]
    burst = make_burst(
        clean_faces[name], params, 8, np.random.default_rng(3), BurstMotion(1.0, 0, 0)
    )
    views = to_views(burst)
    reg = register_burst(views[0], views[1:])
    assert reg.used == list(range(8)), [r.reason for r in reg.registrations]
    lr_side = round(160 / params.factor)
    for j, r in enumerate(reg.registrations, start=1):
        true = view_move(burst.moves[j])
        assert face_centre_error(r.matrix, true, lr_side) <= 0.2
    # ... where the landmarks alone (no registration) were off by up to a camera pixel
    unregistered = [face_centre_error(np.eye(2, 3), view_move(m), lr_side) for m in burst.moves[1:]]
    assert max(unregistered) > 0.5


def test_a_face_without_corners_to_follow_is_registered_by_ecc(clean_faces):
    """Lucas-Kanade follows the reference's corners; where too few are found (a flat, dark
    face) ECC registers the frame instead, as precisely."""
    params = PRESETS["x4"]
    burst = make_burst(
        clean_faces["astronaut"], params, 4, np.random.default_rng(3), BurstMotion(1.0, 0, 0)
    )
    views = to_views(burst)
    prepared = prepare_reference(views[0])
    assert prepared.corners is not None and len(prepared.corners) >= 6
    cornerless = replace(prepared, corners=None)
    lr_side = round(160 / params.factor)
    for j, view in enumerate(views[1:], start=1):
        assert _lucas_kanade(cornerless, view) is None
        reg, _ = register(cornerless, view)
        np.testing.assert_array_equal(reg.matrix, _ecc(prepared, view))
        assert face_centre_error(reg.matrix, view_move(burst.moves[j]), lr_side) <= 0.2
        lk, _ = register(prepared, view)  # the corners' way agrees with ECC
        assert face_centre_error(lk.matrix, view_move(burst.moves[j]), lr_side) <= 0.2


@pytest.mark.parametrize("preset", ["x4", "x8", "low"])
def test_a_frame_of_another_person_is_dropped(clean_faces, preset):
    rng = np.random.default_rng(5)
    burst = make_burst(
        clean_faces["grace_hopper"], PRESETS[preset], 8, rng, outlier=clean_faces["astronaut"]
    )
    views = to_views(burst)
    reg = register_burst(views[0], views[1:])
    assert burst.outlier_index not in reg.used
    assert reg.used == [i for i in range(8) if i != burst.outlier_index]


@pytest.mark.parametrize("name", PHOTOS)
def test_fusing_frames_beats_one_frame(clean_faces, fusion, student, name):
    clean = clean_faces[name]
    burst = make_burst(clean, PRESETS["x4"], 8, np.random.default_rng(11))
    views = to_views(burst)
    reg = register_burst(views[0], views[1:])
    single = psnr(student(views[0]), clean)
    fused = psnr(fusion(reg.views), clean)
    assert fused > single + 0.2, (fused, single)
    # frame averaging, the classical baseline, against bicubic of the one frame
    one = cv2.resize(burst.frames[0], (160, 160), interpolation=cv2.INTER_CUBIC)
    averaged = BurstFusion("average")([_frame(v) for v in views]).restored
    assert psnr(averaged, clean) > psnr(one, clean)


def test_fusion_of_one_frame_is_left_to_the_single_frame_network(clean_faces):
    out = BurstFusion("average")([_frame(clean_faces["grace_hopper"][::2, ::2])])
    assert out.restored is None and out.frames_fused == 1


def _frame(view: np.ndarray, t: float = 0.0, yaw: float = 0.0) -> BurstFrame:
    return BurstFrame(view=resize_to(view, (VIEW_SIDE, VIEW_SIDE)), mono_time=t, wall_time=1e9 + t,
                      quality=0.5, yaw=yaw, pitch=0.0)  # fmt: skip


def test_the_ring_keeps_the_last_frames_and_selects_by_age_and_pose():
    ring = TrackFrames(4)
    view = np.zeros((VIEW_SIDE, VIEW_SIDE, 3), np.uint8)
    for i in range(50):
        ring.add(_frame(view, t=i * 0.1, yaw=30.0 if i == 48 else 0.0))
        assert len(ring.frames) <= 4 and ring.nbytes <= 4 * VIEW_BYTES
    ref = ring.frames[-1]  # t = 4.9
    chosen = ring.select(ref, max_age_s=0.25, max_pose_delta_deg=20)
    # t = 4.8 turned 30 degrees away; t = 4.6 is older than 0.25 s
    assert [round(f.mono_time, 1) for f in chosen] == [4.9, 4.7]
    with pytest.raises(ValueError):
        TrackFrames(0)


def _det(x: float, y: float, s: float) -> Detection:
    box = np.array([x, y, x + s, y + s], np.float32)
    lm = np.array([[x + 0.3 * s, y + 0.4 * s], [x + 0.7 * s, y + 0.4 * s],
                   [x + 0.5 * s, y + 0.6 * s], [x + 0.35 * s, y + 0.8 * s],
                   [x + 0.65 * s, y + 0.8 * s]], np.float32)  # fmt: skip
    return Detection(box, 0.99, lm)


def test_the_frame_buffer_stays_within_its_bound_over_a_long_track():
    image = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))
    mf = MultiFrameSettings(max_frames=4, max_age_s=1.0)
    shot_settings = BestShotSettings(first_shot_after_s=0.2, publish_interval_s=1.0,
                                     min_quality=0.0, min_face_px=10)  # fmt: skip
    selector = BestShotSelector(shot_settings, 1, None, mf, max_eye_px=None, face_view=face_view)
    tracker = Tracker(min_hits=1)
    shots = []
    for i in range(150):
        t = i / 25
        det = _det(170 + (i % 7), 60 + (i % 5), 28 + (i % 3))
        seen, ended = tracker.update([det], t)
        shots += selector.on_frame(Frame(image, i, 1e9 + t, t), seen, ended)
        for track in tracker.tracks.values():
            st = track.state["shots"]
            held = {id(f.view) for f in st.frames.frames}
            if st.candidate is not None:
                held |= {id(f.view) for f in st.candidate.burst}
            assert len(st.frames.frames) <= 4
            assert len(held) * VIEW_BYTES <= max_bytes_per_track(4)
    assert len(shots) >= 3
    for shot in shots:
        assert 1 <= len(shot.burst) <= 4
        assert shot.burst[0].mono_time == shot.mono_time
        assert all(0 <= shot.mono_time - f.mono_time <= 1.0 for f in shot.burst)


def test_no_frames_are_kept_when_multi_frame_is_off_or_the_face_is_large():
    image = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))
    settings = BestShotSettings(first_shot_after_s=0.0, min_quality=0.0, min_face_px=10)
    for mf, max_eye in ((MultiFrameSettings(enabled=False), None), (MultiFrameSettings(), 9.0)):
        selector = BestShotSelector(settings, 1, None, mf, max_eye_px=max_eye, face_view=face_view)
        tracker = Tracker(min_hits=1)
        shots = []
        for i in range(10):
            seen, ended = tracker.update([_det(170, 60, 60)], i / 25)  # eyes 24 px apart
            shots += selector.on_frame(Frame(image, i, 1e9 + i / 25, i / 25), seen, ended)
        assert shots and all(s.burst == [] for s in shots)


def test_restore_step_reports_what_it_fused(clean_faces, student):
    step = RestoreStep(student, 160, 0.35, None, BurstFusion("network", FusionNetwork("int8")))
    burst = make_burst(clean_faces["grace_hopper"], PRESETS["x8"], 6, np.random.default_rng(2))
    frames = [_frame(v, t=-0.04 * i) for i, v in enumerate(to_views(burst))]
    crop = resize_to(burst.frames[0], (160, 160))
    image, info = step.restore_burst(crop, frames)
    assert image.shape == crop.shape
    assert info["frames_fused"] == 6 and info["frames_dropped"] == 0
    assert info["wall_times"] == [f.wall_time for f in frames]
    # one frame: exactly the single-frame network
    single, info1 = step.restore_burst(crop, frames[:1])
    assert info1["frames_fused"] == 1 and np.array_equal(single, step(crop))


def test_partial_strength_blends_the_fused_face_over_the_frame_average(clean_faces):
    """Below strength 1 the fused face is blended over the registered frames' mean (the
    burst's averaged noise), not over the published frame alone."""
    fusion = BurstFusion("network", FusionNetwork("int8"))
    restorer = FaceRestorer("onnx", "int8", strength=0.5)
    half = RestoreStep(restorer, 160, 0.35, None, fusion)
    clean = clean_faces["grace_hopper"]
    burst = make_burst(clean, PRESETS["x8"], 8, np.random.default_rng(3))
    frames = [_frame(v, t=-0.04 * i) for i, v in enumerate(to_views(burst))]
    outcome = fusion(frames)
    reg = register_burst(frames[0].view, [f.view for f in frames[1:]])
    assert np.array_equal(outcome.average, average_frames(reg.views))
    over_average = blend_with_plain(outcome.restored, outcome.average, 0.5)
    over_one = blend_with_plain(outcome.restored, frames[0].view, 0.5)
    crop = resize_to(burst.frames[0], (160, 160))
    image, info = half.restore_burst(crop, frames)
    assert info["frames_fused"] == len(reg.views) == 8
    framed = FramedRestorer(restorer, aligned_crop_framing(160, 0.35))
    assert np.array_equal(image, framed.put_back(crop, over_average))
    assert not np.array_equal(image, framed.put_back(crop, over_one))


def _x4_burst(clean_faces) -> tuple[list[BurstFrame], np.ndarray]:
    """Six frames of the astronaut's face seen at x4 (eyes 10.3 px apart), 40 ms apart, and
    the published crop (frame 0 enlarged)."""
    burst = make_burst(clean_faces["astronaut"], PRESETS["x4"], 6, np.random.default_rng(5))
    frames = [_frame(v, t=-0.04 * i) for i, v in enumerate(to_views(burst))]
    return frames, resize_to(burst.frames[0], (160, 160))


def test_a_face_above_the_network_gate_is_fused_by_frame_averaging(clean_faces, student):
    step = RestoreStep(student, 160, 0.35, 9.0, BurstFusion("network", FusionNetwork("int8")),
                       average_max_eye_px=20.0)  # fmt: skip
    stage = EnhancementStage([step])
    frames, crop = _x4_burst(clean_faces)
    out = stage(crop, eye_px=14.0, burst=frames)
    record = out.stages[0]["params"]
    assert record["applied"] is False and "skipped_because" in record  # not the network
    assert record["multi_frame"] == "average" and record["fusion_version"] == "frame-average-1"
    assert out.frames_fused == record["frames_fused"] == 6
    assert out.fused_times == [f.wall_time for f in frames]
    # The average of the registered views, put back: what step.fuse_skipped returns.
    averaged, _ = step.fuse_skipped(crop, frames, 14.0)
    assert np.array_equal(out.image, averaged) and not np.array_equal(out.image, crop)
    # Larger than the buffered view holds, or one frame: the crop as captured.
    for eye_px, burst_frames in ((24.0, frames), (14.0, frames[:1])):
        kept = stage(crop, eye_px=eye_px, burst=burst_frames)
        assert kept.frames_fused == 1 and np.array_equal(kept.image, crop)
        assert kept.stages[0]["params"]["multi_frame"] == "network"  # configured, not used
        assert "frames_fused" not in kept.stages[0]["params"]


def test_a_face_just_above_the_gate_is_fused_by_the_network_when_it_has_frames(
    clean_faces, student
):
    """Between restore.max_eye_px and multi_frame.network_max_eye_px the fusion network runs
    on a burst (the record says applied, the fusion network's version); one frame alone keeps
    the crop; above it, frame averaging."""
    fusion = BurstFusion("network", FusionNetwork("int8"))
    step = RestoreStep(student, 160, 0.35, 9.0, fusion, average_max_eye_px=20.0,
                       network_max_eye_px=10.5)  # fmt: skip
    stage = EnhancementStage([step])
    frames, crop = _x4_burst(clean_faces)
    out = stage(crop, eye_px=10.3, burst=frames)
    record = out.stages[0]["params"]
    assert record["applied"] is True and "skipped_because" not in record
    assert record["multi_frame"] == "network" and record["fusion_version"] == fusion.version
    assert out.frames_fused == 6 and record["network_max_eye_px"] == 10.5
    fused, _ = step.restore_burst(crop, frames)  # what the network gives inside its gate
    assert np.array_equal(out.image, fused)
    alone = stage(crop, eye_px=10.3, burst=frames[:1])
    assert alone.stages[0]["params"]["applied"] is False and np.array_equal(alone.image, crop)
    above = stage(crop, eye_px=11.0, burst=frames).stages[0]["params"]
    assert above["applied"] is False and above["fusion_version"] == "frame-average-1"


def test_faces_above_the_gate_keep_less_of_the_fusion_network(clean_faces):
    """Above restore.max_eye_px the fused face is blended over the frames' average at
    multi_frame.above_gate_strength; below it, at restore.strength."""
    fusion = BurstFusion("network", FusionNetwork("int8"))
    restorer = FaceRestorer("onnx", "int8", strength=0.5)
    step = RestoreStep(restorer, 160, 0.35, 9.0, fusion, average_max_eye_px=20.0,
                       network_max_eye_px=10.5, above_gate_strength=0.3)  # fmt: skip
    frames, crop = _x4_burst(clean_faces)
    outcome = fusion(frames)
    framed = FramedRestorer(restorer, aligned_crop_framing(160, 0.35))
    above, _ = step.fuse_skipped(crop, frames, 10.3)
    below, _ = step.restore_burst(crop, frames)
    for image, share in ((above, 0.3), (below, 0.5)):
        blended = blend_with_plain(outcome.restored, outcome.average, share)
        assert np.array_equal(image, framed.put_back(crop, blended))
    assert not np.array_equal(above, below)
    default = RestoreStep.from_settings(RestoreSettings(), 160, 0.35, None, MultiFrameSettings())
    assert default.params["above_gate_strength"] == 0.3 and default.params["strength"] == 0.5
    unset = MultiFrameSettings(above_gate_strength=None)
    assert RestoreStep.from_settings(RestoreSettings(), 160, 0.35, None, unset).params[
        "above_gate_strength"
    ] == 0.5  # fmt: skip


def test_faces_are_buffered_up_to_the_frame_averaging_limit():
    on = EnhanceSettings()
    assert on.multi_frame.average_max_eye_px == 20.0 and on.restore.max_eye_px == 9.0
    assert buffered_max_eye_px(on) == 20.0
    no_average = EnhanceSettings(multi_frame=MultiFrameSettings(average_max_eye_px=None))
    assert buffered_max_eye_px(no_average) == 10.5  # the fusion network's reach
    neither = MultiFrameSettings(average_max_eye_px=None, network_max_eye_px=None)
    assert buffered_max_eye_px(EnhanceSettings(multi_frame=neither)) == 9.0
    every_face = EnhanceSettings(restore=RestoreSettings(max_eye_px=None))
    assert buffered_max_eye_px(every_face) is None
    # multi-frame off: no averaging either
    off = RestoreStep.from_settings(RestoreSettings(), 160, 0.35, None,
                                    MultiFrameSettings(enabled=False))  # fmt: skip
    assert off.average_max_eye_px is None and off.params["average_max_eye_px"] is None
    assert off.network_max_eye_px is None
    step = RestoreStep.from_settings(RestoreSettings(), 160, 0.35, None, MultiFrameSettings())
    assert step.params["average_max_eye_px"] == 20.0 and step.params["network_max_eye_px"] == 10.5
    # frame averaging as the method: no network above the gate
    avg = RestoreStep.from_settings(RestoreSettings(), 160, 0.35, None,
                                    MultiFrameSettings(method="average"))  # fmt: skip
    assert avg.network_max_eye_px is None


def test_the_tflite_backend_fuses_with_its_fixed_frame_model(clean_faces, fusion):
    step = RestoreStep.from_settings(
        __import__("edge.settings", fromlist=["RestoreSettings"]).RestoreSettings(backend="tflite"),
        160, 0.35, None, MultiFrameSettings(method="network"),
    )  # fmt: skip
    assert step.params["multi_frame"] == "network"
    lite = step.fusion.network
    assert lite.file_name == "restore_fusion_int8.tflite" and lite.frame_count == 8
    clean = clean_faces["grace_hopper"]
    views = to_views(make_burst(clean, PRESETS["x4"], 8, np.random.default_rng(11)))
    views = register_burst(views[0], views[1:]).views
    for k in (2, 3, 8):  # fewer frames than the model takes are repeated to fill it
        out_lite, out_onnx = lite(views[:k]), fusion(views[:k])
        assert abs(psnr(out_lite, clean) - psnr(out_onnx, clean)) < 0.1  # measured <= 0.04
        assert np.abs(out_lite.astype(int) - out_onnx).mean() < 2.0


def test_fill_frames_repeats_a_short_burst_in_turn():
    x = np.arange(3)[:, None, None, None] * np.ones((1, 3, 2, 2))
    assert fill_frames(x, 8)[:, 0, 0, 0].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert fill_frames(np.arange(10)[:, None], 8)[:, 0].tolist() == list(range(8))


def test_a_tampered_fusion_model_is_refused(tmp_path):
    name = fusion_file_name("int8")
    both = (name, variant_file(name, "vnni"))  # the CPU decides which opens
    shutil.copy(default_models_dir() / "manifest.json", tmp_path)
    for f in both:
        data = bytearray((default_models_dir() / f).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (tmp_path / f).write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        FusionNetwork("int8", models_dir=tmp_path)


def test_offline_enhance_events_say_how_many_frames_were_fused(
    tmp_path, face_video, event_validator
):
    # The demo's faces are larger than the network's gate (9 px between the eyes): lift it,
    # so the network and its fusion run on every face.
    config = tmp_path / "config.yaml"
    config.write_text('cameras:\n  - name: clip\n    source: "demo:"\n'
                      "enhance:\n  restore:\n    max_eye_px: null\n")  # fmt: skip
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "edge", "enhance", str(face_video), "--out", str(out),
         "--config", str(config)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    fused = [e for e in events if e["enhanced"]["frames_fused"] > 1]
    assert fused, [e["enhanced"]["frames_fused"] for e in events]
    for ev in events:
        event_validator.validate(ev)
    for ev in fused:
        enh = ev["enhanced"]
        assert len(enh["fused_frames"]) == enh["frames_fused"] <= 8
        assert enh["fused_frames"][0] == ev["captured_at"]  # the published frame first
        assert all(t <= ev["captured_at"] for t in enh["fused_frames"])
        restore = next(s for s in enh["stages"] if s["name"] == "restore_student")
        assert restore["params"]["frames_fused"] == enh["frames_fused"]
        assert restore["params"]["multi_frame"] == "network"
