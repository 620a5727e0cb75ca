"""The `face-edge` command: a registry of subcommands, each a module with
``add_arguments(parser)`` and ``main(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from edge import __version__


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    module: str  # has add_arguments(parser) and main(args) -> int


COMMANDS: tuple[Command, ...] = (
    Command("run", "run the daemon (no config: demo camera and a local broker)", "edge.app.daemon"),
    Command("config", "check, show or change a config", "edge.commands.config"),
    Command(
        "enhance",
        "offline: a video, image or folder of images to events.jsonl",
        "edge.commands.enhance",
    ),
    Command(
        "restore",
        "restore every face-crop image of a folder with the restoration network",
        "edge.commands.restore",
    ),
    Command(
        "bench",
        "time the models, the whole pipeline and a GFPGAN-class baseline",
        "edge.commands.bench.run",
    ),
    Command(
        "doctor",
        "check camera, models, broker, spool, temperature and config",
        "edge.commands.doctor",
    ),
    Command(
        "preview",
        "annotated frames and original/enhanced crops, for aiming and tuning",
        "edge.commands.preview",
    ),
    Command(
        "subscribe",
        "reference central-side consumer: store face events",
        "edge.commands.subscribe",
    ),
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command listed. ``only``: import just that command's module
    (the others keep their name and help), so `face-edge config set` does not load OpenCV,
    ONNX Runtime and paho first."""
    p = argparse.ArgumentParser(
        prog="face-edge", description="Face-capture appliance: camera to MQTT face events."
    )
    p.add_argument("--version", action="version", version=f"face-edge {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS:
        parser = sub.add_parser(command.name, help=command.help)
        if only is None or only == command.name:
            module = importlib.import_module(command.module)
            module.add_arguments(parser)
            parser.set_defaults(func=module.main)
    return p


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line, if any (the first word that is one)."""
    names = {c.name for c in COMMANDS}
    return next((a for a in argv if a in names), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # No command named (e.g. --help): list the commands without importing any of them.
    args = build_parser(only=chosen_command(argv) or "").parse_args(argv)
    from edge.runtime.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts: see edge/runtime/memory.py
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
