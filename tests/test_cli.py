"""The `face-edge` command registry: every command is a module with add_arguments and main,
and a command imports only what it needs (a technician's `config set` does not load OpenCV)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from edge.app.cli import COMMANDS, build_parser, chosen_command

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_module_has_its_two_functions():
    for command in COMMANDS:
        module = importlib.import_module(command.module)
        assert callable(module.add_arguments) and callable(module.main), command.module
    parser = build_parser()  # all imported: every command's options parse
    assert parser.parse_args(["config", "check", "x.yaml"]).config_cmd == "check"
    assert parser.parse_args(["restore", "a", "b"]).func.__module__ == "edge.commands.restore"


def test_the_command_word_is_found_after_global_options():
    assert chosen_command(["--version"]) is None
    assert chosen_command(["config", "set", "c.yaml", "x=1"]) == "config"


def test_config_check_loads_neither_opencv_nor_the_runtimes():
    code = (
        "import sys; from edge.app.cli import main; "
        f"rc = main(['config', 'check', {str(ROOT / 'config' / 'example.yaml')!r}]); "
        "heavy = sorted({'cv2', 'onnxruntime', 'paho'} & {m.split('.')[0] for m in sys.modules}); "
        "print(heavy); sys.exit(rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
