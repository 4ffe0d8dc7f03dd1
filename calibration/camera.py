"""Camera calibration: dark frame at the run's exposure, read noise, hot pixels, saturation, linearity.

- Dark: ``frames`` frames with the laser off at the exposure the run uses; their mean is the
  dark frame (subtracted pixel by pixel from every frame of a run), their temporal spread the
  read noise. Hot pixels: far above their neighbours in it or in dark frames at a long exposure
  (calibration.camera_pixels); runs replace them by their neighbours' median.
- Saturation and linearity: SLM1 shows a lens that focuses the beam onto the sensor (SLM2
  uniform), the exposure is stepped up; the spot's summed counts must grow in proportion to
  the exposure while no pixel clips (the linearity residual), and the peak stops growing at
  the sensor's real saturation level (full well or ADC), which may lie below the ADC's top.
- Flat field: this light path cannot light the sensor uniformly, not even at the pixel scale
  (coherent light through two SLMs; calibration.camera_pixels says what was tried); the
  photo-response non-uniformity is left uncorrected and the record says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optgen.calibration.camera_pixels import PixelCorrection, find_hot_pixels
from optgen.calibration.record import CalibrationRecord
from optgen.calibration.session import CalibrationError, CalibrationSession, peak_level
from optgen.drivers.common.patterns import lens_phase

__all__ = ["CameraCalibration", "LinearityFit", "fit_linearity", "measure_camera"]


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
    hot_map: np.ndarray | None = None     # bool per pixel (None: an older record that kept only the count)
    hot_threshold_dn: float = float("nan")

    def results(self) -> dict:
        out = {"dark_frame": self.dark_frame, "dark_level_dn": self.dark_level_dn,
               "saturation_dn": self.saturation_dn, "exposure_s": self.exposure_s}
        if self.hot_map is not None:
            out["hot_pixel_map"] = self.hot_map.astype(np.float32)
        return out

    def window(self, woi: tuple[int, int, int, int]) -> "CameraCalibration":
        """This calibration for frames of the sensor window ``woi`` = (x, width, y, height): its dark
        frame and hot-pixel map cut to the window (the dark level: the window's median)."""
        from dataclasses import replace

        x, w, y, h = (int(v) for v in woi)
        rows, cols = self.dark_frame.shape
        if not (0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= cols and y + h <= rows):
            raise ValueError(f"window (x, width, y, height) = {tuple(woi)}: expected one inside the "
                             f"calibrated {cols} x {rows} sensor")
        dark = self.dark_frame[y:y + h, x:x + w]
        return replace(self, dark_frame=dark, dark_level_dn=float(np.median(dark)),
                       hot_map=None if self.hot_map is None else self.hot_map[y:y + h, x:x + w])

    def correction(self) -> PixelCorrection:
        """The per-pixel correction of frames at this calibration's exposure."""
        return PixelCorrection(self.dark_frame, self.hot_map)

    def correction_for(self, dark: np.ndarray, exposure_s: float) -> tuple[PixelCorrection, str]:
        """(The correction of a run's frames, what it subtracts in words) given the run's own dark
        frame at ``exposure_s``: at the calibration's exposure its (less noisy) mean dark frame moved
        to the run's dark level; at another exposure the run's dark frame (dark current scales with
        the exposure). The hot pixels found hold at any exposure."""
        dark = np.asarray(dark, dtype=np.float32)
        if dark.shape != self.dark_frame.shape:
            raise ValueError(f"the run's dark frame is {dark.shape}; the camera calibration is for "
                             f"{self.dark_frame.shape}")
        if abs(exposure_s - self.exposure_s) <= 0.01 * self.exposure_s:
            drift = float(np.median(dark)) - self.dark_level_dn
            return self.correction().shifted(drift), (f"the calibrated dark frame (moved by {drift:+.2f} DN to "
                                                      f"this run's dark level)")
        return PixelCorrection(dark, self.hot_map), (
            f"this run's dark frame (the calibration's is for {self.exposure_s * 1e3:.4g} ms, "
            f"the run exposes {exposure_s * 1e3:.4g} ms)")

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
                   laser_power_w=float(info.get("laser_power_w", np.nan)),
                   hot_map=np.asarray(r["hot_pixel_map"]) > 0.5 if "hot_pixel_map" in r else None,
                   hot_threshold_dn=float(info.get("hot_threshold_dn", np.nan)))

    def info(self) -> dict:
        return {"exposure_s": self.exposure_s, "dark_level_dn": self.dark_level_dn,
                "read_noise_dn": self.read_noise_dn, "hot_pixels": self.hot_pixels,
                "saturation_dn": self.saturation_dn, "driver_saturation_dn": self.driver_saturation_dn,
                "linearity_rms": self.linearity_rms, "laser_power_w": self.laser_power_w,
                "hot_threshold_dn": self.hot_threshold_dn,
                "flat_field": "not measured: this light path cannot light the sensor uniformly"}


