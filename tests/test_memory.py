"""edge/memory.py: the malloc arena cap the daemon and the benchmark set at start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge.runtime.memory import limit_malloc_arenas


@pytest.mark.requires("glibc")
def test_arena_cap_is_applied_in_a_fresh_process():
    code = "from edge.runtime.memory import limit_malloc_arenas; print(limit_malloc_arenas())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
