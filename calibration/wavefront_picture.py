"""The wavefront calibration's PNG: the defocused spots captured and fitted, and the wavefront map."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from optgen.calibration.wavefront import WavefrontCalibration

__all__ = ["write_wavefront_png"]

_BLACK = (0, 0, 0)
_TILE = 200


def _text(img: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.42) -> None:
    cv2.putText(img, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, _BLACK, 1, cv2.LINE_AA)


def _tile(a: np.ndarray, lo: float, hi: float, colour: bool = False) -> np.ndarray:
    scaled = np.clip((np.asarray(a, dtype=np.float32) - lo) / max(hi - lo, 1e-12), 0, 1)
    tile = cv2.resize((scaled * 255).astype(np.uint8), (_TILE, _TILE), interpolation=cv2.INTER_AREA)
    return cv2.applyColorMap(tile, cv2.COLORMAP_TWILIGHT_SHIFTED) if colour else cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)


def write_wavefront_png(path: str | Path, cal: WavefrontCalibration, used_shape: tuple[int, int], pitch_m: float,
                        planted_waves: np.ndarray | None = None) -> None:
    """Top: the captured spots (one per diversity lens); middle: what the fitted wavefront makes of
    them; bottom: the corrected wavefront over the used area (waves), the planted one beside it on a twin."""
    pictures = cal.pictures if cal.pictures is not None else np.zeros((0, 1, 1))
    model = cal.model if cal.model is not None else np.zeros_like(pictures)
    columns = max(len(pictures), 2)
    img = np.full((3 * _TILE + 130, columns * (_TILE + 10) + 10, 3), 255, np.uint8)
    for i, (p, m) in enumerate(zip(pictures, model)):
        x = 10 + i * (_TILE + 10)
        img[30:30 + _TILE, x:x + _TILE] = _tile(np.sqrt(np.clip(p, 0, None)), 0, 1)
        img[60 + _TILE:60 + 2 * _TILE, x:x + _TILE] = _tile(np.sqrt(np.clip(m, 0, None)), 0, 1)
        _text(img, f"{cal.diversity_waves[i]:+g} waves" if i < len(cal.diversity_waves) else "", (x, 24))
    _text(img, f"fitted (misfit {cal.misfit:.1%}, {cal.iterations} iterations)", (10, 52 + _TILE))
    measured = cal.wavefront_waves(used_shape, pitch_m, corrected_only=True)
    maps = [measured] + ([planted_waves] if planted_waves is not None else [])
    lo = min(float(np.min(m)) for m in maps)
    hi = max(float(np.max(m)) for m in maps)
    y = 90 + 2 * _TILE
    for i, m in enumerate(maps):
        img[y:y + _TILE, 10 + i * (_TILE + 10):10 + i * (_TILE + 10) + _TILE] = _tile(m, lo, hi, colour=True)
    _text(img, f"corrected wavefront (Noll 4..{max(cal.noll)}), {lo:+.2f}..{hi:+.2f} waves"
               + ("; right: planted" if planted_waves is not None else ""), (10, y - 8))
    rms = float(np.sqrt(np.mean((measured - measured.mean()) ** 2)))
    text = f"{cal.key}: {rms:.3f} waves RMS over the used area"
    if cal.beam_waist_m > 0:
        text += (f"; beam waist {cal.beam_waist_m * 1e3:.2f} mm at ({cal.beam_centre_m[0] * 1e6:.0f}, "
                 f"{cal.beam_centre_m[1] * 1e6:.0f}) um; unmodulated {cal.unmodulated_fraction:.1%}")
    _text(img, text, (10, y + _TILE + 25), 0.4)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write the PNG")
