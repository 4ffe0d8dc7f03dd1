"""The twin's image sensor: photons -> electrons (QE, shot noise, full well) -> counts (gain, read noise, offset, ADC)."""

from __future__ import annotations

import numpy as np

from .truth import SensorTruth

__all__ = ["PLANCK_J_S", "LIGHT_M_S", "photon_energy_j", "expose"]

PLANCK_J_S = 6.62607015e-34
LIGHT_M_S = 299_792_458.0

# Below this mean (electrons) shot noise is drawn exactly from a Poisson law; above it the
# normal approximation is used (4x faster, indistinguishable there; see performance.md).
POISSON_EXACT_BELOW_E = 50.0


def photon_energy_j(wavelength_m: float) -> float:
    return PLANCK_J_S * LIGHT_M_S / wavelength_m


def expose(power_w: np.ndarray, exposure_s: float, wavelength_m: float, sensor: SensorTruth,
           rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One frame of counts (uint16) and the number of saturated pixels.

    ``power_w`` is the optical power on each pixel during the exposure. The full well
    clips photo-electrons plus read noise together (read noise is a few electrons against a
    well of thousands, so the difference is below one count).
    """
    mean_e = power_w * np.float32(sensor.qe * exposure_s / photon_energy_j(wavelength_m))
    read_var = np.float32(sensor.read_noise_e**2)
    z = rng.standard_normal(mean_e.shape, dtype=np.float32)
    # bright pixels: shot and read noise in one normal draw
    electrons = mean_e + np.sqrt(mean_e + read_var) * z
    low = mean_e < POISSON_EXACT_BELOW_E
    if low.any():
        # dim pixels: exact Poisson shot noise, plus read noise from the same (independent) normals
        electrons[low] = rng.poisson(mean_e[low]).astype(np.float32) + np.float32(sensor.read_noise_e) * z[low]
    saturated_well = electrons >= sensor.full_well_e
    np.clip(electrons, None, sensor.full_well_e, out=electrons)
    counts = electrons * np.float32(sensor.gain_dn_per_e) + np.float32(sensor.dark_offset_dn)
    max_dn = 2 ** int(sensor.bitdepth) - 1
    np.rint(counts, out=counts)
    np.clip(counts, 0, max_dn, out=counts)
    frame = counts.astype(np.uint16)
    saturated = int(np.count_nonzero(saturated_well | (frame >= max_dn)))
    return frame, saturated
