"""The planted truths of the physics twin: what calibration must find, settable from the bench file.

Lengths are in SI units (metres, seconds, watts) inside the twin; the bench file speaks
mm, um, ms and mW and converts at its boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LaserTruth", "PlantedTruths", "SLMTruth", "SensorDefects", "SensorTruth", "planted_response"]


def planted_response(bitdepth: int, max_phase_rad: float, exponent: float,
                     wobble_rad: float = 0.0) -> np.ndarray:
    """A smooth, monotone, nonlinear phase-delay magnitude per gray level (radians).

    phi(g) = max_phase * x**exponent + wobble * sin(pi x) * (1 - x), x = (g + 1) / 2**bitdepth;
    the wobble bends the curve so it is not a plain power law. Must stay increasing.
    """
    levels = 2 ** int(bitdepth)
    x = (np.arange(levels) + 1.0) / levels
    phi = max_phase_rad * x**exponent + wobble_rad * np.sin(np.pi * x) * (1.0 - x)
    if np.any(np.diff(phi) <= 0):
        raise ValueError("planted response must increase with gray level; reduce the wobble")
    return phi


@dataclass
class SLMTruth:
    """One simulated SLM as it really is.

    ``response_rad[g]`` is the phase-delay magnitude of gray level g at the bench wavelength
    (the physical phase is its negative, as in slmsuite). ``shift_m`` (x, y) and
    ``rotation_deg`` place the SLM's pixel grid in the beam (zero for the encoding SLM,
    which defines the beam's frame). The liquid crystal starts moving ``latency_s`` after the
    refresh edge that latches an upload (the SLM's refresh rate comes with the simulated SLM)
    and relaxes exponentially, reaching 99 % of the step after ``settle_s``.

    What a real panel adds: ``wavefront_rad``, the panel's own phase error (its flatness) on the
    simulation grid in the SLM's pixel frame, centred (None: flat); ``unmodulated_fraction``, the
    part of the light power the liquid crystal does not modulate (fill factor, polarisation
    leakage: it leaves with the panel's wavefront only); ``response_drift_per_h``, the relative
    change of the phase response per hour of bench time (temperature).
    """

    response_rad: np.ndarray
    crosstalk_sigma_px: float = 0.0
    shift_m: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    latency_s: float = 0.0
    settle_s: float = 0.0
    wavefront_rad: np.ndarray | None = None
    unmodulated_fraction: float = 0.0
    response_drift_per_h: float = 0.0


@dataclass
class SensorTruth:
    """The image sensor as it really is; placed in the output plane by offset (x, y) and rotation."""

    resolution: tuple[int, int]  # (width, height)
    pitch_m: float
    offset_m: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    qe: float = 0.7
    # a real sensor's defects (their per-pixel maps are drawn once: SensorDefects)
    hot_pixel_fraction: float = 0.0
    hot_pixel_e_per_s: float = 0.0       # dark current of a hot pixel (the others: none)
    prnu_rms: float = 0.0                # pixel-to-pixel gain spread (relative)
    dsnu_dn_rms: float = 0.0             # pixel-to-pixel offset spread (counts)
    background_w_per_m2: float = 0.0     # stray light on the sensor, uniform
    gain_dn_per_e: float = 0.25
    read_noise_e: float = 2.5
    dark_offset_dn: float = 100.0
    full_well_e: float = 10500.0
    bitdepth: int = 12
    readout_s: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.resolution[1]), int(self.resolution[0]))


@dataclass
class LaserTruth:
    """The beam on the encoding SLM: a flat-top or Gaussian profile cut by a square aperture,
    centred at ``centre_m`` and arriving at ``tilt_rad`` (drifting by ``pointing_drift_rad_per_h``).

    The power setpoint is the power the beam would carry without the aperture; the
    delivered power fluctuates frame to frame by ``power_noise_rms`` (relative).
    """

    beam: str = "flat-top"
    waist_m: float = 3e-3
    aperture_m: float = 2.56e-3
    power_noise_rms: float = 0.0
    device_max_power_w: float = 0.1
    centre_m: tuple[float, float] = (0.0, 0.0)            # where the beam's centre lands on SLM1 (x, y)
    tilt_rad: tuple[float, float] = (0.0, 0.0)            # its angle of incidence off the axis (x, y)
    pointing_drift_rad_per_h: tuple[float, float] = (0.0, 0.0)
    extra: dict = field(default_factory=dict)


@dataclass
class SensorDefects:
    """A sensor's per-pixel defects, drawn once (``draw``): gain (PRNU), offset (DSNU) and dark
    current maps, and the stray light each pixel receives. None where nothing is planted."""

    gain: np.ndarray | None = None            # float32, 1 + prnu_rms * N(0, 1)
    offset_dn: np.ndarray | None = None       # float32, dsnu_dn_rms * N(0, 1)
    dark_e_per_s: np.ndarray | None = None    # float32, hot pixels' dark current, 0 elsewhere
    background_w: float = 0.0                 # stray-light power on every pixel (W)

    @classmethod
    def draw(cls, sensor: SensorTruth, rng: np.random.Generator) -> "SensorDefects | None":
        """The maps of ``sensor``'s planted defects, or None if it plants none (the default
        twin then draws nothing, so its noise stays as it was)."""
        if not (sensor.hot_pixel_fraction or sensor.prnu_rms or sensor.dsnu_dn_rms or sensor.background_w_per_m2):
            return None
        shape = sensor.shape
        gain = offset = dark = None
        if sensor.prnu_rms:
            gain = (1.0 + sensor.prnu_rms * rng.standard_normal(shape)).clip(0.0).astype(np.float32)
        if sensor.dsnu_dn_rms:
            offset = (sensor.dsnu_dn_rms * rng.standard_normal(shape)).astype(np.float32)
        if sensor.hot_pixel_fraction:
            hot = rng.random(shape) < sensor.hot_pixel_fraction
            dark = np.where(hot, np.float32(sensor.hot_pixel_e_per_s), np.float32(0.0)).astype(np.float32)
        return cls(gain, offset, dark, float(sensor.background_w_per_m2 * sensor.pitch_m**2))

    @property
    def hot_pixels(self) -> np.ndarray | None:
        return None if self.dark_e_per_s is None else self.dark_e_per_s > 0

    def window(self, roi: tuple[int, int, int, int] | None) -> "SensorDefects":
        """The defects of a window of interest (x, width, y, height) of the sensor."""
        if roi is None:
            return self
        x, w, y, h = roi
        crop = (lambda a: None if a is None else a[y:y + h, x:x + w])
        return SensorDefects(crop(self.gain), crop(self.offset_dn), crop(self.dark_e_per_s), self.background_w)


@dataclass(frozen=True)
class PlantedTruths:
    """What the twin planted, in the terms calibrations report (the world model gives it out;
    calibration gets it only as an argument, to compare with what it measured)."""

    response_rad: dict[str, np.ndarray]          # phase delay per gray level, by SLM role
    crosstalk_sigma_px: dict[str, float]         # by SLM role
    decoder_shift_m: tuple[float, float]         # where the decoding SLM sits in the beam (x, y)
    decoder_rotation_deg: float
    output_to_sensor: np.ndarray                 # 2x3: output-plane metres (x, y) -> sensor pixels
    wavefront_rad: dict = field(default_factory=dict)          # each SLM's panel phase error (grid, own frame)
    unmodulated_fraction: dict = field(default_factory=dict)   # by SLM role
    d1_m: float = 0.0
    d2_m: float = 0.0
    beam: dict = field(default_factory=dict)                   # waist_m, centre_m, tilt_rad (at t = 0), aperture_m
    hot_pixels: np.ndarray | None = None                       # the sensor's hot-pixel mask
