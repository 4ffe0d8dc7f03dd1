"""Exact Poisson draws for small means, from a quantile table and Poisson additivity.

A mean ``lam`` below ``TABLE_MAX_MEAN`` is split into a grid mean ``lam_j = j / 64`` (the largest
at or below it) and a rest ``delta < 1/64``; the draw is the sum of independent draws of each
(a Poisson law's additivity):

- ``Poisson(lam_j)`` by inverse transform of one uniform ``u``: the table holds, per grid mean
  and 1/1024 cell of ``u``, the quantile at the cell's lower edge and whether it steps inside the
  cell; where it does not (about 97 % of pixels) that is the draw, the rest are settled against
  the tabulated CDF of ``lam_j`` (exact in float64, computed once by ``scipy.special.pdtr``);
- ``Poisson(delta)`` as a ``Poisson(1/64)`` count thinned by ``delta * 64``
  (``Generator.binomial``; thinning a Poisson count gives a Poisson count of the thinned mean).
  The count is nonzero at the successes of Bernoulli trials (1.6 % of pixels), placed by
  geometric gaps, and drawn there from its law given that it is not 0.

Exact up to the uniforms' 24-bit resolution (a chi-square test per mean); a twin run frame's dim
pixels take about a quarter of numpy's sampler's time (``benchmarks/poisson_sampler.py``).
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.special
import scipy.stats

__all__ = ["TABLE_MAX_MEAN", "poisson_table_draw"]

TABLE_MAX_MEAN = 50.0            # the table's means stop here; callers draw larger ones otherwise
_MEAN_STEPS = 64                 # grid means per electron (a power of two: exact in float32)
_U_STEPS = 1024                  # grid points of the uniform (a power of two)
_MAX_K = 127                     # CDF columns kept: F(127; 50) rounds to 1 in float64
_LARGEST_U = 1.0 - 2.0**-24      # the largest float32 uniform below 1
_OPEN_BIT = 128                  # set in a table entry whose cell holds a step of the quantile

_lock = threading.Lock()
_tables: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _build() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantiles (uint8, (means, u grid), flattened: the quantile at the cell's lower u, with bit 7
    set where the cell's upper u has another), CDFs (float64, (means, k), flattened), and the CDF
    of the rest's count given that it is not 0 (Poisson(1 / _MEAN_STEPS) given >= 1)."""
    rows = int(TABLE_MAX_MEAN * _MEAN_STEPS) + 1
    means = np.arange(rows) / _MEAN_STEPS
    k = np.arange(_MAX_K + 1)
    cdf = scipy.special.pdtr(k[None, :], means[:, None])
    cdf[:, -1] = 1.0
    u_grid = np.append(np.arange(_U_STEPS) / _U_STEPS, _LARGEST_U)
    edges = np.empty((rows, _U_STEPS + 1), dtype=np.uint8)
    for row in range(rows):
        edges[row] = np.searchsorted(cdf[row], u_grid, side="left")
    quantiles = edges[:, :-1] | np.where(edges[:, :-1] != edges[:, 1:], _OPEN_BIT, 0).astype(np.uint8)
    rest_pmf = scipy.stats.poisson.pmf(np.arange(1, 16), 1.0 / _MEAN_STEPS)
    rest_cdf = np.cumsum(rest_pmf) / rest_pmf.sum()
    rest_cdf[-1] = 1.0
    for table in (quantiles, cdf, rest_cdf):
        table.flags.writeable = False
    return np.ascontiguousarray(quantiles).ravel(), cdf.ravel(), rest_cdf


def _get_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    global _tables
    with _lock:
        if _tables is None:
            _tables = _build()
        return _tables


def poisson_table_draw(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson draws (float32, 1-D) for a 1-D float32 array of means in [0, TABLE_MAX_MEAN)."""
    quantiles, cdf, rest_cdf = _get_tables()
    scaled = np.multiply(lam, np.float32(_MEAN_STEPS))          # exact: a power of two
    row = scaled.astype(np.int32)                               # floor (means >= 0)
    u = rng.random(lam.shape, dtype=np.float32)
    cell = row * _U_STEPS
    cell += (u * np.float32(_U_STEPS)).astype(np.int32)
    entry = quantiles.take(cell)
    open_ = np.flatnonzero(entry >= _OPEN_BIT)
    entry &= _OPEN_BIT - 1
    k = entry.astype(np.float32)
    if open_.size:                                              # the quantile steps inside the cell
        low = entry[open_].astype(np.int64)
        high = np.where(cell[open_] % _U_STEPS == _U_STEPS - 1, _MAX_K,
                        quantiles.take(cell[open_] + 1, mode="clip") & (_OPEN_BIT - 1)).astype(np.int64)
        base = row[open_].astype(np.int64) * (_MAX_K + 1)
        k[open_] = _first_at_or_above(low, high, lambda sel, kk: cdf[base[sel] + kk], u[open_].astype(np.float64))
    # the rest, lam - lam_j: a Poisson(1/64) count, nonzero at the successes of Bernoulli trials
    counted = _bernoulli_successes(lam.size, -np.expm1(-1.0 / _MEAN_STEPS), rng)
    if counted.size:
        count = 1 + np.searchsorted(rest_cdf, rng.random(counted.size), side="left")
        keep = scaled[counted] - row[counted]                   # delta * 64, in [0, 1)
        k[counted] += rng.binomial(count, keep.astype(np.float64))
    return k


def _bernoulli_successes(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Indices in [0, n) of the successes of n Bernoulli(p) trials, from geometric gaps."""
    expected = n * p
    parts, last, total = [], -1, 0
    while True:                       # rounds of geometric gaps until they pass n (bounded: each adds > 0)
        gaps = rng.geometric(p, max(16, int(expected - total + 6 * np.sqrt(expected) + 16)))
        positions = last + np.cumsum(gaps)
        inside = positions[positions < n]
        parts.append(inside)
        total += inside.size
        if inside.size < positions.size:
            return np.concatenate(parts)
        last = int(positions[-1])


def _first_at_or_above(start: np.ndarray, stop: np.ndarray, cdf_at, u: np.ndarray) -> np.ndarray:
    """For each pixel the least k in [start, stop] with u <= cdf_at(pixels, k); stop is known to qualify."""
    k = start.copy()
    sel = np.arange(k.size)
    while sel.size:
        more = k[sel] < stop[sel]
        sel = sel[more]
        more = u[sel] > cdf_at(sel, k[sel])
        sel = sel[more]
        k[sel] += 1
    return k
