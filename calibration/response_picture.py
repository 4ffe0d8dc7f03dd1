"""The response calibration's PNG: the response with its fit and the planted truth (on a twin), the
points' deviation, and the LUT."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from optgen.calibration.plot_axes import draw_axes, polyline
from optgen.calibration.response import ResponseMeasurement
from optgen.drivers.common.patterns import TWO_PI

__all__ = ["write_response_png"]

_BLACK = (0, 0, 0)
_BLUE, _RED, _GREEN = (200, 80, 0), (0, 0, 220), (0, 150, 0)   # BGR


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
    to_px = draw_axes(img, (100, 60), box, (0, n - 1), (0, ymax), "gray level", "phase delay (rad)",
                   f"{m.slm_key} response at {m.wavelength_nm:g} nm", xt, list(range(0, int(ymax) + 1)))
    x0, y2pi = to_px(0, TWO_PI)
    x1, _ = to_px(n - 1, TWO_PI)
    cv2.line(img, (int(x0), int(y2pi)), (int(x1), int(y2pi)), (120, 120, 120), 1, cv2.LINE_AA)
    cv2.putText(img, "2 pi", (int(x0) + 4, int(y2pi) - 5), font, 0.45, (120, 120, 120), 1, cv2.LINE_AA)
    if planted is not None:
        polyline(img, to_px, grays, planted, _GREEN, 5)
    polyline(img, to_px, grays, phase, _BLUE, 2)
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
    to_px2 = draw_axes(img, (620, 60), box, (0, n - 1), (-lim, lim), "gray level", "deviation (mrad)",
                    "measured points and truth vs fitted curve", xt, [-lim, -lim / 2, 0, lim / 2, lim], "{:.0f}")
    for label, (x, y, color) in dev.items():
        if label == "points - curve":
            px, py = to_px2(x, y)
            for u, v in zip(px, py):
                cv2.circle(img, (int(round(u)), int(round(v))), 3, color, -1, cv2.LINE_AA)
        else:
            polyline(img, to_px2, x, y, color, 2)

    # 3: LUT: gray shown for each desired phase 0..2pi
    desired = np.linspace(0.0, TWO_PI, 256)
    lut = np.interp(desired, phase, grays, right=np.nan)
    to_px3 = draw_axes(img, (1140, 60), box, (0, TWO_PI), (0, n - 1), "desired phase (rad)",
                    "gray level", "LUT (inverse response)", [0, 1, 2, 3, 4, 5, 6], xt)
    ok = np.isfinite(lut)
    polyline(img, to_px3, desired[ok], lut[ok], _BLUE, 2)

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
