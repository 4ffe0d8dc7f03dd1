"""Each SLM's wavefront error, measured by phase diversity with the camera, and its correction.

SLM1 first: SLM2 shows a flat phase (its correction, if any, in force) and SLM1 shows lenses that
focus a few waves of defocus before and behind the sensor; then SLM2, with SLM1's new correction
in force (so the light arriving on SLM2 is flat), shows lenses focusing around the sensor. The
pictures are fitted by :mod:`optgen.calibration.wavefront_fit`: the Zernike terms of the panel's
wavefront over the used area (Noll 2..15), the light SLM1 receives (a Gaussian: centre and waist)
and the unmodulated fraction. The correction (minus the wavefront from Noll 4 on) is added to every
phase SLM1 shows, and SLM2's where the bench file asks for it (decision 0013), as slmsuite's source
phase on top of a vendor correction file the bench file names; piston and tilt stay uncorrected: a
tilt only moves the light, which the alignment measures.

The pictures are read in the output plane through the sensor's measured offset and rotation (the
alignment, if any, else the bench file's placement) at the camera's own pitch: the alignment's fitted
scale holds the very defocus this measures.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from optgen.calibration.record import CalibrationRecord
from optgen.calibration.session import CalibrationError
from optgen.calibration.wavefront_fit import PupilGrid, fit_pupil, gaussian_light, model_pictures, pattern_terms
from optgen.drivers.common.light_path import LightPath
from optgen.drivers.common.patterns import lens_phase
from optgen.drivers.common.roles import DECODING, ENCODING
from optgen.drivers.common.zernike import wavefront

__all__ = ["CORRECTED_FROM", "DIVERSITY_WAVES", "NOLL", "WavefrontCalibration", "WavefrontPictures", "capture_wavefront",
           "fit_wavefront", "measure_wavefront",
           "nominal_output_to_sensor", "wavefront_correction_rad"]

NOLL = tuple(range(2, 16))          # fitted: tilt to spherical and the 4th-order terms
CORRECTED_FROM = 4                  # corrected: defocus on (piston and tilt belong to the alignment)
DIVERSITY_WAVES = (-6.0, -3.0, 3.0, 6.0)   # defocus of the lenses, waves peak-to-valley at the beam's edge
FLYBACK_PX = 2.0                    # continuous lenses: a sub-pixel shift of the SLM keeps their shape
MAX_MISFIT = 0.10                   # a fit that explains less of the pictures did not converge
MAX_COEFFICIENT_WAVES = 4.0         # beyond: outside the method's range (the spots leave the model grid)
_LABEL = {ENCODING: "encoding", DECODING: "decoding"}


@dataclass
class WavefrontCalibration:
    """One SLM's measured wavefront (waves, Zernike over ``radius_m`` about the SLM's centre)."""

    key: str
    noll: tuple[int, ...]
    coefficients_waves: np.ndarray
    radius_m: float
    misfit: float                         # share of the pictures the fit leaves unexplained
    unmodulated_fraction: float           # measured (calibration.unmodulated), else as the fit sees it
    beam_centre_m: tuple[float, float]    # the Gaussian the fit found on this SLM
    beam_waist_m: float
    diversity_waves: tuple[float, ...] = DIVERSITY_WAVES
    iterations: int = 0
    pictures: np.ndarray | None = field(default=None, repr=False)        # (k, n, n) measured, normalised
    model: np.ndarray | None = field(default=None, repr=False)           # (k, n, n) the fit's pictures
    sensor_cell_m: float = 0.0            # the pictures' cell in the sensor plane
    distance_m: float = 0.0               # SLM -> sensor the fit assumed
    extent_m: float = 0.0                 # half side of the square the correction covers (0: all)
    unmodulated_from: str = "the phase-diversity fit"   # or how it was measured
    unmodulated_fit: float = float("nan")               # the fit's own figure, when measured otherwise
    wrap_blur_px: float = float("nan")                  # the blur of 2 pi wraps the measurement found

    def with_unmodulated(self, fraction: float, how: str, wrap_blur_px: float) -> "WavefrontCalibration":
        """This calibration with the unmodulated fraction measured by ``how`` (the fit's kept aside)."""
        from dataclasses import replace

        return replace(self, unmodulated_fraction=float(fraction), unmodulated_from=how,
                       unmodulated_fit=self.unmodulated_fraction, wrap_blur_px=float(wrap_blur_px))

    def corrected_waves(self) -> np.ndarray:
        """The coefficients the correction takes out (Noll >= CORRECTED_FROM), zeros elsewhere."""
        return np.array([c if j >= CORRECTED_FROM else 0.0 for j, c in zip(self.noll, self.coefficients_waves)])

    def wavefront_waves(self, shape: tuple[int, int], pitch_m: float, *, corrected_only: bool = False) -> np.ndarray:
        """The measured wavefront on an SLM-shaped grid (waves)."""
        coeffs = self.corrected_waves() if corrected_only else self.coefficients_waves
        full = np.zeros(max(self.noll))
        for j, c in zip(self.noll, coeffs):
            full[j - 1] = c
        return wavefront(full, shape, pitch_m, self.radius_m, clamp_m=self.extent_m or None)

    def to_record(self, base: dict) -> CalibrationRecord:
        results = {"noll": np.asarray(self.noll, dtype=np.float64),
                   "coefficients_waves": np.asarray(self.coefficients_waves, dtype=np.float64),
                   "radius_m": float(self.radius_m), "corrected_from": float(CORRECTED_FROM),
                   "extent_m": float(self.extent_m),
                   "unmodulated_fraction": float(self.unmodulated_fraction),
                   "beam_centre_m": np.asarray(self.beam_centre_m, dtype=np.float64),
                   "beam_waist_m": float(self.beam_waist_m)}
        raw = {"diversity_waves": np.asarray(self.diversity_waves, dtype=np.float64)}
        if self.pictures is not None:
            raw["pictures"] = self.pictures.astype(np.float32)
        if self.model is not None:
            raw["model"] = self.model.astype(np.float32)
        return CalibrationRecord(**base, results=results, raw=raw, residuals={"misfit": float(self.misfit)},
                                 info={"iterations": self.iterations, "sensor_cell_m": self.sensor_cell_m,
                                       "distance_m": self.distance_m, "unmodulated_from": self.unmodulated_from,
                                       "unmodulated_fit": self.unmodulated_fit, "wrap_blur_px": self.wrap_blur_px,
                                       "method": "phase diversity, lenses of " + ", ".join(
                                           f"{d:+g}" for d in self.diversity_waves) + " waves of defocus"})

    @classmethod
    def from_record(cls, record) -> "WavefrontCalibration":
        r = record.results
        return cls(key=record.device, noll=tuple(int(j) for j in np.asarray(r["noll"])),
                   coefficients_waves=np.asarray(r["coefficients_waves"], dtype=np.float64),
                   radius_m=float(r["radius_m"]), misfit=float(record.residuals.get("misfit", np.nan)),
                   extent_m=float(r["extent_m"]),
                   unmodulated_fraction=float(r["unmodulated_fraction"]),
                   beam_centre_m=tuple(float(v) for v in np.asarray(r["beam_centre_m"])),
                   beam_waist_m=float(r["beam_waist_m"]),
                   diversity_waves=tuple(float(v) for v in np.asarray(record.raw.get("diversity_waves", ()))),
                   iterations=int(record.info.get("iterations", 0)),
                   pictures=record.raw.get("pictures"), model=record.raw.get("model"),
                   sensor_cell_m=float(record.info.get("sensor_cell_m", 0.0)),
                   distance_m=float(record.info.get("distance_m", 0.0)),
                   unmodulated_from=str(record.info.get("unmodulated_from", "the phase-diversity fit")),
                   unmodulated_fit=_number(record.info.get("unmodulated_fit")),
                   wrap_blur_px=_number(record.info.get("wrap_blur_px")))


def _number(value) -> float:
    """A figure from a record's info (NaN where absent or not a number)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def wavefront_correction_rad(cal: WavefrontCalibration | None, shape: tuple[int, int], pitch_m: float) -> np.ndarray | None:
    """The phase (radians, SLM-shaped) added to every pattern to take the measured wavefront out."""
    if cal is None:
        return None
    return (-2.0 * np.pi * cal.wavefront_waves(shape, pitch_m, corrected_only=True)).astype(np.float32)


def nominal_output_to_sensor(b: LightPath) -> np.ndarray:
    """The bench file's sensor placement as a 2x3 map output-plane metres -> sensor pixel."""
    a = np.deg2rad(b.sensor_rotation_deg)
    rot_inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) / b.camera_pitch_m
    rows, cols = b.camera_shape
    centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    return np.hstack([rot_inv, (centre - rot_inv @ np.asarray(b.sensor_offset_m))[:, None]])


