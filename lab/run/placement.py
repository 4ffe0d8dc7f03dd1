"""Show the decoder where the model expects it: compensate the measured placement of SLM2.

The decoder phase (model grid = beam frame) is resampled onto SLM2's pixels through the placement
the alignment calibration measured (``optgen.calibration.alignment.DecoderPlacement``), so that on
the misplaced SLM2 it lands centred and unrotated in the beam. exp(i phase) is interpolated (cos
and sin) and its angle taken, so 2 pi wraps are not smeared.
"""

from __future__ import annotations

import cv2
import numpy as np

from optgen.calibration.alignment import DecoderPlacement
from optgen.drivers.common.patterns import embed_centered

__all__ = ["place_decoder"]


def place_decoder(decoder_phase: np.ndarray, slm_shape: tuple[int, int], placement: DecoderPlacement | None,
                  pitch_m: float, interpolation: str = "nearest") -> np.ndarray:
    """The decoder phase (radians, model grid = beam frame, centred on the axis) as SLM2 pixels
    (float32 radians, ``slm_shape``) that land centred and unrotated in the beam on the misplaced SLM2.

    SLM2 pixel Q shows the decoder value at its beam position R (Q - C) p + shift (C: SLM2's centre
    pixel); the block is placed as ``embed_centered`` places it, which ``None`` returns.

    ``interpolation``: "nearest" (default) moves the trained decoder's pixels whole, as the
    model was trained (integer shifts; its phase has pixel-scale structure that resampling
    smooths away: digits-v2 on the twin went 68.5 -> 69.0 % confident, Frechet 9.8 -> 9.1, and
    a model trained 15,000 steps 65.5 -> 72.0 %); "linear" resamples exp(i phase) bilinearly,
    closer for smooth phases.
    """

    block = np.asarray(decoder_phase, dtype=np.float32)
    if placement is None:
        return embed_centered(block, tuple(slm_shape))
    rows, cols = slm_shape
    h, w = block.shape
    if h > rows or w > cols:
        raise ValueError(f"a {h}x{w} pattern does not fit on a {rows}x{cols} SLM")
    centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    block_origin = np.array([(cols - w) // 2, (rows - h) // 2], dtype=np.float64)   # embed_centered's corner
    a = np.deg2rad(placement.rotation_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    # block index j = (beam position in SLM1 px) + C - block_origin, beam = R (Q - C) + shift / p
    lin = rot
    offset = -rot @ centre + np.asarray(placement.shift_m) / pitch_m + centre - block_origin
    m = np.hstack([lin, offset[:, None]])
    modes = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR}
    if interpolation not in modes:
        raise ValueError(f"interpolation {interpolation!r}: expected one of {sorted(modes)}")
    flags = modes[interpolation] | cv2.WARP_INVERSE_MAP
    re = cv2.warpAffine(np.cos(block), m, (cols, rows), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
    im = cv2.warpAffine(np.sin(block), m, (cols, rows), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.arctan2(im, re).astype(np.float32)
