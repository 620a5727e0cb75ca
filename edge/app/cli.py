"""The `face-edge` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from edge import __version__


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load_config_or_exit(path: str | None) -> dict:
    from edge.config.load import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        for p in e.problems:
            print(f"{path}: {p}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as e:
        print(f"cannot read config {path}: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    from edge.app.daemon import Daemon
    from edge.runtime.manifest import ModelIntegrityError

    cfg = _load_config_or_exit(args.config)
    _setup_logging(cfg.get("log_level", "info"))
    daemon = Daemon(
        cfg,
        show=not args.quiet,
        out_dir=Path(args.demo_out) if args.demo_out else None,
        config_path=args.config,
    )
    try:
        return daemon.run_forever(max_seconds=args.max_seconds, max_events=args.max_events)
    except ModelIntegrityError as e:
        logging.getLogger("edge").error("%s", e)
        return 3


def cmd_config(args: argparse.Namespace) -> int:
    from edge.config import load as config

    if args.config_cmd == "check":
        return config.config_check_main(args.path)
    if args.config_cmd == "set":
        from edge.config.edit import config_set_main

        return config_set_main(args.path, args.assignments, reload=args.reload)
    return config.config_show_main(args.path)


def cmd_enhance(args: argparse.Namespace) -> int:
    from edge.app.daemon import build_detector, build_enhancer
    from edge.commands.enhance import run_enhance
    from edge.config.load import camera_settings, resolve_device_id
    from edge.pipeline.processor import EventBuilder, FaceProcessor

    cfg = _load_config_or_exit(args.config)
    _setup_logging(cfg.get("log_level", "info"))
    src = Path(args.input)
    if not src.exists():
        print(f"input not found: {src}", file=sys.stderr)
        return 2
    settings = camera_settings(cfg, {"name": "offline", "source": "file://" + str(src.resolve())})
    if args.backend:
        settings["detector"]["backend"] = args.backend
    detector = build_detector(settings)
    builder = EventBuilder(
        enhancer=build_enhancer(settings),
        device_id=resolve_device_id(cfg),
        camera=args.camera,
        detector_info=detector.info(),
        jpeg_quality=int(settings["enhance"].get("jpeg_quality", 90)),
    )
    processor = FaceProcessor.from_settings(detector, settings)
    summary = run_enhance(src, Path(args.out), processor, builder)
    print(json.dumps(summary))
    print(f"wrote {summary['events']} events to {Path(args.out) / 'events.jsonl'}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from edge.app.daemon import build_detector, build_enhancer
    from edge.capture import open_source
    from edge.commands.preview import run_preview
    from edge.config.load import camera_settings
    from edge.pipeline.processor import FaceProcessor

    cfg = _load_config_or_exit(args.config)
    _setup_logging(cfg.get("log_level", "info"))
    cams = [c for c in cfg["cameras"] if args.camera in (None, c["name"])]
    if not cams:
        print(f"no camera named {args.camera!r} in the config", file=sys.stderr)
        return 2
    cam = cams[0]
    settings = camera_settings(cfg, cam)
    processor = FaceProcessor.from_settings(build_detector(settings), settings)
    source = open_source(cam["source"], camera=cam["name"], options=settings["capture"])
    out = Path(args.out)
    summary = run_preview(source, processor, build_enhancer(settings), args.seconds, out)
    print(
        f"{cam['name']}: {summary['frames']} frames, {summary['faces_detected']} faces, "
        f"{summary['shots_published']} shots would be published; detector {summary['detect_ms']} ms"
    )
    print(f"annotated frames and contact-sheet.jpg in {out}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from edge.commands.restore import restore_folder
    from edge.enhance.restorer import FaceRestorer
    from edge.runtime.manifest import ModelIntegrityError

    in_dir, out_dir = Path(args.in_dir), Path(args.out_dir)
    if not in_dir.is_dir():
        print(f"IN_DIR {in_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        restorer = FaceRestorer(args.backend, args.precision, args.threads, args.models_dir)
        summary = restore_folder(in_dir, out_dir, restorer, args.margin)
    except (ModelIntegrityError, ValueError) as e:
        print(f"restore: {e}", file=sys.stderr)
        return 2
    for name, why in summary.failed:
        print(f"skipped {in_dir / name}: {why}", file=sys.stderr)
    print(
        f"restored {summary.restored} faces into {out_dir} with {restorer.file_name} "
        f"({restorer.version}), {summary.ms_per_face} ms per face; {len(summary.failed)} skipped"
    )
    return 1 if summary.failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from edge.commands.bench.run import main as bench_main

    return bench_main(args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge.commands.doctor import doctor_main

    logging.basicConfig(level=logging.ERROR)
    return doctor_main(args.config, args.json, args.seconds)


def cmd_subscribe(args: argparse.Namespace) -> int:
    from edge.commands import subscribe as subscriber

    return subscriber.main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="face-edge", description="Face-capture appliance: camera to MQTT face events."
    )
    p.add_argument("--version", action="version", version=f"face-edge {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the daemon (no config: demo camera and a local broker)")
    r.add_argument("--config", help="YAML config (default: the embedded demo config)")
    r.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    r.add_argument("--max-events", type=int, help="stop after this many events were published")
    r.add_argument("--quiet", action="store_true", help="do not show each event")
    r.add_argument("--demo-out", help="demo mode: where the built-in viewer stores received events")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("config", help="check or show a config")
    csub = c.add_subparsers(dest="config_cmd", required=True)
    cc = csub.add_parser("check", help="exit 0 if valid, else one line per problem")
    cc.add_argument("path")
    cs = csub.add_parser("show", help="effective config with defaults, secrets redacted")
    cs.add_argument("path", nargs="?")
    cset = csub.add_parser(
        "set", help="change keys in place (validated, atomic, with a .bak backup)"
    )
    cset.add_argument("path")
    cset.add_argument(
        "assignments", nargs="+", metavar="KEY=VALUE", help="e.g. detector.score_threshold=0.9"
    )
    cset.add_argument(
        "--reload", action="store_true", help="then reload the running service (SIGHUP)"
    )
    c.set_defaults(func=cmd_config)

    e = sub.add_parser(
        "enhance", help="offline: a video, image or folder of images to events.jsonl"
    )
    e.add_argument("input")
    e.add_argument("--out", required=True)
    e.add_argument("--config")
    e.add_argument("--camera", default="offline", help="camera name written in the events")
    e.add_argument("--backend", choices=["onnx", "tflite"])
    e.set_defaults(func=cmd_enhance)

    r = sub.add_parser(
        "restore", help="restore every face-crop image of a folder with the restoration network"
    )
    r.add_argument("in_dir", metavar="IN_DIR")
    r.add_argument("out_dir", metavar="OUT_DIR", help="written with the same file names")
    r.add_argument("--backend", choices=["onnx", "tflite"], default="onnx")
    r.add_argument("--precision", choices=["int8", "fp32"], default="int8")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument(
        "--margin",
        type=float,
        help="the crops are face-edge aligned crops with this margin (0.35 as published); "
        "default: framed like the model's LFW training crops",
    )
    r.add_argument("--models-dir", help="default: the shipped models")
    r.set_defaults(func=cmd_restore)

    bn = sub.add_parser(
        "bench", help="time the models, the whole pipeline and a GFPGAN-class baseline"
    )
    from edge.commands.bench.run import add_arguments as add_bench_arguments

    add_bench_arguments(bn)
    bn.set_defaults(func=cmd_bench)

    d = sub.add_parser("doctor", help="check camera, models, broker, spool, temperature and config")
    d.add_argument("--config")
    d.add_argument("--json", action="store_true")
    d.add_argument("--seconds", type=float, default=3.0, help="how long to watch each camera")
    d.set_defaults(func=cmd_doctor)

    pv = sub.add_parser(
        "preview", help="annotated frames and original/enhanced crops, for aiming and tuning"
    )
    pv.add_argument("--config")
    pv.add_argument("--camera", help="camera name (default: the first)")
    pv.add_argument("--seconds", type=float, default=10.0)
    pv.add_argument("--out", required=True)
    pv.set_defaults(func=cmd_preview)

    s = sub.add_parser("subscribe", help="reference central-side consumer: store face events")
    from edge.commands import subscribe as subscriber

    subscriber.add_arguments(s)
    s.set_defaults(func=cmd_subscribe)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edge.app.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts: see edge/memory.py
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
