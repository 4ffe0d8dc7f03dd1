"""Standard phase patterns on an SLM's pixel grid: one lens, the gratings, and centring a block.

Coordinates are metres from the grid's centre pixel ((n - 1) / 2), x along columns and y along
rows; every centre is given as (x, y). Phases are float32 radians.
"""

from __future__ import annotations

import numpy as np

__all__ = ["binary_grating", "centre_crop", "centred_top_left", "embed_centered", "grating_phase", "grid_coordinates", "lens_phase"]

TWO_PI = 2.0 * np.pi


def grid_coordinates(shape: tuple[int, int], pitch_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) coordinates in metres of pixel centres, zero at the grid centre (column and row vectors)."""
    rows, cols = shape
    y = (np.arange(rows) - (rows - 1) / 2.0) * pitch_m
    x = (np.arange(cols) - (cols - 1) / 2.0) * pitch_m
    return y[:, None], x[None, :]


def lens_phase(shape: tuple[int, int], pitch_m: float, wavelength_m: float, focal_m: float,
               centre_m: tuple[float, float] = (0.0, 0.0), *, wrapped: bool = False,
               flyback_px: float = 0.0) -> np.ndarray:
    """Thin-lens phase -pi r^2 / (lambda f), centred ``centre_m`` = (x, y) from the grid's centre.

    ``wrapped``: in [0, 2 pi) (what an SLM shows). ``flyback_px`` > 0 (implies wrapped) replaces
    each 2 pi jump by a linear return over that many pixels (at most half the local period): the
    phase is then continuous, so the pattern keeps its shape under a sub-pixel shift or rotation
    of the SLM however the pixels are resampled. It costs first-order efficiency where the local
    period is short; the focus stays where the lens is.
    """
    y, x = grid_coordinates(shape, pitch_m)
    ry2 = (y - centre_m[1]) ** 2                       # (rows, 1) and (1, cols), float64: the phase is
    rx2 = (x - centre_m[0]) ** 2                       # separable, so each term is wrapped in 1-D
    if not wrapped and flyback_px <= 0:
        k = -np.pi / (wavelength_m * focal_m)
        return (k * ry2).astype(np.float32) + (k * rx2).astype(np.float32)
    k = -1.0 / (2.0 * wavelength_m * focal_m)
    below_one = np.float32(1.0) - np.finfo(np.float32).epsneg
    u = (np.minimum(np.mod(k * ry2, 1.0).astype(np.float32), below_one)
         + np.minimum(np.mod(k * rx2, 1.0).astype(np.float32), below_one))    # the phase / 2 pi, in [0, 2)
    np.subtract(u, np.float32(1.0), out=u, where=u >= 1.0)
    np.minimum(u, below_one, out=u)
    if flyback_px > 0:
        b = ry2.astype(np.float32) + rx2.astype(np.float32)
        np.sqrt(b, out=b)
        b *= np.float32(flyback_px * pitch_m / (wavelength_m * abs(focal_m)))   # local frequency x flyback
        np.minimum(b, np.float32(0.5), out=b)
        top = np.float32(1.0) - b
        u = np.where(u < top, u, (np.float32(1.0) - u) * top / np.maximum(b, np.float32(1e-12)))
    u *= np.float32(TWO_PI)
    return u


def grating_phase(shape: tuple[int, int], pitch_m: float, period_m: float, axis: int = 1) -> np.ndarray:
    """Blazed-grating phase 2 pi u / period along ``axis`` (1 = x, 0 = y), unwrapped."""
    y, x = grid_coordinates(shape, pitch_m)
    u = x if axis == 1 else y
    return np.broadcast_to(TWO_PI * u / period_m, shape).astype(np.float32)


def binary_grating(shape: tuple[int, int], period_px: int, low, high, dtype=np.uint8) -> np.ndarray:
    """Columns alternating ``low`` / ``high`` (gray levels or radians) with period ``period_px``, a
    ``high`` stripe centred on the grid."""
    rows, cols = shape
    u = np.arange(cols) - (cols - 1) / 2.0
    high_cols = np.mod(u + period_px / 4.0, period_px) < period_px / 2.0
    row = np.where(high_cols, high, low).astype(dtype)
    return np.ascontiguousarray(np.broadcast_to(row, (rows, cols)))


def centred_top_left(block_shape: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int]:
    """(row, column) of the first pixel of a ``block_shape`` pattern centred on a ``shape`` SLM, as
    :func:`embed_centered` places it; ValueError if it does not fit."""
    (rows, cols), (h, w) = shape, block_shape
    if h > rows or w > cols:
        raise ValueError(f"a {h}x{w} pattern does not fit on a {rows}x{cols} SLM")
    return (rows - h) // 2, (cols - w) // 2


def embed_centered(block: np.ndarray, shape: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """Place ``block`` at the centre of a zero pattern of ``shape`` (float32; ``out`` is reused)."""
    r0, c0 = centred_top_left(block.shape, shape)
    if out is None:
        out = np.zeros(shape, dtype=np.float32)
    else:
        out.fill(0)
    out[r0:r0 + block.shape[0], c0:c0 + block.shape[1]] = block
    return out


def centre_crop(full: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The centred ``shape`` part of a map (float32; zero where the map is smaller; None for None):
    what of an SLM-shaped map lies on a grid centred on the SLM, as :func:`embed_centered` places it."""
    if full is None:
        return None
    rows, cols = shape
    out = np.zeros(shape, np.float32)
    fr, fc = full.shape
    r0, c0 = (fr - rows) // 2, (fc - cols) // 2
    rs, cs = max(0, r0), max(0, c0)
    re, ce = min(fr, r0 + rows), min(fc, c0 + cols)
    out[rs - r0:re - r0, cs - c0:ce - c0] = full[rs:re, cs:ce]
    return out
