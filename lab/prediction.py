"""What the calibrated model of the bench predicts for a seed: the ideal optics plus what calibration measured.

The prediction uses only what a real lab knows: the nominal geometry, ideal phase (the LUT is
assumed right), the decoder centred and unrotated in the beam (the alignment compensates on
SLM2), and the crosstalk blur that the LUT calibration fitted (0 when uncalibrated). Comparing
it with captured, registered frames measures how well the calibrated bench matches its model;
on the twin this is the figure that calibration has to raise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from simulators.optics import grid_coordinates, phase_to_field, propagate

from .bench_file import BenchConfig
from .patterns import embed_centered, seed_to_slm_phase

__all__ = ["predict_images", "pearson_r", "run_agreement"]


def _beam(config: BenchConfig, shape: tuple[int, int], pitch: float) -> np.ndarray:
    g = config.geometry
    aperture = (config.twin.aperture_m if config.twin is not None and config.twin.aperture_m > 0
                else g.seed_superpixels * g.superpixel_px * pitch)
    y, x = grid_coordinates(shape, pitch)
    return ((np.abs(x) <= aperture / 2) & (np.abs(y) <= aperture / 2)).astype(np.float32)


def predict_images(config: BenchConfig, seed_phases: np.ndarray, decoder_phase: np.ndarray,
                   crosstalk_sigma_px: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Noiseless output images (N, output_pixels, output_pixels), arbitrary units, one per seed."""
    g = config.geometry
    pitch = config.encoding_slm.pitch_um * 1e-6
    wavelength = config.wavelength_m
    shape = config.twin.grid_shape if config.twin is not None else (800, 800)
    beam = _beam(config, shape, pitch)
    # the SLM shows phase wrapped into one 2 pi range; crosstalk blurs what it shows
    dec = np.mod(embed_centered(np.asarray(decoder_phase, dtype=np.float32), shape), np.float32(2 * np.pi))
    if crosstalk_sigma_px[1] > 0:
        dec = ndimage.gaussian_filter(dec, crosstalk_sigma_px[1], mode="nearest")
    decoder_field = phase_to_field(dec)
    rows, cols = shape
    w = g.output_window_px
    r0, c0 = (rows - w) // 2, (cols - w) // 2
    pool = w // g.output_pixels
    out = []
    for seed in np.asarray(seed_phases, dtype=np.float32):
        phase = np.mod(seed_to_slm_phase(seed, g.superpixel_px, shape), np.float32(2 * np.pi))
        if crosstalk_sigma_px[0] > 0:
            phase = ndimage.gaussian_filter(phase, crosstalk_sigma_px[0], mode="nearest")
        field = propagate(phase_to_field(phase, beam), wavelength, g.d1_m, pitch)
        field = propagate(field * decoder_field, wavelength, g.d2_m, pitch)
        window = (np.abs(field[r0:r0 + w, c0:c0 + w]) ** 2).astype(np.float64)
        n = w // pool
        out.append(window.reshape(n, pool, n, pool).mean(axis=(1, 3)))
    return np.stack(out)


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def run_agreement(folder, config: BenchConfig, crosstalk_sigma_px: tuple[float, float] = (0.0, 0.0)) -> list[float]:
    """Pearson r, per stored frame of a run folder, between its registered image and the prediction."""
    import h5py
    from pathlib import Path

    with h5py.File(Path(folder) / "run.h5", "r") as f:
        written = f["meta/written"][:]
        images = f["images"][...][written]
        seeds = f["seed/phase"][...][written]
        decoder = f["decoder_phase"][...]
    predicted = predict_images(config, seeds, decoder, crosstalk_sigma_px)
    return [pearson_r(p, c) for p, c in zip(predicted, images)]
