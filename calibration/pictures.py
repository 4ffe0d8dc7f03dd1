"""The camera calibration's picture: the dark frame and the linearity of the spot counts (PNG, OpenCV)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["write_camera_png"]

_WHITE, _BLACK, _BLUE, _RED = (255, 255, 255), (0, 0, 0), (200, 90, 20), (40, 40, 220)


def _text(img: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.45, color=_BLACK) -> None:
    cv2.putText(img, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def write_camera_png(path: str | Path, cal) -> None:
    """Left: the dark frame stretched to +-5 read-noise sigma; right: spot counts vs exposure."""
    panel = 360
    img = np.full((panel + 70, 2 * panel + 60, 3), 255, np.uint8)
    dark = cal.dark_frame.astype(np.float32)
    sigma = max(float(cal.read_noise_dn), 0.5)
    scaled = np.clip((dark - cal.dark_level_dn) / (10 * sigma) + 0.5, 0, 1)
    h, w = scaled.shape
    k = panel / max(h, w)
    view = cv2.resize((scaled * 255).astype(np.uint8), (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
    img[40:40 + view.shape[0], 20:20 + view.shape[1]] = view[..., None]
    _text(img, f"dark frame at {cal.exposure_s * 1e3:.3g} ms: level {cal.dark_level_dn:.1f} DN, "
               f"read noise {cal.read_noise_dn:.2f} DN, {cal.hot_pixels} hot px", (20, 25), 0.4)
    # linearity plot
    x0, y0, size = panel + 50, 40 + panel - 20, panel - 40
    cv2.rectangle(img, (x0, y0 - size), (x0 + size, y0), _BLACK, 1)
    e, s, p = cal.exposures_s, cal.spot_counts, cal.peak_counts
    if len(e) and np.max(s) > 0:
        ex, sx = e / e.max(), s / s.max()
        unclipped = p < 0.9 * cal.driver_saturation_dn
        if unclipped.sum() >= 1:
            slope = np.sum(sx[unclipped] * ex[unclipped]) / np.sum(ex[unclipped] ** 2)
            cv2.line(img, (x0, y0), (x0 + size, int(y0 - size * min(slope, 1.0))), _BLUE, 1, cv2.LINE_AA)
        for xi, yi, ok in zip(ex, sx, unclipped):
            cv2.circle(img, (int(x0 + xi * size), int(y0 - yi * size)), 4, _BLUE if ok else _RED, -1, cv2.LINE_AA)
    _text(img, "spot counts vs exposure (blue: unclipped, red: saturated)", (x0 - 10, y0 - size - 10), 0.4)
    _text(img, f"exposure (max {e.max() * 1e3:.3g} ms)" if len(e) else "exposure", (x0 + 60, y0 + 20), 0.4)
    _text(img, f"saturation {cal.saturation_dn:.0f} DN (driver {cal.driver_saturation_dn}), "
               f"linearity RMS {cal.linearity_rms * 100:.2f} %", (20, panel + 60), 0.45)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write the PNG")