def at_camera_pitch(output_to_sensor: np.ndarray, camera_pitch_m: float) -> np.ndarray:
    """``output_to_sensor`` with its scale set to the camera's pitch (rotation, mirror and offset kept)."""
    m = np.array(output_to_sensor, dtype=np.float64)
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
    m[:, :2] /= scale * camera_pitch_m
    return m


def _on_model_grid(frame: np.ndarray, output_to_sensor: np.ndarray, grid: PupilGrid,
                   camera_pitch_m: float, magnification: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A frame (counts) sampled at the model's sensor-plane grid points (bilinear between the camera's
    pixels), and its weights (1 on the sensor). The model's pictures are the light at those points,
    so the frame is not averaged over a cell first: a cell-wide blur of the data that the model
    lacks read as a beam 6 % narrower. ``magnification``: the sensor sees the model's plane this
    much larger (a lens on the way)."""
    n, du = grid.n, grid.du_m * magnification
    lin = output_to_sensor[:, :2] * du
    shift = output_to_sensor[:, 2] - output_to_sensor[:, :2] @ np.array([n / 2 * du, n / 2 * du])
    warp = np.hstack([lin, shift[:, None]]).astype(np.float64)
    picture = cv2.warpAffine(np.asarray(frame, dtype=np.float32), warp, (n, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    weights = np.isfinite(picture).astype(np.float64)
    return np.nan_to_num(picture).astype(np.float64), weights


def _geometry(b: LightPath, key: str, d1_m: float, d2_m: float) -> tuple[float, float, float, tuple[int, int]]:
    """(distance to the sensor, beam side, Zernike radius, SLM shape) for the SLM under test. The
    radius reaches the corners of the used square (the seed on SLM1, the decoder on SLM2), where the
    correction stops growing."""
    if key == ENCODING:
        side = b.seed_m
        return d1_m + d2_m, side, side / math.sqrt(2.0), b.encoding_shape
    side = max(b.seed_m, b.decoder_px * b.pitch_m)
    return d2_m, b.seed_m, side / math.sqrt(2.0), b.decoding_shape


@dataclass
class WavefrontPictures:
    """What :func:`capture_wavefront` took of one SLM: the pictures on the model grid and how."""

    key: str
    grid: PupilGrid
    patterns: list
    pictures: list
    weights: list
    half_m: float            # half side of the light's square
    radius_m: float          # the Zernike radius
    distance_m: float        # SLM -> sensor
    d1_m: float


def capture_wavefront(session, key: str, output_to_sensor: np.ndarray | None, *, frames: int = 2,
                      distances_m: tuple[float, float] | None = None,
                      slm2_power_per_m: float = 0.0) -> WavefrontPictures:
    """Show the diversity lenses on SLM ``key`` (the other SLM flat, corrections in force) and take
    their pictures. ``output_to_sensor``: the alignment's map (its offset and rotation are used),
    else None for the bench file's placement. ``distances_m``: the measured (d1, d2), else the
    bench file's: a distance that is off reads as defocus. CalibrationError where a spot falls
    mostly off the sensor.

    ``slm2_power_per_m``: for SLM1, the power SLM2 adds on its own (its panel's defocus, measured
    with the distances). SLM1 -> SLM2 (that lens) -> sensor has the ray matrix [[A, B], [C, D]]
    with A = 1 - d2 p, B = d1 + d2 - d1 d2 p, and its pictures are free space over B / A seen
    magnified A times; so the pictures are fitted as that, and SLM2's defocus does not pass for
    SLM1's (nor bend the beam's size)."""
    b = session.config.light_path
    d1, d2 = distances_m if distances_m is not None else (b.d1_m, b.d2_m)
    distance, side, radius, shape = _geometry(b, key, d1, d2)
    magnification = 1.0
    if key == ENCODING and slm2_power_per_m:
        magnification = 1.0 - d2 * slm2_power_per_m
        distance = (d1 + d2 - d1 * d2 * slm2_power_per_m) / magnification
    grid = PupilGrid.for_path(b.pitch_m, b.wavelength_m, distance, side, radius, NOLL, shape)
    half = side / 2.0
    m = at_camera_pitch(output_to_sensor if output_to_sensor is not None else nominal_output_to_sensor(b),
                        b.camera_pitch_m)
    patterns = [lens_phase(shape, b.pitch_m, b.wavelength_m, 1.0 / (1.0 / distance + 2.0 * b.wavelength_m * d / half**2),
                           flyback_px=FLYBACK_PX) for d in DIVERSITY_WAVES]
    other = DECODING if key == ENCODING else ENCODING
    flat = np.zeros(session.slms[other].shape, dtype=np.float32)        # radians: the correction applies
    session.show(**{_LABEL[other]: flat})
    pictures, weights = [], []
    with session.power_kept(), session.light():
        for pattern in patterns:
            session.show(**{_LABEL[key]: pattern})
            session.auto_exposure_dimming(target_fraction=0.6)
            picture, weight = _on_model_grid(session.capture(frames), m, grid, b.camera_pitch_m, magnification)
            pictures.append(picture)
            weights.append(weight)
    for i, (picture, weight) in enumerate(zip(pictures, weights)):
        if weight.mean() < 0.2 or float((picture * weight).sum()) <= 0:
            raise CalibrationError(f"wavefront of the {_LABEL[key]} SLM: the defocused spot of lens {i + 1} falls mostly "
                                   f"off the sensor; centre the camera on the optical axis, or check [geometry] d1_mm, "
                                   f"d2_mm")
    return WavefrontPictures(key, grid, patterns, pictures, weights, half, radius, distance, d1)


def fit_wavefront(taken: WavefrontPictures, crosstalk_sigma_px: float, *, beam: WavefrontCalibration | None = None,
                  decoder_shift_m: tuple[float, float] = (0.0, 0.0),
                  cancel: threading.Event | None = None) -> WavefrontCalibration:
    """Fit the pupil model to the pictures (no device is touched: it may run while the bench measures
    something else). For SLM2, ``beam`` is SLM1's calibration: the Gaussian it found, carried over
    d1 to SLM2 (which sits ``decoder_shift_m`` off the beam), is the light SLM2 gets.
    CalibrationError where the fit cannot explain the pictures; ``cancel``: see ``fit_pupil``."""
    key, grid, half = taken.key, taken.grid, taken.half_m
    terms = [pattern_terms(p, grid, crosstalk_sigma_px) for p in taken.patterns]
    light = None
    if key == DECODING and beam is not None and beam.beam_waist_m > 0:
        shift = (-decoder_shift_m[0], -decoder_shift_m[1])          # the beam's axis in SLM2's frame
        light = gaussian_light(grid, (beam.beam_centre_m[0] + shift[0], beam.beam_centre_m[1] + shift[1]),
                               beam.beam_waist_m, half, shift, taken.d1_m)
    pictures, weights = taken.pictures, taken.weights
    fit = fit_pupil(grid, terms, pictures, weights, light=light, aperture_half_m=half, cancel=cancel)
    if not np.isfinite(fit.coefficients_waves).all() or fit.residual > MAX_MISFIT \
            or float(np.abs(fit.coefficients_waves).max()) > MAX_COEFFICIENT_WAVES:
        raise CalibrationError(
            f"wavefront of the {_LABEL[key]} SLM: the fit explains the defocused spots only to {fit.residual:.0%} "
            f"misfit (largest term {float(np.abs(fit.coefficients_waves).max()):.2f} waves): an aberration beyond this "
            f"method's range (about {MAX_COEFFICIENT_WAVES:g} waves) or pictures that are not spots. Check that the "
            f"beam reaches the sensor through both SLMs, [geometry] d1_mm and d2_mm, and load the vendor's correction "
            f"file ([{key}] wavefront_correction) as a starting point; the previous calibration stays in force")
    model = model_pictures(grid, terms, fit, light=light, aperture_half_m=half)
    norm = [max(float(p.max()), 1e-30) for p in pictures]
    centre = fit.beam_centre_m if fit.beam_centre_m is not None else (0.0, 0.0)
    return WavefrontCalibration(
        key=key, noll=NOLL, coefficients_waves=fit.coefficients_waves, radius_m=taken.radius_m, misfit=fit.residual,
        unmodulated_fraction=fit.unmodulated_fraction,
        beam_centre_m=(float(centre[0]), float(centre[1])),
        beam_waist_m=float(fit.beam_waist_m or 0.0), iterations=fit.iterations,
        pictures=np.stack([p / s for p, s in zip(pictures, norm)]),
        model=np.stack([mp / max(float(mp.max()), 1e-30) for mp in model]), sensor_cell_m=grid.du_m,
        distance_m=taken.distance_m, extent_m=taken.radius_m / math.sqrt(2.0))


def measure_wavefront(session, key: str, output_to_sensor: np.ndarray | None, crosstalk_sigma_px: float,
                      *, frames: int = 2, beam: WavefrontCalibration | None = None,
                      decoder_shift_m: tuple[float, float] = (0.0, 0.0),
                      distances_m: tuple[float, float] | None = None,
                      slm2_power_per_m: float = 0.0) -> WavefrontCalibration:
    """:func:`capture_wavefront`, then :func:`fit_wavefront`."""
    taken = capture_wavefront(session, key, output_to_sensor, frames=frames, distances_m=distances_m,
                              slm2_power_per_m=slm2_power_per_m)
    return fit_wavefront(taken, crosstalk_sigma_px, beam=beam, decoder_shift_m=decoder_shift_m)
