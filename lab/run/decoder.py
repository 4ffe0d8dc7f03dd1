"""The decoding SLM's phase: a trained decoder file, or the flat placeholder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optgen.lab.run.patterns import check_model_phase

__all__ = ["load_decoder_phase"]


def load_decoder_phase(spec: str, decoder_px: int, base_dir: Path | None = None) -> tuple[np.ndarray, str]:
    """(phase (decoder_px, decoder_px) radians, id). "flat" is the untrained placeholder: zero phase."""
    if spec == "flat":
        return np.zeros((decoder_px, decoder_px), dtype=np.float32), "flat-placeholder"
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise ValueError(f"{path}: decoder phase file not found (expected 'flat' or a .npy of radians)")
    try:
        phase = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a .npy decoder phase ({exc})") from None
    return check_model_phase(str(path), phase, (decoder_px, decoder_px)), f"file:{path.name}"
