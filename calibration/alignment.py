"""Misalignment of the bench, measured from focal spots: where the sensor sits in the output plane,
and where the decoding SLM (SLM2) sits in the encoding SLM's (SLM1's) beam.

Frames and conventions
----------------------
- The *beam frame* is SLM1's pixel grid: metres (x, y) from SLM1's centre pixel
  ((cols - 1) / 2, (rows - 1) / 2), x along columns, y along rows (down). The optical axis
  passes through that centre, in every plane. The *output plane* uses the same (x, y) axes.
- ``SensorRegistration.output_to_sensor`` is a 2x3 affine: output-plane metres (x, y) ->
  sensor pixel (x = column, y = row; pixel centres at integers, as OpenCV). Its decomposition
  follows the twin's ``SensorTruth``: ``offset_m`` is the output-plane point under the sensor's
  centre pixel, ``rotation_deg`` the sensor's rotation in the output plane, ``pitch_ratio`` the
  sensor pitch the spots imply over the bench file's camera pitch (1 when the pitch and
  d1 + d2 are as stated).
- ``DecoderPlacement`` follows the twin's ``SLMTruth``: SLM2 pixel ``q`` (metres from SLM2's
  centre pixel) lies at beam position ``R(rotation_deg) q + shift_m``, R rotating x towards y.

Method
------
1. Sensor (``measure_sensor_registration``): SLM2 shows a uniform pattern, so its placement does
   not matter. SLM1 shows a lens of focal length d1 + d2 centred at (x0, y0), which is a centred
   lens plus a linear grating: the beam focuses in the output plane at (x0, y0). A grid x grid
   set of such spots spans ``span_fraction`` of the output window. Each spot's sub-pixel
   position is an iterated Gaussian-weighted centroid over the local background (the
   unmodulated zero order: the SLM LUTs may not be calibrated yet). A least-squares similarity
   (rotation, isotropic scale, offset; a mirror image is detected too) maps the spot positions
   (metres) to the detected ones (camera pixels); its RMS residual is reported. The scale
   absorbs an error in d1 + d2 (the output plane is then measured in "nominal" metres).
2. SLM2 (``measure_decoder_placement``): SLM1 is flat (a plane wave over the beam). SLM2 shows a
   lens of focal length d2 centred at SLM2 pixel c; the light focuses in the output plane at c's
   place in the beam, whatever SLM2's shift and rotation (the focus of a lens that covers the
   whole beam is where its centre is, independently of the beam's profile). The spots are mapped
   back to the output plane with step 1, and a least-squares rigid transform (Kabsch) SLM2 metres
   -> beam metres gives the shift and rotation. The lens centres span ``span_fraction`` (0.6) of
   the output window: the lens must stay well sampled where the beam crosses it.
   The lens's 2 pi jumps are replaced by a linear return over ``flyback_px`` (2) pixels, so its
   phase is continuous. Reason: a sub-pixel move of a pattern with sharp 2 pi jumps is not
   reproduced by resampling its pixels (measured while the twin resampled SLM2's phase bilinearly
   into the beam; since session 25 it mixes the pixels' transmissions, decision 0029;
   without crosstalk, a blazed grating moved by 0.1 pixel that way moves by only ~0.005 pixel,
   one moved by 0.25 pixel by ~0.07). With sharp jumps the twin's SLM2 shift came out 30-60 % short of the planted
   sub-pixel part and a planted 0.1 deg rotation read 0.04 deg; with the flyback both are within
   a few percent (shift errors < 0.25 um). What remains is that resampling: it still shortens
   sub-pixel rotations by ~10-20 % (0.2 deg read as ~0.175 deg). On a real SLM the flyback only
   costs first-order efficiency where the local period is short.
   Fitting the twin to the frames (the "refine" option) is deliberately not done: it would
   calibrate the twin's resampling model, not the bench.
3. Exposure: before each step the brightest pattern (the centred spot) is shown and
   ``session.auto_exposure()`` picks the exposure. The spots then go out as one pipelined sweep
   (``session.sweep``, lens patterns turned into gray levels first); a frame that saturates
   sends the step back to one spot at a time, re-exposing once on that pattern. A focal spot concentrates the beam thousands of times more than an image:
   where it saturates even at the shortest exposure the session's laser power is lowered tenfold
   (up to six times) for the measurement and restored afterwards. The laser is on only inside
   ``session.light()``.

A spot not found (no light, beam blocked, a flat frame), a saturated frame, a spot at or past
the sensor edge, or spots that do not follow the commanded grid (residual > 2 px) stop the
measurement with a CalibrationError that says which and what to check.

Patterns: (grid**2 + 1) uploads for step 1 (SLM2 flat, then SLM1 spots) and (grid**2 + 1) for
step 2 (SLM1 flat, then SLM2 lenses): 20 for the default 3 x 3 grids, 2 frames per spot
(about 60 frames with the exposure search and dark frames; ~5 s on the full 800 x 800 twin).

The run compensates the measured placement when it shows the decoder
(``optgen.lab.run.placement.place_decoder``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from optgen.calibration.alignment_spots import find_spot, measure_spots
from optgen.calibration.record import CalibrationRecord
from optgen.calibration.session import CalibrationError
from optgen.drivers.common.light_path import LightPath
from optgen.drivers.common.patterns import lens_phase
from optgen.drivers.common.roles import DECODING, ENCODING

__all__ = [
    "DecoderPlacement",
    "SensorRegistration",
    "find_spot",
    "fit_placement",
    "fit_rigid",
    "fit_similarity",
    "alignment_record",
    "measure_decoder_placement",
    "measure_sensor_registration",
    "rotation_matrix",
]


# --- results --------------------------------------------------------------------------------
@dataclass
class SensorRegistration:
    """Where the sensor sits in the output plane (see the module docstring for conventions)."""

    output_to_sensor: np.ndarray          # 2x3: output-plane metres (x, y), origin on the axis -> sensor px (x, y)
    offset_m: tuple[float, float]
    rotation_deg: float
    pitch_ratio: float
    residual_px: float                    # RMS distance of the spots from the fitted map (camera px)
    expected_m: np.ndarray                # (N, 2) spot positions commanded, output-plane metres
    detected_px: np.ndarray               # (N, 2) spot centroids found, sensor px
    mirrored: bool = False                # the sensor sees the output plane mirror-imaged
    camera_pitch_m: float = 0.0           # the bench file's camera pitch the ratio refers to
    window_m: float = 0.0                 # side of the output window (output_window_px x SLM pitch)
    composite: np.ndarray | None = field(default=None, repr=False, compare=False)  # max over spot frames

    def to_sensor(self, points_m: np.ndarray) -> np.ndarray:
        """Output-plane metres (N, 2) -> sensor pixels (N, 2)."""
        return _apply(self.output_to_sensor, points_m)

    def to_output(self, points_px: np.ndarray) -> np.ndarray:
        """Sensor pixels (N, 2) -> output-plane metres (N, 2)."""
        return _apply(cv2.invertAffineTransform(self.output_to_sensor), points_px)

    def as_dict(self) -> dict:
        return {"output_to_sensor": self.output_to_sensor.tolist(), "offset_m": list(self.offset_m),
                "rotation_deg": self.rotation_deg, "pitch_ratio": self.pitch_ratio,
                "residual_px": self.residual_px, "mirrored": self.mirrored,
                "camera_pitch_m": self.camera_pitch_m, "window_m": self.window_m,
                "expected_m": self.expected_m.tolist(), "detected_px": self.detected_px.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> SensorRegistration:
        return cls(output_to_sensor=np.asarray(d["output_to_sensor"], dtype=np.float64),
                   offset_m=tuple(d["offset_m"]), rotation_deg=float(d["rotation_deg"]),
                   pitch_ratio=float(d["pitch_ratio"]), residual_px=float(d["residual_px"]),
                   expected_m=np.asarray(d["expected_m"], dtype=np.float64).reshape(-1, 2),
                   detected_px=np.asarray(d["detected_px"], dtype=np.float64).reshape(-1, 2),
                   mirrored=bool(d.get("mirrored", False)), camera_pitch_m=float(d.get("camera_pitch_m", 0.0)),
                   window_m=float(d.get("window_m", 0.0)))

    @classmethod
    def from_record(cls, record) -> SensorRegistration:
        """The registration an alignment record holds (see :func:`alignment_record`)."""
        r = record.results
        return cls(output_to_sensor=np.asarray(r["output_to_sensor"], dtype=np.float64),
                   offset_m=tuple(float(v) for v in r["sensor_offset_m"]),
                   rotation_deg=float(r["sensor_rotation_deg"]), pitch_ratio=float(r["sensor_pitch_ratio"]),
                   residual_px=float(record.residuals.get("sensor_residual_px", 0.0)),
                   expected_m=np.asarray(record.raw.get("sensor_expected_m", np.zeros((0, 2)))),
                   detected_px=np.asarray(record.raw.get("sensor_detected_px", np.zeros((0, 2)))))


@dataclass
class DecoderPlacement:
    """Where SLM2's pixel grid sits in SLM1's beam (the twin's ``shift_m`` / ``rotation_deg``)."""

    shift_m: tuple[float, float]
    rotation_deg: float
    residual_m: float                     # RMS distance of the spots from the fitted placement
    centres_px: np.ndarray                # (N, 2) lens centres shown, SLM2 pixel (x, y)
    detected_m: np.ndarray                # (N, 2) foci found, output-plane metres
    pitch_m: float = 0.0                  # SLM2 pixel pitch used
    slm_centre_px: tuple[float, float] = (0.0, 0.0)   # SLM2's centre pixel (x, y)
    composite: np.ndarray | None = field(default=None, repr=False, compare=False)
    stretch: tuple[float, float] = (1.0, 1.0)  # the foci's spacing / the lens centres' (largest, smallest)

    @classmethod
    def from_record(cls, record) -> DecoderPlacement:
        """The placement an alignment record holds (see :func:`alignment_record`)."""
        r = record.results
        return cls(shift_m=tuple(float(v) for v in r["decoder_shift_m"]), rotation_deg=float(r["decoder_rotation_deg"]),
                   residual_m=float(record.residuals.get("decoder_residual_m", 0.0)),
                   centres_px=record.raw.get("decoder_centres_px", np.zeros((0, 2))),
                   detected_m=record.raw.get("decoder_detected_m", np.zeros((0, 2))),
                   pitch_m=float(r["decoder_pitch_m"]), slm_centre_px=tuple(float(v) for v in r["decoder_slm_centre_px"]))

    def slm_to_beam(self, centres_px: np.ndarray) -> np.ndarray:
        """SLM2 pixel (x, y) (N, 2) -> beam metres (N, 2) under this placement."""
        q = (np.asarray(centres_px, dtype=np.float64) - np.asarray(self.slm_centre_px)) * self.pitch_m
        return q @ rotation_matrix(self.rotation_deg).T + np.asarray(self.shift_m)

    def as_dict(self) -> dict:
        return {"shift_m": list(self.shift_m), "rotation_deg": self.rotation_deg, "residual_m": self.residual_m,
                "pitch_m": self.pitch_m, "slm_centre_px": list(self.slm_centre_px),
                "centres_px": self.centres_px.tolist(), "detected_m": self.detected_m.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> DecoderPlacement:
        return cls(shift_m=tuple(d["shift_m"]), rotation_deg=float(d["rotation_deg"]),
                   residual_m=float(d["residual_m"]),
                   centres_px=np.asarray(d["centres_px"], dtype=np.float64).reshape(-1, 2),
                   detected_m=np.asarray(d["detected_m"], dtype=np.float64).reshape(-1, 2),
                   pitch_m=float(d.get("pitch_m", 0.0)), slm_centre_px=tuple(d.get("slm_centre_px", (0.0, 0.0))))


# --- geometry helpers -----------------------------------------------------------------------
def rotation_matrix(deg: float) -> np.ndarray:
    """2-D rotation by ``deg`` degrees (x towards y)."""
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ np.asarray(affine, dtype=np.float64)[:, :2].T + np.asarray(affine, dtype=np.float64)[:, 2]


def _centre(shape: tuple[int, int]) -> tuple[float, float]:
    """Centre pixel (x, y) of an array of ``shape`` (rows, cols)."""
    return ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)


def fit_similarity(src: np.ndarray, dst: np.ndarray, allow_mirror: bool = True) -> tuple[np.ndarray, bool]:
    """Least-squares 2x3 similarity src -> dst (rotation, isotropic scale, shift), and whether the
    best fit is mirrored (used only when it fits clearly better than the proper one)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if len(src) < 2:
        raise ValueError("a similarity needs at least two points")
    x, y = src[:, 0], src[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    best = None
    for mirror in ((False, True) if allow_mirror else (False,)):
        s = -1.0 if mirror else 1.0
        # u = a x - b y + tx ; v = b x + a y + ty  (proper); the mirror flips the sign of y
        a_mat = np.concatenate([np.c_[x, -s * y, one, zero], np.c_[s * y, x, zero, one]])
        rhs = np.concatenate([dst[:, 0], dst[:, 1]])
        (a, b, tx, ty), *_ = np.linalg.lstsq(a_mat, rhs, rcond=None)
        m = np.array([[a, -s * b, tx], [b, s * a, ty]])
        err = float(np.sum((_apply(m, src) - dst) ** 2))
        if best is None or err < 0.25 * best[1]:
            best = (m, err, mirror)
    return best[0], best[2]


def fit_rigid(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares rotation (degrees) and shift with dst = R src + shift (Kabsch, 2-D)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    p, q = src - ms, dst - md
    angle = math.atan2(float(np.sum(p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0])), float(np.sum(p * q)))
    deg = math.degrees(angle)
    return deg, md - rotation_matrix(deg) @ ms


def fit_placement(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, tuple[float, float], float]:
    """The least-squares affine dst = A src + shift, as (rotation in degrees: the proper rotation
    nearest A; shift; A's singular values, largest first; RMS residual)."""
    src = np.asarray(src, dtype=np.float64)
    design = np.c_[src, np.ones(len(src))]
    coefficients, *_ = np.linalg.lstsq(design, np.asarray(dst, dtype=np.float64), rcond=None)
    linear, shift = coefficients[:2].T, coefficients[2]
    deg = math.degrees(math.atan2(linear[1, 0] - linear[0, 1], linear[0, 0] + linear[1, 1]))
    residual = float(np.sqrt(np.mean(np.sum((design @ coefficients - dst) ** 2, axis=1))))
    stretch = np.linalg.svd(linear, compute_uv=False)
    return deg, shift, (float(stretch[0]), float(stretch[1])), residual


# --- spots ----------------------------------------------------------------------------------
MAX_RESIDUAL_PX = 2.0      # spots further than this from the fitted map: not the spots commanded
MAX_PLACEMENT_STRETCH = 0.05   # SLM2's foci spaced further from its lens centres' spacing: not those lenses


# --- measurement plumbing --------------------------------------------------------------------
def _grid_points(grid: int, half_span_m: float) -> np.ndarray:
    """(grid**2, 2) points (x, y), centre first, then row by row."""
    if grid < 2:
        raise ValueError(f"grid {grid}: need at least 2 x 2 spots")
    v = np.linspace(-half_span_m, half_span_m, grid)
    pts = np.array([(x, y) for y in v for x in v], dtype=np.float64)
    order = np.argsort(np.hypot(pts[:, 0], pts[:, 1]), kind="stable")
    return pts[order]


def _nominal_output_to_sensor(b: LightPath) -> np.ndarray:
    """The bench file's sensor placement as a 2x3 map output-plane metres -> sensor pixel."""
    a = np.deg2rad(b.sensor_rotation_deg)
    rot_inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) / b.camera_pitch_m
    centre = np.array(_centre(b.camera_shape))
    return np.hstack([rot_inv, (centre - rot_inv @ np.asarray(b.sensor_offset_m))[:, None]])


def _check_on_sensor(label: str, output_to_sensor: np.ndarray, points_m: np.ndarray,
                     camera_shape: tuple[int, int], source: str) -> None:
    """CalibrationError if a spot would land off the sensor (as ``source`` places the sensor)."""
    h, w = camera_shape
    for i, (x, y) in enumerate(_apply(output_to_sensor, points_m)):
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            raise CalibrationError(
                f"{label}: spot {i + 1}/{len(points_m)} would land at sensor pixel ({x:.0f}, {y:.0f}), off the "
                f"{w}x{h} sensor (by {source}); reduce span_fraction, or centre the camera on the optical axis "
                f"and state its placement in [geometry] sensor_offset_um / sensor_rotation_deg")


# --- step 1: the sensor ----------------------------------------------------------------------
def measure_sensor_registration(session, *, grid: int = 3, span_fraction: float = 0.8,
                                frames: int = 2) -> SensorRegistration:
    """Find the sensor's placement in the output plane from grid x grid focal spots of SLM1.

    The spots span ``span_fraction`` of the output window (output_window_px at the SLM pitch)."""
    b = session.config.light_path
    focal = b.d1_m + b.d2_m
    expected = _grid_points(grid, 0.5 * span_fraction * b.window_m)
    patterns = [lens_phase(b.encoding_shape, b.pitch_m, b.wavelength_m, focal, tuple(p), wrapped=True) for p in expected]
    scale_px = b.wavelength_m * focal / b.seed_m / b.camera_pitch_m
    _check_on_sensor("sensor registration", _nominal_output_to_sensor(b), expected, b.camera_shape,
                     "the bench file's nominal sensor placement")
    session.show(decoding=session.uniform(DECODING))
    with session.power_kept(), session.light():
        detected, composite = measure_spots(session, "sensor registration", ENCODING, patterns, scale_px, frames)
    reg = _sensor_from_spots(expected, detected, b.camera_pitch_m, b.camera_shape, composite)
    reg.window_m = b.window_m
    if not (0.5 < reg.pitch_ratio < 2.0) or reg.residual_px > MAX_RESIDUAL_PX:
        raise CalibrationError(
            f"sensor registration: the spots found do not follow the spots shown (scale {reg.pitch_ratio:.3g} of "
            f"the bench file's camera pitch, residual {reg.residual_px:.2f} px RMS); check [geometry] d1_mm and "
            f"d2_mm, [camera] pitch_um, and for stray light or a second bright spot on the sensor")
    return reg


def _sensor_from_spots(expected_m: np.ndarray, detected_px: np.ndarray, camera_pitch_m: float,
                       camera_shape: tuple[int, int], composite: np.ndarray | None = None) -> SensorRegistration:
    m, mirrored = fit_similarity(expected_m, detected_px)
    residual = float(np.sqrt(np.mean(np.sum((_apply(m, expected_m) - detected_px) ** 2, axis=1))))
    lin = m[:, :2]
    scale = math.sqrt(abs(np.linalg.det(lin)))         # sensor px per metre
    proper = lin.copy()
    if mirrored:
        proper[:, 1] *= -1.0
    # output -> sensor is R(-theta) / pitch: theta from the proper part
    theta = math.degrees(math.atan2(proper[0, 1] - proper[1, 0], proper[0, 0] + proper[1, 1]))
    centre = np.array(_centre(camera_shape))
    offset = np.linalg.solve(lin, centre - m[:, 2])
    return SensorRegistration(output_to_sensor=m, offset_m=(float(offset[0]), float(offset[1])),
                              rotation_deg=theta, pitch_ratio=1.0 / (scale * camera_pitch_m),
                              residual_px=residual, expected_m=np.asarray(expected_m, dtype=np.float64),
                              detected_px=detected_px, mirrored=mirrored, camera_pitch_m=camera_pitch_m,
                              composite=composite)


# --- step 2: SLM2 in the beam -----------------------------------------------------------------
def measure_decoder_placement(session, sensor: SensorRegistration, *, grid: int = 3,
                              span_fraction: float = 0.6, frames: int = 2,
                              flyback_px: float = 2.0) -> DecoderPlacement:
    """Find SLM2's shift and rotation in SLM1's beam from grid x grid lenses of focal length d2 on SLM2.

    The lens centres span ``span_fraction`` of the output window around SLM2's centre."""
    b = session.config.light_path
    offsets = _grid_points(grid, 0.5 * span_fraction * b.window_m)
    centre2 = np.array(_centre(b.decoding_shape))
    centres_px = centre2 + offsets / b.pitch_m
    _check_on_sensor("SLM2 placement", sensor.output_to_sensor, offsets, b.camera_shape, "the sensor registration")
    patterns = [lens_phase(b.decoding_shape, b.pitch_m, b.wavelength_m, b.d2_m, tuple(p), wrapped=True, flyback_px=flyback_px)
                for p in offsets]
    scale_px = b.wavelength_m * b.d2_m / b.seed_m / (b.camera_pitch_m * sensor.pitch_ratio)
    session.show(encoding=session.uniform(ENCODING))
    with session.power_kept(), session.light():
        detected_px, composite = measure_spots(session, "SLM2 placement", DECODING, patterns, scale_px, frames)
    detected_m = sensor.to_output(detected_px)
    placement = _placement_from_spots(centres_px, detected_m, b.pitch_m, tuple(centre2), composite)
    residual_px = placement.residual_m / (b.camera_pitch_m * sensor.pitch_ratio)
    if max(abs(v - 1.0) for v in placement.stretch) > MAX_PLACEMENT_STRETCH:
        raise CalibrationError(
            f"SLM2 placement: the foci are spaced {placement.stretch[0]:.3f} to {placement.stretch[1]:.3f} times the "
            f"lens centres shown (expected within {MAX_PLACEMENT_STRETCH:.0%} of 1); check [decoding_slm] pitch_um; a "
            f"panel that focuses by waves spreads them too: load the vendor's correction ([decoding_slm] "
            f"wavefront_correction)")
    if residual_px > MAX_RESIDUAL_PX:
        raise CalibrationError(
            f"SLM2 placement: the foci found do not follow the lens centres shown (residual {residual_px:.2f} "
            f"camera px RMS); check [geometry] d2_mm, [decoding_slm] pitch_um and for stray light")
    return placement


def _placement_from_spots(centres_px: np.ndarray, detected_m: np.ndarray, pitch_m: float,
                          slm_centre_px: tuple[float, float], composite: np.ndarray | None = None
                          ) -> DecoderPlacement:
    """SLM2's shift and rotation from the foci of lenses centred at ``centres_px``.

    The foci are fitted by an affine map of the lens centres: SLM2's own panel, uncorrected while
    it is placed (decision 0013), focuses a little and astigmatically, and a wrapped lens sends
    most of its light from near its centre, so the foci spread about 1 % less (or more) than the
    centres and unequally along two axes. The map's rotation (the proper rotation nearest to it)
    and its offset are the placement; its stretch (singular values) is kept for the check that
    the spots are the lenses shown."""
    q = (centres_px - np.asarray(slm_centre_px)) * pitch_m
    deg, shift, stretch, residual = fit_placement(q, detected_m)
    return DecoderPlacement(shift_m=(float(shift[0]), float(shift[1])), rotation_deg=deg, residual_m=residual,
                            centres_px=np.asarray(centres_px, dtype=np.float64), detected_m=detected_m,
                            pitch_m=pitch_m, slm_centre_px=(float(slm_centre_px[0]), float(slm_centre_px[1])),
                            composite=composite, stretch=(float(stretch[0]), float(stretch[1])))


# --- the record ----------------------------------------------------------------------------------
def alignment_record(sensor: SensorRegistration, placement: DecoderPlacement, base: dict) -> CalibrationRecord:
    """One alignment calibration file's record: the sensor registration and SLM2's placement
    (read back by :meth:`SensorRegistration.from_record` and :meth:`DecoderPlacement.from_record`)."""
    return CalibrationRecord(
        **base,
        results={"output_to_sensor": np.asarray(sensor.output_to_sensor, dtype=float),
                 "sensor_offset_m": np.asarray(sensor.offset_m, dtype=float),
                 "sensor_rotation_deg": float(sensor.rotation_deg), "sensor_pitch_ratio": float(sensor.pitch_ratio),
                 "decoder_shift_m": np.asarray(placement.shift_m, dtype=float),
                 "decoder_rotation_deg": float(placement.rotation_deg),
                 "decoder_pitch_m": float(placement.pitch_m),
                 "decoder_slm_centre_px": np.asarray(placement.slm_centre_px, dtype=float)},
        raw={"sensor_expected_m": np.asarray(sensor.expected_m), "sensor_detected_px": np.asarray(sensor.detected_px),
             "decoder_centres_px": np.asarray(placement.centres_px),
             "decoder_detected_m": np.asarray(placement.detected_m)},
        residuals={"sensor_residual_px": float(sensor.residual_px), "decoder_residual_m": float(placement.residual_m)},
        info={"sensor_offset_um": [v * 1e6 for v in sensor.offset_m], "sensor_rotation_deg": sensor.rotation_deg,
              "decoder_shift_um": [v * 1e6 for v in placement.shift_m],
              "decoder_rotation_deg": placement.rotation_deg})


# --- the picture ---------------------------------------------------------------------------------
