"""The response measurement's forward model and its fit (steps 3 and 6 of
:mod:`optgen.calibration.response`): the zero-order fraction of a blurred binary grating, and one
joint least-squares fit of all sweeps with the response as a monotone I-spline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import interpolate, optimize


def _blurred_stripes(period_px: int, sigma_px: float) -> np.ndarray:
    """One period of the test-stripe indicator (test gray on the second half), blurred periodically by a
    Gaussian of ``sigma_px``."""
    p = int(period_px)
    ind = np.zeros(p)
    ind[p // 2:] = 1.0
    out = ind
    if sigma_px > 1e-6:
        radius = max(3, int(np.ceil(5.0 * sigma_px)))
        taps = np.arange(-radius, radius + 1)
        w = np.exp(-0.5 * (taps / sigma_px) ** 2)
        w /= w.sum()
        out = ind[(np.arange(p)[:, None] - taps[None, :]) % p] @ w       # periodic convolution
    return out


def _order_powers(delta: np.ndarray, period_px: int, sigma_px: float,
                  shift_px: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(|E0|^2, |E+1|^2 + |E-1|^2) of a binary phase grating with step ``delta`` (radians), its
    transmission resampled ``shift_px`` (0..1) of a pixel off the SLM's own grid (linear interpolation
    of the field: an SLM slightly shifted or rotated in the beam's frame, as the twin renders it)."""
    s = _blurred_stripes(period_px, sigma_px)
    field_ = np.exp(1j * np.asarray(delta, dtype=float)[..., None] * s)
    if shift_px > 0:
        field_ = (1.0 - shift_px) * field_ + shift_px * np.roll(field_, 1, axis=-1)
    spec = np.fft.fft(field_, axis=-1) / s.size
    p = np.abs(spec) ** 2
    return p[..., 0], p[..., 1] + p[..., -1]


def grating_ratio_model(delta, period_px: int, sigma_px: float, order_balance: float = 1.0,
                        shift_px: float = 0.0, leak: float = 0.0) -> np.ndarray:
    """f = (I0 + a I1) / (I0 + (k + a) I1), I1 = I+1 + I-1, of a binary phase grating with crosstalk blur
    ``sigma_px``; a (``leak``) is the part of the +-1 orders' power seen in the zero-order window."""
    p0, p1 = _order_powers(delta, period_px, sigma_px, shift_px)
    return (p0 + leak * p1) / (p0 + (order_balance + leak) * p1)


def _ispline_basis(n_levels: int, n_intervals: int) -> np.ndarray:
    """(n_levels, K) integrated quadratic B-splines on uniform knots: non-negative weights give an
    increasing cubic curve with value 0 at gray 0."""
    degree = 2
    inner = np.linspace(0.0, n_levels - 1.0, n_intervals + 1)
    knots = np.concatenate([[inner[0]] * degree, inner, [inner[-1]] * degree])
    n_basis = knots.size - degree - 1
    g = np.arange(n_levels, dtype=float)
    basis = np.empty((n_levels, n_basis))
    for k in range(n_basis):
        c = np.zeros(n_basis)
        c[k] = 1.0
        anti = interpolate.BSpline(knots, c, degree, extrapolate=False).antiderivative()
        basis[:, k] = anti(g) - anti(0.0)
    return np.nan_to_num(basis)


@dataclass
class Sweep:
    """One sweep of test grays against one reference gray, at one grating period."""

    reference: int
    period_px: int
    grays: np.ndarray      # test gray levels
    ratios: np.ndarray     # measured f = I0 / (I0 + I+1 + I-1), one per test gray


@dataclass
class _Fit:
    phase: np.ndarray          # all gray levels
    sigma: float
    shift: float
    balance: dict              # period -> k
    leak: dict                 # period -> a
    residual_rms: float
    point_grays: np.ndarray
    point_phase: np.ndarray    # per-gray phases (each gray fitted alone)


