"""What a multi-colour run says and records of each colour's calibrations.

Each colour of a ``[colours]`` bench has calibrations of its own (the store keeps them per
wavelength: ``optgen calibrate all --colour NM``). Before any device opens, a colour run says for
each colour it is about to run which calibrations that colour uses and how old they are, or that
the colour is UNCALIBRATED, and records the same in its colour_run.json under
``colour_calibrations`` (per colour, as a one-colour run records its own in run.h5: the store, the
ids, the ages in hours; ``calibrated`` false for an uncalibrated colour). Each colour's own run.log
and run.h5 record them too (lab.run.generate).
"""

from __future__ import annotations

from pathlib import Path

from optgen.lab.bench.calibrations import BenchCalibrations
from optgen.lab.bench.config import BenchConfig

__all__ = ["calibrate_command", "colour_calibration_lines", "colour_calibration_record"]


def calibrate_command(config: BenchConfig, wavelength_nm: float, store: Path | None = None) -> str:
    """The command that calibrates ``config`` at one of its colours (``store``: a --calibrations
    store the run was given instead of the bench's own)."""
    bench = f" --bench {config.source}" if Path(config.source).is_file() else ""
    other_store = f" --store {store}" if store is not None else ""
    return f"optgen calibrate all{bench} --colour {wavelength_nm:g}{other_store}"


def colour_calibration_lines(config: BenchConfig, wavelength_nm: float, calibrations: BenchCalibrations,
                             store: Path | None = None, now=None) -> list[str]:
    """Console lines of one colour: ``638 nm: calibrations from STORE:`` and each calibration in
    force with its age, or ``520 nm: UNCALIBRATED: ...`` with the command that calibrates it."""
    lines = calibrations.describe(now, measure_with=calibrate_command(config, wavelength_nm, store))
    return [f"{wavelength_nm:g} nm: {lines[0]}", *lines[1:]]


def colour_calibration_record(calibrations: BenchCalibrations, now=None) -> dict:
    """What colour_run.json records of one colour's calibrations."""
    return {"calibrated": bool(calibrations.in_force()),
            "calibration_store": str(Path(calibrations.store).resolve()),
            "calibrations": calibrations.ids(), "calibration_ages_h": calibrations.ages_h(now)}
