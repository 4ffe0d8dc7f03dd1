"""The planted truths of the physics twin: what calibration must find, settable from the bench file.

Lengths are in SI units (metres, seconds, watts) inside the twin; the bench file speaks
mm, um, ms and mW and converts at its boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LaserTruth", "PlantedTruths", "SLMTruth", "SensorTruth", "planted_response"]


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
    """

    response_rad: np.ndarray
    crosstalk_sigma_px: float = 0.0
    shift_m: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    latency_s: float = 0.0
    settle_s: float = 0.0


@dataclass
class SensorTruth:
    """The image sensor as it really is; placed in the output plane by offset (x, y) and rotation."""

    resolution: tuple[int, int]  # (width, height)
    pitch_m: float
    offset_m: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    qe: float = 0.7
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
    """The beam on the encoding SLM: a flat-top or Gaussian profile cut by a square aperture.

    The power setpoint is the power the beam would carry without the aperture; the
    delivered power fluctuates frame to frame by ``power_noise_rms`` (relative).
    """

    beam: str = "flat-top"
    waist_m: float = 3e-3
    aperture_m: float = 2.56e-3
    power_noise_rms: float = 0.0
    device_max_power_w: float = 0.1
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PlantedTruths:
    """What the twin planted, in the terms calibrations report (the world model gives it out;
    calibration gets it only as an argument, to compare with what it measured)."""

    response_rad: dict[str, np.ndarray]          # phase delay per gray level, by SLM role
    crosstalk_sigma_px: dict[str, float]         # by SLM role
    decoder_shift_m: tuple[float, float]         # where the decoding SLM sits in the beam (x, y)
    decoder_rotation_deg: float
    output_to_sensor: np.ndarray                 # 2x3: output-plane metres (x, y) -> sensor pixels
