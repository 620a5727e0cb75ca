"""What the pipeline runs on: model files and the runtimes that run them (a runner plugin per
runtime, ONNX Runtime and LiteRT, behind one registry that checks each file's sha256 before
opening it), and the process's memory settings (memory.py)."""

from edge.runtime.base import ModelRunner, RunnerPlugin
from edge.runtime.registry import known_backends, model_suffix, open_runner, register_runner

__all__ = [
    "ModelRunner",
    "RunnerPlugin",
    "known_backends",
    "model_suffix",
    "open_runner",
    "register_runner",
]
