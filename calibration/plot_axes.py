"""Axes for the calibrations' PNGs (OpenCV, no plotting library): a box with grid lines, ticks,
tick labels, axis labels and a title, and lines drawn in data coordinates, clipped to the box."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

__all__ = ["ToPixels", "draw_axes", "line_in_box", "nice_ticks", "polyline"]

_BLACK, _GREY = (0, 0, 0), (200, 200, 200)
_FONT = cv2.FONT_HERSHEY_SIMPLEX

ToPixels = Callable[[object, object], tuple[np.ndarray, np.ndarray]]


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """About ``target`` round tick values (steps of 1, 2 or 5 times a power of ten) from the
    first at or below ``lo`` to the first at or above ``hi``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def draw_axes(img: np.ndarray, origin: tuple[int, int], size: tuple[int, int], xlim: Sequence[float],
              ylim: Sequence[float], xlabel: str, ylabel: str, title: str, xticks: Sequence[float],
              yticks: Sequence[float], yfmt: str = "{:g}", xfmt: str = "{:g}") -> ToPixels:
    """Axes box (top-left ``origin``, ``size`` = (width, height) in pixels) with grid lines at the
    ticks, tick labels, axis labels and a title; returns a function mapping data (x, y) to pixel
    coordinates (floats, not clipped)."""
    ox, oy = origin
    w, h = size

    def to_px(x, y):
        px = ox + (np.asarray(x, float) - xlim[0]) / (xlim[1] - xlim[0]) * w
        py = oy + h - (np.asarray(y, float) - ylim[0]) / (ylim[1] - ylim[0]) * h
        return px, py

    for xt in xticks:
        px, _ = to_px(xt, ylim[0])
        cv2.line(img, (int(px), oy), (int(px), oy + h), _GREY, 1)
        cv2.line(img, (int(px), oy + h), (int(px), oy + h + 5), _BLACK, 1)
        label = xfmt.format(xt)
        cv2.putText(img, label, (int(px) - 4 * len(label), oy + h + 18), _FONT, 0.45, _BLACK, 1, cv2.LINE_AA)
    for yt in yticks:
        _, py = to_px(xlim[0], yt)
        cv2.line(img, (ox, int(py)), (ox + w, int(py)), _GREY, 1)
        cv2.line(img, (ox - 5, int(py)), (ox, int(py)), _BLACK, 1)
        label = yfmt.format(yt)
        cv2.putText(img, label, (ox - 10 - 9 * len(label), int(py) + 5), _FONT, 0.45, _BLACK, 1, cv2.LINE_AA)
    cv2.rectangle(img, (ox, oy), (ox + w, oy + h), _BLACK, 1)
    cv2.putText(img, xlabel, (ox + w // 2 - 4 * len(xlabel), oy + h + 42), _FONT, 0.55, _BLACK, 1, cv2.LINE_AA)
    ylab = np.full((24, 9 * len(ylabel) + 10, 3), 255, np.uint8)
    cv2.putText(ylab, ylabel, (4, 17), _FONT, 0.55, _BLACK, 1, cv2.LINE_AA)
    ylab = cv2.rotate(ylab, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = max(0, oy + h // 2 - ylab.shape[0] // 2)
    x0 = max(0, ox - 75)
    hh = min(ylab.shape[0], img.shape[0] - y0)
    img[y0:y0 + hh, x0:x0 + ylab.shape[1]] = ylab[:hh]
    cv2.putText(img, title, (ox, oy - 10), _FONT, 0.6, _BLACK, 1, cv2.LINE_AA)
    return to_px


def polyline(img: np.ndarray, to_px: ToPixels, x, y, color: tuple[int, int, int], thickness: int = 2) -> None:
    """The points (x, y) joined, in data coordinates."""
    px, py = to_px(x, y)
    pts = np.round(np.stack([px, py], axis=1)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [pts], False, color, thickness, cv2.LINE_AA)


def line_in_box(img: np.ndarray, to_px: ToPixels, origin: tuple[int, int], size: tuple[int, int],
                start: tuple[float, float], end: tuple[float, float], color: tuple[int, int, int],
                thickness: int = 2) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The straight line from ``start`` to ``end`` (data coordinates) drawn only inside the axes
    box; returns its end points in pixels, or None where no part of it lies in the box."""
    (x0, x1), (y0, y1) = to_px([start[0], end[0]], [start[1], end[1]])
    if not np.all(np.isfinite([x0, x1, y0, y1])):
        return None
    big = 1 << 20                                # cv2.clipLine wants ints; keep far-off ends finite
    p0 = tuple(int(round(float(np.clip(v, -big, big)))) for v in (x0, y0))
    p1 = tuple(int(round(float(np.clip(v, -big, big)))) for v in (x1, y1))
    inside, p0, p1 = cv2.clipLine((origin[0], origin[1], size[0] + 1, size[1] + 1), p0, p1)
    if not inside:
        return None
    cv2.line(img, p0, p1, color, thickness, cv2.LINE_AA)
    return p0, p1
