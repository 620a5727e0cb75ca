"""Pictures for the README, from the built-in demo clip (public-domain photos):
an annotated frame and a sheet of original vs enhanced crops; and, from the two shipped
photos, a multi-frame strip: one frame of a synthetic x8 burst enlarged bicubic, the
single-frame network on it, frame averaging of 8 frames, the fusion network on 8 frames (both
networks at the daemon's default strength, the fused face blended over the frames' average as
the daemon does), and the photo.

    python -m tools.make_readme_figures --out docs/img
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edge.capture.demo import ensure_demo_clip
from edge.commands.annotate import annotate_frame, contact_sheet
from edge.config.load import load_settings
from edge.pipeline.build import build_camera
from edge.pipeline.processor import FrameResult, eye_distance
from edge.pipeline.workers import VideoFrames, run_frames


def multi_frame_strip(preset: str = "x8", k: int = 8, seed: int = 0) -> np.ndarray:
    """Rows (one per shipped photo): one frame | restore, one frame | frame averaging of k |
    fusion of k | the photo, at 160 px in the restorer's framing."""
    from edge.capture.demo import ASSETS_DIR
    from edge.detect import FaceDetector
    from edge.enhance.burst import average_frames, face_view, register_burst
    from edge.enhance.fusion import FusionNetwork
    from edge.enhance.restorer import FaceRestorer, blend_with_plain, resize_to
    from edge.settings import RESTORE_STRENGTH_DEFAULT as STRENGTH
    from tools.convert.restore.bursts import make_burst, to_views
    from tools.convert.restore.degrade import PRESETS

    finder, student, fusion = FaceDetector(), FaceRestorer(strength=STRENGTH), FusionNetwork()
    titles = ["one frame", "restored, 1 frame", f"averaged, {k}", f"fused, {k}", "photo"]
    rows = []
    for name in ("grace_hopper", "astronaut"):
        image = cv2.imread(str(ASSETS_DIR / f"{name}.jpg"))
        face = max(finder.detect(image), key=lambda d: d.height)
        clean = face_view(image, face.landmarks, 160)
        burst = make_burst(clean, PRESETS[preset], k, np.random.default_rng(seed))
        views = to_views(burst)
        reg = register_burst(views[0], views[1:])
        average = average_frames(reg.views)
        panels = [
            cv2.resize(burst.frames[0], (160, 160), interpolation=cv2.INTER_CUBIC),
            student(views[0]),
            resize_to(average, (160, 160)),
            blend_with_plain(fusion(reg.views), average, STRENGTH),  # as the daemon blends it
            clean,
        ]
        gap = np.full((160, 4, 3), 255, np.uint8)
        rows.append(np.hstack([x for p in panels for x in (p, gap)][:-1]))
    strip = np.vstack([rows[0], np.full((4, rows[0].shape[1], 3), 255, np.uint8), rows[1]])
    head = np.full((22, strip.shape[1], 3), 255, np.uint8)
    for i, t in enumerate(titles):
        cv2.putText(head, t, (4 + 164 * i, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)  # fmt: skip
    return np.vstack([head, strip])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(None)
    camera = build_camera(settings.cameras[0], device_id="readme")
    shots: list = []
    best: dict = {"n": 0, "frame": None}

    def keep_busiest(res: FrameResult) -> None:
        if len(res.tracks) >= best["n"]:
            best["n"] = len(res.tracks)
            best["frame"] = annotate_frame(res.frame.image, res.tracks, res.shots)

    run_frames(
        VideoFrames(ensure_demo_clip()),
        camera.processor,
        on_result=keep_busiest,
        on_shots=shots.extend,
    )
    best_frame, enhancer = best["frame"], camera.builder.enhancer
    cv2.imwrite(str(args.out / "annotated-frame.jpg"), best_frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    shots = sorted(shots, key=lambda s: -s.quality.overall)[:4]
    pairs = [
        (s.crop, enhancer(s.crop, eye_px=eye_distance(s.detection), burst=s.burst).image)
        for s in shots
    ]
    labels = [f"#{s.track_id} {s.reason} q{s.quality.overall:.2f}" for s in shots]
    cv2.imwrite(str(args.out / "crops-original-vs-enhanced.jpg"), contact_sheet(pairs, labels))
    cv2.imwrite(str(args.out / "multi-frame-strip.jpg"), multi_frame_strip())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
