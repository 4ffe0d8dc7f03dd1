"""How far one calibration is from another, or from a truth: shared by the drift check and the
comparison with a twin's planted truths."""

from __future__ import annotations

import numpy as np

__all__ = ["affine_distance_px", "response_error_rad"]


def affine_distance_px(a: np.ndarray, b: np.ndarray, window_m: float) -> float:
    """Largest distance (pixels) between two output-plane -> sensor maps over the output window."""
    u = np.linspace(-window_m / 2, window_m / 2, 9)
    pts = np.array([(x, y, 1.0) for x in u for y in u]).T
    diff = (np.asarray(a) - np.asarray(b)) @ pts
    return float(np.max(np.hypot(diff[0], diff[1])))


def response_error_rad(measured: np.ndarray, reference: np.ndarray) -> float:
    """RMS of measured - reference (both relative to gray 0) over the gray levels the reference
    has within 0..2 pi."""
    reference_rel = np.asarray(reference, dtype=float) - reference[0]
    measured_rel = np.asarray(measured, dtype=float) - measured[0]
    within = reference_rel <= 2 * np.pi
    return float(np.sqrt(np.mean((measured_rel[within] - reference_rel[within]) ** 2)))
