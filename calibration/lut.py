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

__all__ = ["LUTError", "PhaseResponse", "load_response", "apply_response", "one_turn_lut"]


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
    """Load ``response`` into an slmsuite SLM (``set_gamma``), or restore the linear response.

    The table slmsuite makes is then limited to the gray levels of the response's first turn
    (:func:`one_turn_lut`): slmsuite picks the nearest level modulo 2 pi over the whole range, so
    on an SLM with more than 2 pi of stroke a phase just above 0 goes to a low or a top gray level
    pixel by pixel, and every such neighbour pair is a 2 pi jump that the pixels' crosstalk
    smears (on the twin with 8 rad of stroke: a focal spot moved 0.2 px and a response measured
    through it 0.05 rad off)."""
    if response.is_linear:
        slm.set_gamma(None)
        return
    slm.set_gamma(response.phase_rad / (2 * np.pi), levels=response.levels)
    lut = one_turn_lut(np.asarray(slm.gamma, dtype=float), int(slm._gamma_sign), int(slm.lut.size))
    slm.lut = slm.xp.asarray(lut.astype(slm.dtype))


def one_turn_lut(gamma_turns: np.ndarray, sign: int, lut_size: int) -> np.ndarray:
    """Gray level for each of ``lut_size`` phases evenly over [0, 2 pi): the nearest (circularly) of
    the levels whose response lies within one turn of gray 0's (from gray 0 up to the first level a
    whole turn away), in slmsuite's convention (phase = ``sign`` x 2 pi x gamma, modulo 2 pi).

    A response within one turn keeps every level: the table is then slmsuite's own."""
    gamma = np.asarray(gamma_turns, dtype=float)
    beyond = np.flatnonzero(np.abs(gamma - gamma[0]) >= 1.0)
    levels = np.arange(beyond[0] if beyond.size else gamma.size)
    phase = np.mod(sign * 2 * np.pi * gamma[levels], 2 * np.pi)
    ranking = np.argsort(phase, kind="stable")
    tiled = np.concatenate((phase[ranking] - 2 * np.pi, phase[ranking], phase[ranking] + 2 * np.pi))
    grid = np.arange(lut_size) * (2 * np.pi / lut_size)
    index = np.searchsorted((tiled[:-1] + tiled[1:]) / 2, grid, side="right")
    return levels[ranking[np.mod(index, levels.size)]]
