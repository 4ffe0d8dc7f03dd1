"""Camera calibration: dark frame at the run's exposure, read noise, hot pixels, saturation, linearity.

- Dark: ``frames`` frames with the laser off at the exposure the run uses; their mean is the
  dark frame, their temporal spread the read noise, pixels far above the median are hot.
- Saturation and linearity: SLM1 shows a lens that focuses the beam onto the sensor (SLM2
  uniform), the exposure is stepped up; the spot's summed counts must grow in proportion to
  the exposure while no pixel clips (the linearity residual), and the peak stops growing at
  the sensor's real saturation level (full well or ADC), which may lie below the ADC's top.
- Flat field: this light path cannot light the sensor uniformly (coherent light through two
  SLMs); the photo-response non-uniformity is left uncorrected and the record says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optgen.calibration.record import CalibrationRecord
from optgen.calibration.session import CalibrationError, CalibrationSession
from optgen.drivers.common.patterns import lens_phase

__all__ = ["CameraCalibration", "measure_camera"]


@dataclass
class CameraCalibration:
    exposure_s: float
    dark_frame: np.ndarray          # float32 mean dark frame (counts)
    dark_level_dn: float            # its median
    read_noise_dn: float            # temporal RMS per pixel, median over the frame
    hot_pixels: int
    saturation_dn: float            # measured level where the peak stops growing
    driver_saturation_dn: int
    linearity_rms: float            # relative RMS deviation of spot counts from proportional to exposure
    exposures_s: np.ndarray
    spot_counts: np.ndarray
    peak_counts: np.ndarray
    laser_power_w: float = float("nan")   # during the saturation steps (dimmed if the focus saturated)

    def results(self) -> dict:
        return {"dark_frame": self.dark_frame, "dark_level_dn": self.dark_level_dn,
                "saturation_dn": self.saturation_dn, "exposure_s": self.exposure_s}

    def to_record(self, base: dict) -> CalibrationRecord:
        """The calibration file's record (``base``: kind, device, wavelength, path, bench, identity)."""
        return CalibrationRecord(
            **base, results=self.results(),
            raw={"exposures_s": self.exposures_s, "spot_counts": self.spot_counts, "peak_counts": self.peak_counts},
            residuals={"linearity_rms": self.linearity_rms}, info=self.info())

    @classmethod
    def from_record(cls, record) -> "CameraCalibration":
        """The calibration a record holds (a record checked by the store)."""
        r, info = record.results, record.info
        return cls(exposure_s=float(r["exposure_s"]), dark_frame=np.asarray(r["dark_frame"], dtype=np.float32),
                   dark_level_dn=float(r["dark_level_dn"]), read_noise_dn=float(info.get("read_noise_dn", np.nan)),
                   hot_pixels=int(info.get("hot_pixels", 0)), saturation_dn=float(r["saturation_dn"]),
                   driver_saturation_dn=int(info.get("driver_saturation_dn", 0)),
                   linearity_rms=float(record.residuals.get("linearity_rms", np.nan)),
                   exposures_s=np.asarray(record.raw.get("exposures_s", ())),
                   spot_counts=np.asarray(record.raw.get("spot_counts", ())),
                   peak_counts=np.asarray(record.raw.get("peak_counts", ())),
                   laser_power_w=float(info.get("laser_power_w", np.nan)))

    def info(self) -> dict:
        return {"exposure_s": self.exposure_s, "dark_level_dn": self.dark_level_dn,
                "read_noise_dn": self.read_noise_dn, "hot_pixels": self.hot_pixels,
                "saturation_dn": self.saturation_dn, "driver_saturation_dn": self.driver_saturation_dn,
                "linearity_rms": self.linearity_rms, "laser_power_w": self.laser_power_w,
                "flat_field": "not measured: this light path cannot light the sensor uniformly"}


def _focus_on_sensor(session: CalibrationSession) -> np.ndarray:
    """SLM1 pattern (radians): a lens of focal length d1 + d2, centred."""
    cfg = session.config
    slm = session.bench.encoding_slm
    return lens_phase(slm.shape, cfg.encoding_slm.pitch_um * 1e-6, cfg.laser.wavelength_nm * 1e-9,
                      cfg.geometry.d1_m + cfg.geometry.d2_m).astype(np.float32)


def measure_camera(session: CalibrationSession, frames: int = 8, steps: int = 6) -> CameraCalibration:
    """Measure the camera at the run's exposure; the laser is on only for the saturation steps."""
    cfg = session.config
    camera = session.bench.camera
    run_exposure = session.set_exposure(cfg.camera.exposure_s)
    session.bench.laser.set_emission(False)
    stack = np.stack([session.capture_raw().astype(np.float32) for _ in range(frames)])
    dark = stack.mean(axis=0)
    level = float(np.median(dark))
    read_noise = float(np.median(stack.std(axis=0, ddof=1))) if frames > 1 else float("nan")
    spread = max(read_noise, 0.5) * 8.0
    hot = int(np.count_nonzero(dark > level + spread + 10.0))
    if level >= camera.saturation_dn * 0.9:
        raise CalibrationError(f"{camera.name}: the dark frame sits at {level:.0f} counts, near saturation "
                               f"({camera.saturation_dn}); is the lens cap off with the room lights on?")

    session.show(encoding=_focus_on_sensor(session), decoding=session.uniform("decoding_slm"))
    exposures, sums, peaks = [], [], []
    with session.power_kept(), session.light():
        exposure = session.auto_exposure_dimming(target_fraction=0.1)
        power = session.power_w
        window = None
        for k in range(steps):
            e = session.set_exposure(exposure * 2.0**k)
            with session._dark_interval():
                session.capture_dark(frames=2)
            raw = session.capture_raw().astype(np.float32)
            img = raw - session.dark
            raw_peak = float(raw.max())
            if window is None:
                r, c = np.unravel_index(int(np.argmax(img)), img.shape)
                window = (slice(max(r - 40, 0), r + 41), slice(max(c - 40, 0), c + 41))
            exposures.append(e)
            sums.append(float(img[window].sum(dtype=np.float64)))
            peaks.append(raw_peak)
    exposures_a, sums_a, peaks_a = map(np.asarray, (exposures, sums, peaks))
    unclipped = peaks_a < 0.9 * camera.saturation_dn
    if unclipped.sum() >= 2:
        gain = float(np.sum(sums_a[unclipped] * exposures_a[unclipped]) / np.sum(exposures_a[unclipped] ** 2))
        linearity = float(np.sqrt(np.mean((sums_a[unclipped] / (gain * exposures_a[unclipped]) - 1.0) ** 2)))
    else:
        linearity = float("nan")
    saturation = float(peaks_a.max())
    if peaks_a[-1] < 0.9 * camera.saturation_dn:
        saturation = float(camera.saturation_dn)   # never reached: keep the driver's figure
    session.set_exposure(run_exposure)
    return CameraCalibration(
        exposure_s=run_exposure, dark_frame=dark.astype(np.float32), dark_level_dn=level,
        read_noise_dn=read_noise, hot_pixels=hot, saturation_dn=saturation,
        driver_saturation_dn=int(camera.saturation_dn), linearity_rms=linearity,
        exposures_s=exposures_a, spot_counts=sums_a, peak_counts=peaks_a, laser_power_w=power)
