"""What the phase-diversity fit reads of a beam in pictures it did not make: a 3 mm Gaussian, 40 / -25 um
off centre, clipped by the 2.56 mm seed square, through the four diversity lenses (fringing 0.6 px),
propagated on the SLM's own 8 um pixels by the twin's band-limited angular-spectrum code, sampled at
the fit's points (and, for comparison, box-averaged over a cell first, as frames were before
session 23). Prints the waist error, the centre error, the unmodulated fraction read where none is
planted and the misfit (docs/performance.md, "The beam's waist read 5 % wide").

Usage: python benchmarks/wavefront_bias.py
"""

from __future__ import annotations

import cv2
import numpy as np

from optgen.calibration.wavefront import DIVERSITY_WAVES, FLYBACK_PX, NOLL
from optgen.calibration.wavefront_fit import PupilGrid, fit_pupil, pattern_terms
from optgen.drivers.common.patterns import grid_coordinates, lens_phase
from optgen.simulators.optics import gaussian_blur, propagate

PITCH, WL, DISTANCE, HALF, WAIST, CENTRE, SIGMA, N = 8e-6, 520e-9, 0.2165, 1.28e-3, 3.0e-3, (40e-6, -25e-6), 0.6, 800
SLM = (1080, 1920)


def pictures(grid: PupilGrid, patterns, box: bool) -> list[np.ndarray]:
    y, x = grid_coordinates((N, N), PITCH)
    amplitude = np.exp(-((x - CENTRE[0]) ** 2 + (y - CENTRE[1]) ** 2) / WAIST**2) * (np.abs(x) <= HALF) * (np.abs(y) <= HALF)
    step = grid.du_m / PITCH
    offset = (N - 1) / 2.0 - grid.n / 2.0 * step
    warp = np.array([[step, 0.0, offset], [0.0, step, offset]])
    out = []
    for pattern in patterns:
        r0, c0 = (SLM[0] - N) // 2, (SLM[1] - N) // 2
        shown = gaussian_blur(np.mod(pattern[r0:r0 + N, c0:c0 + N], 2 * np.pi).astype(np.float32), SIGMA)
        light = (np.abs(propagate((amplitude * np.exp(1j * shown)).astype(np.complex64), WL, DISTANCE, PITCH)) ** 2
                 ).astype(np.float32)
        if box:
            cells = max(1, int(round(step)))
            light = cv2.blur(light, (cells, cells))
        out.append(cv2.warpAffine(light, warp, (grid.n, grid.n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
                                  ).astype(np.float64))
    return out


def main() -> None:
    grid = PupilGrid.for_path(PITCH, WL, DISTANCE, 2 * HALF, 2 * HALF / np.sqrt(2), NOLL, SLM)
    patterns = [lens_phase(SLM, PITCH, WL, 1 / (1 / DISTANCE + 2 * WL * d / HALF**2), flyback_px=FLYBACK_PX)
                for d in DIVERSITY_WAVES]
    terms = [pattern_terms(p, grid, SIGMA) for p in patterns]
    print(f"SLM1's fit grid: {grid.n} cells of {grid.block} x {grid.block} pixels")
    for label, box in (("frames sampled at the fit's points", False), ("frames box-averaged over a cell", True)):
        taken = pictures(grid, patterns, box)
        fit = fit_pupil(grid, terms, taken, [np.ones_like(p) for p in taken], aperture_half_m=HALF)
        cx, cy = (1e6 * (a - b) for a, b in zip(fit.beam_centre_m, CENTRE))
        print(f"{label}: waist {fit.beam_waist_m / WAIST - 1:+.1%}, centre ({cx:+.1f}, {cy:+.1f}) um, "
              f"unmodulated {fit.unmodulated_fraction:.1%} (none planted), misfit {fit.residual:.4f}", flush=True)


if __name__ == "__main__":
    main()
