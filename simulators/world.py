"""The physics twin's world model: one light path shared by the simulated laser, SLMs and camera.

    laser (beam profile, power noise)
      -> encoding SLM  (gray -> planted phase response, crosstalk, latency + settle)
      -> angular spectrum over d1
      -> decoding SLM  (same physics, planted shift and rotation in the beam)
      -> angular spectrum over d2
      -> sensor irradiance, sampled on the sensor's own pixels (pitch, offset, rotation)

The simulation grid is sampled at the SLM pitch and may be smaller than the SLM (the
published model uses 800 x 800 pixels, 6.4 mm): the beam, seed and decoder sit well inside
it, and the band-limited propagator removes light that would leave it. SLM patterns are
cropped about the SLM centre to the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from .clock import Clock
from .optics import grid_coordinates, phase_to_field, propagate
from .truth import LaserTruth, SensorTruth, SLMTruth

__all__ = ["OpticalWorld", "ENCODING", "DECODING"]

ENCODING = "encoding_slm"
DECODING = "decoding_slm"

_SETTLED = 0.9999  # fraction of a transition treated as done


@dataclass
class _SLMState:
    truth: SLMTruth
    slm_shape: tuple[int, int]
    target: np.ndarray | None = None      # settled retardance of the last upload (grid, radians)
    previous: np.ndarray | None = None    # retardance when the last upload arrived
    t_upload: float = -np.inf
    uploads: int = 0
    cached_key: tuple | None = None
    cached_field: np.ndarray | None = None


class OpticalWorld:
    """The twin's single source of truth about light; devices write into it and render from it."""

    def __init__(self, *, wavelength_m: float, pitch_m: float, grid_shape: tuple[int, int],
                 d1_m: float, d2_m: float, encoding: SLMTruth, decoding: SLMTruth,
                 sensor: SensorTruth, laser: LaserTruth, clock: Clock,
                 rng: np.random.Generator | None = None, band_limit: bool = True):
        self.wavelength_m = float(wavelength_m)
        self.pitch_m = float(pitch_m)
        self.grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
        self.d1_m, self.d2_m = float(d1_m), float(d2_m)
        self.sensor = sensor
        self.laser = laser
        self.clock = clock
        self.rng = rng if rng is not None else np.random.default_rng()
        self.band_limit = band_limit
        self._slms = {ENCODING: _SLMState(encoding, self.grid_shape),
                      DECODING: _SLMState(decoding, self.grid_shape)}
        self.beam_amplitude = self._beam_amplitude_per_sqrt_watt()
        self._sensor_map = self._sensor_to_grid_affine()
        # laser state (the simulated laser driver writes these)
        self.laser_setpoint_w = 0.0
        self.laser_emission = False
        self.laser_faults: list[str] = []
        self.last_delivered_power_w = 0.0

    # --- laser ----------------------------------------------------------------------
    def _beam_amplitude_per_sqrt_watt(self) -> np.ndarray:
        """Field amplitude (sqrt(W/m^2)) for 1 W of beam power; |E|^2 integrates to <= 1 W."""
        y, x = grid_coordinates(self.grid_shape, self.pitch_m)
        half = self.laser.aperture_m / 2.0
        inside = np.ones(self.grid_shape, dtype=bool)
        if self.laser.aperture_m > 0:
            inside = (np.abs(x) <= half) & (np.abs(y) <= half)
        if self.laser.beam == "flat-top":
            if not inside.any():
                raise ValueError("flat-top beam: the aperture holds no grid pixel")
            irradiance = inside / (inside.sum() * self.pitch_m**2)
        elif self.laser.beam == "gaussian":
            w = self.laser.waist_m
            irradiance = 2.0 / (np.pi * w**2) * np.exp(-2.0 * (x**2 + y**2) / w**2) * inside
        else:
            raise ValueError(f"beam {self.laser.beam!r}: expected 'flat-top' or 'gaussian'")
        return np.sqrt(irradiance).astype(np.float32)

    def delivered_power_w(self) -> float:
        """Beam power for one exposure: setpoint with the planted frame-to-frame noise."""
        if not self.laser_emission:
            return 0.0
        noise = self.laser.power_noise_rms * self.rng.standard_normal() if self.laser.power_noise_rms else 0.0
        self.last_delivered_power_w = max(0.0, self.laser_setpoint_w * (1.0 + noise))
        return self.last_delivered_power_w

    # --- SLMs -----------------------------------------------------------------------
    def attach_slm(self, key: str, slm_shape: tuple[int, int]) -> None:
        """Declare the pixel shape of the SLM that writes into ``key``."""
        if slm_shape[0] < self.grid_shape[0] or slm_shape[1] < self.grid_shape[1]:
            raise ValueError(f"{key}: SLM shape {slm_shape} is smaller than the simulation grid "
                             f"{self.grid_shape}; make the grid smaller")
        self._slms[key].slm_shape = tuple(slm_shape)

    def upload(self, key: str, display: np.ndarray) -> None:
        """An SLM was sent new gray levels now; the liquid crystal follows its planted timing."""
        state = self._slms[key]
        now = self.clock.now()
        if state.target is not None:
            state.previous = self.retardance(key, now)
        state.target = self._settled_retardance(state, display)
        if state.previous is None:
            state.previous = state.target
        state.t_upload = now
        state.uploads += 1

    def _settled_retardance(self, state: _SLMState, display: np.ndarray) -> np.ndarray:
        """Phase (radians, <= 0) the pixels reach once settled, on the simulation grid."""
        truth = state.truth
        rows, cols = self.grid_shape
        r0 = (display.shape[0] - rows) // 2
        c0 = (display.shape[1] - cols) // 2
        crop = display[r0:r0 + rows, c0:c0 + cols]
        lut = (-truth.response_rad).astype(np.float32)
        phase = lut[crop]
        if truth.crosstalk_sigma_px > 0:
            phase = ndimage.gaussian_filter(phase, truth.crosstalk_sigma_px, mode="nearest")
        if truth.shift_m != (0.0, 0.0) or truth.rotation_deg != 0.0:
            phase = cv2.warpAffine(phase, self._slm_to_beam_affine(truth), (cols, rows),
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE)
        return phase

    def _slm_to_beam_affine(self, truth: SLMTruth) -> np.ndarray:
        """2x3 map from beam-grid pixel (x, y) to the SLM's own pixel coordinates."""
        rows, cols = self.grid_shape
        c = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
        s = np.array(truth.shift_m) / self.pitch_m
        a = np.deg2rad(truth.rotation_deg)
        r_inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        return np.hstack([r_inv, (c - r_inv @ (c + s))[:, None]]).astype(np.float64)

    def settled_fraction(self, key: str, t: float) -> float:
        """How far the last transition of ``key`` has gone at time ``t`` (0 to 1)."""
        state = self._slms[key]
        elapsed = t - state.t_upload - state.truth.latency_s
        if elapsed < 0:
            return 0.0
        if state.truth.settle_s <= 0:
            return 1.0
        tau = state.truth.settle_s / np.log(100.0)
        return float(1.0 - np.exp(-elapsed / tau))

    def retardance(self, key: str, t: float) -> np.ndarray:
        """The phase the pixels of ``key`` hold at time ``t`` (a mix while settling)."""
        state = self._slms[key]
        if state.target is None:
            return np.zeros(self.grid_shape, dtype=np.float32)
        f = self.settled_fraction(key, t)
        if f >= _SETTLED:
            return state.target
        if f <= 0.0:
            return state.previous
        return state.previous + np.float32(f) * (state.target - state.previous)

    def transmission(self, key: str, t: float) -> np.ndarray:
        """exp(i * phase) of ``key`` at time ``t``, cached while the SLM rests."""
        state = self._slms[key]
        f = self.settled_fraction(key, t)
        cache_key = (state.uploads, "settled") if f >= _SETTLED else None
        if cache_key is not None and cache_key == state.cached_key:
            return state.cached_field
        field = phase_to_field(self.retardance(key, t))
        if cache_key is not None:
            state.cached_key, state.cached_field = cache_key, field
        return field

    # --- light ----------------------------------------------------------------------
    def output_irradiance(self, t: float, power_w: float) -> np.ndarray:
        """Irradiance (W/m^2) in the sensor plane on the simulation grid, float32."""
        if power_w <= 0:
            return np.zeros(self.grid_shape, dtype=np.float32)
        field = self.transmission(ENCODING, t) * (self.beam_amplitude * np.float32(np.sqrt(power_w)))
        field = propagate(field, self.wavelength_m, self.d1_m, self.pitch_m, self.band_limit)
        field *= self.transmission(DECODING, t)
        field = propagate(field, self.wavelength_m, self.d2_m, self.pitch_m, self.band_limit)
        return (field.real**2 + field.imag**2).astype(np.float32, copy=False)

    def _sensor_to_grid_affine(self) -> np.ndarray:
        """2x3 map from sensor pixel (x, y) to simulation-grid pixel coordinates."""
        s = self.sensor
        rows, cols = self.grid_shape
        h, w = s.shape
        a = np.deg2rad(s.rotation_deg)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        lin = rot * (s.pitch_m / self.pitch_m)
        centre_sensor = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        centre_grid = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
        offset = np.array(s.offset_m) / self.pitch_m
        return np.hstack([lin, (centre_grid + offset - lin @ centre_sensor)[:, None]])

    def sensor_power(self, t: float, power_w: float) -> np.ndarray:
        """Optical power (W) falling on each sensor pixel, float32 (height, width)."""
        irradiance = self.output_irradiance(t, power_w)
        h, w = self.sensor.shape
        sampled = cv2.warpAffine(irradiance, self._sensor_map, (w, h),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        sampled *= np.float32(self.sensor.pitch_m**2)
        return sampled
