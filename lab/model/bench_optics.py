"""What calibration measured of one bench, on the training grid: the differentiable model's optics.

The nominal student (:class:`lab.model.student.OpticalStudent`) sees the bench file's distances, a
flat-top beam and flat SLMs. :class:`BenchOptics` adds what the calibrations of a bench measured
(``lab.evaluate.prediction.CalibratedOptics``, the same quantities the prediction of a captured
frame uses): the true d1 and d2, the Gaussian beam on SLM1, SLM2's wavefront (runs leave it
uncorrected by default: the decoder shows on top of it), SLM1's wavefront on the light it leaves
unmodulated (its modulated light is corrected on the SLM: the correction is added to the seed before
the pattern is wrapped, so its wraps cross the superpixels and the fringing smears them too,
``slm1_correction_rad``), and each SLM's unmodulated fraction.
Training a decoder against these is how SLM2's measured wavefront reaches the model (decision
0013). Where runs correct SLM2 too (``correct_decoder_wavefront``), the correction they add to the
decoder before it is wrapped is part of the optics (``slm2_correction_rad``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optgen.drivers.common.patterns import centre_crop, grid_coordinates
from optgen.drivers.common.vendor_correction import added_before_wrap, panel_itself

__all__ = ["BenchOptics", "bench_optics"]


@dataclass(frozen=True)
class BenchOptics:
    """A bench's measured optics on a square training grid (``None``: the nominal value)."""

    d1_m: float | None = None
    d2_m: float | None = None
    beam: np.ndarray | None = None                   # amplitude on SLM1 (complex where it arrives tilted)
    slm1_residual_rad: np.ndarray | None = None      # on SLM1's modulated light: what its correction leaves
    slm1_panel_rad: np.ndarray | None = None         # SLM1's wavefront, on the light it leaves unmodulated
    slm2_panel_rad: np.ndarray | None = None         # SLM2's wavefront (in its own frame, centred)
    unmodulated: tuple[float, float] = (0.0, 0.0)    # SLM1's, SLM2's unmodulated fraction
    slm2_correction_rad: np.ndarray | None = None    # what runs add to SLM2's phase before wrapping it
    slm1_correction_rad: np.ndarray | None = None    # what runs add to SLM1's phase before wrapping it

    def __post_init__(self) -> None:
        u1, u2 = self.unmodulated
        if not (0.0 <= u1 < 1.0 and 0.0 <= u2 < 1.0):
            raise ValueError(f"unmodulated fractions {self.unmodulated}: expected each within 0..1")
        for name in ("d1_m", "d2_m"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 10.0:
                raise ValueError(f"{name} = {value}: expected a distance within 0..10 m")

    def check_grid(self, grid_px: int) -> None:
        """ValueError unless every map is ``grid_px`` x ``grid_px``."""
        for name in ("beam", "slm1_residual_rad", "slm1_panel_rad", "slm2_panel_rad", "slm2_correction_rad",
                     "slm1_correction_rad"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != (grid_px, grid_px):
                raise ValueError(f"{name}: shape {np.shape(value)}; the training grid is {grid_px} x {grid_px}")


def bench_optics(optics, config, grid_px: int) -> BenchOptics:
    """:class:`BenchOptics` on a ``grid_px`` training grid from what a bench's calibrations measured
    (``lab.evaluate.prediction.CalibratedOptics`` of ``config``, its bench). The beam is the
    measured Gaussian clipped by the seed aperture, normalised to unit power."""
    pitch = config.encoding_slm.pitch_um * 1e-6
    shape = (grid_px, grid_px)
    beam = None
    if optics.beam_waist_m > 0:
        g = config.geometry
        aperture = (config.twin.aperture_m if config.twin is not None and config.twin.aperture_m > 0
                    else g.seed_superpixels * g.superpixel_px * pitch)
        y, x = grid_coordinates(shape, pitch)
        cx, cy = optics.beam_centre_m
        amplitude = ((np.abs(x) <= aperture / 2) & (np.abs(y) <= aperture / 2)) \
            * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / optics.beam_waist_m**2)
        beam = (amplitude / np.sqrt(np.sum(amplitude**2) * pitch**2)).astype(np.float32)

    def measured(cal) -> np.ndarray | None:
        if cal is None:
            return None
        return (2 * np.pi * cal.wavefront_waves(shape, pitch, corrected_only=True)).astype(np.float32)

    vendor1, vendor2 = (centre_crop(v, shape) for v in (optics.encoder_vendor_rad, optics.decoder_vendor_rad))
    measured2, measured1 = measured(optics.decoder_wavefront), measured(optics.encoder_wavefront)
    return BenchOptics(d1_m=optics.d1_m, d2_m=optics.d2_m, beam=beam, slm1_panel_rad=panel_itself(measured1, vendor1),
                       slm2_panel_rad=panel_itself(measured2, vendor2), unmodulated=tuple(optics.unmodulated),
                       slm2_correction_rad=added_before_wrap(vendor2, measured2, optics.decoder_corrected),
                       slm1_correction_rad=added_before_wrap(vendor1, measured1, optics.encoder_corrected))
