"""The camera calibration's picture: the dark frame and the linearity of the spot counts (PNG, OpenCV).

Right panel: the dark-subtracted counts summed over the focused spot at each exposure step
against the exposure, the steps whose peak stayed clear of saturation (the fitted ones) apart
from the saturated ones, and the fitted line through zero (:func:`~optgen.calibration.camera.fit_linearity`)
drawn over the whole exposure axis, clipped to the panel.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from optgen.calibration.camera import CameraCalibration, LinearityFit, fit_linearity
from optgen.calibration.plot_axes import draw_axes, line_in_box, nice_ticks

__all__ = ["LINEARITY_BOX", "exposure_unit", "linearity_legend", "write_camera_png"]

_BLACK, _BLUE, _RED, _GREEN = (0, 0, 0), (200, 90, 20), (40, 40, 220), (0, 150, 0)   # BGR
SIZE = (960, 540)                                  # (width, height) of the PNG
LINEARITY_BOX = ((520, 60), (400, 330))            # the linearity axes: top-left corner, (width, height)
_UNIT_WORDS = {0: "", 3: "x 1000 ", 6: "x 1e6 ", 9: "x 1e9 "}   # the counts axis' unit (OpenCV's font has no ^)


def _text(img: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.45, color=_BLACK) -> None:
    cv2.putText(img, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _counts_power(top: float) -> int:
    """The power of ten (a multiple of 3) the counts axis is labelled in."""
    return 3 * math.floor(math.log10(top) / 3) if top >= 1000 else 0


def exposure_unit(exposures_s) -> tuple[str, float]:
    """(name, seconds) of the exposure axis' unit: ms, or us where every step is shorter than 1 ms."""
    e = np.asarray(exposures_s, dtype=float)
    return ("us", 1e-6) if e.size and float(e.max()) < 1e-3 else ("ms", 1e-3)


def linearity_legend(fit: LinearityFit, unit: tuple[str, float] = ("ms", 1e-3)) -> str:
    """The line under the linearity panel: the fitted slope (DN per ``unit`` of exposure) and how
    many steps it fits."""
    if not math.isfinite(fit.gain_dn_per_s):
        return "no fit: every step saturated (or none recorded)"
    slope = fit.gain_dn_per_s * unit[1]
    words = f"{slope:,.0f}" if abs(slope) >= 100 else f"{slope:.4g}"
    return f"fit through 0: slope {words} DN/{unit[0]}, {int(fit.unclipped.sum())} of {fit.unclipped.size} steps"


def _dark_panel(img: np.ndarray, cal: CameraCalibration) -> None:
    dark = cal.dark_frame.astype(np.float32)
    sigma = max(float(cal.read_noise_dn), 0.5) if math.isfinite(cal.read_noise_dn) else 0.5
    scaled = np.clip((dark - cal.dark_level_dn) / (10 * sigma) + 0.5, 0, 1)
    h, w = scaled.shape
    k = 360 / max(h, w)
    view = cv2.resize((scaled * 255).astype(np.uint8), (max(1, int(w * k)), max(1, int(h * k))),
                      interpolation=cv2.INTER_AREA)
    img[50:50 + view.shape[0], 20:20 + view.shape[1]] = view[..., None]
    _text(img, f"dark frame at {cal.exposure_s * 1e3:.3g} ms ({w} x {h} px)", (20, 25), 0.45)
    _text(img, f"level {cal.dark_level_dn:.1f} DN, read noise {cal.read_noise_dn:.2f} DN, {cal.hot_pixels} hot px",
          (20, 42), 0.4)
    _text(img, "black..white: -5..+5 read-noise sigma about the level", (20, 50 + view.shape[0] + 18), 0.4)


def _linearity_panel(img: np.ndarray, cal: CameraCalibration) -> None:
    origin, size = LINEARITY_BOX
    unit = exposure_unit(cal.exposures_s)
    e_x = np.asarray(cal.exposures_s, dtype=float) / unit[1]
    s = np.asarray(cal.spot_counts, dtype=float)
    fit = fit_linearity(cal.exposures_s, s, cal.peak_counts, cal.driver_saturation_dn)
    gain_x = fit.gain_dn_per_s * unit[1]                   # DN per unit of exposure
    x_top = float(e_x.max()) if e_x.size else 1.0
    y_top = float(s.max()) if s.size else 1.0
    if math.isfinite(gain_x):
        y_top = max(y_top, gain_x * x_top)
    power = _counts_power(y_top)
    counts = 10.0 ** power
    xticks = nice_ticks(0.0, x_top * 1.02 if x_top > 0 else 1.0)
    y_low = min(0.0, float(s.min()) / counts) if s.size else 0.0    # dark-subtracted sums may dip below 0
    yticks = nice_ticks(y_low, y_top / counts * 1.02 if y_top > 0 else 1.0)
    ylabel = f"spot counts ({_UNIT_WORDS.get(power, f'x 1e{power} ')}DN)"
    to_px = draw_axes(img, origin, size, (0.0, xticks[-1]), (yticks[0], yticks[-1]), f"exposure ({unit[0]})", ylabel,
                      "summed spot counts vs exposure", xticks, yticks)
    if math.isfinite(gain_x):
        line_in_box(img, to_px, origin, size, (0.0, 0.0), (xticks[-1], gain_x * xticks[-1] / counts), _GREEN, 2)
    px, py = to_px(e_x, s / counts)
    for x, y, ok in zip(px, py, fit.unclipped):
        cv2.circle(img, (int(round(x)), int(round(y))), 4, _BLUE if ok else _RED, -1, cv2.LINE_AA)
    ox, below = origin[0] - 70, origin[1] + size[1] + 68
    _text(img, linearity_legend(fit, unit), (ox, below), 0.42)
    cv2.circle(img, (ox + 5, below + 18), 4, _BLUE, -1, cv2.LINE_AA)
    _text(img, "fitted step", (ox + 14, below + 23), 0.42)
    cv2.circle(img, (ox + 115, below + 18), 4, _RED, -1, cv2.LINE_AA)
    _text(img, "saturated step (not fitted)", (ox + 124, below + 23), 0.42)
    cv2.line(img, (ox + 330, below + 18), (ox + 350, below + 18), _GREEN, 2, cv2.LINE_AA)
    _text(img, "fit", (ox + 356, below + 23), 0.42)


def write_camera_png(path: str | Path, cal: CameraCalibration) -> None:
    """Left: the dark frame stretched to +-5 read-noise sigma; right: the spot's summed counts
    against the exposure with the fitted line; at the bottom the saturation and the linearity."""
    img = np.full((SIZE[1], SIZE[0], 3), 255, np.uint8)
    _dark_panel(img, cal)
    _linearity_panel(img, cal)
    _text(img, f"saturation {cal.saturation_dn:.0f} DN (driver {cal.driver_saturation_dn} DN), "
               f"linearity RMS {cal.linearity_rms * 100:.2f} %", (20, SIZE[1] - 20), 0.45)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write the PNG")
