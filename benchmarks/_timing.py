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


def samples_in_turn_ms(first, second, first_repeats: int, second_repeats: int) -> tuple[list[float], list[float]]:
    """Wall times (ms) of ``first()`` and ``second()``, taken in turn in ``second_repeats`` rounds
    (each: a share of ``first``'s calls, then one of ``second``'s), after a warm-up call of each: on
    a shared machine both see the same minutes."""
    first()
    second()
    a, b = [], []
    rounds = max(1, second_repeats)
    for i in range(rounds):
        share = first_repeats * (i + 1) // rounds - first_repeats * i // rounds
        for _ in range(share):
            t0 = time.perf_counter()
            first()
            a.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        second()
        b.append((time.perf_counter() - t0) * 1e3)
    return a, b