def fit_response(sweeps: list[Sweep], n_levels: int, n_intervals: int = 12, fit_leak: bool = True) -> _Fit:
    """Fit phi (monotone, phi(0)=0), the crosstalk sigma, the sub-pixel resampling and one k per period
    to all sweeps jointly. The first two sweeps must share their test grays and have references near
    phi = 0 and phi = pi/2 (they give the starting curve)."""
    basis_all = _ispline_basis(n_levels, n_intervals)
    periods = sorted({sw.period_px for sw in sweeps})
    n_a = basis_all.shape[1]

    # start: unwrapped atan2 of the first two normalised sweeps (~cos Delta, ~sin Delta)
    def normalise(f):
        lo, hi = np.percentile(f, 2), np.percentile(f, 98)
        return np.clip(2.0 * (f - lo) / max(hi - lo, 1e-9) - 1.0, -1.0, 1.0)

    s0, s1 = sweeps[0], sweeps[1]
    delta0 = np.unwrap(np.arctan2(normalise(s1.ratios), normalise(s0.ratios)))
    delta0 = np.maximum.accumulate(np.maximum(delta0 - delta0[0], 0.0))
    a0, _ = optimize.nnls(basis_all[np.asarray(s0.grays, dtype=int)], delta0)
    a0 = np.maximum(a0, 1e-3)

    rows = [(basis_all[np.asarray(sw.grays, dtype=int)], basis_all[int(sw.reference)],
             np.asarray(sw.ratios, dtype=float), sw.period_px, periods.index(sw.period_px)) for sw in sweeps]

    def residuals(x):
        a, sigma, shift, ks, leaks = x[:n_a], x[n_a], x[n_a + 1], x[n_a + 2:n_a + 2 + n_p], x[n_a + 2 + n_p:]
        return np.concatenate([f - grating_ratio_model(b @ a - b_ref @ a, period, sigma, ks[ip], shift,
                                                       leaks[ip] if fit_leak else 0.0)
                               for b, b_ref, f, period, ip in rows])

    n_p = len(periods)
    leak_bound = 0.05 if fit_leak else 1e-12
    lower = np.concatenate([np.zeros(n_a), [0.0, 0.0], np.full(n_p, 0.2), np.full(n_p, -leak_bound)])
    upper = np.concatenate([np.full(n_a, np.inf), [3.0, 0.5], np.full(n_p, 5.0), np.full(n_p, leak_bound)])
    best = None
    for sigma0, shift0 in ((0.5, 0.05), (1.0, 0.05), (0.5, 0.35)):   # a few starts: each fit is cheap
        x0 = np.concatenate([a0, [sigma0, shift0], np.ones(n_p), np.zeros(n_p)])
        sol = optimize.least_squares(residuals, x0, bounds=(lower, upper), x_scale="jac",
                                     method="trf", max_nfev=400)
        if best is None or sol.cost < best.cost:
            best = sol
    a, sigma, shift = best.x[:n_a], best.x[n_a], best.x[n_a + 1]
    ks, leaks = best.x[n_a + 2:n_a + 2 + n_p], best.x[n_a + 2 + n_p:]
    phase = basis_all @ a
    rms = float(np.sqrt(np.mean(best.fun ** 2)))

    # per-gray phases against the fitted blur and k, near the curve (the PNG's points)
    all_grays = np.unique(np.concatenate([np.asarray(sw.grays, dtype=int) for sw in sweeps]))
    points = phase[all_grays].copy()
    for half_width in (0.6, 0.006):          # 5 mrad steps, then 0.05 mrad steps
        trial = np.linspace(-half_width, half_width, 241)
        cand = points[:, None] + trial[None, :]
        cost = np.zeros_like(cand)
        for sw in sweeps:
            idx = np.searchsorted(all_grays, np.asarray(sw.grays, dtype=int))
            model = grating_ratio_model(cand[idx] - phase[int(sw.reference)], sw.period_px, sigma,
                                        ks[periods.index(sw.period_px)], shift,
                                        leaks[periods.index(sw.period_px)] if fit_leak else 0.0)
            cost[idx] += (np.asarray(sw.ratios)[:, None] - model) ** 2
        points = cand[np.arange(cand.shape[0]), np.argmin(cost, axis=1)]
    return _Fit(phase, float(sigma), float(shift), {p: float(k) for p, k in zip(periods, ks)},
                {p: float(v) for p, v in zip(periods, leaks)}, rms, all_grays, points)


def unmix(p: np.ndarray, leak: float) -> np.ndarray:
    """Undo the spots' tails in each other's windows: the zero order puts ``leak`` of its power into
    the +-1 windows together (measured on the uniform pattern), and each +-1 order ``leak / 2`` of its
    power into the zero-order window (the same spot tail, seen from the other side)."""
    if leak <= 0:
        return p
    out = p.copy()
    side = p[:, 1] + p[:, 2]
    det = 1.0 - leak * leak / 2.0
    zero = (p[:, 0] - leak / 2.0 * side) / det
    sides = (side - leak * p[:, 0]) / det
    out[:, 0] = zero
    scale = np.divide(sides, side, out=np.ones_like(side), where=side != 0)
    out[:, 1] *= scale
    out[:, 2] *= scale
    return out
