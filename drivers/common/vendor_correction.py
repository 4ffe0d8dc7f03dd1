"""Vendor wavefront correction files and how an SLM's corrections combine.

A vendor correction file (an 8-bit grayscale BMP/PNG of the panel's size, as Holoeye, Meadowlark and
Hamamatsu ship them) is added by the SLM's driver to every phase it shows; optgen's measured
correction is added on top (``drivers.slm.PhaseSLM``), and the sum is wrapped with the pattern. The
wavefront calibration measures the panel with the vendor's map in force, so the panel itself is the
measured wavefront less that map. The driver, the prediction of a frame and the training optics
share these rules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optgen.drivers.errors import PhaseInputError

__all__ = ["added_before_wrap", "panel_itself", "read_vendor_image", "vendor_phase_rad"]


def read_vendor_image(path: str | Path, shape: tuple[int, int], device: str) -> np.ndarray:
    """The gray levels (uint8, ``shape``) of a vendor correction file; PhaseInputError naming the
    device, the file and what was expected for one that cannot be read, is not 8-bit grayscale or is
    not the panel's size."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
            data = np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise PhaseInputError(device, f"wavefront correction {path}: cannot read it as an image ({exc})") from None
    if mode not in ("L", "P") or data.dtype != np.uint8 or data.ndim != 2:
        raise PhaseInputError(device, f"wavefront correction {path}: an image of mode {mode} ({data.dtype}); "
                                      f"expected 8-bit grayscale (mode L)")
    rows, cols = shape
    if size != (cols, rows):
        raise PhaseInputError(device, f"wavefront correction {path}: {size[0]} x {size[1]} pixels; expected "
                                      f"the panel's {cols} x {rows}")
    return data


def vendor_phase_rad(gray: np.ndarray, bitdepth: int = 8) -> np.ndarray:
    """The phase (radians, float32) slmsuite adds for a correction image's gray levels:
    (levels - 1 - gray) x 2 pi / levels (its sign convention)."""
    levels = 2 ** int(bitdepth)
    return ((levels - 1 - np.asarray(gray, np.float64)) * (2 * np.pi / levels)).astype(np.float32)


def added_before_wrap(vendor: np.ndarray | None, measured: np.ndarray | None, corrected: bool) -> np.ndarray | None:
    """What an SLM adds to a pattern before it is wrapped: the vendor's map, and minus the measured
    wavefront where runs correct it (None: nothing)."""
    parts = [p for p in (vendor, -measured if corrected and measured is not None else None) if p is not None]
    return None if not parts else np.sum(parts, axis=0).astype(np.float32)


def panel_itself(measured: np.ndarray | None, vendor: np.ndarray | None) -> np.ndarray | None:
    """The panel's own phase error: the wavefront measured with the vendor's map in force, less that
    map (None where neither is known)."""
    if measured is None and vendor is None:
        return None
    return ((measured if measured is not None else 0.0) - (vendor if vendor is not None else 0.0)).astype(np.float32)
