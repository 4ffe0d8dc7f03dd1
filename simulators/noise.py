"""The twin's image sensor: photons -> electrons (QE, shot noise, full well) -> counts (gain, read noise, offset, ADC)."""

from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from optgen.simulators.band_generators import BandGenerators
from optgen.simulators.poisson_table import TABLE_MAX_MEAN, poisson_table_draw
from optgen.simulators.truth import SensorDefects, SensorTruth

__all__ = ["PLANCK_J_S", "LIGHT_M_S", "photon_energy_j", "poisson_small", "expose"]

PLANCK_J_S = 6.62607015e-34
LIGHT_M_S = 299_792_458.0

# Below this mean (electrons) shot noise is drawn exactly from a Poisson law; above it the
# normal approximation is used (4x faster, indistinguishable there; see performance.md).
POISSON_EXACT_BELOW_E = 50.0


def photon_energy_j(wavelength_m: float) -> float:
    return PLANCK_J_S * LIGHT_M_S / wavelength_m


def poisson_small(mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Poisson draws (float32, the shape of ``mean``) for small means (below ~50).

    numpy's ``Generator.poisson`` costs 25-60 ns a draw; below ``TABLE_MAX_MEAN`` the draws are
    read off a quantile table instead (``simulators/poisson_table.py``: one uniform and one table
    read a pixel, an exact settling for the few the table leaves open, and the mean's rest off the
    table's grid added by thinning). Means at or above it, if any, go to numpy's sampler. A
    negative or non-finite mean is a ValueError.
    """
    lam = np.ravel(mean).astype(np.float32, copy=False)
    if lam.size == 0:
        return np.zeros(np.shape(mean), dtype=np.float32)
    lowest, highest = lam.min(), lam.max()
    if not lowest >= 0 or not np.isfinite(highest):
        raise ValueError("poisson_small: expected finite means >= 0 electrons")
    if highest >= TABLE_MAX_MEAN:                          # rare: the callers split bright pixels off
        bright = np.flatnonzero(lam >= TABLE_MAX_MEAN)
        bright_lam = lam[bright]
        lam = lam.copy()
        lam[bright] = 0.0
        k = poisson_table_draw(lam, rng)
        k[bright] = rng.poisson(bright_lam)
    else:
        k = poisson_table_draw(lam, rng)
    return k.reshape(np.shape(mean))


def expose(power_w: np.ndarray, exposure_s: float, wavelength_m: float, sensor: SensorTruth,
           rng: np.random.Generator, defects: SensorDefects | None = None,
           scale: float = 1.0) -> tuple[np.ndarray, int]:
    """One frame of counts (uint16) and the number of saturated pixels.

    ``power_w * scale`` is the optical power on each pixel during the exposure (a picture for 1 W
    of beam and the beam's power: one pass over the pixels fewer). The full well
    clips photo-electrons plus read noise together (read noise is a few electrons against a
    well of thousands, so the difference is below one count). ``defects`` (the window's): stray
    light, gain and offset per pixel, hot pixels' dark current.

    A large frame is drawn in bands of rows on the sensor's threads (numpy's draws and array
    passes release the GIL), each band from its own generator spawned from ``rng``: the same
    ``rng`` gives the same frames on machines with the same number of cores. In a stream of
    frames of one shape each band's normals are drawn ahead (``band_generators.py``).
    """
    power_w = np.asarray(power_w)
    bands = _band_count(power_w)
    if bands == 1:
        return _expose_band(power_w, exposure_s, wavelength_m, sensor, rng, defects, scale=scale)
    edges = np.linspace(0, power_w.shape[0], bands + 1).astype(int)
    rows = [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
    shapes = tuple((hi - lo, power_w.shape[1]) for lo, hi in zip(edges[:-1], edges[1:]))
    generators, normals, steady = _BAND_GENERATORS.take(rng, shapes, _SENSOR_THREADS)
    pool = _sensor_pool()
    futures = [pool.submit(_expose_band, power_w[rows[i]], exposure_s, wavelength_m, sensor, generators[i],
                           _defects_rows(defects, rows[i]), normals[i], scale) for i in range(1, bands)]
    first = _expose_band(power_w[rows[0]], exposure_s, wavelength_m, sensor, generators[0],
                         _defects_rows(defects, rows[0]), normals[0], scale)
    parts = [first] + [future.result() for future in futures]
    if steady:
        _BAND_GENERATORS.draw_ahead(rng, shapes, _SENSOR_THREADS, pool)
    return np.concatenate([frame for frame, _ in parts]), sum(saturated for _, saturated in parts)


# Frames of more pixels than this are drawn in bands on threads (one band per core, at most 4).
BAND_PIXELS = 128 * 1024
_SENSOR_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else (os.cpu_count() or 1)))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_BAND_GENERATORS = BandGenerators()


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
                 rng: np.random.Generator, defects: SensorDefects | None,
                 normals: Future | None = None, scale: float = 1.0) -> tuple[np.ndarray, int]:
    """``expose`` on one band of rows, on the calling thread; ``normals``: its read-noise normals,
    drawn ahead from ``rng`` (else drawn here, first)."""
    e_per_j = sensor.qe * exposure_s / photon_energy_j(wavelength_m)
    mean_e = np.multiply(power_w, np.float32(scale * e_per_j), dtype=np.float32)
    if defects is not None and defects.background_w:
        mean_e += np.float32(defects.background_w * e_per_j)
    if defects is not None:
        if defects.gain is not None:
            mean_e *= defects.gain
        if defects.dark_e_per_s is not None:
            mean_e += defects.dark_e_per_s * np.float32(exposure_s)
    read_e = np.float32(sensor.read_noise_e)
    z = rng.standard_normal(mean_e.shape, dtype=np.float32) if normals is None else normals.result()
    low = mean_e < POISSON_EXACT_BELOW_E
    if low.all():
        # all dim (a calibration spot or a dark frame): exact Poisson shot noise + read noise
        electrons = poisson_small(mean_e, rng)
        z *= read_e
        electrons += z
    else:
        # bright pixels: shot and read noise in one normal draw; the dim ones (gathered) then get
        # exact Poisson shot noise plus read noise (the same independent normals serve either)
        electrons = mean_e + read_e * read_e
        np.sqrt(electrons, out=electrons)
        electrons *= z
        electrons += mean_e
        dim = np.flatnonzero(low)
        if dim.size:
            shot = poisson_small(mean_e.ravel().take(dim), rng)
            shot += read_e * z.ravel().take(dim)
            electrons.ravel()[dim] = shot
    saturated_well = electrons >= sensor.full_well_e
    np.minimum(electrons, np.float32(sensor.full_well_e), out=electrons)
    counts = electrons
    counts *= np.float32(sensor.gain_dn_per_e)
    counts += np.float32(sensor.dark_offset_dn)
    if defects is not None and defects.offset_dn is not None:
        counts += defects.offset_dn
    max_dn = 2 ** int(sensor.bitdepth) - 1
    np.rint(counts, out=counts)
    np.clip(counts, 0, max_dn, out=counts)
    frame = counts.astype(np.uint16)
    saturated = int(np.count_nonzero(saturated_well | (frame >= max_dn)))
    return frame, saturated
