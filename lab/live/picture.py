"""What the live view draws of a camera frame: a JPEG, its histogram, the saturated pixels, and
the output window with the sensor grid the run reads images from.

The frame is sent as a grey JPEG (cheap: about 2 ms for 1280 x 1024 here); the page draws the
overlay and the saturated pixels on top from :class:`Overlay` and
:attr:`RenderedFrame.saturated_cells`, so nothing of the frame is recoloured on the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = ["HISTOGRAM_BINS", "SATURATION_CELL_PX", "Overlay", "RenderedFrame", "overlay_from_registration",
           "render_frame"]

HISTOGRAM_BINS = 64
SATURATION_CELL_PX = 4         # saturated pixels are reported per cell of this many pixels square
MAX_SATURATED_CELLS = 5000     # beyond this many cells the page is told the count only
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Overlay:
    """The output window and its grid of output pixels, in sensor pixel coordinates (x, y).

    ``window``: the four corners in order; ``lines``: segments ((x0, y0), (x1, y1)) between the
    output pixels; ``calibrated``: whether the placement is measured (else the bench file's nominal one).
    """

    window: tuple[tuple[float, float], ...]
    lines: tuple[tuple[tuple[float, float], tuple[float, float]], ...]
    calibrated: bool
    source: str

    def as_dict(self) -> dict:
        return {"window": [list(c) for c in self.window], "lines": [[list(a), list(b)] for a, b in self.lines],
                "calibrated": self.calibrated, "source": self.source}


def overlay_from_registration(registration, calibrated: bool, source: str) -> Overlay:
    """The overlay of an :class:`optgen.lab.run.registration.OutputRegistration`: its window's edges
    and the borders of its ``window_px / pool`` output pixels, mapped onto the sensor."""
    m = np.asarray(registration.window_to_sensor, dtype=np.float64)
    edge = registration.window_px - 0.5            # window pixel centres run 0 .. window_px - 1

    def to_sensor(u: float, v: float) -> tuple[float, float]:
        x, y = m @ np.array([u, v, 1.0])
        return round(float(x), 2), round(float(y), 2)

    corners = tuple(to_sensor(u, v) for u, v in ((-0.5, -0.5), (edge, -0.5), (edge, edge), (-0.5, edge)))
    n = registration.window_px // registration.pool
    lines = []
    for k in range(1, n):
        s = k * registration.pool - 0.5
        lines.append((to_sensor(s, -0.5), to_sensor(s, edge)))
        lines.append((to_sensor(-0.5, s), to_sensor(edge, s)))
    return Overlay(window=corners, lines=tuple(lines), calibrated=calibrated, source=source)


@dataclass
class RenderedFrame:
    """One frame as the page gets it: the JPEG and the figures beside it."""

    seq: int
    jpeg: bytes
    width: int
    height: int
    max_dn: int
    mean_dn: float
    saturated_px: int
    histogram: list[int]
    saturated_cells: list[list[int]] = field(default_factory=list)   # [x, y] of each saturated cell
    scale_top_dn: float = 0.0                                          # the count shown white
    captured_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def stats(self) -> dict:
        """Everything but the JPEG, for the page's state."""
        return {"seq": self.seq, "width": self.width, "height": self.height, "max_dn": self.max_dn,
                "mean_dn": round(self.mean_dn, 2), "saturated_px": self.saturated_px,
                "histogram": self.histogram, "saturated_cells": self.saturated_cells,
                "saturated_cell_px": SATURATION_CELL_PX, "scale_top_dn": self.scale_top_dn, **self.extra}


def render_frame(frame: np.ndarray, seq: int, *, bitdepth: int, saturation_dn: float, scale: str = "full",
                 captured_s: float = 0.0) -> RenderedFrame:
    """Render a raw frame (H, W) of counts for the page.

    ``scale``: "full" shows 0 .. the ADC's top as black .. white; "auto" stretches 0 .. the
    frame's brightest pixel (a dim spot while aligning).
    """
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"a camera frame of shape {frame.shape}; expected (height, width)")
    top_dn = float(2 ** int(bitdepth) - 1)
    max_dn = int(frame.max()) if frame.size else 0
    white = top_dn if scale == "full" else float(max(max_dn, 1))
    grey = cv2.convertScaleAbs(frame, alpha=255.0 / white)
    ok, jpeg = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    shift = max(int(bitdepth) - int(np.log2(HISTOGRAM_BINS)), 0)
    sample = frame[::2, ::2]
    histogram = np.bincount((sample >> shift).ravel() if frame.dtype.kind == "u"
                            else np.clip(sample, 0, top_dn).astype(np.int64).ravel() >> shift,
                            minlength=HISTOGRAM_BINS)[:HISTOGRAM_BINS]
    saturated = frame >= saturation_dn
    count = int(np.count_nonzero(saturated))
    cells: list[list[int]] = []
    c = SATURATION_CELL_PX
    if 0 < count <= MAX_SATURATED_CELLS * c * c:      # more saturated pixels than that fill too many cells
        w = frame.shape[1]
        flat = np.flatnonzero(saturated)
        cell = np.unique((flat // w // c) * (w // c + 1) + (flat % w) // c)
        if cell.size <= MAX_SATURATED_CELLS:
            ys, xs = np.divmod(cell, w // c + 1)
            cells = np.stack([xs * c, ys * c], axis=1).tolist()
    return RenderedFrame(seq=seq, jpeg=jpeg.tobytes(), width=int(frame.shape[1]), height=int(frame.shape[0]),
                         max_dn=max_dn, mean_dn=float(sample.mean()) if sample.size else 0.0, saturated_px=count,
                         histogram=[int(v) for v in histogram], saturated_cells=cells, scale_top_dn=white,
                         captured_s=captured_s)
