"""What the calibrated model of the bench predicts for a seed: the ideal optics plus what calibration measured.

The prediction uses only what a real lab knows: the nominal geometry, ideal phase (the LUT is
assumed right), the crosstalk blur that the LUT calibration fitted (0 when uncalibrated), and
where the alignment found SLM2 (``placement``): the run shows the decoder moved by whole pixels
to land centred in the beam (``optgen.lab.run.placement.place_decoder``), and the beam sees those
pixels where SLM2 really sits, the fraction of a pixel and the small turn that no whole-pixel
move takes out included (resampled as the twin resamples a misplaced SLM). Without a placement
the decoder is taken as centred and unrotated. Comparing the prediction with captured,
registered frames measures how well the calibrated bench matches its model; on the twin this is
the figure that calibration has to raise.

``optics`` (:class:`CalibratedOptics`, from the calibration store) adds what the wavefront
calibration measured: the true distances, the Gaussian beam on SLM1, SLM2's wavefront (SLM1's is
corrected on the SLM: the prediction takes it as flat), and each SLM's measured unmodulated
fraction: that light adds as its own picture (incoherently), SLM1's carrying SLM1's uncorrected
wavefront through the decoder, SLM2's leaving the decoder's phase out. Where runs correct SLM2 too
(``[calibration] correct_decoder_wavefront``), SLM2 shows the decoder plus the correction, wrapped
into one 2 pi range and blurred by the fringing, on top of its panel: the correction cancels the
panel except at the wraps it moves and adds, which is what the prediction then shows. A vendor
correction file the bench file names is added by the SLM's driver and wrapped with the rest; the
wavefront was measured with it in force, so the panel itself is the measured wavefront less it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optgen.drivers.common.patterns import centre_crop, embed_centered, grid_coordinates
from optgen.drivers.common.vendor_correction import added_before_wrap, panel_itself
from optgen.lab.bench.config import BenchConfig
from optgen.lab.run.patterns import seed_to_slm_phase
from optgen.simulators.optics import field_in_beam, gaussian_blur, phase_to_field, propagate

__all__ = ["CalibratedOptics", "calibrated_optics", "predict_images", "pearson_r", "run_agreement"]


@dataclass(frozen=True)
class CalibratedOptics:
    """What the calibrations measured of the light path beyond the LUTs and the alignment."""

    d1_m: float | None = None
    d2_m: float | None = None
    beam_centre_m: tuple[float, float] = (0.0, 0.0)
    beam_waist_m: float = 0.0            # 0: the flat-top beam the bench file assumes
    decoder_wavefront: object = None     # SLM2's WavefrontCalibration
    unmodulated: tuple[float, float] = (0.0, 0.0)   # measured unmodulated fraction of SLM1, SLM2
    encoder_wavefront: object = None     # SLM1's WavefrontCalibration (its unmodulated light is not corrected)
    decoder_corrected: bool = False      # runs add SLM2's correction to the decoder (correct_decoder_wavefront)
    encoder_corrected: bool = False      # runs add SLM1's correction to the seed before wrapping it (use_wavefront)
    encoder_vendor_rad: np.ndarray | None = None   # the vendor's correction SLM1's driver adds (SLM-shaped)
    decoder_vendor_rad: np.ndarray | None = None   # the vendor's correction SLM2's driver adds (SLM-shaped)


def calibrated_optics(calibrations, config: BenchConfig | None = None) -> CalibratedOptics:
    """The measured distances, beam and SLM2 wavefront of a bench's calibrations (``BenchCalibrations``;
    ``config``: its bench, which says whether runs correct SLM2)."""
    from optgen.calibration.distances import Distances
    from optgen.calibration.wavefront import WavefrontCalibration

    d1 = d2 = None
    if calibrations.distances is not None:
        d = Distances.from_record(calibrations.distances)
        d1, d2 = d.d1_m, d.d2_m
    cals = {key: WavefrontCalibration.from_record(record) for key, record in calibrations.wavefronts.items()}
    unmodulated = tuple(cals[key].unmodulated_fraction if key in cals and cals[key].unmodulated_from.startswith("measured")
                        else 0.0 for key in ("encoding_slm", "decoding_slm"))
    decoder = cals.get("decoding_slm")
    corrected = decoder is not None and config is not None and config.calibration.correct_decoder_wavefront
    vendor = {}
    if config is not None:
        from optgen.lab.bench.vendor import vendor_correction_rad

        vendor = {key: vendor_correction_rad(config, key) for key in ("encoding_slm", "decoding_slm")}
    cal = cals.get("encoding_slm")
    if cal is None:
        return CalibratedOptics(d1, d2, decoder_wavefront=decoder, unmodulated=unmodulated, decoder_corrected=corrected,
                                encoder_vendor_rad=vendor.get("encoding_slm"),
                                decoder_vendor_rad=vendor.get("decoding_slm"))
    encoder_corrected = config is None or config.calibration.use_wavefront
    return CalibratedOptics(d1, d2, cal.beam_centre_m, cal.beam_waist_m, decoder, unmodulated, cal, corrected,
                            encoder_corrected, vendor.get("encoding_slm"), vendor.get("decoding_slm"))


def _beam(config: BenchConfig, shape: tuple[int, int], pitch: float,
          optics: CalibratedOptics | None = None) -> np.ndarray:
    g = config.geometry
    aperture = (config.twin.aperture_m if config.twin is not None and config.twin.aperture_m > 0
                else g.seed_superpixels * g.superpixel_px * pitch)
    y, x = grid_coordinates(shape, pitch)
    inside = ((np.abs(x) <= aperture / 2) & (np.abs(y) <= aperture / 2)).astype(np.float32)
    if optics is None or optics.beam_waist_m <= 0:
        return inside
    cx, cy = optics.beam_centre_m
    return (inside * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / optics.beam_waist_m**2)).astype(np.float32)


def _decoder_field_in_beam(config: BenchConfig, decoder_phase: np.ndarray, shape: tuple[int, int],
                           sigma_px: float, placement, wavefront=None, corrected: bool = False,
                           vendor_rad: np.ndarray | None = None, unmodulated: bool = False) -> np.ndarray:
    """SLM2's transmission (complex64) as the beam sees it on the grid: the decoder as shown on SLM2
    (with the ``vendor_rad`` correction its driver adds, and SLM2's ``wavefront`` correction where
    ``corrected``; wrapped into one 2 pi range), blurred by the crosstalk, on top of SLM2's panel, its
    pixels' transmissions mixed bilinearly where SLM2 sits (as the twin places them:
    ``simulators.optics.field_in_beam``). The
    measured wavefront is the panel with the vendor's correction in force, so the panel itself is
    that wavefront less the vendor's correction. ``unmodulated``: the panel alone (the light SLM2
    does not modulate)."""
    decoder_phase = np.asarray(decoder_phase, dtype=np.float32)
    if placement is None:
        shown = embed_centered(decoder_phase, shape)
    else:
        from optgen.lab.run.placement import place_decoder

        slm_shape = config.decoding_slm.shape
        display = place_decoder(decoder_phase, slm_shape, placement, config.decoding_slm.pitch_um * 1e-6)
        r0, c0 = (slm_shape[0] - shape[0]) // 2, (slm_shape[1] - shape[1]) // 2   # the grid's part of SLM2
        shown = display[r0:r0 + shape[0], c0:c0 + shape[1]]
    measured = None
    if wavefront is not None:                        # the panel's own error, in its pixel frame
        # from defocus on: its tilt moved SLM2's lens foci in the alignment too, so the measured
        # placement holds it already
        waves = wavefront.wavefront_waves(shape, config.decoding_slm.pitch_um * 1e-6, corrected_only=True)
        measured = (2 * np.pi * waves).astype(np.float32)
    vendor = centre_crop(vendor_rad, shape)          # the grid's part of SLM2, as ``shown`` is
    panel = panel_itself(measured, vendor)
    if unmodulated:
        dec = panel if panel is not None else np.zeros(shape, np.float32)
    else:
        added = added_before_wrap(vendor, measured, corrected)   # the driver's vendor map, the run's correction
        dec = np.mod(shown if added is None else shown + added, np.float32(2 * np.pi))
        if sigma_px > 0:
            dec = gaussian_blur(dec, sigma_px)
        if panel is not None:
            dec = dec + panel
    field = phase_to_field(dec)
    if placement is not None:
        field = field_in_beam(field, shape, placement.shift_m, placement.rotation_deg,
                              config.encoding_slm.pitch_um * 1e-6)
    return field


def predict_images(config: BenchConfig, seed_phases: np.ndarray, decoder_phase: np.ndarray,
                   crosstalk_sigma_px: tuple[float, float] = (0.0, 0.0), placement=None,
                   optics: CalibratedOptics | None = None) -> np.ndarray:
    """Noiseless output images (N, output_pixels, output_pixels), arbitrary units, one per seed.

    ``placement``: SLM2's measured placement (``calibration.alignment.DecoderPlacement``) the
    run compensated for, or None for a decoder centred in the beam. ``optics``: the measured
    distances and beam, or None for the bench file's.
    """
    g = config.geometry
    pitch = config.encoding_slm.pitch_um * 1e-6
    wavelength = config.wavelength_m
    shape = config.twin.grid_shape if config.twin is not None else (800, 800)
    beam = _beam(config, shape, pitch, optics)
    d1 = optics.d1_m if optics is not None and optics.d1_m else g.d1_m
    d2 = optics.d2_m if optics is not None and optics.d2_m else g.d2_m
    decoder_wavefront = optics.decoder_wavefront if optics is not None else None
    corrected = optics is not None and optics.decoder_corrected
    vendor2 = optics.decoder_vendor_rad if optics is not None else None
    decoder_field = _decoder_field_in_beam(config, decoder_phase, shape, crosstalk_sigma_px[1], placement,
                                           decoder_wavefront, corrected, vendor2)
    u1, u2 = optics.unmodulated if optics is not None else (0.0, 0.0)
    rows, cols = shape
    w = g.output_window_px
    r0, c0 = (rows - w) // 2, (cols - w) // 2
    pool = w // g.output_pixels
    # SLM2's unmodulated part: its panel error (as the beam sees it), not the decoder
    panel2 = _decoder_field_in_beam(config, np.zeros_like(decoder_phase), shape, 0.0, placement, decoder_wavefront,
                                    vendor_rad=vendor2, unmodulated=True) if u2 > 0 else None

    def through_slm2(incident: np.ndarray) -> np.ndarray:
        """Irradiance in the window of light arriving at SLM2 (its modulated and unmodulated parts)."""
        out = np.abs(propagate(incident * decoder_field, wavelength, d2, pitch)[r0:r0 + w, c0:c0 + w]) ** 2
        out = out.astype(np.float64) * (1.0 - u2)
        if panel2 is not None:
            out += u2 * np.abs(propagate(incident * panel2, wavelength, d2, pitch)[r0:r0 + w, c0:c0 + w]) ** 2
        return out

    measured1 = (2 * np.pi * optics.encoder_wavefront.wavefront_waves(shape, pitch, corrected_only=True)).astype(np.float32) \
        if optics is not None and optics.encoder_wavefront is not None else None
    vendor1 = centre_crop(optics.encoder_vendor_rad if optics is not None else None, shape)
    panel1 = panel_itself(measured1, vendor1)
    from_unmodulated_slm1 = 0.0
    if u1 > 0:                                       # SLM1's unmodulated light: its uncorrected panel error
        from_unmodulated_slm1 = u1 * through_slm2(propagate(
            phase_to_field(panel1 if panel1 is not None else np.zeros(shape, np.float32), beam), wavelength, d1, pitch))
    # runs add SLM1's correction (= -measured1) and the driver the vendor's to the seed before it is
    # wrapped and the fringing blurs it; the light then meets the panel itself (= -correction1 where
    # both are in force)
    correction1 = added_before_wrap(vendor1, measured1, optics is not None and optics.encoder_corrected)
    out = []
    for seed in np.asarray(seed_phases, dtype=np.float32):
        phase = seed_to_slm_phase(seed, g.superpixel_px, shape)
        if correction1 is not None:
            phase = phase + correction1
        phase = np.mod(phase, np.float32(2 * np.pi))
        if crosstalk_sigma_px[0] > 0:
            phase = gaussian_blur(phase, crosstalk_sigma_px[0])
        if correction1 is not None:
            phase = phase - correction1
        field = propagate(phase_to_field(phase, beam), wavelength, d1, pitch)
        window = (1.0 - u1) * through_slm2(field) + from_unmodulated_slm1
        n = w // pool
        out.append(window.reshape(n, pool, n, pool).mean(axis=(1, 3)))
    return np.stack(out)


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def run_agreement(folder, config: BenchConfig, crosstalk_sigma_px: tuple[float, float] = (0.0, 0.0),
                  placement=None, optics: CalibratedOptics | None = None) -> list[float]:
    """Pearson r, per stored frame of a run folder, between its registered image and the prediction
    (``placement``: SLM2's measured placement the run was made with, if any; ``optics``: the
    measured distances and beam)."""
    from pathlib import Path

    from optgen.lab.runfile.reader import RunFile

    with RunFile(Path(folder) / "run.h5") as run:
        images, seeds, decoder = run.images(), run.seed_phase(), run.decoder_phase
    predicted = predict_images(config, seeds, decoder, crosstalk_sigma_px, placement, optics)
    return [pearson_r(p, c) for p, c in zip(predicted, images)]
