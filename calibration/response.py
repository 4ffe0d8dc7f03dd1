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
       may also be resampled a fraction of a pixel (linear interpolation of its transmission): that is
       how the twin renders an SLM shifted in the beam (SLM2); on a real SLM it fits to ~0. A naive cos^2(Delta/2) misses
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

Two SLMs, which first? See :mod:`optgen.calibration.two_slms`.

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
``warnings`` says it and ``calibrate_luts`` logs it. A response below about pi/2 cannot be
measured this way (there is no r1) and raises.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from optgen.calibration.lut import PhaseResponse
from optgen.calibration.record import CalibrationRecord
from optgen.calibration.response_fit import Sweep, fit_response, unmix
from optgen.calibration.response_spots import (
    OrderWindows,
    bounding_box,
    centroid,
    disc_sum,
    grab,
    make_windows,
    order_powers_measured,
    shifted,
    spot_width,
)
from optgen.calibration.session import CalibrationError
from optgen.drivers.common.patterns import TWO_PI, binary_grating, lens_phase
from optgen.drivers.common.roles import DECODING, ENCODING

__all__ = ["ResponseMeasurement", "measure_response"]

log = logging.getLogger(__name__)

_HELPER = {ENCODING: DECODING, DECODING: ENCODING}
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


# --- monotone curve -------------------------------------------------------------------------


# --- frames and spots -----------------------------------------------------------------------


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


def _find_orders(session, slm, slm_key: str, uniform: np.ndarray, period_px: int, frames: int) -> OrderWindows:
    """Zero order from the uniform frame, +-1 orders from a high-contrast grating."""
    camera = session.bench.camera
    smooth = ndimage.gaussian_filter(uniform.astype(np.float64), 1.0)
    peak_yx = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    width = spot_width(smooth, peak_yx)
    zero = centroid(uniform, peak_yx, max(2.0, width))
    noise = 1.4826 * float(np.median(np.abs(uniform - np.median(uniform)))) + 0.5
    lit = float(uniform[smooth > 5.0 * noise].sum())          # all the light clearly above the noise
    disc_power = disc_sum(uniform, zero, max(2.0, width))
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
        frame = grab(session, frames, f"{slm_key} (finding the diffraction orders)")
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
        p_cand = disc_sum(frame, cand, width)
        p_mirror = disc_sum(frame, mirror, width)
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
    plus = centroid(frame, cand, max(2.0, width))
    minus = centroid(frame, mirror, max(2.0, width))
    if plus[1] < minus[1]:
        plus, minus = minus, plus
    spacing = 0.5 * np.hypot(plus[0] - minus[0], plus[1] - minus[1])
    radius = float(np.clip(0.6 * width, 1.5, 0.3 * spacing))
    win = make_windows(frame.shape, [zero, plus, minus], radius)
    win.fwhm, win.spacing = float(width), float(spacing)
    return win


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
        uniform = grab(session, frames, f"{slm_key} (uniform, the brightest pattern)")
        raw["uniform_frame_peak"] = np.array(float(uniform.max()))
        period = int(period_px)
        windows = {p: _find_orders(session, slm, slm_key, uniform, p, frames) for p in (period, period // 2)}
        for w in windows.values():
            u = order_powers_measured(uniform, w)
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
    with session.window(*bounding_box(windows.values())) as (dy, dx):
        windows = {p: shifted(w, dy, dx) for p, w in windows.items()}
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
                    grab=lambda n, pairs=pairs, period=period: grab(
                        session, frames, f"{slm_key} (grating {pairs[n][0]}/{pairs[n][1]}, period {period} px)"),
                    process=lambda n, frame, window=window: order_powers_measured(frame, window),
                    frames_per_pattern=frames)
                for n, i in enumerate(order):
                    powers[k, swapped, i] = measured[n + 1]     # the first, shown twice, is taken the second time
            summed = unmix(powers[k].sum(axis=0), windows[period].leak)
            totals = summed.sum(axis=1)
            if np.any(totals <= 0):
                raise CalibrationError(f"{slm_key}: no light in the diffraction orders for some gratings; check "
                                       f"the beam and that nothing blocked it during the measurement")
            found[j, q] = Sweep(ref, period, sub.copy(), summed[:, 0] / totals)


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


# --- picture --------------------------------------------------------------------------------



