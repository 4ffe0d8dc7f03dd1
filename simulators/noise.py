"""The twin's image sensor: photons -> electrons (QE, shot noise, full well) -> counts (gain, read noise, offset, ADC)."""

from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from optgen.simulators.truth import SensorDefects, SensorTruth

__all__ = ["PLANCK_J_S", "LIGHT_M_S", "photon_energy_j", "poisson_small", "expose"]

PLANCK_J_S = 6.62607015e-34
LIGHT_M_S = 299_792_458.0

# Below this mean (electrons) shot noise is drawn exactly from a Poisson law; above it the
# normal approximation is used (4x faster, indistinguishable there; see performance.md).
POISSON_EXACT_BELOW_E = 50.0


def photon_energy_j(wavelength_m: float) -> float:
    return PLANCK_J_S * LIGHT_M_S / wavelength_m


# Below this mean the inverse transform is used, above it numpy's sampler (see poisson_small).
INVERSE_BELOW_E = 1.0


def poisson_small(mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Poisson draws (float32) for small means (below ~50).

    numpy's ``Generator.poisson`` costs ~25 ns a draw whatever the mean. Pixels below
    ``INVERSE_BELOW_E`` electrons (most of a sensor outside the lit window) are drawn by inverse
    transform instead: one uniform and one exponential per pixel, then a short search only for
    the few pixels whose draw exceeds zero (2-3x faster on a mostly dark calibration frame).
    Above it the search would take about ``mean`` passes over the pixels, so numpy draws them
    (a run frame with many pixels at 1-50 electrons: 84 -> 40 ms per million pixels). Where most
    pixels are that bright, numpy draws them all (the split costs more than it saves there).
    """
    lam = np.ravel(mean).astype(np.float32, copy=False)
    brighter = np.flatnonzero(lam >= INVERSE_BELOW_E)
    if brighter.size > lam.size // 2:
        # mostly lit (a run frame): numpy's sampler on every pixel, without the split
        return rng.poisson(lam).astype(np.float32).reshape(np.shape(mean))
    if brighter.size:
        bright_lam = lam[brighter]
        lam = lam.copy()
        lam[brighter] = 0.0                # drawn below; the search passes them over at once
        k = _poisson_inverse(lam, rng)
        k[brighter] = rng.poisson(bright_lam)
    else:
        k = _poisson_inverse(lam, rng)
    return k.reshape(np.shape(mean))


def _poisson_inverse(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson draws (float32) for a 1-D array of small means, by inverse transform."""
    u = rng.random(lam.shape, dtype=np.float32)
    p0 = np.exp(-lam)
    k = np.zeros(lam.shape, dtype=np.float32)
    idx = np.flatnonzero(u > p0)
    cdf = p0[idx].astype(np.float64)
    term, u_i, lam_i = cdf.copy(), u[idx].astype(np.float64), lam[idx].astype(np.float64)
    n = 0
    while idx.size:
        n += 1
        k[idx] += 1.0
        term *= lam_i / n
        cdf += term
        more = u_i > cdf
        if n > 1000:                       # float rounding left the cdf a hair below u: stop
            break
        idx, cdf, term, u_i, lam_i = idx[more], cdf[more], term[more], u_i[more], lam_i[more]
    return k


def expose(power_w: np.ndarray, exposure_s: float, wavelength_m: float, sensor: SensorTruth,
           rng: np.random.Generator, defects: SensorDefects | None = None) -> tuple[np.ndarray, int]:
    """One frame of counts (uint16) and the number of saturated pixels.

    ``power_w`` is the optical power on each pixel during the exposure. The full well
    clips photo-electrons plus read noise together (read noise is a few electrons against a
    well of thousands, so the difference is below one count). ``defects`` (the window's): stray
    light, gain and offset per pixel, hot pixels' dark current.

    A large frame is drawn in bands of rows on the sensor's threads (numpy's draws and array
    passes release the GIL), each band from its own generator spawned from ``rng``: the same
    ``rng`` gives the same frame, whatever the machine.
    """
    power_w = np.asarray(power_w)
    bands = _band_count(power_w)
    if bands == 1:
        return _expose_band(power_w, exposure_s, wavelength_m, sensor, rng, defects)
    edges = np.linspace(0, power_w.shape[0], bands + 1).astype(int)
    jobs = [(slice(lo, hi), generator) for lo, hi, generator in zip(edges[:-1], edges[1:], rng.spawn(bands))]
    pool = _sensor_pool()
    futures = [pool.submit(_expose_band, power_w[rows], exposure_s, wavelength_m, sensor, generator,
                           _defects_rows(defects, rows)) for rows, generator in jobs[1:]]
    first = _expose_band(power_w[jobs[0][0]], exposure_s, wavelength_m, sensor, jobs[0][1],
                         _defects_rows(defects, jobs[0][0]))
    parts = [first] + [future.result() for future in futures]
    return np.concatenate([frame for frame, _ in parts]), sum(saturated for _, saturated in parts)


# Frames of more pixels than this are drawn in bands on threads (one band per core, at most 4).
BAND_PIXELS = 128 * 1024
_SENSOR_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else (os.cpu_count() or 1)))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _band_count(power_w: np.ndarray) -> int:
    if power_w.ndim != 2 or power_w.size < 2 * BAND_PIXELS:
        return 1
    return max(1, min(_SENSOR_THREADS, power_w.size // BAND_PIXELS, power_w.shape[0]))


def _sensor_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_SENSOR_THREADS - 1, thread_name_prefix="optgen-sensor")
        return _pool


def _defects_rows(defects: SensorDefects | None, rows: slice) -> SensorDefects | None:
    """The defects of a band of rows (each map sliced, the stray light as it is)."""
    if defects is None:
        return None
    cut = {name: None if value is None else value[rows]
           for name, value in (("gain", defects.gain), ("offset_dn", defects.offset_dn),
                               ("dark_e_per_s", defects.dark_e_per_s))}
    return dataclasses.replace(defects, **cut)


def _expose_band(power_w: np.ndarray, exposure_s: float, wavelength_m: float, sensor: SensorTruth,
                 rng: np.random.Generator, defects: SensorDefects | None) -> tuple[np.ndarray, int]:
    """``expose`` on one band of rows, on the calling thread."""
    if defects is not None and defects.background_w:
        power_w = power_w + np.float32(defects.background_w)
    mean_e = np.multiply(power_w, np.float32(sensor.qe * exposure_s / photon_energy_j(wavelength_m)),
                         dtype=np.float32)
    if defects is not None:
        if defects.gain is not None:
            mean_e *= defects.gain
        if defects.dark_e_per_s is not None:
            mean_e += defects.dark_e_per_s * np.float32(exposure_s)
    read_e = np.float32(sensor.read_noise_e)
    z = rng.standard_normal(mean_e.shape, dtype=np.float32)
    low = mean_e < POISSON_EXACT_BELOW_E
    if low.all():
        # all dim (a calibration spot or a dark frame): exact Poisson shot noise + read noise
        electrons = poisson_small(mean_e, rng)
        electrons += read_e * z
    else:
        # dim pixels: exact Poisson shot noise plus read noise; bright pixels: shot and read noise in
        # one normal draw (the same independent normals serve either, one per pixel)
        shot = poisson_small(np.where(low, mean_e, np.float32(0)), rng)
        shot += read_e * z
        electrons = mean_e + read_e * read_e
        np.sqrt(electrons, out=electrons)
        electrons *= z
        electrons += mean_e
        np.copyto(electrons, shot, where=low)
    saturated_well = electrons >= sensor.full_well_e
    np.clip(electrons, None, sensor.full_well_e, out=electrons)
    counts = electrons * np.float32(sensor.gain_dn_per_e) + np.float32(sensor.dark_offset_dn)
    if defects is not None and defects.offset_dn is not None:
        counts += defects.offset_dn
    max_dn = 2 ** int(sensor.bitdepth) - 1
    np.rint(counts, out=counts)
    np.clip(counts, 0, max_dn, out=counts)
    frame = counts.astype(np.uint16)
    saturated = int(np.count_nonzero(saturated_well | (frame >= max_dn)))
    return frame, saturated
