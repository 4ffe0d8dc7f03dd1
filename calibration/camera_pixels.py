"""The camera pixel by pixel: hot pixels and the dark frame, and their correction of every frame.

- Hot pixels: pixels whose dark signal stands far above their neighbours' (a 5 x 5 median),
  looked for in dark frames at the run's exposure and at a long exposure (dark current grows
  with it, so a pixel that is merely warm at the run's exposure shows there too). The
  threshold is 8 robust sigma of the dark frame's pixel-to-pixel spread (DSNU plus the mean's
  temporal noise), at least 5 counts.
- :class:`PixelCorrection` applies both to a frame: the per-pixel dark subtracted, each hot
  pixel replaced by the median of its eight neighbours.
- No flat field: this light path cannot light the sensor smoothly at the pixel scale. Tried on
  the twin: diverging lenses on SLM1, each picture divided by its own blur, the median over six
  lens powers: the light itself carries 9-13 % pixel-scale structure (zone rings where the
  lens wraps, interference with the light the SLMs leave unmodulated), against a planted
  photo-response non-uniformity of 1 %; the measured gain followed the planted one with
  r = 0.18. A flat field belongs to a uniform source (an integrating sphere, EMVA 1288).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["PixelCorrection", "find_hot_pixels"]

HOT_SIGMA = 8.0                  # hot: this many robust sigma above the 5 x 5 median
HOT_MIN_DN = 5.0                 # ... and at least this many counts


def _robust_sigma(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (of at most 200,000 values, spread over the frame)."""
    v = values.ravel()
    if v.size > 200_000:
        v = v[:: v.size // 200_000 + 1]
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def find_hot_pixels(dark: np.ndarray) -> tuple[np.ndarray, float]:
    """(mask of hot pixels, threshold in counts above the local median) of a mean dark frame."""
    dark = np.asarray(dark, dtype=np.float32)
    residual = dark - cv2.medianBlur(dark, 5)
    threshold = max(HOT_SIGMA * _robust_sigma(residual), HOT_MIN_DN)
    return residual > threshold, threshold


@dataclass
class PixelCorrection:
    """Per-pixel dark and hot pixels of a sensor (or of a window of it), applied to frames."""

    dark: np.ndarray                 # float32 counts, the dark frame at the run's exposure
    hot: np.ndarray | None = None    # bool

    def __post_init__(self) -> None:
        self.dark = np.asarray(self.dark, dtype=np.float32)
        shape = self.dark.shape
        self._hot_index = self._neighbours = None
        if self.hot is not None and np.any(self.hot):
            rows, cols = np.nonzero(self.hot)
            self._hot_index = rows * shape[1] + cols
            offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
            r = np.clip(rows[:, None] + np.array([o[0] for o in offsets]), 0, shape[0] - 1)
            c = np.clip(cols[:, None] + np.array([o[1] for o in offsets]), 0, shape[1] - 1)
            self._neighbours = r * shape[1] + c                       # (hot pixels, 8) flat indices

    @property
    def shape(self) -> tuple[int, int]:
        return self.dark.shape

    @property
    def hot_count(self) -> int:
        return 0 if self._hot_index is None else int(self._hot_index.size)

    def crop(self, rows: slice, cols: slice) -> "PixelCorrection":
        """The correction of a window of the sensor."""
        return PixelCorrection(self.dark[rows, cols], None if self.hot is None else self.hot[rows, cols])

    def shifted(self, level_dn: float) -> "PixelCorrection":
        """The same correction with the dark frame moved by ``level_dn`` counts (a dark level that
        drifted since the calibration: the run's own dark frame says by how much)."""
        return PixelCorrection(self.dark + np.float32(level_dn), self.hot)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` in counts above dark, hot pixels replaced (float32, a new array)."""
        frame = np.asarray(frame)
        if frame.shape != self.dark.shape:
            raise ValueError(f"frame of shape {frame.shape}; the camera correction is for {self.dark.shape}")
        out = frame.astype(np.float32)
        out -= self.dark
        if self._hot_index is not None:
            flat = out.reshape(-1)
            flat[self._hot_index] = np.median(flat[self._neighbours], axis=1)
        return out
