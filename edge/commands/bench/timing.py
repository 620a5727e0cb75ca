"""Warm up, then time a call until its median is stable; percentiles of samples."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Budget:
    """How long to time one model: warm-up calls, then at least `min_runs` calls and
    `min_s` seconds, until the two halves' medians agree within `tolerance` (a noisy machine
    needs more samples) or `max_s` runs out."""

    warmup: int = 5
    min_runs: int = 30
    min_s: float = 2.0
    max_s: float = 15.0
    tolerance: float = 0.05


QUICK = Budget(warmup=1, min_runs=3, min_s=0.0, max_s=1.0, tolerance=1.0)


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p95_ms: float
    runs: int

    def as_dict(self) -> dict:
        return {"p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "runs": self.runs}


def percentiles(values: Sequence[float], qs: tuple[int, ...] = (50, 95)) -> dict[str, float]:
    """{'p50': ..., 'p95': ...} rounded to 0.01; None values when there is no sample."""
    if not len(values):
        return {f"p{q}": None for q in qs}
    got = np.percentile(np.asarray(values, dtype=np.float64), qs)
    return {f"p{q}": round(float(v), 2) for q, v in zip(qs, got, strict=True)}


def _stable(ms: list[float], tolerance: float) -> bool:
    half = len(ms) // 2
    a, b = float(np.median(ms[:half])), float(np.median(ms[half:]))
    return abs(a - b) <= tolerance * min(a, b)


def time_calls(fn: Callable[[int], object], budget: Budget) -> Timing:
    """Time `fn(i)` (i counts calls, e.g. to cycle through inputs) in milliseconds."""
    for i in range(budget.warmup):
        fn(i)
    ms: list[float] = []
    start = time.perf_counter()
    i = budget.warmup
    while True:
        t0 = time.perf_counter()
        fn(i)
        ms.append((time.perf_counter() - t0) * 1000.0)
        i += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget.max_s and len(ms) >= 2:
            break
        if len(ms) >= max(2, budget.min_runs) and elapsed >= budget.min_s:
            if _stable(ms, budget.tolerance):
                break
    p = percentiles(ms)
    return Timing(p["p50"], p["p95"], len(ms))
