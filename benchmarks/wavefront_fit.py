"""The phase-diversity fit's time on each SLM's grid: today's 5-smooth size against the size the grid
rule gave before (no rounding up), in the same run, on synthetic pictures from known Zernike terms.

SLM1 (d1 + d2 = 216.5 mm, 3 x 3 pixel cells) and SLM2 (d2 = 96.4 mm, 1 x 1 cells) on the published
bench; four diversity lenses of -6, -3, +3, +6 waves, the 14 Zernike terms Noll 2-15, a Gaussian
beam, 3 % unmodulated light.

Usage: python benchmarks/wavefront_fit.py
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from optgen.calibration.wavefront_fit import PupilFit, PupilGrid, fit_pupil, model_pictures, pattern_terms
from optgen.drivers.common.patterns import lens_phase

PITCH, WL, HALF, SLM = 8e-6, 520e-9, 1.28e-3, (1080, 1920)


def fit_time(grid: PupilGrid, distance: float) -> tuple[float, int, float]:
    """(seconds, iterations, largest coefficient error in waves) of one fit on ``grid``."""
    terms = [pattern_terms(lens_phase(SLM, PITCH, WL, 1 / (1 / distance + 2 * WL * d / HALF**2), flyback_px=2.0),
                           grid, 0.6) for d in (-6, -3, 3, 6)]
    rng = np.random.default_rng(3)
    truth = PupilFit(rng.normal(0, 0.05, 14), 0.03, 0.01 - 0.01j, (30e-6, -20e-6), 3e-3, 0.0, 0)
    pictures = [3.0 * p + 0.2 + 0.01 * rng.random(p.shape) for p in
                model_pictures(grid, terms, truth, aperture_half_m=HALF)]
    t0 = time.perf_counter()
    fit = fit_pupil(grid, terms, pictures, [np.ones_like(p) for p in pictures], aperture_half_m=HALF)
    return time.perf_counter() - t0, fit.iterations, float(np.abs(fit.coefficients_waves - truth.coefficients_waves).max())


def main() -> None:
    for name, distance, radius in (("SLM1", 0.2165, 1.81e-3), ("SLM2", 0.0964, 2.0e-3)):
        today = PupilGrid.for_path(PITCH, WL, distance, 2 * HALF, radius, tuple(range(2, 16)), SLM)
        before_n = int(np.ceil(1.6 * 2 * HALF / (today.block * PITCH) / 2.0)) * 2     # the rule without rounding up
        before = dataclasses.replace(today, n=before_n)
        t_before, it_before, err_before = fit_time(before, distance)
        t_today, it_today, err_today = fit_time(today, distance)
        print(f"{name}: {before.n} cells {t_before:.2f} s ({it_before} iterations, error {err_before:.1e} waves); "
              f"{today.n} cells {t_today:.2f} s ({it_today} iterations, error {err_today:.1e} waves); "
              f"ratio {t_before / t_today:.2f}")
    print("\ncommand: python benchmarks/wavefront_fit.py")


if __name__ == "__main__":
    main()
