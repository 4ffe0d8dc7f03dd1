"""Phase-vs-gray response of each SLM, measured in situ with the other SLM as the helping optic.

What is measured
    Each SLM's phase delay phi(g) for every gray level g at the bench wavelength, as phi(g) - phi(0)
    (``phase_rad[0] == 0``), fitted as a smooth increasing curve and handed to slmsuite's LUT
    (:func:`calibration.lut.apply_response`).

How (the binary-grating method of DESIGN.md section 5, with the other SLM as the lens)
    1. The SLM under test shows binary gray gratings: columns alternate between a reference gray r
       and a test gray g with period P (16 px) over the whole SLM. The helping SLM shows a lens
       (radians, through its current LUT) that puts the camera in the far field of the grating:

       - encoding SLM under test: the decoding SLM shows a lens of focal length d2. The camera then
         sits in its back focal plane, i.e. the Fourier plane of the field on SLM2; free space over
         d1 only multiplies that field's angular spectrum by a phase, so the camera sees the power
         spectrum of the grating on SLM1 (orders of the aperture-limited grating, side by side);
       - decoding SLM under test: the encoding SLM shows a lens of focal length d1 + d2 that focuses
         the beam on the sensor through SLM2, so the grating's orders focus side by side.

    2. Spot positions are detected, never assumed (the sensor's placement is unknown): the zero order
       from a frame with the SLM under test uniform, the +-1 orders from a high-contrast grating (the
       brightest spot away from the zero order and its mirror image, refined by centroids). Each
       order's power is summed in a disc of 0.6 spot widths minus the local background from a ring
       around it (light the helping lens does not focus, most of it in the first round while that
       lens is shown through a nominal LUT). The zero order's tail in the +-1 windows is measured on
       the uniform frame and unmixed from every frame.

    3. The ratio f = I0 / (I0 + I+1 + I-1) is independent of the laser's power noise, the exposure
       and the helping lens's efficiency. Its forward model is exact for a pixelated SLM with
       fringing-field crosstalk: one period of P pixels with phases 0 and Delta = phi(g) - phi(r),
       blurred by a Gaussian of width sigma (fitted), E_n its DFT coefficients, and

           f_model = (|E0|^2 + a I1) / (|E0|^2 + (k + a) I1),   I1 = |E+1|^2 + |E-1|^2,

       with nuisance parameters fitted per period: k (near 1), the +-1 orders' collection efficiency
       over the zero order's (they pass another part of the helping lens and land on other pixels),
       and a (|a| <= 0.05) what remains of their light in the zero-order window. The blurred profile
       may also be resampled a fraction of a pixel (linear interpolation): that is how the twin renders
       an SLM shifted in the beam (SLM2); on a real SLM it fits to ~0. A naive cos^2(Delta/2) misses
       the crosstalk (lower contrast, a bent curve) by far more than 0.03 rad.

    4. f is even and 2pi-periodic in Delta, so one reference leaves Delta and 2pi - Delta apart. Two
       references resolve it: r0 = gray 0, then r1 = the gray where the r0 sweep first falls half-way
       (phi(r1) ~ pi/2; the response is monotone). Together the two sweeps see ~cos(Delta) and
       ~sin(Delta), as in phase-shifting interferometry: every gray has a sensitive measurement.

    5. Two grating periods, P and P/2 (alternate gray levels of each sweep): the crosstalk blur and the
       phase scale are nearly degenerate at one period (more blur and a larger phi give almost the
       same curve, a 5-30 % scale error in noise), but the blur weighs twice as much at P/2 as at P,
       so fitting both at once pins it. Each grating is also shown swapped (test gray on the
       reference stripes = the grating shifted half a period) and the powers of both are added: the
       interference between overlapping neighbouring orders flips sign and cancels. This matters on
       SLM2, where the converging beam covers few grating periods (9 at P = 16 on the published
       bench, under 3 on the small test bench) and the spot's tails are complex (Fresnel edges).

    6. One joint least-squares fit (scipy.optimize.least_squares) of all sweeps: phi as a monotone
       cubic I-spline (non-negative weights on integrated quadratic B-splines, 12 intervals, so
       phi(0) = 0 and phi never decreases), sigma, the resampling, k and a. The start comes from the
       unwrapped atan2 of the two normalised P sweeps. The curve is evaluated at all 2**bitdepth
       levels. Per-gray phases (each gray fitted alone against the fitted nuisances) are kept as the
       PNG's "measured points" and show how well the curve follows the data.

    Sequence and patterns (per SLM measurement, ``levels`` = 32 gray levels per reference): 1 lens on
    the helping SLM, 1 uniform (exposure, zero order, its tail), 2 gratings to find the +-1 orders
    (one per period), 2 references x 32 grays x 2 (plain, swapped) = 128 gratings, plus one repeat
    after each of the 8 large steps: 140 patterns. Plain gratings are swept up in gray and swapped
    ones down, so consecutive patterns differ little and the ~1 % of each step an SLM has not yet
    settled in its wait biases the two halves oppositely.

Two SLMs, which first? (slmsuite issue #133)
    Each measurement needs the other SLM as a lens, and a lens shown through an uncalibrated LUT is
    imperfect. The ratio f makes this a second-order problem: the helping lens's efficiency cancels
    in f, the light it fails to focus is a smooth background subtracted locally, and what is left of
    its imperfection (how well the +-1 orders are collected against the zero order) is the fitted k.
    So :func:`calibrate_luts` goes: round 1 measures the encoding SLM with the decoding SLM's current
    (nominal or stored) LUT and applies the result at once, then measures the decoding SLM with the
    encoding SLM's lens now shown through that new LUT; round 2 re-measures the encoding SLM with the
    decoding SLM's calibrated lens, and the decoding SLM again only if the encoding SLM's response
    moved by more than ``tolerance_rad`` (only then did its helping lens change materially). The
    encoding SLM goes first because its measurement is the more robust one with a poor helper: the
    sharp aperture sits on it, so its orders are clean, well separated Fourier-plane spots. Every
    measurement records how far the response moved since the previous round (RMS over 0..2pi) in
    ``history``, so a user sees it converge; on the twin the second round moves the encoding SLM's
    curve by ~3 mrad, i.e. one round is nearly enough and the second confirms it.

Exposure, light and safety
    Before each measurement the brightest pattern (the SLM under test uniform: all light in one
    focused spot) is shown and ``session.auto_exposure()`` runs inside ``session.light()``. A focused
    spot is far brighter than a generative run's output: if it saturates even at the shortest
    exposure, the session's laser power is lowered 10x (up to three times, restored afterwards).
    Every frame used is checked for saturation (raw counts at ``camera.saturation_dn``). No light, no
    focused spot, no +-1 orders, saturated frames, an SLM without phase modulation and a missing
    helping SLM raise :class:`~calibration.session.CalibrationError` saying which and what to check.
    The laser is switched only through ``session.light()``: off (verified) on every exit path.

A response that never reaches 2pi is flagged, not refused: it is still the best LUT the SLM can have
(slmsuite maps phases it cannot reach onto the nearest it can); ``lut_range_rad()`` gives the reach,
``warnings`` says it and :func:`calibrate_luts` logs it. A response below about pi/2 cannot be
measured this way (there is no r1) and raises.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy import interpolate, ndimage, optimize

from optgen.calibration.lut import PhaseResponse, apply_response
from optgen.calibration.session import CalibrationError
from optgen.calibration.store import CalibrationRecord
from optgen.drivers.common.patterns import binary_grating, lens_phase
from optgen.drivers.common.roles import DECODING, ENCODING

__all__ = ["ResponseMeasurement", "measure_response", "calibrate_luts", "write_response_png",
           "grating_ratio_model"]

log = logging.getLogger(__name__)

_HELPER = {ENCODING: DECODING, DECODING: ENCODING}
TWO_PI = 2.0 * np.pi
_MIN_SEPARATION = 2.0     # +-1 orders less than this many spot widths (FWHM) from the zero order: flagged
_RESIDUAL_WARN = 0.01    # fit residual (ratio units) above which the measurement is flagged
_POWER_STEPS = 3     # laser power lowered up to 3 x 10x when the focused spot saturates at the shortest exposure


# --- result ---------------------------------------------------------------------------------
@dataclass
class ResponseMeasurement:
    """One SLM's measured phase response and everything needed to judge and store it."""

    slm_key: str                 # "encoding_slm" | "decoding_slm"
    wavelength_nm: float
    phase_rad: np.ndarray        # fitted response per gray level, 2**bitdepth values, phase_rad[0] == 0
    crosstalk_sigma_px: float    # fitted blur
    residual_rms: float          # RMS of (measured f - model f)
    raw: dict[str, np.ndarray]   # the raw measurements (to store)
    helper_lut_id: str           # LUT the helping SLM used
    rounds: int                  # how many times this SLM has been measured (calibrate_luts)
    order_balance: float = 1.0   # fitted k: +-1 orders' collection efficiency over the zero order's
    resample_shift_px: float = 0.0   # fitted sub-pixel resampling of the SLM in the beam (0 for a real SLM)
    warnings: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)   # per round: helper LUT, change vs previous, fit
    counters: dict = field(default_factory=dict)        # patterns shown, frames, wall time of this measurement

    def response(self, id: str) -> PhaseResponse:
        """The response as a LUT source (every gray level sampled)."""
        return PhaseResponse(id, levels=np.arange(self.phase_rad.size, dtype=float),
                             phase_rad=np.asarray(self.phase_rad, dtype=float).copy())

    def to_record(self, base: dict) -> CalibrationRecord:
        """The calibration file's record; :meth:`PhaseResponse.from_record` reads its LUT back."""
        return CalibrationRecord(
            **base, results={"phase_rad": np.asarray(self.phase_rad, dtype=float),
                             "crosstalk_sigma_px": float(self.crosstalk_sigma_px)},
            raw={k: np.asarray(v) for k, v in self.raw.items()}, residuals={"fit_rms": float(self.residual_rms)},
            info={"rounds": int(self.rounds), "helper_lut": self.helper_lut_id, "range_rad": float(self.lut_range_rad())})

    def lut_range_rad(self) -> float:
        """The largest phase delay the SLM reaches (relative to gray 0); below 2pi is flagged."""
        return float(np.max(self.phase_rad))

    @property
    def reaches_2pi(self) -> bool:
        return self.lut_range_rad() >= TWO_PI

    def digest(self) -> str:
        return hashlib.sha256(np.asarray(self.phase_rad, dtype=np.float64).tobytes()).hexdigest()[:12]


