"""Frames and spots of the response measurement: grabbing checked frames, finding the diffraction
orders, and summing their power in windows with the local background taken off."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optgen.calibration.session import CalibrationError


def grab(session, frames: int, what: str) -> np.ndarray:
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


def centroid(frame: np.ndarray, yx: tuple[float, float], radius: float) -> tuple[float, float]:
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
class OrderWindows:
    centres: np.ndarray        # (3, 2): zero, +1, -1 orders (y, x)
    radius: float
    masks: list                # (slices, disc mask, ring mask) per order
    fwhm: float = 0.0          # zero-order spot width (px)
    spacing: float = 0.0       # +-1 orders' distance from the zero order (px)
    leak: float = 0.0          # zero order's power in the +-1 windows over its own (uniform pattern)


def shifted(win: OrderWindows, dy: int, dx: int) -> OrderWindows:
    """The same windows in a frame whose pixel (0, 0) is (dy, dx) of the whole frame."""
    masks = [(slice(ys.start - dy, ys.stop - dy), slice(xs.start - dx, xs.stop - dx), disc, ring)
             for ys, xs, disc, ring in win.masks]
    return OrderWindows(win.centres - np.array([dy, dx], dtype=float), win.radius, masks, win.fwhm, win.spacing,
                    win.leak)


def bounding_box(windows, margin: int = 8) -> tuple[slice, slice]:
    """Rows and columns holding every order window (background rings included), plus ``margin``."""
    masks = [m for w in windows for m in w.masks]
    rows = slice(min(m[0].start for m in masks) - margin, max(m[0].stop for m in masks) + margin)
    cols = slice(min(m[1].start for m in masks) - margin, max(m[1].stop for m in masks) + margin)
    return rows, cols


def make_windows(shape, centres, radius: float) -> OrderWindows:
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
    return OrderWindows(np.asarray(centres, dtype=float), float(radius), masks)


def order_powers_measured(frame: np.ndarray, win: OrderWindows) -> np.ndarray:
    """Background-subtracted power in the zero, +1 and -1 order windows."""
    out = np.empty(3)
    for i, (ys, xs, disc, ring) in enumerate(win.masks):
        patch = frame[ys, xs]
        background = float(np.median(patch[ring]))
        out[i] = float(patch[disc].sum()) - background * disc.sum()
    return out


def spot_width(frame: np.ndarray, yx) -> float:
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


def disc_sum(frame, yx, radius) -> float:
    h, w = frame.shape
    yy, xx = np.ogrid[:h, :w]
    return float(frame[(yy - yx[0]) ** 2 + (xx - yx[1]) ** 2 <= radius ** 2].sum())
