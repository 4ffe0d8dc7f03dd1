"""Focal spots for the alignment: finding one in a frame, and measuring a sequence of spot patterns
(pipelined, or one pattern at a time where a spot saturates), with the exposure chosen for them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from optgen.calibration.session import CalibrationError, peak_level
from optgen.drivers.common.roles import DECODING, ENCODING

SPOT_CONTRAST = 5.0        # a focal spot's peak over the light around it (a flat beam: ~1.5; a focus: ~1000)


_ARG = {ENCODING: "encoding", DECODING: "decoding"}


_POWER_STEPS = 6          # a focal spot may saturate at the run power: lower it up to 10**6 times



@dataclass
class Spot:
    x: float
    y: float
    peak: float          # counts above the local background
    snr: float


def find_spot(frame: np.ndarray, scale_px: float, label: str) -> Spot:
    """Sub-pixel centre of the one bright focal spot of ``frame`` (counts above dark).

    ``scale_px`` is the expected radius of the spot's core (first dark ring) in pixels. The
    brightest point of a lightly smoothed frame seeds an iterated Gaussian-weighted centroid
    over the local background (median of a ring around the spot)."""
    frame = np.asarray(frame, dtype=np.float32)
    h, w = frame.shape
    sigma_w = max(1.0, 0.5 * float(scale_px))            # centroid weight
    # a 3 x 3 median first: a hot pixel (one bright pixel) must not pass for a focus (several)
    smooth = cv2.GaussianBlur(cv2.medianBlur(frame, 3), (0, 0), max(0.7, 0.5 * sigma_w))
    step = max(1, int(math.sqrt(h * w / 250_000)))
    sub = (frame - smooth)[::step, ::step]
    noise = 1.4826 * float(np.median(np.abs(sub - np.median(sub)))) + 1e-6
    iy, ix = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    r_in, r_out = math.ceil(3.5 * sigma_w), math.ceil(6.0 * sigma_w) + 2
    bg = _ring_median(frame, ix, iy, r_in, r_out)
    peak = float(smooth[iy, ix]) - bg
    snr = peak / noise
    if not (peak > 0 and snr >= 8.0 and peak >= SPOT_CONTRAST * max(bg, 0.0)):
        raise CalibrationError(
            f"{label}: no focal spot found (brightest point {peak:.1f} counts above its surroundings of "
            f"{bg:.1f}, noise {noise:.1f}); check that the beam reaches the sensor (laser, shutter, "
            f"beam block), that the SLMs show the patterns, and d1/d2 in the bench file")
    margin = math.ceil(3.0 * sigma_w) + 1
    x, y = float(ix), float(iy)
    for _ in range(30):
        if x < margin or y < margin or x > w - 1 - margin or y > h - 1 - margin:
            raise CalibrationError(
                f"{label}: the focal spot at sensor pixel ({x:.0f}, {y:.0f}) is at or past the sensor edge "
                f"({w}x{h}); reduce the span of the spot grid or centre the camera on the optical axis")
        x0, x1 = max(0, int(x) - 2 * margin), min(w, int(x) + 2 * margin + 2)
        y0, y1 = max(0, int(y) - 2 * margin), min(h, int(y) + 2 * margin + 2)
        patch = frame[y0:y1, x0:x1].astype(np.float64) - bg
        gx = np.arange(x0, x1, dtype=np.float64)
        gy = np.arange(y0, y1, dtype=np.float64)[:, None]
        weight = np.exp(-((gx - x) ** 2) / (2 * sigma_w**2)) * np.exp(-((gy - y) ** 2) / (2 * sigma_w**2))
        wi = weight * patch
        total = wi.sum()
        if total <= 0:
            raise CalibrationError(f"{label}: the focal spot fades into its background; check the beam and "
                                   f"the exposure")
        nx, ny = float((wi * gx).sum() / total), float((wi * gy).sum() / total)
        done = abs(nx - x) < 1e-4 and abs(ny - y) < 1e-4
        x, y = nx, ny
        if done:
            break
    return Spot(x, y, peak, snr)


def _ring_median(frame: np.ndarray, x: int, y: int, r_in: int, r_out: int) -> float:
    h, w = frame.shape
    x0, x1, y0, y1 = max(0, x - r_out), min(w, x + r_out + 1), max(0, y - r_out), min(h, y + r_out + 1)
    patch = frame[y0:y1, x0:x1]
    gy, gx = np.mgrid[y0:y1, x0:x1]
    r2 = (gx - x) ** 2 + (gy - y) ** 2
    ring = patch[(r2 >= r_in**2) & (r2 <= r_out**2)]
    return float(np.median(ring)) if ring.size else 0.0


class SpotsSaturated(Exception):
    """A spot frame reached saturation during a sweep (the spots are measured again one by one)."""


def measure_spots(session, label: str, key: str, patterns: list[np.ndarray], scale_px: float,
                   frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Show each pattern on SLM ``key`` (the first is the brightest), find its spot; returns
    (N, 2) centroids in sensor px and the max-composite of the frames. Call inside light().

    The patterns are shown as one pipelined sweep (each uploaded while the last one still sits
    out the SLM's latency, as gray levels computed beforehand); if a frame saturates (a spot
    brighter than the first), the spots are measured again one by one, re-exposing on it."""
    camera = session.bench.camera
    saturation = float(camera.saturation_dn)
    session.show(**{_ARG[key]: patterns[0]})
    expose(session, label)
    slm = session.slms[key]
    spots: dict[int, Spot] = {}
    means: dict[int, np.ndarray] = {}

    def grab(i: int) -> np.ndarray:
        taken = session.capture_frames(frames)
        for frame in taken:
            if peak_level(frame + session.dark) >= 0.98 * saturation:
                raise SpotsSaturated(i)
        return (taken.sum(axis=0, dtype=np.float64) / frames).astype(np.float32)

    def process(i: int, mean: np.ndarray) -> None:
        spots[i] = find_spot(mean, scale_px, f"{label} spot {i + 1}/{len(patterns)}")
        means[i] = mean / max(spots[i].peak, 1e-9)

    try:
        session.sweep(key, [slm.phase_to_gray(p) for p in patterns], grab, process, frames_per_pattern=frames)
    except SpotsSaturated:
        return measure_spots_one_by_one(session, label, key, patterns, scale_px, frames)
    composite = np.maximum.reduce([means[i] for i in range(len(patterns))])
    return np.array([(spots[i].x, spots[i].y) for i in range(len(patterns))], dtype=np.float64), composite