# --- forward model --------------------------------------------------------------------------
def _blurred_stripes(period_px: int, sigma_px: float, shift_px: float = 0.0) -> np.ndarray:
    """One period of the test-stripe indicator (test gray on the second half), blurred periodically by a
    Gaussian of ``sigma_px`` and then resampled ``shift_px`` (0..1) of a pixel off the SLM's own grid
    (linear interpolation: an SLM slightly shifted or rotated in the beam's frame, as the twin renders it)."""
    p = int(period_px)
    ind = np.zeros(p)
    ind[p // 2:] = 1.0
    out = ind
    if sigma_px > 1e-6:
        radius = max(3, int(np.ceil(5.0 * sigma_px)))
        taps = np.arange(-radius, radius + 1)
        w = np.exp(-0.5 * (taps / sigma_px) ** 2)
        w /= w.sum()
        out = np.zeros(p)
        for t, wt in zip(taps, w):
            out += wt * np.roll(ind, t)
    if shift_px > 0:
        out = (1.0 - shift_px) * out + shift_px * np.roll(out, 1)
    return out


def _order_powers(delta: np.ndarray, period_px: int, sigma_px: float,
                  shift_px: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(|E0|^2, |E+1|^2 + |E-1|^2) of a binary phase grating with step ``delta`` (radians)."""
    s = _blurred_stripes(period_px, sigma_px, shift_px)
    field_ = np.exp(1j * np.asarray(delta, dtype=float)[..., None] * s)
    spec = np.fft.fft(field_, axis=-1) / s.size
    p = np.abs(spec) ** 2
    return p[..., 0], p[..., 1] + p[..., -1]


def grating_ratio_model(delta, period_px: int, sigma_px: float, order_balance: float = 1.0,
                        shift_px: float = 0.0, leak: float = 0.0) -> np.ndarray:
    """f = (I0 + a I1) / (I0 + (k + a) I1), I1 = I+1 + I-1, of a binary phase grating with crosstalk blur
    ``sigma_px``; a (``leak``) is the part of the +-1 orders' power seen in the zero-order window."""
    p0, p1 = _order_powers(delta, period_px, sigma_px, shift_px)
    return (p0 + leak * p1) / (p0 + (order_balance + leak) * p1)


# --- monotone curve -------------------------------------------------------------------------
def _ispline_basis(n_levels: int, n_intervals: int) -> np.ndarray:
    """(n_levels, K) integrated quadratic B-splines on uniform knots: non-negative weights give an
    increasing cubic curve with value 0 at gray 0."""
    degree = 2
    inner = np.linspace(0.0, n_levels - 1.0, n_intervals + 1)
    knots = np.concatenate([[inner[0]] * degree, inner, [inner[-1]] * degree])
    n_basis = knots.size - degree - 1
    g = np.arange(n_levels, dtype=float)
    basis = np.empty((n_levels, n_basis))
    for k in range(n_basis):
        c = np.zeros(n_basis)
        c[k] = 1.0
        anti = interpolate.BSpline(knots, c, degree, extrapolate=False).antiderivative()
        basis[:, k] = anti(g) - anti(0.0)
    return np.nan_to_num(basis)


@dataclass
class Sweep:
    """One sweep of test grays against one reference gray, at one grating period."""

    reference: int
    period_px: int
    grays: np.ndarray      # test gray levels
    ratios: np.ndarray     # measured f = I0 / (I0 + I+1 + I-1), one per test gray


@dataclass
class _Fit:
    phase: np.ndarray          # all gray levels
    sigma: float
    shift: float
    balance: dict              # period -> k
    leak: dict                 # period -> a
    residual_rms: float
    point_grays: np.ndarray
    point_phase: np.ndarray    # per-gray phases (each gray fitted alone)


def fit_response(sweeps: list[Sweep], n_levels: int, n_intervals: int = 12, fit_leak: bool = True) -> _Fit:
    """Fit phi (monotone, phi(0)=0), the crosstalk sigma, the sub-pixel resampling and one k per period
    to all sweeps jointly. The first two sweeps must share their test grays and have references near
    phi = 0 and phi = pi/2 (they give the starting curve)."""
    basis_all = _ispline_basis(n_levels, n_intervals)
    periods = sorted({sw.period_px for sw in sweeps})
    n_a = basis_all.shape[1]

    # start: unwrapped atan2 of the first two normalised sweeps (~cos Delta, ~sin Delta)
    def normalise(f):
        lo, hi = np.percentile(f, 2), np.percentile(f, 98)
        return np.clip(2.0 * (f - lo) / max(hi - lo, 1e-9) - 1.0, -1.0, 1.0)

    s0, s1 = sweeps[0], sweeps[1]
    delta0 = np.unwrap(np.arctan2(normalise(s1.ratios), normalise(s0.ratios)))
    delta0 = np.maximum.accumulate(np.maximum(delta0 - delta0[0], 0.0))
    a0, _ = optimize.nnls(basis_all[np.asarray(s0.grays, dtype=int)], delta0)
    a0 = np.maximum(a0, 1e-3)

    rows = [(basis_all[np.asarray(sw.grays, dtype=int)], basis_all[int(sw.reference)],
             np.asarray(sw.ratios, dtype=float), sw.period_px, periods.index(sw.period_px)) for sw in sweeps]

    def residuals(x):
        a, sigma, shift, ks, leaks = x[:n_a], x[n_a], x[n_a + 1], x[n_a + 2:n_a + 2 + n_p], x[n_a + 2 + n_p:]
        return np.concatenate([f - grating_ratio_model(b @ a - b_ref @ a, period, sigma, ks[ip], shift,
                                                       leaks[ip] if fit_leak else 0.0)
                               for b, b_ref, f, period, ip in rows])

    n_p = len(periods)
    leak_bound = 0.05 if fit_leak else 1e-12
    lower = np.concatenate([np.zeros(n_a), [0.0, 0.0], np.full(n_p, 0.2), np.full(n_p, -leak_bound)])
    upper = np.concatenate([np.full(n_a, np.inf), [3.0, 0.5], np.full(n_p, 5.0), np.full(n_p, leak_bound)])
    best = None
    for sigma0, shift0 in ((0.5, 0.05), (1.0, 0.05), (0.5, 0.35)):   # a few starts: each fit is cheap
        x0 = np.concatenate([a0, [sigma0, shift0], np.ones(n_p), np.zeros(n_p)])
        sol = optimize.least_squares(residuals, x0, bounds=(lower, upper), x_scale="jac",
                                     method="trf", max_nfev=400)
        if best is None or sol.cost < best.cost:
            best = sol
    a, sigma, shift = best.x[:n_a], best.x[n_a], best.x[n_a + 1]
    ks, leaks = best.x[n_a + 2:n_a + 2 + n_p], best.x[n_a + 2 + n_p:]
    phase = basis_all @ a
    rms = float(np.sqrt(np.mean(best.fun ** 2)))

    # per-gray phases against the fitted blur and k, near the curve (the PNG's points)
    all_grays = np.unique(np.concatenate([np.asarray(sw.grays, dtype=int) for sw in sweeps]))
    points = phase[all_grays].copy()
    for half_width in (0.6, 0.006):          # 5 mrad steps, then 0.05 mrad steps
        trial = np.linspace(-half_width, half_width, 241)
        cand = points[:, None] + trial[None, :]
        cost = np.zeros_like(cand)
        for sw in sweeps:
            idx = np.searchsorted(all_grays, np.asarray(sw.grays, dtype=int))
            model = grating_ratio_model(cand[idx] - phase[int(sw.reference)], sw.period_px, sigma,
                                        ks[periods.index(sw.period_px)], shift,
                                        leaks[periods.index(sw.period_px)] if fit_leak else 0.0)
            cost[idx] += (np.asarray(sw.ratios)[:, None] - model) ** 2
        points = cand[np.arange(cand.shape[0]), np.argmin(cost, axis=1)]
    return _Fit(phase, float(sigma), float(shift), {p: float(k) for p, k in zip(periods, ks)},
                {p: float(v) for p, v in zip(periods, leaks)}, rms, all_grays, points)


# --- frames and spots -----------------------------------------------------------------------
def _grab(session, frames: int, what: str) -> np.ndarray:
    """Mean of ``frames`` frames in counts above dark; every raw frame checked for saturation."""
    camera = session.bench.camera
    if session.dark is None or session._dark_exposure_s != camera.timing.exposure_s:
        raise CalibrationError("no dark frame at this exposure; run auto_exposure() first")
    saturation = camera.saturation_dn
    acc = None
    for _ in range(max(1, int(frames))):
        raw = session.capture_raw()
        if int(np.max(raw)) >= saturation:
            n = int(np.count_nonzero(raw >= saturation))
            raise CalibrationError(
                f"{camera.name}: {n} saturated pixel(s) while measuring {what}; the exposure was set on the "
                f"brightest pattern, so check for stray light or a laser power that drifts up, or lower "
                f"[laser] power_mw")
        acc = raw.astype(np.float64) if acc is None else acc + raw
    return (acc / max(1, int(frames)) - session.dark).astype(np.float32)


def _centroid(frame: np.ndarray, yx: tuple[float, float], radius: float) -> tuple[float, float]:
    h, w = frame.shape
    y0, x0 = int(round(yx[0])), int(round(yx[1]))
    r = int(np.ceil(radius))
    ys, xs = slice(max(0, y0 - r), min(h, y0 + r + 1)), slice(max(0, x0 - r), min(w, x0 + r + 1))
    patch = np.clip(frame[ys, xs].astype(np.float64), 0.0, None)
    total = patch.sum()
    if total <= 0:
        return float(yx[0]), float(yx[1])
    yy, xx = np.mgrid[ys, xs]
    return float((yy * patch).sum() / total), float((xx * patch).sum() / total)


@dataclass
class _Windows:
    centres: np.ndarray        # (3, 2): zero, +1, -1 orders (y, x)
    radius: float
    masks: list                # (slices, disc mask, ring mask) per order
    fwhm: float = 0.0          # zero-order spot width (px)
    spacing: float = 0.0       # +-1 orders' distance from the zero order (px)
    leak: float = 0.0          # zero order's power in the +-1 windows over its own (uniform pattern)


def _shifted(win: _Windows, dy: int, dx: int) -> _Windows:
    """The same windows in a frame whose pixel (0, 0) is (dy, dx) of the whole frame."""
    masks = [(slice(ys.start - dy, ys.stop - dy), slice(xs.start - dx, xs.stop - dx), disc, ring)
             for ys, xs, disc, ring in win.masks]
    return _Windows(win.centres - np.array([dy, dx], dtype=float), win.radius, masks, win.fwhm, win.spacing,
                    win.leak)


def _bounding_box(windows, margin: int = 8) -> tuple[slice, slice]:
    """Rows and columns holding every order window (background rings included), plus ``margin``."""
    masks = [m for w in windows for m in w.masks]
    rows = slice(min(m[0].start for m in masks) - margin, max(m[0].stop for m in masks) + margin)
    cols = slice(min(m[1].start for m in masks) - margin, max(m[1].stop for m in masks) + margin)
    return rows, cols


def _make_windows(shape, centres, radius: float) -> _Windows:
    h, w = shape
    ring_in, ring_out = radius + 1.5, radius + 4.0
    masks = []
    for cy, cx in centres:
        r = int(np.ceil(ring_out)) + 1
        ys = slice(max(0, int(round(cy)) - r), min(h, int(round(cy)) + r + 1))
        xs = slice(max(0, int(round(cx)) - r), min(w, int(round(cx)) + r + 1))
        yy, xx = np.mgrid[ys, xs]
        d = np.hypot(yy - cy, xx - cx)
        disc = d <= radius
        ring = (d >= ring_in) & (d <= ring_out)
        if disc.sum() < 3 or ring.sum() < 8:
            raise CalibrationError(f"a diffraction order at (x={cx:.0f}, y={cy:.0f}) px lies at the edge of the "
                                   f"sensor; check the sensor's placement or use a longer grating period")
        masks.append((ys, xs, disc, ring))
    return _Windows(np.asarray(centres, dtype=float), float(radius), masks)


def _order_powers_measured(frame: np.ndarray, win: _Windows) -> np.ndarray:
    """Background-subtracted power in the zero, +1 and -1 order windows."""
    out = np.empty(3)
    for i, (ys, xs, disc, ring) in enumerate(win.masks):
        patch = frame[ys, xs]
        background = float(np.median(patch[ring]))
        out[i] = float(patch[disc].sum()) - background * disc.sum()
    return out


def _spot_width(frame: np.ndarray, yx) -> float:
    """FWHM (px) of the spot at ``yx`` along x and y, the larger."""
    y0, x0 = int(round(yx[0])), int(round(yx[1]))
    peak = frame[y0, x0]
    widths = []
    for line, c in ((frame[y0, :], x0), (frame[:, x0], y0)):
        half = peak / 2.0
        lo = c
        while lo > 0 and line[lo - 1] > half:
            lo -= 1
        hi = c
        while hi < line.size - 1 and line[hi + 1] > half:
            hi += 1
        widths.append(hi - lo + 1)
    return float(max(widths))


def _show(session, patterns: dict) -> None:
    session.show(**{key.removesuffix("_slm"): pattern for key, pattern in patterns.items()})


# --- patterns -------------------------------------------------------------------------------
def _grating(slm, ref: int, test: int, period_px: int) -> np.ndarray:
    """Columns alternating ref / test gray with period ``period_px``, a test stripe centred on the SLM."""
    return binary_grating(slm.shape, period_px, ref, test, slm.dtype)


def _helper_lens(session, slm_key: str) -> tuple[np.ndarray, float]:
    """The lens the helping SLM shows (radians, float32) and its focal length (m)."""
    cfg = session.config
    helper = _HELPER[slm_key]
    slm = session.slms[helper]
    geometry = cfg.geometry
    focal = geometry.d2_m if slm_key == ENCODING else geometry.d1_m + geometry.d2_m
    pitch = getattr(cfg, helper).pitch_um * 1e-6
    wavelength = cfg.laser.wavelength_nm * 1e-9
    lens = lens_phase(slm.shape, pitch, wavelength, focal)
    return np.mod(lens, TWO_PI).astype(np.float32), focal


def _predicted_spacing_px(session, slm_key: str, period_px: int) -> float:
    """Nominal +-1 order offset on the sensor (camera pixels), only to size the search."""
    cfg = session.config
    pitch = getattr(cfg, slm_key).pitch_um * 1e-6
    wavelength = cfg.laser.wavelength_nm * 1e-9
    cam_pitch = cfg.camera.pitch_um * 1e-6
    return wavelength * cfg.geometry.d2_m / (period_px * pitch) / cam_pitch


# --- measurement ----------------------------------------------------------------------------
def _check_slms(session, slm_key: str):
    if slm_key not in _HELPER:
        raise ValueError(f"slm_key {slm_key!r}: expected 'encoding_slm' or 'decoding_slm'")
    slm = session.slms.get(slm_key)
    helper_key = _HELPER[slm_key]
    helper = session.slms.get(helper_key)
    if slm is None:
        raise CalibrationError(f"{slm_key}: the bench has no such SLM; check [{slm_key}] in the bench file")
    if helper is None:
        role = "lens of focal length d2 (Fourier plane)" if slm_key == ENCODING else \
            "lens of focal length d1 + d2 (focus on the sensor)"
        raise CalibrationError(f"measuring the {slm_key} response needs the {helper_key} as the helping {role}, "
                               f"and the bench has none; check [{helper_key}] in the bench file and that it opened")
    return slm, helper_key, helper


def _find_orders(session, slm, slm_key: str, uniform: np.ndarray, period_px: int, frames: int) -> _Windows:
    """Zero order from the uniform frame, +-1 orders from a high-contrast grating."""
    camera = session.bench.camera
    smooth = ndimage.gaussian_filter(uniform.astype(np.float64), 1.0)
    peak_yx = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    width = _spot_width(smooth, peak_yx)
    zero = _centroid(uniform, peak_yx, max(2.0, width))
    noise = 1.4826 * float(np.median(np.abs(uniform - np.median(uniform)))) + 0.5
    lit = float(uniform[smooth > 5.0 * noise].sum())          # all the light clearly above the noise
    disc_power = _disc_sum(uniform, zero, max(2.0, width))
    total = disc_power
    if smooth[peak_yx] < 20.0 * noise or disc_power < 0.05 * max(lit, 1e-9):
        raise CalibrationError(
            f"{camera.name}: no focused spot on the sensor while measuring {slm_key} (peak "
            f"{smooth[peak_yx]:.0f} counts, {100 * disc_power / max(lit, 1e-9):.0f} % of the light in it); check "
            f"the laser and shutter, that the {_HELPER[slm_key]} shows the helping lens, and the distances d1, d2 "
            f"in [geometry]")
    predicted = _predicted_spacing_px(session, slm_key, period_px)
    best = None
    top = 1 << int(slm.bitdepth)
    for test in (top // 2, top // 4, 3 * top // 4, top - 1):
        _show(session, {slm_key: _grating(slm, 0, test, period_px)})
        frame = _grab(session, frames, f"{slm_key} (finding the diffraction orders)")
        sm = ndimage.gaussian_filter(frame.astype(np.float64), 1.0)
        yy, xx = np.indices(sm.shape)
        d = np.hypot(yy - zero[0], xx - zero[1])
        search = (d > max(0.4 * predicted, 1.5 * width)) & (d < 2.5 * predicted)
        if not search.any():
            continue
        masked = np.where(search, sm, -np.inf)
        cand = np.unravel_index(int(np.argmax(masked)), sm.shape)
        mirror = (2 * zero[0] - cand[0], 2 * zero[1] - cand[1])
        if not (0 <= mirror[0] < sm.shape[0] and 0 <= mirror[1] < sm.shape[1]):
            continue
        p_cand = _disc_sum(frame, cand, width)
        p_mirror = _disc_sum(frame, mirror, width)
        if min(p_cand, p_mirror) > 0.02 * total and (best is None or p_cand + p_mirror > best[0]):
            best = (p_cand + p_mirror, cand, mirror, frame, test)
        if best is not None and best[0] > 0.3 * total:
            break
    if best is None:
        raise CalibrationError(
            f"{slm_key}: no +-1 diffraction orders of the gray grating found on the sensor; check that the SLM "
            f"modulates the phase (connection, drive, polarisation along its axis) and that the orders "
            f"(about {predicted:.0f} px from the zero order) fall on the sensor")
    _, cand, mirror, frame, test = best
    plus = _centroid(frame, cand, max(2.0, width))
    minus = _centroid(frame, mirror, max(2.0, width))
    if plus[1] < minus[1]:
        plus, minus = minus, plus
    spacing = 0.5 * np.hypot(plus[0] - minus[0], plus[1] - minus[1])
    radius = float(np.clip(0.6 * width, 1.5, 0.3 * spacing))
    win = _make_windows(frame.shape, [zero, plus, minus], radius)
    win.fwhm, win.spacing = float(width), float(spacing)
    return win


def _disc_sum(frame, yx, radius) -> float:
    h, w = frame.shape
    yy, xx = np.ogrid[:h, :w]
    return float(frame[(yy - yx[0]) ** 2 + (xx - yx[1]) ** 2 <= radius ** 2].sum())


def measure_response(session, slm_key: str, *, levels: int = 32, period_px: int = 16,
                     frames: int = 1) -> ResponseMeasurement:
    """Measure the phase response of ``slm_key`` with the other SLM as the lens (module docstring).

    ``levels`` gray levels are sampled per reference, alternately with gratings of period P = ``period_px``
    and P/2. Each grating is shown plain and swapped: 4 * ``levels`` gratings in all (128 by default),
    plus a few set-up patterns.
    """
    slm, helper_key, helper = _check_slms(session, slm_key)
    if period_px < 8 or period_px % 4:
        raise ValueError(f"period_px {period_px}: expected a multiple of 4 pixels, >= 8 (P/2 is used too)")
    if levels < 8:
        raise ValueError(f"levels {levels}: expected at least 8 gray levels")
    t0, bench_t0 = time.perf_counter(), session.bench.clock.now()
    shown0, frames0 = session.counters.patterns_shown, session.counters.frames_captured
    n_levels = 1 << int(slm.bitdepth)
    grays = np.unique(np.round(np.linspace(0, n_levels - 1, int(levels))).astype(int))
    lens, focal = _helper_lens(session, slm_key)
    helper_lut = session.bench.luts.get(helper_key)
    helper_lut_id = helper_lut.id if helper_lut is not None else "unknown"
    raw: dict[str, np.ndarray] = {"grays": grays, "helper_focal_m": np.array(focal)}

    _show(session, {slm_key: session.uniform(slm_key, 0), helper_key: lens})
    with session.power_kept(), session.light():
        try:
            exposure = session.auto_exposure_dimming(max_dimming_steps=_POWER_STEPS)
        except CalibrationError as exc:
            raise CalibrationError(f"{slm_key} response: {exc}") from None
        raw["exposure_s"] = np.array(exposure)
        raw["laser_power_w"] = np.array(session.power_w)
        uniform = _grab(session, frames, f"{slm_key} (uniform, the brightest pattern)")
        raw["uniform_frame_peak"] = np.array(float(uniform.max()))
        period = int(period_px)
        windows = {p: _find_orders(session, slm, slm_key, uniform, p, frames) for p in (period, period // 2)}
        for w in windows.values():
            u = _order_powers_measured(uniform, w)
            w.leak = float(np.clip((u[1] + u[2]) / u[0], 0.0, 0.2))
        sweeps, powers = _sweeps(session, slm, slm_key, grays, (period, period // 2), frames, windows)
    for p, w in windows.items():
        raw[f"order_centres_yx_p{p}"] = w.centres
        raw[f"window_radius_px_p{p}"] = np.array(w.radius)
        raw[f"spot_fwhm_px_p{p}"] = np.array(w.fwhm)
        raw[f"order_spacing_px_p{p}"] = np.array(w.spacing)
    raw.update(periods_px=np.array([sw.period_px for sw in sweeps]),
               references=np.array([sw.reference for sw in sweeps]),
               sweep_grays=np.stack([sw.grays for sw in sweeps]) if len({sw.grays.size for sw in sweeps}) == 1
               else np.concatenate([sw.grays for sw in sweeps]),
               order_powers=powers, ratios=np.concatenate([sw.ratios for sw in sweeps]))
    fit = fit_response(sweeps, n_levels)
    raw["phase_points_grays"] = fit.point_grays
    raw["phase_points_rad"] = fit.point_phase
    m = ResponseMeasurement(
        slm_key=slm_key, wavelength_nm=float(session.config.laser.wavelength_nm), phase_rad=fit.phase,
        crosstalk_sigma_px=fit.sigma, residual_rms=fit.residual_rms, raw=raw, helper_lut_id=helper_lut_id,
        rounds=1, order_balance=fit.balance[period], resample_shift_px=fit.shift)
    raw["fit_periods_px"] = np.array(sorted(fit.balance))
    raw["order_balance"] = np.array([fit.balance[p] for p in sorted(fit.balance)])
    raw["order_leak"] = np.array([fit.leak[p] for p in sorted(fit.leak)])
    raw["zero_order_tail"] = np.array([windows[p].leak for p in sorted(fit.balance)])
    raw["crosstalk_sigma_px"] = np.array(fit.sigma)
    raw["resample_shift_px"] = np.array(fit.shift)
    if windows[period].spacing < _MIN_SEPARATION * windows[period].fwhm:
        m.warnings.append(f"{slm_key}: the +-1 orders of the {period} px grating lie only "
                          f"{windows[period].spacing / windows[period].fwhm:.1f} spot widths from the zero order "
                          f"(few grating periods in the beam); use a shorter period_px")
    if not m.reaches_2pi:
        m.warnings.append(f"{slm_key}: the response reaches only {m.lut_range_rad():.2f} rad (< 2 pi) at "
                          f"{m.wavelength_nm:g} nm; phases beyond it are shown as the nearest reachable one")
    if fit.residual_rms > _RESIDUAL_WARN:
        m.warnings.append(f"{slm_key}: fit residual {fit.residual_rms:.4f} (ratio units) is high; check for "
                          f"stray light, a drifting beam or SLM flicker, and that the +-1 orders stay apart")
    m.counters = {"patterns_shown": session.counters.patterns_shown - shown0,
                  "frames_captured": session.counters.frames_captured - frames0,
                  "bench_time_s": round(session.bench.clock.now() - bench_t0, 3),   # on the bench's clock
                  "wall_time_s": round(time.perf_counter() - t0, 3)}
    return m


def _sweeps(session, slm, slm_key, grays, periods, frames, windows):
    """Reference 0, then the reference near pi/2; each sweeps alternate grays at the two periods, each
    grating shown plain and swapped. Returns the four Sweeps and the order powers
    (4 sweeps, 2 plain/swapped, len(grays) // 2, 3 orders)."""
    subsets = [grays[0::2], grays[1::2]]
    n = min(sub.size for sub in subsets)
    subsets = [sub[:n] for sub in subsets]
    found: dict[tuple[int, int], Sweep] = {}
    powers = np.zeros((4, 2, n, 3))
    # the sweeps look at the diffraction orders only: read out just the window holding them
    with session.window(*_bounding_box(windows.values())) as (dy, dx):
        windows = {p: _shifted(w, dy, dx) for p, w in windows.items()}
        _sweep_all(session, slm, slm_key, subsets, periods, frames, windows, found, powers)
    sweeps = [found[0, 0], found[1, 0], found[0, 1], found[1, 1]]
    return sweeps, powers


def _sweep_all(session, slm, slm_key, subsets, periods, frames, windows, found, powers) -> None:
    """The four sweeps of :func:`_sweeps` (results into ``found`` and ``powers``)."""
    for j in range(2):
        ref = 0 if j == 0 else _second_reference(found[0, 0], slm_key)
        for q, (period, sub) in enumerate(zip(periods, subsets)):
            k = 2 * q + j        # sweep order: (r0, P), (r1, P), (r0, P/2), (r1, P/2)
            # swapped = test gray on the reference stripes, i.e. the grating shifted half a period: the
            # interference between neighbouring orders flips sign, and the sum of both cancels it. Plain
            # gratings are swept up in gray, swapped ones back down, so that consecutive patterns differ
            # little and the ~1 % of each step an SLM has not settled in its wait biases the two halves
            # oppositely; the first pattern after a large step is shown twice.
            for swapped in (0, 1):
                order = list(range(sub.size - 1, -1, -1) if swapped else range(sub.size))
                pairs = [(int(sub[i]), ref) if swapped else (ref, int(sub[i])) for i in order]
                pairs = [pairs[0], *pairs]
                patterns = [_grating(slm, a, b, period) for a, b in pairs]
                window = windows[period]
                measured = session.sweep(
                    slm_key, patterns,
                    grab=lambda n, pairs=pairs, period=period: _grab(
                        session, frames, f"{slm_key} (grating {pairs[n][0]}/{pairs[n][1]}, period {period} px)"),
                    process=lambda n, frame, window=window: _order_powers_measured(frame, window),
                    frames_per_pattern=frames)
                for n, i in enumerate(order):
                    powers[k, swapped, i] = measured[n + 1]     # the first, shown twice, is taken the second time
            summed = _unmix(powers[k].sum(axis=0), windows[period].leak)
            totals = summed.sum(axis=1)
            if np.any(totals <= 0):
                raise CalibrationError(f"{slm_key}: no light in the diffraction orders for some gratings; check "
                                       f"the beam and that nothing blocked it during the measurement")
            found[j, q] = Sweep(ref, period, sub.copy(), summed[:, 0] / totals)


def _unmix(p: np.ndarray, leak: float) -> np.ndarray:
    """Undo the spots' tails in each other's windows: the zero order puts ``leak`` of its power into
    the +-1 windows together (measured on the uniform pattern), and each +-1 order ``leak / 2`` of its
    power into the zero-order window (the same spot tail, seen from the other side)."""
    if leak <= 0:
        return p
    out = p.copy()
    side = p[:, 1] + p[:, 2]
    det = 1.0 - leak * leak / 2.0
    zero = (p[:, 0] - leak / 2.0 * side) / det
    sides = (side - leak * p[:, 0]) / det
    out[:, 0] = zero
    scale = np.divide(sides, side, out=np.ones_like(side), where=side != 0)
    out[:, 1] *= scale
    out[:, 2] *= scale
    return out


def _second_reference(sweep: Sweep, slm_key: str) -> int:
    """The gray where the reference-0 sweep first falls half-way: phi ~ pi/2."""
    grays, f0 = sweep.grays, sweep.ratios
    f0s = ndimage.uniform_filter1d(f0, 3, mode="nearest") if f0.size >= 8 else f0
    lo = float(np.min(f0s))
    start = float(np.max(f0s[:3]))
    if start - lo < 0.3:
        raise CalibrationError(
            f"{slm_key}: the zero-order fraction changes only from {start:.2f} to {lo:.2f} over the gray range "
            f"(a pi step would take it near 0): the SLM barely modulates the phase; check its connection, "
            f"drive and polarisation, or its response is below pi/2 at this wavelength")
    half = 0.5 * (start + lo)
    i = int(np.nonzero(f0s < half)[0][0])
    if i == 0:
        return int(grays[0])
    x0, x1 = f0s[i - 1], f0s[i]
    g = grays[i - 1] + (grays[i] - grays[i - 1]) * (x0 - half) / max(x0 - x1, 1e-9)
    return int(round(g))


# --- two SLMs -------------------------------------------------------------------------------
def _change_rad(new: np.ndarray, old: np.ndarray | None) -> float | None:
    if old is None:
        return None
    use = new <= TWO_PI
    return float(np.sqrt(np.mean((new[use] - old[use]) ** 2)))


def calibrate_luts(session, rounds: int = 2, *, tolerance_rad: float = 0.01,
                   **kw) -> dict[str, ResponseMeasurement]:
    """Measure both SLMs in alternation, applying each new LUT at once (module docstring).

    Round 1: encoding SLM (decoding SLM's current LUT as the lens), then decoding SLM (encoding
    SLM's new LUT). Rounds >= 2: encoding SLM again; decoding SLM again only if the encoding
    SLM's response moved by more than ``tolerance_rad`` RMS. ``kw`` goes to measure_response.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    results: dict[str, ResponseMeasurement] = {}
    history: dict[str, list[dict]] = {ENCODING: [], DECODING: []}
    for r in range(1, rounds + 1):
        keys = [ENCODING, DECODING]
        for key in keys:
            if key == DECODING and r > 1:
                moved = history[ENCODING][-1]["change_rad_rms"]
                if moved is not None and moved <= tolerance_rad:
                    log.info("round %d: %s moved %.4f rad <= %.4f; %s not re-measured", r, ENCODING, moved,
                             tolerance_rad, DECODING)
                    continue
            m = measure_response(session, key, **kw)
            previous = results.get(key)
            change = _change_rad(m.phase_rad, previous.phase_rad if previous is not None else None)
            history[key].append({"round": r, "helper_lut_id": m.helper_lut_id, "change_rad_rms": change,
                                 "crosstalk_sigma_px": m.crosstalk_sigma_px, "order_balance": m.order_balance,
                                 "residual_rms": m.residual_rms, "lut_range_rad": m.lut_range_rad(),
                                 **m.counters})
            m.rounds = len(history[key])
            m.history = list(history[key])
            response = m.response(f"measured:{key}:{m.wavelength_nm:g}nm:r{r}:{m.digest()}")
            apply_response(session.slms[key], response)
            session.bench.luts[key] = response
            for w in m.warnings:
                log.warning(w)
            log.info("round %d: %s measured (change %s rad, sigma %.3f px, residual %.4f)", r, key,
                     "n/a" if change is None else f"{change:.4f}", m.crosstalk_sigma_px, m.residual_rms)
            results[key] = m
    return results


# --- picture --------------------------------------------------------------------------------
_WHITE, _BLACK, _GREY = (255, 255, 255), (0, 0, 0), (200, 200, 200)
_BLUE, _RED, _GREEN = (200, 80, 0), (0, 0, 220), (0, 150, 0)   # BGR


def _panel(img, origin, size, xlim, ylim, xlabel, ylabel, title, xticks, yticks, yfmt="{:g}"):
    """Axes box with ticks and labels; returns a function mapping data (x, y) to pixel coordinates."""
    ox, oy = origin
    w, h = size
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.rectangle(img, (ox, oy), (ox + w, oy + h), _BLACK, 1)

    def to_px(x, y):
        px = ox + (np.asarray(x, float) - xlim[0]) / (xlim[1] - xlim[0]) * w
        py = oy + h - (np.asarray(y, float) - ylim[0]) / (ylim[1] - ylim[0]) * h
        return px, py

    for xt in xticks:
        px, _ = to_px(xt, ylim[0])
        cv2.line(img, (int(px), oy), (int(px), oy + h), _GREY, 1)
        label = f"{xt:g}"
        cv2.putText(img, label, (int(px) - 4 * len(label), oy + h + 18), font, 0.45, _BLACK, 1, cv2.LINE_AA)
    for yt in yticks:
        _, py = to_px(xlim[0], yt)
        cv2.line(img, (ox, int(py)), (ox + w, int(py)), _GREY, 1)
        label = yfmt.format(yt)
        cv2.putText(img, label, (ox - 10 - 9 * len(label), int(py) + 5), font, 0.45, _BLACK, 1, cv2.LINE_AA)
    cv2.rectangle(img, (ox, oy), (ox + w, oy + h), _BLACK, 1)
    cv2.putText(img, xlabel, (ox + w // 2 - 4 * len(xlabel), oy + h + 42), font, 0.55, _BLACK, 1, cv2.LINE_AA)
    ylab = np.full((24, 9 * len(ylabel) + 10, 3), 255, np.uint8)
    cv2.putText(ylab, ylabel, (4, 17), font, 0.55, _BLACK, 1, cv2.LINE_AA)
    ylab = cv2.rotate(ylab, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = max(0, oy + h // 2 - ylab.shape[0] // 2)
    x0 = max(0, ox - 75)
    hh = min(ylab.shape[0], img.shape[0] - y0)
    img[y0:y0 + hh, x0:x0 + ylab.shape[1]] = ylab[:hh]
    cv2.putText(img, title, (ox, oy - 10), font, 0.6, _BLACK, 1, cv2.LINE_AA)
    return to_px


def _polyline(img, to_px, x, y, color, thickness=2):
    px, py = to_px(x, y)
    pts = np.round(np.stack([px, py], axis=1)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [pts], False, color, thickness, cv2.LINE_AA)


def write_response_png(path, measurement: ResponseMeasurement, planted: np.ndarray | None = None) -> None:
    """A PNG a person can read: the response (per-gray measured phases, fitted curve, planted truth if
    given), the measured points' deviation from the curve, and the LUT (gray shown per desired phase)."""
    m = measurement
    phase = np.asarray(m.phase_rad, dtype=float)
    n = phase.size
    grays = np.arange(n)
    width, height = 1580, 620
    img = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    ymax = max(TWO_PI, float(phase.max())) * 1.05
    if planted is not None:
        planted = np.asarray(planted, dtype=float)
        planted = planted - planted[0]
        ymax = max(ymax, float(planted.max()) * 1.05)
    xt = [0, n // 4, n // 2, 3 * n // 4, n - 1]
    box = (420, 380)

    # 1: response
    to_px = _panel(img, (100, 60), box, (0, n - 1), (0, ymax), "gray level", "phase delay (rad)",
                   f"{m.slm_key} response at {m.wavelength_nm:g} nm", xt, list(range(0, int(ymax) + 1)))
    x0, y2pi = to_px(0, TWO_PI)
    x1, _ = to_px(n - 1, TWO_PI)
    cv2.line(img, (int(x0), int(y2pi)), (int(x1), int(y2pi)), (120, 120, 120), 1, cv2.LINE_AA)
    cv2.putText(img, "2 pi", (int(x0) + 4, int(y2pi) - 5), font, 0.45, (120, 120, 120), 1, cv2.LINE_AA)
    if planted is not None:
        _polyline(img, to_px, grays, planted, _GREEN, 5)
    _polyline(img, to_px, grays, phase, _BLUE, 2)
    pg = m.raw.get("phase_points_grays")
    pp = m.raw.get("phase_points_rad")
    if pg is not None and pp is not None:
        px, py = to_px(pg, pp)
        for x, y in zip(px, py):
            cv2.circle(img, (int(round(x)), int(round(y))), 3, _RED, -1, cv2.LINE_AA)

    # 2: deviations (mrad)
    dev = {}
    if pg is not None and pp is not None:
        dev["points - curve"] = (np.asarray(pg), 1e3 * (np.asarray(pp) - phase[np.asarray(pg, dtype=int)]), _RED)
    if planted is not None:
        dev["curve - planted"] = (grays, 1e3 * (phase - planted), _GREEN)
    lim = max([50.0] + [float(np.max(np.abs(v[1]))) * 1.1 for v in dev.values()])
    lim = float(np.ceil(lim / 25.0) * 25.0)
    to_px2 = _panel(img, (620, 60), box, (0, n - 1), (-lim, lim), "gray level", "deviation (mrad)",
                    "measured points and truth vs fitted curve", xt, [-lim, -lim / 2, 0, lim / 2, lim], "{:.0f}")
    for label, (x, y, color) in dev.items():
        if label == "points - curve":
            px, py = to_px2(x, y)
            for u, v in zip(px, py):
                cv2.circle(img, (int(round(u)), int(round(v))), 3, color, -1, cv2.LINE_AA)
        else:
            _polyline(img, to_px2, x, y, color, 2)

    # 3: LUT: gray shown for each desired phase 0..2pi
    desired = np.linspace(0.0, TWO_PI, 256)
    lut = np.interp(desired, phase, grays, right=np.nan)
    to_px3 = _panel(img, (1140, 60), box, (0, TWO_PI), (0, n - 1), "desired phase (rad)",
                    "gray level", "LUT (inverse response)", [0, 1, 2, 3, 4, 5, 6], xt)
    ok = np.isfinite(lut)
    _polyline(img, to_px3, desired[ok], lut[ok], _BLUE, 2)

    lines = [f"fitted crosstalk sigma {m.crosstalk_sigma_px:.3f} px, sub-pixel resampling {m.resample_shift_px:.3f} px, "
             f"order balance k {m.order_balance:.3f}, fit residual {m.residual_rms:.4f} (zero-order fraction), "
             f"range {m.lut_range_rad():.3f} rad",
             f"helper LUT: {m.helper_lut_id}; this SLM measured {m.rounds} time(s); "
             f"{m.counters.get('patterns_shown', '?')} patterns"]
    if planted is not None:
        use = planted <= TWO_PI
        err = float(np.sqrt(np.mean((phase[use] - planted[use]) ** 2)))
        lines.append(f"RMS error vs planted over 0..2pi: {err:.4f} rad")
    lines.append("red: per-gray measured phases; blue: fitted monotone curve / LUT" +
                 ("; green: planted truth" if planted is not None else ""))
    lines += m.warnings
    for k, text in enumerate(lines):
        cv2.putText(img, text, (40, 515 + 20 * k), font, 0.45, _RED if text in m.warnings else _BLACK, 1,
                    cv2.LINE_AA)
    path = Path(path)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write the response PNG")
