"""The camera pixel by pixel: hot pixels and the dark frame, and their correction of every frame.

- Hot pixels: pixels whose dark signal stands far above their neighbours' (a 5 x 5 median),
  looked for in dark frames at the run's exposure and at a long exposure (dark current grows
  with it, so a pixel that is merely warm at the run's exposure shows there too). The
  threshold is 8 robust sigma of the dark frame's pixel-to-pixel spread (DSNU plus the mean's
  temporal noise), at least 5 counts.
- :class:`PixelCorrection` applies them to a frame: the per-pixel dark subtracted, divided by the
  flat field where there is one, each hot pixel replaced by the median of its eight neighbours.
- The flat field is not measured here: this light path cannot light the sensor smoothly at the
  pixel scale. A lab measures it with a uniform source and names the file in the bench file
  (``[camera] flat_field = "flat.npy"``, :func:`load_flat_field`). Tried on
  the twin: diverging lenses on SLM1, each picture divided by its own blur, the median over six
  lens powers: the light itself carries 9-13 % pixel-scale structure (zone rings where the
  lens wraps, interference with the light the SLMs leave unmodulated), against a planted
  photo-response non-uniformity of 1 %; the measured gain followed the planted one with
  r = 0.18. A flat field belongs to a uniform source (an integrating sphere, EMVA 1288).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from optgen.drivers.errors import OptgenError

__all__ = ["FLAT_FIELD_RANGE", "PixelCorrection", "find_hot_pixels", "load_flat_field"]

HOT_SIGMA = 8.0                  # hot: this many robust sigma above the 5 x 5 median
HOT_MIN_DN = 5.0                 # ... and at least this many counts
FLAT_FIELD_RANGE = (0.25, 4.0)   # a relative pixel gain outside it is a broken file, not a sensor


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


def load_flat_field(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """The relative gain of each pixel (float32, median 1) from a ``.npy`` file of the sensor's
    ``shape`` (rows, columns); FlatFieldError naming the file and what was expected otherwise."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise FlatFieldError(f"{path}: a flat field is a .npy array of relative pixel gains")
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)     # the header first, no data read yet
    except (OSError, ValueError) as exc:
        raise FlatFieldError(f"{path}: cannot read the flat field ({exc})") from None
    if mapped.shape != tuple(shape) or mapped.dtype.kind != "f":
        raise FlatFieldError(f"{path}: a flat field of shape {mapped.shape}, dtype {mapped.dtype}; expected "
                             f"floating-point gains of the [camera] sensor's {shape[0]} x {shape[1]} pixels")
    gain = np.array(mapped, dtype=np.float64)
    if not np.isfinite(gain).all():
        raise FlatFieldError(f"{path}: NaN or infinite gains; expected finite numbers")
    median = float(np.median(gain))
    if not median > 0:
        raise FlatFieldError(f"{path}: a median gain of {median:g}; expected positive relative gains")
    gain = gain / median
    lo, hi = float(gain.min()), float(gain.max())
    if lo < FLAT_FIELD_RANGE[0] or hi > FLAT_FIELD_RANGE[1]:
        raise FlatFieldError(f"{path}: relative gains from {lo:.3g} to {hi:.3g}; expected "
                             f"{FLAT_FIELD_RANGE[0]:g}..{FLAT_FIELD_RANGE[1]:g} of the median (a dead pixel is a "
                             f"defect to map, not a gain)")
    return gain.astype(np.float32)


class FlatFieldError(OptgenError, ValueError):
    """A flat-field file that cannot be this camera's."""


@dataclass
class PixelCorrection:
    """Per-pixel dark, gain and hot pixels of a sensor (or of a window of it), applied to frames."""

    dark: np.ndarray                 # float32 counts, the dark frame at the run's exposure
    hot: np.ndarray | None = None    # bool
    gain: np.ndarray | None = None   # float32 relative gain (the flat field), None: not corrected

    def __post_init__(self) -> None:
        self.dark = np.asarray(self.dark, dtype=np.float32)
        shape = self.dark.shape
        self._inv_gain = None if self.gain is None else (1.0 / np.asarray(self.gain, np.float32)).astype(np.float32)
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
        return PixelCorrection(self.dark[rows, cols], None if self.hot is None else self.hot[rows, cols],
                               None if self.gain is None else self.gain[rows, cols])

    def shifted(self, level_dn: float) -> "PixelCorrection":
        """The same correction with the dark frame moved by ``level_dn`` counts (a dark level that
        drifted since the calibration: the run's own dark frame says by how much)."""
        return PixelCorrection(self.dark + np.float32(level_dn), self.hot, self.gain)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` in counts above dark, flat-fielded, hot pixels replaced (float32, a new array)."""
        frame = np.asarray(frame)
        if frame.shape != self.dark.shape:
            raise ValueError(f"frame of shape {frame.shape}; the camera correction is for {self.dark.shape}")
        out = frame.astype(np.float32)
        out -= self.dark
        if self._inv_gain is not None:
            out *= self._inv_gain
        if self._hot_index is not None:
            flat = out.reshape(-1)
            flat[self._hot_index] = np.median(flat[self._neighbours], axis=1)
        return out
