"""Phase-vs-gray look-up tables: load a measured SLM response and hand it to slmsuite's ``set_gamma``.

A response file gives the phase-delay magnitude (radians, at the bench wavelength) of each
gray level: a ``.npy`` of 2**bitdepth values, or a ``.csv`` of ``gray,phase_rad`` rows
(sampled levels are interpolated by slmsuite). "linear" is the nominal response (2 pi over
the gray range), used until the SLM is calibrated.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optgen.drivers.errors import OptgenError

__all__ = ["LUTError", "PhaseResponse", "load_response", "apply_response", "one_turn_lut", "response_problem",
           "MIN_RESPONSE_RAD", "MAX_RESPONSE_RAD"]

# What a measured response (calibration.response) can be: the measurement needs about pi/2 to find its
# second reference level and flags, but keeps, a response short of 2 pi; LCOS panels reach two to
# three turns at short wavelengths (the twins: 6.4 to 8 rad).
MIN_RESPONSE_RAD = 1.0
MAX_RESPONSE_RAD = 8 * np.pi
_MAX_RESPONSE_FILE_BYTES = 16 * 2**20   # a 16-bit SLM's table is 512 KiB as .npy
_MAX_STEP_OVER_MEAN = 16.0    # a measured curve is smooth: its largest step is ~1.3-2x the mean one


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

    @classmethod
    def from_record(cls, record) -> "PhaseResponse":
        """The LUT of a stored phase-response calibration (a ``lut`` record checked by the store)."""
        phase = np.asarray(record.results["phase_rad"], dtype=float)
        return cls(record.id, np.arange(phase.size, dtype=float), phase)


LINEAR = PhaseResponse("linear-nominal")


def load_response(spec: str, bitdepth: int, base_dir: Path | None = None) -> PhaseResponse:
    """Read a response file (or "linear"); paths are relative to ``base_dir`` (the bench file's folder).

    LUTError naming the file for anything that cannot serve (unreadable, too large, not a table of
    finite numbers, or a response that :func:`response_problem` refuses)."""
    if spec == "linear":
        return LINEAR
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise LUTError(f"{path}: LUT response file not found (expected 'linear', a .npy or a .csv)")
    if path.suffix not in (".npy", ".csv"):
        raise LUTError(f"{path}: unknown LUT file type {path.suffix!r}; expected .npy or .csv")
    try:
        size = path.stat().st_size
        if size > _MAX_RESPONSE_FILE_BYTES:
            raise LUTError(f"{path}: {size} bytes; a LUT response file is at most {_MAX_RESPONSE_FILE_BYTES}")
        raw = path.read_bytes()
    except OSError as exc:
        raise LUTError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    levels_all = 2 ** int(bitdepth)
    if path.suffix == ".npy":
        try:
            array = np.load(io.BytesIO(raw), allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, EOFError, OSError ... on a bad file
            raise LUTError(f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})") from None
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
            raise LUTError(f"{path}: holds {getattr(array, 'dtype', type(array).__name__)}; expected one phase "
                           f"(radians) per gray level")
        phase = array.astype(float).ravel()
        levels = np.arange(phase.size, dtype=float)
        problem = response_problem(phase, levels_all)
        if problem is not None:
            raise LUTError(f"{path}: {problem}")
    else:
        try:
            table = np.loadtxt(io.StringIO(raw.decode("utf-8")), delimiter=",", ndmin=2, comments="#")
        except (ValueError, IndexError) as exc:
            raise LUTError(f"{path}: not a gray,phase_rad CSV ({exc})") from None
        if table.ndim != 2 or table.shape[1] != 2 or table.shape[0] < 2:
            raise LUTError(f"{path}: expected at least two rows of 'gray,phase_rad'")
        levels, phase = table[:, 0], table[:, 1]
        if not np.isfinite(table).all():
            raise LUTError(f"{path}: phase values must be finite")
        if levels.min() < 0 or levels.max() >= levels_all:
            raise LUTError(f"{path}: gray levels must lie in 0..{levels_all - 1}")
        if (np.diff(levels) <= 0).any():
            raise LUTError(f"{path}: gray levels must increase from row to row")
        problem = _sampled_problem(phase)
        if problem is not None:
            raise LUTError(f"{path}: {problem}")
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return PhaseResponse(f"file:{path.name}:{digest}", levels, phase)


def _sampled_problem(phase: np.ndarray) -> str | None:
    """:func:`response_problem` for phases sampled at some gray levels (a CSV): finite, never falling, a range."""
    if not np.isfinite(phase).all():
        return "phase values must be finite"
    span = float(phase[-1] - phase[0])
    if span < 0 or (np.diff(phase) < -1e-9 * max(abs(span), 1.0)).any():
        return ("phases fall as the gray level grows (a reversed LUT?); expected the phase delay's magnitude, "
                "never decreasing with the gray level")
    if span < MIN_RESPONSE_RAD or np.abs(phase).max() > MAX_RESPONSE_RAD:
        return f"phases span {span:.3g} rad; expected {MIN_RESPONSE_RAD:g} to {MAX_RESPONSE_RAD:.3g} rad"
    return None


def response_problem(phase_rad, n_levels: int | None = None) -> str | None:
    """Why ``phase_rad`` cannot be a stored SLM response, or None if it can.

    A stored response (``calibration.response``; slmsuite's ``gamma`` times 2 pi) is the magnitude
    of the phase delay of each gray level 0 .. 2**bitdepth - 1 relative to gray 0: finite, never
    decreasing as the gray level grows (slmsuite applies the SLM's own sense, ``_gamma_sign``: most
    SLMs delay less as the level grows, and the table handles that), spanning at least
    MIN_RESPONSE_RAD and at most MAX_RESPONSE_RAD, without a jump that would leave most of a turn to
    one level. ``n_levels``: the SLM's 2**bitdepth (else any power of two)."""
    phase = np.asarray(phase_rad)
    if phase.dtype.kind not in "iuf" or phase.ndim != 1:
        return f"dtype {phase.dtype}, shape {phase.shape}; expected one number per gray level"
    n = phase.size
    if n_levels is not None and n != n_levels:
        return f"{n} values; expected one per gray level ({n_levels})"
    if n < 2 or n > 2**16 or n & (n - 1):
        return f"{n} values; expected one per gray level, 2**bitdepth of them"
    phase = phase.astype(np.float64)
    if not np.isfinite(phase).all():
        return "NaN or infinite values; expected finite phases (radians)"
    if np.abs(phase).max() > MAX_RESPONSE_RAD:
        return f"values up to {np.abs(phase).max():.3g} rad; expected at most {MAX_RESPONSE_RAD:.3g} rad"
    span = float(phase[-1] - phase[0])
    steps = np.diff(phase)
    if span < 0:
        return (f"falls by {-span:.3g} rad from gray 0 to the top gray (a reversed LUT); expected the phase delay's "
                f"magnitude, growing with the gray level (the SLM's sense is applied when it is loaded)")
    if span == 0:
        return "constant; expected a phase that grows with the gray level"
    if steps.min() < -1e-9 * max(span, 1.0):
        worst = int(np.argmin(steps))
        return (f"falls by {-steps[worst]:.3g} rad from gray {worst} to {worst + 1}; expected a monotone response "
                f"(never decreasing)")
    if span < MIN_RESPONSE_RAD:
        return (f"spans only {span:.3g} rad; expected at least {MIN_RESPONSE_RAD:g} rad (a response the "
                f"measurement could find)")
    if steps.max() > _MAX_STEP_OVER_MEAN * span / (n - 1):
        worst = int(np.argmax(steps))
        return (f"jumps {steps[worst]:.3g} rad from gray {worst} to {worst + 1} ({steps[worst] / (span / (n - 1)):.0f}"
                f" times the mean step); expected a smooth response")
    return None


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
