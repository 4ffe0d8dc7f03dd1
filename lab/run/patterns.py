"""Turn model-sized phases (seed, decoder) into full-SLM phase patterns."""

from __future__ import annotations

import numpy as np

from optgen.drivers.common.patterns import centred_top_left, embed_centered
from optgen.drivers.slm import same_conversion

__all__ = ["SeedGrayLevels", "check_model_phase", "seed_to_slm_phase", "superpixel_block"]


def check_model_phase(what: str, phase: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float32 copy of ``phase`` if it is a finite array of ``shape``; else ValueError naming ``what``."""
    phase = np.asarray(phase)
    if phase.shape != tuple(shape):
        raise ValueError(f"{what}: shape {phase.shape}, expected {tuple(shape)}")
    if not np.issubdtype(phase.dtype, np.floating):
        raise ValueError(f"{what}: dtype {phase.dtype.name}, expected floating-point radians")
    if not np.isfinite(phase).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return phase.astype(np.float32)


def seed_to_slm_phase(seed: np.ndarray, superpixel_px: int, slm_shape: tuple[int, int],
                      out: np.ndarray | None = None) -> np.ndarray:
    """Show each seed value as a superpixel_px x superpixel_px block, centred on the SLM."""
    return embed_centered(superpixel_block(seed, superpixel_px), slm_shape, out)


def superpixel_block(seed: np.ndarray, superpixel_px: int) -> np.ndarray:
    """Each seed value repeated over a superpixel_px x superpixel_px block (float32)."""
    return np.repeat(np.repeat(np.asarray(seed, dtype=np.float32), superpixel_px, axis=0), superpixel_px, axis=1)


class SeedGrayLevels:
    """Seeds -> the gray levels ``slm`` is sent for them: ``slm.phase_to_gray(seed_to_slm_phase(...))``,
    with only the seed's window converted. Outside it every seed pattern is zero phase, whose gray
    levels (the LUT and wavefront correction there) are converted once, and again whenever the SLM's
    conversion changes (a new LUT, correction or aperture). One 320 x 320 seed on a 1080 x 1920 panel:
    0.29 against 3.41 ms (``benchmarks/run_overhead.py``). Safe to call from two threads."""

    def __init__(self, slm, superpixel_px: int):
        self.slm, self.superpixel_px = slm, int(superpixel_px)
        self._background: tuple[tuple, np.ndarray] | None = None     # (conversion state, gray levels)

    def __call__(self, seed: np.ndarray) -> np.ndarray:
        block = superpixel_block(seed, self.superpixel_px)
        r0, c0 = centred_top_left(block.shape, self.slm.shape)
        window = self.slm.phase_to_gray_window(block, (r0, c0))
        gray = self._background_gray().copy()
        gray[r0:r0 + block.shape[0], c0:c0 + block.shape[1]] = window
        return gray

    def _background_gray(self) -> np.ndarray:
        state = self.slm.conversion_state()
        background = self._background
        if background is None or not same_conversion(background[0], state):
            background = (state, self.slm.phase_to_gray(np.zeros(self.slm.shape, np.float32)))
            self._background = background
        return background[1]
