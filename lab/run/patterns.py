"""Turn model-sized phases (seed, decoder) into full-SLM phase patterns."""

from __future__ import annotations

import numpy as np

from optgen.drivers.common.patterns import embed_centered

__all__ = ["seed_to_slm_phase", "check_model_phase"]


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
    block = np.repeat(np.repeat(np.asarray(seed, dtype=np.float32), superpixel_px, axis=0), superpixel_px, axis=1)
    return embed_centered(block, slm_shape, out)
