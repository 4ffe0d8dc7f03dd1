"""The unmodulated fraction of each SLM: the share of the light that leaves it without its pattern.

Light an SLM does not modulate (the pixels' dead space, polarisation leakage) ignores what the
SLM shows. One SLM (the tested one) turns its modulated light aside with a blazed grating; a lens
on the other SLM focuses the light onto the sensor:

- SLM1 tested: SLM2 shows a lens of focal length d2 (the light leaves SLM1 collimated);
- SLM2 tested: SLM1 shows a lens of focal length d1 + d2.

Without the grating (the tested SLM flat) all the light lands in the focus on the axis; with
it, only the unmodulated light and the grating's own zero order. The ratio of the two foci is
``u + (1 - u) eta0``, where ``eta0`` is the zero order of the grating as the SLM shows it: its
phase wrapped into 2 pi and blurred by the pixel crosstalk the LUT calibration fitted. Both foci
pass the lens SLM at the same place, so its efficiency and its own unmodulated light cancel;
light that leaves the lens SLM unfocused is a broad background, taken out with the median of a
ring around the focus. The grating runs along the diagonal, so its first order lands (about 80
camera pixels away on the published bench) where the square aperture's focus has no side lobes;
the focus is summed out to :data:`SPOT_RADIUS_ZEROS` first zeros (lambda z / D), fewer where the
first order comes nearer, and the ring stays clear of the first order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from optgen.calibration.session import CalibrationError, CalibrationSession, peak_level
from optgen.drivers.common.patterns import lens_phase
from optgen.drivers.common.roles import DECODING, ENCODING

__all__ = ["PERIODS_PX", "UnmodulatedFractions", "diagonal_grating", "fraction_from_ratios", "grating_zero_order",
           "measure_unmodulated", "unmodulated_room"]

PERIODS_PX = (16, 8)                 # the tested SLM's gratings, along the diagonal (SLM pixels)
SPOT_RADIUS_ZEROS = 6.0              # the focus is summed out to this many first zeros at most ...
RING_ZEROS = 1.5                     # ... the background is the median of a ring this wide, just outside
CLEARANCE_ZEROS = 2.5                # ... which ends this far short of the grating's first order
MIN_RADIUS_ZEROS = 3.0               # a smaller sum would miss an aberrated focus's wings


def diagonal_grating(shape: tuple[int, int], period_px: float) -> np.ndarray:
    """A blazed grating (radians, wrapped) of ``period_px`` pixels along the diagonal."""
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    return np.mod(2 * np.pi * (x + y) / (period_px * math.sqrt(2.0)), 2 * np.pi).astype(np.float32)


def grating_zero_order(period_px: float, crosstalk_sigma_px: float) -> float:
    """The zero-order efficiency of :func:`diagonal_grating` shown by an SLM whose pixels' phases
    blur into each other with a Gaussian of ``crosstalk_sigma_px`` (the LUT calibration's fit)."""
    from scipy.ndimage import gaussian_filter

    phase = diagonal_grating((320, 320), period_px).astype(np.float64)
    if crosstalk_sigma_px > 0:
        phase = gaussian_filter(phase, crosstalk_sigma_px, mode="nearest")
    inner = phase[32:-32, 32:-32]
    return float(abs(np.mean(np.exp(1j * inner))) ** 2)


@dataclass
class UnmodulatedFractions:
    """Each SLM's unmodulated fraction, and what it was computed from."""

    fraction: dict[str, float]                     # by SLM role
    focus_ratio: dict[str, dict[int, float]]       # the focus with each grating / without
    grating_zero_order: dict[str, dict[int, float]]   # each grating's own zero order, eta0
    blur_px: dict[str, float] = field(default_factory=dict)     # the wraps' blur that explains them
    focus_px: dict[str, tuple[float, float]] = field(default_factory=dict)   # where the focus was (x, y)


def _focus_power(frame: np.ndarray, x: int, y: int, radius: float, ring: tuple[float, float]) -> float:
    """Counts within ``radius`` of (x, y) above the median of the ring around it."""
    h, w = frame.shape
    r_out = int(math.ceil(ring[1]))
    x0, x1, y0, y1 = x - r_out, x + r_out + 1, y - r_out, y + r_out + 1
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        raise CalibrationError(f"unmodulated light: the focus at sensor pixel ({x}, {y}) is too near the sensor edge "
                               f"({w}x{h}) to measure; centre the camera on the optical axis")
    patch = frame[y0:y1, x0:x1].astype(np.float64)
    gy, gx = np.mgrid[-r_out:r_out + 1, -r_out:r_out + 1]
    r2 = gx**2 + gy**2
    background = float(np.median(patch[(r2 >= ring[0] ** 2) & (r2 <= ring[1] ** 2)]))
    inside = r2 <= radius**2
    return float(patch[inside].sum() - background * inside.sum())


def fraction_from_ratios(ratios: dict[int, float], max_sigma_px: float = 3.0) -> tuple[float, float]:
    """(u, sigma): the unmodulated fraction and the blur of the wraps that explain the focus ratios
    ``r(P) = u + (1 - u) eta0(P, sigma)`` of two grating periods (the finer one leaks more)."""
    fine, coarse = min(ratios), max(ratios)

    def u_for(sigma: float) -> float:
        eta = grating_zero_order(coarse, sigma)
        return (ratios[coarse] - eta) / (1.0 - eta)

    def excess(sigma: float) -> float:        # the fine grating's predicted leak minus the measured
        u = u_for(sigma)
        return u + (1.0 - u) * grating_zero_order(fine, sigma) - ratios[fine]

    lo, hi = 0.0, max_sigma_px
    if excess(lo) >= 0:                       # no more leak than sharp wraps give
        sigma = lo
    elif excess(hi) <= 0:
        sigma = hi
    else:
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
        sigma = 0.5 * (lo + hi)
    return float(np.clip(u_for(sigma), 0.0, 1.0)), float(sigma)


@dataclass(frozen=True)
class _Windows:
    zero_px: float                   # the focus's first zero (camera pixels)
    radius_px: float                 # summed out to here
    ring_px: tuple[float, float]     # the background's ring


def _windows(b, d1: float, d2: float) -> dict[str, _Windows]:
    """Where each SLM's test sums its focus and takes the background; CalibrationError where the
    geometry leaves no room between the focus and the grating's first order."""
    # the first order's distance from the focus (camera pixels): the angle lambda / period over d2
    order_px = d2 * b.wavelength_m / (max(PERIODS_PX) * b.pitch_m) / b.camera_pitch_m
    out = {}
    for key, focal in ((ENCODING, d2), (DECODING, d1 + d2)):
        zero_px = b.wavelength_m * focal / b.seed_m / b.camera_pitch_m
        ring_out = order_px - CLEARANCE_ZEROS * zero_px
        radius = min(SPOT_RADIUS_ZEROS * zero_px, ring_out - (RING_ZEROS + 0.5) * zero_px)
        if radius < MIN_RADIUS_ZEROS * zero_px:
            raise CalibrationError(
                f"unmodulated light: the {max(PERIODS_PX)}-pixel grating's first order lands {order_px:.0f} camera px "
                f"from a focus whose first zero is {zero_px:.1f} px out (at least "
                f"{MIN_RADIUS_ZEROS + RING_ZEROS + 0.5 + CLEARANCE_ZEROS:g} zeros needed): this geometry (d1, d2, "
                f"the seed's side, the camera pitch) leaves no room to measure it")
        out[key] = _Windows(zero_px, radius, (ring_out - RING_ZEROS * zero_px, ring_out))
    return out


def unmodulated_room(light_path, distances_m: tuple[float, float]) -> str | None:
    """Why the unmodulated fraction cannot be measured on this geometry, or None if it can."""
    try:
        _windows(light_path, *distances_m)
    except CalibrationError as exc:
        return str(exc)
    return None


def measure_unmodulated(session: CalibrationSession, distances_m: tuple[float, float], *,
                        frames: int = 4) -> UnmodulatedFractions:
    """Measure both SLMs' unmodulated fractions (module docstring); the laser is on only inside."""
    b = session.config.light_path
    d1, d2 = distances_m
    windows = _windows(b, d1, d2)
    out = UnmodulatedFractions({}, {}, {})
    with session.power_kept(), session.light():
        for key in (ENCODING, DECODING):
            focal = d2 if key == ENCODING else d1 + d2                    # the lens SLM's focal length
            lens_shape = b.decoding_shape if key == ENCODING else b.encoding_shape
            lens = lens_phase(lens_shape, b.pitch_m, b.wavelength_m, focal, wrapped=True)
            if key == ENCODING:
                shape, show = b.encoding_shape, (lambda tested: session.show(encoding=tested, decoding=lens))
            else:
                shape, show = b.decoding_shape, (lambda tested: session.show(encoding=lens, decoding=tested))
            w = windows[key]
            zero_px, radius, ring = w.zero_px, w.radius_px, w.ring_px
            show(np.zeros(shape, np.float32))
            session.auto_exposure_dimming(target_fraction=0.6)
            reference = session.capture(frames)
            smooth = cv2.GaussianBlur(cv2.medianBlur(reference, 3), (0, 0), max(1.0, 0.5 * zero_px))
            y, x = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
            if peak_level(reference) <= 0:
                raise CalibrationError(f"unmodulated light of the {key.replace('_', ' ')}: no focus on the sensor")
            ratios = {}
            reach = int(math.ceil(ring[1])) + 2                         # only the focus and its ring are read out
            with session.window(slice(int(y) - reach, int(y) + reach + 1),
                                slice(int(x) - reach, int(x) + reach + 1)) as (row0, col0):
                for period in PERIODS_PX:
                    show(diagonal_grating(shape, period))
                    ratios[period] = _focus_power(session.capture(2 * frames), int(x) - col0, int(y) - row0,
                                                  radius, ring)
            p_ref = _focus_power(reference, int(x), int(y), radius, ring)
            if not p_ref > 0:
                raise CalibrationError(f"unmodulated light of the {key.replace('_', ' ')}: no light in the focus "
                                       f"({p_ref:.0f} counts); check the beam and d1/d2")
            ratios = {period: power / p_ref for period, power in ratios.items()}
            u, sigma = fraction_from_ratios(ratios)
            out.focus_ratio[key], out.blur_px[key], out.fraction[key] = ratios, sigma, u
            out.grating_zero_order[key] = {period: grating_zero_order(period, sigma) for period in PERIODS_PX}
            out.focus_px[key] = (float(x), float(y))
    return out
