"""Phase-vs-gray look-up tables: load a measured SLM response and hand it to slmsuite's ``set_gamma``.

A response file gives the phase-delay magnitude (radians, at the bench wavelength) of each
gray level: a ``.npy`` of 2**bitdepth values, or a ``.csv`` of ``gray,phase_rad`` rows
(sampled levels are interpolated by slmsuite). "linear" is the nominal response (2 pi over
the gray range), used until the SLM is calibrated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drivers.errors import OptgenError

__all__ = ["LUTError", "PhaseResponse", "load_response", "apply_response"]


class LUTError(OptgenError, ValueError):
    """A response file that cannot serve as an SLM's LUT."""


@dataclass(frozen=True)
class PhaseResponse:
    """A phase response and the id recorded in every run that used it."""

    id: str
    levels: np.ndarray | None = None       # gray levels sampled (None: linear)
    phase_rad: np.ndarray | None = None    # phase-delay magnitude at those levels

    @property
    def is_linear(self) -> bool:
        return self.phase_rad is None


LINEAR = PhaseResponse("linear-nominal")


def load_response(spec: str, bitdepth: int, base_dir: Path | None = None) -> PhaseResponse:
    """Read a response file (or "linear"); paths are relative to ``base_dir`` (the bench file's folder)."""
    if spec == "linear":
        return LINEAR
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise LUTError(f"{path}: LUT response file not found (expected 'linear', a .npy or a .csv)")
    raw = path.read_bytes()
    levels_all = 2 ** int(bitdepth)
    if path.suffix == ".npy":
        phase = np.load(path, allow_pickle=False).astype(float).ravel()
        levels = np.arange(phase.size, dtype=float)
        if phase.size != levels_all:
            raise LUTError(f"{path}: {phase.size} values; expected one per gray level ({levels_all})")
    elif path.suffix == ".csv":
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2, comments="#")
        except ValueError as exc:
            raise LUTError(f"{path}: not a gray,phase_rad CSV ({exc})") from None
        if table.shape[1] != 2 or table.shape[0] < 2:
            raise LUTError(f"{path}: expected at least two rows of 'gray,phase_rad'")
        levels, phase = table[:, 0], table[:, 1]
        if levels.min() < 0 or levels.max() >= levels_all:
            raise LUTError(f"{path}: gray levels must lie in 0..{levels_all - 1}")
    else:
        raise LUTError(f"{path}: unknown LUT file type {path.suffix!r}; expected .npy or .csv")
    if not np.isfinite(phase).all():
        raise LUTError(f"{path}: phase values must be finite")
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return PhaseResponse(f"file:{path.name}:{digest}", levels, phase)


def apply_response(slm, response: PhaseResponse) -> None:
    """Load ``response`` into an slmsuite SLM (``set_gamma``), or restore the linear response."""
    if response.is_linear:
        slm.set_gamma(None)
    else:
        slm.set_gamma(response.phase_rad / (2 * np.pi), levels=response.levels)