@dataclass(frozen=True)
class LinearityFit:
    """Spot counts proportional to the exposure, fitted (least squares, through zero) to the steps
    whose peak stayed below 0.9 x the driver's saturation."""
    gain_dn_per_s: float            # summed spot counts per second of exposure (NaN: no unclipped step)
    unclipped: np.ndarray           # bool per step
    rms: float                      # relative RMS deviation of the unclipped steps (NaN: fewer than 2)


def fit_linearity(exposures_s, spot_counts, peak_counts, saturation_dn: float) -> LinearityFit:
    """The linearity fit of the saturation steps (what :func:`measure_camera` and the picture use)."""
    e, s, p = (np.asarray(a, dtype=float) for a in (exposures_s, spot_counts, peak_counts))
    unclipped = p < 0.9 * saturation_dn
    gain, rms = float("nan"), float("nan")
    if unclipped.any() and np.sum(e[unclipped] ** 2) > 0:
        gain = float(np.sum(s[unclipped] * e[unclipped]) / np.sum(e[unclipped] ** 2))
        if unclipped.sum() >= 2:
            rms = float(np.sqrt(np.mean((s[unclipped] / (gain * e[unclipped]) - 1.0) ** 2)))
    return LinearityFit(gain, unclipped, rms)


def _focus_on_sensor(session: CalibrationSession) -> np.ndarray:
    """SLM1 pattern (radians): a lens of focal length d1 + d2, centred."""
    cfg = session.config
    slm = session.bench.encoding_slm
    return lens_phase(slm.shape, cfg.encoding_slm.pitch_um * 1e-6, cfg.laser.wavelength_nm * 1e-9,
                      cfg.geometry.d1_m + cfg.geometry.d2_m).astype(np.float32)


LONG_DARK_S = 0.02                 # hot pixels are looked for at this exposure too (at least 20 x the run's)


def _dark_stack(session: CalibrationSession, frames: int) -> np.ndarray:
    return np.stack([session.capture_raw().astype(np.float32) for _ in range(frames)])


def measure_camera(session: CalibrationSession, frames: int = 8, steps: int = 6) -> CameraCalibration:
    """Measure the camera at the run's exposure; the laser is on only for the saturation steps."""
    cfg = session.config
    camera = session.bench.camera
    run_exposure = session.set_exposure(cfg.camera.exposure_s)
    session.bench.laser.set_emission(False)
    stack = _dark_stack(session, frames)
    dark = stack.mean(axis=0)
    level = float(np.median(dark))
    read_noise = float(np.median(stack.std(axis=0, ddof=1))) if frames > 1 else float("nan")
    if level >= camera.saturation_dn * 0.9:
        raise CalibrationError(f"{camera.name}: the dark frame sits at {level:.0f} counts, near saturation "
                               f"({camera.saturation_dn}); is the lens cap off with the room lights on?")
    hot_map, threshold = find_hot_pixels(dark)
    long_exposure = session.set_exposure(min(camera.exposure_bounds_s[1], max(LONG_DARK_S, 20 * run_exposure)))
    if long_exposure > 2 * run_exposure:
        hot_map |= find_hot_pixels(_dark_stack(session, max(2, frames // 2)).mean(axis=0))[0]
    session.set_exposure(run_exposure)

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
            raw_peak = peak_level(raw)              # not a lone hot pixel
            if window is None:
                r, c = np.unravel_index(int(np.argmax(img)), img.shape)
                window = (slice(max(r - 40, 0), r + 41), slice(max(c - 40, 0), c + 41))
            exposures.append(e)
            sums.append(float(img[window].sum(dtype=np.float64)))
            peaks.append(raw_peak)
    exposures_a, sums_a, peaks_a = map(np.asarray, (exposures, sums, peaks))
    linearity = fit_linearity(exposures_a, sums_a, peaks_a, camera.saturation_dn).rms
    saturation = float(peaks_a.max())
    if peaks_a[-1] < 0.9 * camera.saturation_dn:
        saturation = float(camera.saturation_dn)   # never reached: keep the driver's figure
    session.set_exposure(run_exposure)
    return CameraCalibration(
        exposure_s=run_exposure, dark_frame=dark.astype(np.float32), dark_level_dn=level,
        read_noise_dn=read_noise, hot_pixels=int(hot_map.sum()), saturation_dn=saturation,
        driver_saturation_dn=int(camera.saturation_dn), linearity_rms=linearity,
        exposures_s=exposures_a, spot_counts=sums_a, peak_counts=peaks_a, laser_power_w=power,
        hot_map=hot_map, hot_threshold_dn=threshold)

