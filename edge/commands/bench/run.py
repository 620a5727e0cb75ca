"""`face-edge bench`: the models, the whole pipeline and the GFPGAN-class baseline in one
run (so the ratios hold on a noisy machine); a Markdown report on stdout, `--json`, `--plot`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
from pathlib import Path

# Only light imports here: `face-edge` builds this command's parser on every start.
from edge.commands.bench.report import check_targets, find, markdown, plot_available, write_plot
from edge.commands.bench.timing import QUICK, Budget

log = logging.getLogger("edge.commands.bench")

# GFPGAN-class takes seconds per call: a few runs are enough for a ratio of ~100x or more.
BASELINE_BUDGET = Budget(warmup=1, min_runs=5, min_s=0.0, max_s=60.0, tolerance=0.1)
# The demo clip's first face enters at frame ~30: 60 frames give tracks, shots and events.
QUICK_PIPELINE_FRAMES = 60


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--video",
        default="demo:",
        help="clip for the pipeline and the detector's frames (default: the demo clip, 1280x720, "
        "up to 2 faces in a frame)",
    )
    p.add_argument(
        "--crowd-video",
        help="a second clip the pipeline also runs on, for the 'up to 5 faces' budget "
        "(default: demo:crowd, 1280x720, 5 people in view; with --quick only when given); "
        "--skip crowd leaves it out",
    )
    p.add_argument("--json", type=Path, help="write the full result here")
    p.add_argument("--plot", type=Path, help="write a PNG chart here (needs matplotlib)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long smoke run: ONNX Runtime, 1 thread, few repetitions, one short "
        "pipeline run, no baseline",
    )
    p.add_argument(
        "--models-dir",
        type=Path,
        help="models to time (default: the shipped ones); only files listed in its "
        "manifest.json, checksums verified",
    )
    p.add_argument(
        "--gfpgan",
        type=Path,
        help="the GFPGAN-class ONNX file (default: gfpgan_class_512.onnx in the face-edge cache, "
        "where `python -m tools.bench.export_gfpgan_class` writes it)",
    )
    p.add_argument(
        "--config",
        help="pipeline settings (detector, tracker, best_shot, enhance); "
        "default: the built-in defaults",
    )
    p.add_argument(
        "--pipeline-seconds",
        type=float,
        help="cap each pipeline run at this long (default: the whole clip; --quick: 60 frames)",
    )
    p.add_argument("--verbose", action="store_true", help="log progress to stderr")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["models", "pipeline", "crowd", "baseline"],
        help="leave a part out (repeatable)",
    )


def command_line(args: argparse.Namespace) -> str:
    """The command that produced a result, for the report (README: command and machine)."""
    parts = ["face-edge", "bench"]
    defaults = {"video": "demo:"}
    for dest in (
        "video",
        "crowd_video",
        "json",
        "plot",
        "models_dir",
        "gfpgan",
        "config",
        "pipeline_seconds",
    ):
        value = getattr(args, dest)
        if value is not None and value != defaults.get(dest):
            parts += [f"--{dest.replace('_', '-')}", str(value)]
    parts += ["--quick"] if args.quick else []
    for part in args.skip:
        parts += ["--skip", part]
    return shlex.join(parts)


def resolve_video(spec: str) -> Path:
    if spec == "demo" or spec.startswith("demo:"):
        from edge.capture.demo import ensure_demo_clip, scene_of

        return ensure_demo_clip(scene=scene_of(spec))
    path = Path(spec.removeprefix("file://"))
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {spec}")
    return path


def _tflite_available() -> bool:
    from edge.runtime.plugins.litert import tflite_interpreter_class

    try:
        tflite_interpreter_class()
        return True
    except RuntimeError:
        return False


def machine() -> dict:
    import onnxruntime

    from edge.runtime.int8_variant import describe_choice

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    cores = os.cpu_count()
    return {
        "summary": f"{cores} cores, {cpu}, {platform.system()} {platform.machine()}",
        "cpu": cpu,
        "cores": cores,
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        # Which integer format the INT8 ONNX rows timed (edge.runtime.int8_variant).
        "onnx_int8": describe_choice(),
    }


def bench_models(video: Path, args: argparse.Namespace, result: dict) -> None:
    from edge.commands.bench.models import (
        detector_rows,
        face_check_rows,
        face_crop,
        fusion_rows,
        restorer_rows,
        sample_frames,
        variants,
    )
    from edge.runtime.manifest import ModelIntegrityError

    quick = args.quick
    backends = ["onnx"] if quick or not _tflite_available() else ["onnx", "tflite"]
    if not quick and backends == ["onnx"]:
        result["notes"].append(
            "LiteRT rows skipped: no TFLite interpreter (pip install ai-edge-litert)"
        )
    todo = variants(backends, [1] if quick else [1, 2])
    budget = QUICK if quick else Budget()
    frames = sample_frames(video, 2 if quick else 8)
    try:
        result["models"] += detector_rows(frames, todo, budget, args.models_dir)
    except ModelIntegrityError as e:
        result["notes"].append(f"detector rows skipped: {e}")
    rows, note = restorer_rows(face_crop(frames), todo, budget, args.models_dir)
    result["models"] += rows
    if note:
        result["notes"].append(note)
    backends = sorted({v.backend for v in todo})
    thread_counts = sorted({v.threads for v in todo})
    rows, note = face_check_rows(frames, backends, thread_counts, budget, args.models_dir)
    result["models"] += rows
    if note:
        result["notes"].append(note)
    rows, note = fusion_rows(frames, backends, thread_counts, budget, args.models_dir)
    result["models"] += rows
    if note:
        result["notes"].append(note)


def bench_baseline(args: argparse.Namespace, result: dict) -> None:
    from edge.commands.bench.baseline import default_gfpgan_path, describe, time_gfpgan_class

    path = args.gfpgan or default_gfpgan_path()
    rows, note = time_gfpgan_class(
        path, [1] if args.quick else [1, 2], QUICK if args.quick else BASELINE_BUDGET
    )
    result["models"] += rows
    if note:
        result["notes"].append(note)
    facts = describe(path)
    base = find(rows, threads=1)
    ours = find(
        result["models"], name="restorer", runtime="onnxruntime", precision="int8", threads=1
    )
    result["baselines"] = {
        "gfpgan_class_ms": base["p50_ms"] if base else None,
        "restorer_ms": ours["p50_ms"] if ours else None,
        "ratio_per_face": round(base["p50_ms"] / ours["p50_ms"], 1) if base and ours else None,
        "compared": "p50 per face, onnxruntime, 1 thread: GFPGAN-class FP32 at 512x512 vs "
        "the restorer INT8 (with its resize and colour conversion)",
        "structure": facts.get("structure"),
        "params_m": facts.get("params_m"),
        "gmacs": facts.get("gmacs"),
    }


def bench_pipeline(
    video: Path, args: argparse.Namespace, result: dict, crowd: Path | None = None
) -> None:
    from edge.commands.bench.pipeline import run_in_subprocess

    frames = QUICK_PIPELINE_FRAMES if args.quick and not args.pipeline_seconds else None
    pipe: dict = {}
    modes = ["fast"] if args.quick else ["fast", "paced"]
    # Runs are keyed "fast", "paced" (the main clip) and "crowd fast", "crowd paced".
    clips = [("", video)] + ([("crowd ", crowd)] if crowd is not None else [])
    for prefix, clip in clips:
        for mode in modes:
            log.info("pipeline run: %s%s", prefix, mode)
            pipe[prefix + mode] = run_in_subprocess(
                clip,
                paced=mode == "paced",
                max_seconds=args.pipeline_seconds,
                max_frames=frames,
                config=args.config,
            )
    fast, paced = pipe["fast"], pipe.get("paced", pipe["fast"])
    # The headline: throughput from the as-fast-as-possible run; latency and drops from the
    # run paced like a camera, the way the daemon really works.
    result["pipeline"] = {
        "fps": fast["fps"],
        "latency_ms": paced["latency_ms"],
        "rss_mb": max(r["rss_mb"] for r in pipe.values()),
        "frames": fast["frames"],
        "dropped": paced["dropped"],
        "events": fast["events"],
        "headline": "fps, frames, events: the as-fast-as-possible run on the main clip; "
        "latency_ms (capture to PUBACK) and dropped: its paced run; rss_mb: the largest of "
        "all runs (the crowd clip's too)",
        **pipe,
    }


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    if args.plot and (why := plot_available()):
        print(why, file=sys.stderr)
        return 2
    skip = set(args.skip) | ({"baseline"} if args.quick else set())
    if args.quick and args.crowd_video is None:
        skip.add("crowd")
    try:
        video = resolve_video(args.video)
        crowd = None if "crowd" in skip else resolve_video(args.crowd_video or "demo:crowd")
    except (FileNotFoundError, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    result: dict = {
        "command": command_line(args),
        "machine": machine(),
        "options": {
            "video": str(video),
            "crowd_video": str(crowd) if crowd else None,
            "quick": args.quick,
            "config": args.config,
            "skipped": sorted(skip),
        },
        "models": [],
        "pipeline": {},
        "baselines": {"gfpgan_class_ms": None, "ratio_per_face": None},
        "notes": [],
    }
    result["notes"].append(result["machine"]["onnx_int8"])
    if args.quick:
        result["notes"].append(
            "--quick: a smoke run (few repetitions, ONNX Runtime 1 thread, short pipeline, "
            "no baseline); not for comparing numbers"
        )
    elif "baseline" in skip:
        result["notes"].append("baseline not timed (--skip baseline)")
    if "pipeline" not in skip:  # first, while the machine is fresh; it runs in its own process
        bench_pipeline(video, args, result, crowd)
    if "models" not in skip:
        bench_models(video, args, result)
    if "baseline" not in skip:
        bench_baseline(args, result)
    result["targets"] = check_targets(result)
    print(markdown(result), end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        write_plot(result, args.plot)
    return 0
