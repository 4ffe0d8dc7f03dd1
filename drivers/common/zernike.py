"""Zernike polynomials in Noll's order, normalised to unit RMS over the unit disk.

A wavefront is ``sum_j c_j Z_j(rho, theta)`` with ``rho = r / radius``: coefficients in waves (or
radians) are then the RMS of each mode over a pupil of that radius. Noll's order starts at j = 1
(piston); j = 2, 3 are tilts, 4 defocus, 5-6 astigmatism, 7-8 coma, 11 spherical. Outside the
pupil the polynomials go on smoothly (an SLM panel's shape does not stop at a circle).
"""

from __future__ import annotations

from math import factorial

import numpy as np

from optgen.drivers.common.patterns import grid_coordinates

__all__ = ["noll_to_nm", "wavefront", "zernike"]


def noll_to_nm(j: int) -> tuple[int, int]:
    """(n, m) of Noll index ``j`` >= 1 (m < 0: a sine term)."""
    if j < 1:
        raise ValueError(f"Noll index {j}: expected >= 1")
    n, j1 = 0, j - 1
    while j1 > n:
        n += 1
        j1 -= n
    m = (-1) ** j * ((n % 2) + 2 * int((j1 + ((n + 1) % 2)) / 2.0))
    return n, m


def _radial(n: int, m: int, rho: np.ndarray) -> np.ndarray:
    """R_n^m(rho) = rho^|m| P(rho^2), P evaluated by Horner's rule (no powers of an array)."""
    m = abs(m)
    coefficients = [(-1) ** k * factorial(n - k) / (factorial(k) * factorial((n + m) // 2 - k) * factorial((n - m) // 2 - k))
                    for k in range((n - m) // 2 + 1)]          # of rho^(n - 2k): the highest power first
    rho2 = rho * rho
    out = np.full_like(rho, coefficients[0])
    for c in coefficients[1:]:
        out *= rho2
        out += c
    for _ in range(m):
        out *= rho
    return out


def zernike(j: int, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Z_j (Noll) at polar coordinates ``rho`` (in pupil radii) and ``theta``."""
    n, m = noll_to_nm(j)
    radial = _radial(n, m, np.asarray(rho, dtype=np.float64))
    if m == 0:
        return np.sqrt(n + 1) * radial
    angular = np.cos(m * theta) if m > 0 else np.sin(-m * theta)
    return np.sqrt(2 * (n + 1)) * radial * angular


def wavefront(coefficients, shape: tuple[int, int], pitch_m: float, radius_m: float,
              centre_m: tuple[float, float] = (0.0, 0.0), clamp_m: float | None = None) -> np.ndarray:
    """``sum_j c_j Z_j`` on a pixel grid (coefficients[0] is j = 1), in the coefficients' unit.

    ``centre_m`` (x, y) from the grid's centre, ``radius_m`` the pupil radius the modes are
    normalised on. ``clamp_m``: outside the square of that half side the value at its edge (the
    polynomials are not extrapolated where nothing was measured)."""
    y, x = grid_coordinates(shape, pitch_m)
    x, y = x - centre_m[0], y - centre_m[1]
    if clamp_m is not None:
        x, y = np.clip(x, -clamp_m, clamp_m), np.clip(y, -clamp_m, clamp_m)
    r = np.hypot(x, y)
    rho = r / radius_m
    with np.errstate(invalid="ignore", divide="ignore"):
        cos1 = np.where(r > 0, x / r, 1.0)                # cos(theta), sin(theta) without trigonometry
        sin1 = np.where(r > 0, y / r, 0.0)                # (theta = 0 at the centre, as arctan2 gives)
    harmonics = _Harmonics(cos1, sin1)
    out = np.zeros(shape, dtype=np.float64)
    for j, c in enumerate(coefficients, start=1):
        if not c:
            continue
        n, m = noll_to_nm(j)
        term = _radial(n, m, rho)
        if m == 0:
            term *= c * np.sqrt(n + 1)
        else:
            term *= harmonics.cos(m) if m > 0 else harmonics.sin(-m)
            term *= c * np.sqrt(2 * (n + 1))
        out += term
    return out


class _Harmonics:
    """cos(m theta) and sin(m theta) from cos(theta) and sin(theta) by the Chebyshev recurrence
    (f_{m+1} = 2 cos(theta) f_m - f_{m-1}): products only, each order computed once."""

    def __init__(self, cos1: np.ndarray, sin1: np.ndarray):
        self._cos = [np.ones_like(cos1), cos1]
        self._sin = [np.zeros_like(sin1), sin1]

    def _extend(self, m: int) -> None:
        two_cos = 2.0 * self._cos[1]
        while len(self._cos) <= m:
            self._cos.append(two_cos * self._cos[-1] - self._cos[-2])
            self._sin.append(two_cos * self._sin[-1] - self._sin[-2])

    def cos(self, m: int) -> np.ndarray:
        self._extend(m)
        return self._cos[m]

    def sin(self, m: int) -> np.ndarray:
        self._extend(m)
        return self._sin[m]
