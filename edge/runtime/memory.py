"""Process-wide memory settings for the long-running commands (the daemon, the benchmark).

glibc gives each thread that contends for malloc its own arena (up to 8 per core) and keeps
freed memory in it. The pipeline frees a 1280x720 frame and its pyramid every frame in several
threads, so the arenas fill with free, fragmented memory that still counts as resident: on the
5-person demo clip, 2 arenas instead of the default peaked ~26-30 MB lower at the same fps
(`python -m edge.commands.bench.pipeline --video <demo-crowd clip> --max-frames 200`, default vs
MALLOC_ARENA_MAX=2: 257 vs 232 MB). A fixed mmap threshold would return frames to the system
sooner still, but page faults on every frame halved the frame rate.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # from glibc's malloc.h
DEFAULT_ARENAS = 2


def limit_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before threads start). False where there is no glibc
    (musl, macOS) or MALLOC_ARENA_MAX is already set in the environment, which wins."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_ARENA_MAX, int(arenas)) == 1
    if not ok:
        log.debug("mallopt(M_ARENA_MAX, %d) refused", arenas)
    return ok