def measure_spots_one_by_one(session, label: str, key: str, patterns: list[np.ndarray], scale_px: float,
                              frames: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`measure_spots` one pattern at a time, exposing again on a spot that saturates."""
    camera = session.bench.camera
    saturation = float(camera.saturation_dn)
    found, composite = [], None
    for i, pattern in enumerate(patterns):
        session.show(**{_ARG[key]: pattern})
        for attempt in range(2):
            acc, saturated = None, False
            for _ in range(frames):
                frame = session.capture(1)
                if peak_level(frame + session.dark) >= 0.98 * saturation:
                    saturated = True
                    break
                acc = frame.astype(np.float64) if acc is None else acc + frame
            if not saturated:
                break
            if attempt == 1:
                raise CalibrationError(
                    f"{label} spot {i + 1}/{len(patterns)}: frames saturate even after re-exposing on it; lower "
                    f"[laser] power_mw or add an ND filter")
            expose(session, label)          # this pattern is brighter than the first: expose on it
        mean = (acc / frames).astype(np.float32)
        spot = find_spot(mean, scale_px, f"{label} spot {i + 1}/{len(patterns)}")
        found.append((spot.x, spot.y))
        peak_norm = mean / max(spot.peak, 1e-9)
        composite = peak_norm if composite is None else np.maximum(composite, peak_norm)
    return np.array(found, dtype=np.float64), composite


def expose(session, label: str) -> float:
    """Exposure for the pattern shown (dimming the laser for a focal spot, see the session)."""
    return session.auto_exposure_dimming(max_dimming_steps=_POWER_STEPS)
