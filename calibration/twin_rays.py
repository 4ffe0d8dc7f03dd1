"""Where a twin's planted tilts and panel curvature put the light: the alignment's own truths.

The alignment (:mod:`optgen.calibration.alignment`) measures where light lands, not where parts
sit. A tilted beam, the tilt and curvature of a panel that no correction removes (piston and tilt
are left to the alignment, SLM2's panel stays uncorrected in runs: decision 0013) move the focal
spots it finds, so on a realistic twin the sensor registration it measures differs from the
sensor's mechanical placement by several pixels, and SLM2's placement from SLM2's mechanical
shift by the beam's walk over d1. Runs need what the alignment measures (it is where the light
goes); to check it against the twin, the mechanical truths are carried through the same light
path here, by paraxial ray tracing, with nothing taken from a measurement but the corrections
that were in force:

- each panel's phase in force (planted error plus correction) is fitted over the light it
  receives by a quadratic, phi ~ a + g.x + x.H.x / 2, which deflects a ray at x by (g + H x) / k;
- a spot's position is the ray from the light's centroid on SLM1 (linear optics: the centroid of
  the rays is the ray of the centroid), through the pattern's lens, SLM2 and the true distances.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from optgen.calibration.alignment import fit_placement, rotation_matrix
from optgen.drivers.common.patterns import grid_coordinates
from optgen.drivers.common.roles import DECODING, ENCODING

__all__ = ["LightTruths", "PanelOptics", "light_truths", "panel_optics"]

SPAN_SENSOR, SPAN_DECODER = 0.8, 0.6       # the spans the alignment's spots use (fractions of the window)


@dataclass(frozen=True)
class PanelOptics:
    """A panel phase to first order: deflection (radians) of a ray at x is ``tilt + power @ x``."""

    tilt_rad: np.ndarray           # (2,) x, y
    power_per_m: np.ndarray        # (2, 2): the deflection's gradient (a lens of focal f: -I / f)

    def deflect(self, x: np.ndarray) -> np.ndarray:
        return self.tilt_rad + self.power_per_m @ x


FLAT = PanelOptics(np.zeros(2), np.zeros((2, 2)))


def panel_optics(phase_rad: np.ndarray, pitch_m: float, wavelength_m: float, weights: np.ndarray,
                 step: int = 4) -> PanelOptics:
    """Weighted least-squares quadratic of ``phase_rad`` (a centred grid at ``pitch_m``) over
    ``weights`` (the light the panel receives), as ray deflections at ``wavelength_m``."""
    y, x = grid_coordinates(phase_rad.shape, pitch_m)
    x, y = np.broadcast_to(x, phase_rad.shape), np.broadcast_to(y, phase_rad.shape)
    sl = (slice(None, None, step), slice(None, None, step))
    w = np.asarray(weights, dtype=np.float64)[sl].ravel()
    keep = w > 0
    if not keep.any():
        return FLAT
    xs, ys = x[sl].ravel()[keep], y[sl].ravel()[keep]
    phi = np.asarray(phase_rad, dtype=np.float64)[sl].ravel()[keep]
    basis = np.stack([np.ones_like(xs), xs, ys, 0.5 * xs**2, xs * ys, 0.5 * ys**2], axis=1)
    root = np.sqrt(w[keep])
    coef, *_ = np.linalg.lstsq(basis * root[:, None], phi * root, rcond=None)
    k = 2.0 * math.pi / wavelength_m
    return PanelOptics(np.array([coef[1], coef[2]]) / k, np.array([[coef[3], coef[4]], [coef[4], coef[5]]]) / k)


@dataclass(frozen=True)
class LightTruths:
    """What a perfect alignment would measure on the twin, and how far the light moved it."""

    output_to_sensor: np.ndarray          # 2x3: the output-plane point a pattern aims at -> sensor pixel
    decoder_shift_m: tuple[float, float]  # SLM2's centre in the beam as the light sees it
    decoder_rotation_deg: float


def _beam_irradiance(truths, shape: tuple[int, int], pitch_m: float) -> np.ndarray:
    """The beam on SLM1 (relative irradiance) as the twin plants it: Gaussian or flat top, cut by
    the square aperture on the axis."""
    y, x = grid_coordinates(shape, pitch_m)
    beam = truths.beam
    aperture = float(beam.get("aperture_m", 0.0))
    half = 0.5 * aperture if aperture > 0 else np.inf         # 0: no aperture (as the twin)
    inside = (np.abs(x) <= half) & (np.abs(y) <= half)
    if beam.get("profile") == "gaussian":
        cx, cy = beam["centre_m"]
        w = float(beam["waist_m"])
        return np.exp(-2.0 * ((x - cx) ** 2 + (y - cy) ** 2) / w**2) * inside
    return np.broadcast_to(inside, shape).astype(np.float64)


def _centroid(weights: np.ndarray, pitch_m: float) -> np.ndarray:
    y, x = grid_coordinates(weights.shape, pitch_m)
    total = float(weights.sum())
    return np.array([float((weights * x).sum()) / total, float((weights * y).sum()) / total])


def light_truths(truths, light_path, in_force: dict[str, np.ndarray | None] | None = None) -> LightTruths:
    """The sensor registration and SLM2 placement the alignment should find on the twin that
    planted ``truths`` (with ``light_path`` the bench file's optics). ``in_force``: by SLM role,
    the correction phase each SLM showed during the alignment on the simulation grid (None: none)."""
    b = light_path
    in_force = in_force or {}
    shape = truths.wavefront_rad[ENCODING].shape if truths.wavefront_rad.get(ENCODING) is not None else (
        b.encoding_shape)
    pitch, lam = b.pitch_m, b.wavelength_m
    d1, d2 = truths.d1_m or b.d1_m, truths.d2_m or b.d2_m
    tilt = np.asarray(truths.beam.get("tilt_rad", (0.0, 0.0)), dtype=np.float64)
    rotation = rotation_matrix(truths.decoder_rotation_deg)
    shift = np.asarray(truths.decoder_shift_m, dtype=np.float64)

    def phase(role: str) -> np.ndarray | None:
        planted = truths.wavefront_rad.get(role)
        correction = in_force.get(role)
        if planted is None and correction is None:
            return None
        total = np.zeros(shape) if planted is None else np.asarray(planted, dtype=np.float64)
        return total if correction is None else total + correction

    beam = _beam_irradiance(truths, shape, pitch)
    x0 = _centroid(beam, pitch)
    slm1 = FLAT if (p1 := phase(ENCODING)) is None else panel_optics(p1, pitch, lam, beam)
    if (p2 := phase(DECODING)) is None:
        slm2 = FLAT
    else:                                   # over the beam's footprint on SLM2, in SLM2's frame
        on_slm2 = rotation.T @ (x0 + (tilt + slm1.deflect(x0)) * d1 - shift)
        y, x = grid_coordinates(shape, pitch)
        half = 0.5 * b.seed_m
        footprint = (np.abs(x - on_slm2[0]) <= half) & (np.abs(y - on_slm2[1]) <= half)
        slm2 = panel_optics(p2, pitch, lam, np.broadcast_to(footprint, shape).astype(np.float64))

    def to_sensor_plane(theta: np.ndarray, slm2_lens: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The ray leaving SLM1's light centroid at ``theta``, through SLM2, on the sensor plane."""
        x2 = x0 + theta * d1
        q = rotation.T @ (x2 - shift)                       # SLM2's frame
        return x2 + (theta + rotation @ (slm2.deflect(q) + slm2_lens(q))) * d2

    # step 1: lenses of focal d1 + d2 (the bench file's) on SLM1 aimed at p, SLM2 uniform
    focal = b.d1_m + b.d2_m
    aims = np.array([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, -1.0)]) * 0.5 * SPAN_SENSOR * b.window_m
    landed = np.array([to_sensor_plane(tilt + slm1.deflect(x0) - (x0 - p) / focal, lambda q: np.zeros(2))
                       for p in aims])
    aim_to_plane = _affine(aims, landed)
    registration = (_square(truths.output_to_sensor) @ _square(aim_to_plane))[:2]

    # step 2: SLM1 uniform, lenses of focal d2 (the bench file's) on SLM2 centred at c (its frame)
    v = np.linspace(-1.0, 1.0, 3) * 0.5 * SPAN_DECODER * b.window_m
    centres = np.array([(cx, cy) for cy in v for cx in v])
    theta = tilt + slm1.deflect(x0)
    seen = np.array([to_sensor_plane(theta, lambda q, c=c: -(q - c) / b.d2_m) for c in centres])
    back = np.linalg.inv(_square(aim_to_plane))
    seen_m = seen @ back[:2, :2].T + back[:2, 2]
    deg, placed, _, _ = fit_placement(centres, seen_m)          # as the placement is fitted
    return LightTruths(registration, (float(placed[0]), float(placed[1])), float(deg))


def _affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares 2x3 affine dst = A src + t."""
    design = np.hstack([src, np.ones((len(src), 1))])
    coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
    return coef.T


def _square(affine: np.ndarray) -> np.ndarray:
    """A 2x3 affine as its 3x3 matrix (to compose and invert)."""
    return np.vstack([np.asarray(affine, dtype=np.float64), [0.0, 0.0, 1.0]])
