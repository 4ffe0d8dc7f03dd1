"""Shared timing helper of the benchmarks."""

from __future__ import annotations

import statistics
import time


def samples_ms(fn, repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn()`` in ms, after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in ms, after one warm-up call."""
    return statistics.median(samples_ms(fn, repeats))
