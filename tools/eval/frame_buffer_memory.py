"""What multi-frame restoration's frame buffers cost in memory with 5 people in view.

    python -m tools.eval.frame_buffer_memory

Runs the `demo:crowd` clip (5 people in view from 0.4 s to 11.6 s) through detection,
tracking and shot selection (and the enhancement of every published shot) twice, each in a
fresh process: with `enhance.multi_frame` off, and on with the restoration network's gate
lifted (`enhance.restore.max_eye_px: null`: the demo's faces are larger than the 9 px gate,
so by default no frame of them would be buffered at all; lifted, every face is, the worst
case). Reports the peak of the bytes held in frame buffers (every live track's ring plus its
candidate's snapshot, counted by distinct arrays) and each process's peak RSS
(`ru_maxrss`). Writes `--out/memory.json`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path


def held_bytes(processor) -> int:
    seen: dict[int, int] = {}
    for track in processor.tracker.tracks.values():
        st = track.state.get("shots")
        if st is None:
            continue
        frames = list(st.frames.frames) if st.frames is not None else []
        if st.candidate is not None:
            frames += st.candidate.burst
        for f in frames:
            seen[id(f.view)] = f.nbytes
    return sum(seen.values())


def run_once(multi_frame: bool) -> dict:
    import cv2

    from edge.capture.demo import ensure_demo_clip
    from edge.config.load import settings_from_config
    from edge.pipeline.build import build_camera
    from edge.pipeline.workers import VideoFrames, run_frames

    cv2.setNumThreads(1)
    cfg = {
        "cameras": [{"name": "crowd", "source": "demo:crowd"}],
        "enhance": {"restore": {"max_eye_px": None}, "multi_frame": {"enabled": multi_frame}},
    }
    settings = settings_from_config(cfg)
    camera = build_camera(settings.cameras[0], device_id="memory")
    peak = {"bytes": 0, "tracks": 0}
    events = []

    def on_result(res) -> None:
        peak["bytes"] = max(peak["bytes"], held_bytes(camera.processor))
        peak["tracks"] = max(peak["tracks"], len(res.tracks))

    def on_shots(shots) -> None:
        for shot in shots:
            events.append(camera.builder(shot)[0]["enhanced"]["frames_fused"])

    run_frames(VideoFrames(ensure_demo_clip(scene="crowd")), camera.processor,
               on_result=on_result, on_shots=on_shots)  # fmt: skip
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "multi_frame": multi_frame,
        "peak_buffer_bytes": peak["bytes"],
        "peak_tracks": peak["tracks"],
        "events": len(events),
        "mean_frames_fused": round(sum(events) / len(events), 2) if events else None,
        "peak_rss_mb": round(rss_kb / 1024, 1),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("var/eval/frame_buffer_memory"))
    ap.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_once(args.child == "on")))
        return
    runs = []
    for mode in ("off", "on"):
        cmd = [sys.executable, "-m", "tools.eval.frame_buffer_memory", "--child", mode]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    report = {
        "runs": runs,
        "rss_added_mb": round(runs[1]["peak_rss_mb"] - runs[0]["peak_rss_mb"], 1),
        "command": "python -m tools.eval.frame_buffer_memory",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
