"""What a run folder may be: new (a run never overwrites another), or a run to resume. The resume
rules live here, in one place: what a run folder recorded at its start, what a resume must repeat,
and what it may change.

A run (``run.h5``) or a multi-colour run (``colour_run.json``) is resumed with the bench file, seed
source, decoder, frame count, random seed and optgen version it was started with; only the
calibration store may be named again (``--calibrations``) and must then hold the same calibrations
(the run file compares their ids). One colour's pass of a colour run is resumed through its
colour run. A refused resume leaves every file as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from optgen.drivers.errors import OptgenError

__all__ = ["COLOUR_RUN_FILE", "Recorded", "RunFolderError", "check_resumable", "check_same_colour_run",
           "check_same_run", "prepare_run_folder", "recorded", "resume_settings"]

COLOUR_RUN_FILE = "colour_run.json"
SAME_RUN_KEYS = (("bench_file", "bench file"), ("calibrations", "calibrations"), ("seed_source", "seed source"),
                 ("decoder_phase", "decoder phase"), ("count", "frame count"))
SAME_COLOUR_RUN_KEYS = ("colours_nm", "count", "seed", "model", "bench_file", "class", "noise")


class RunFolderError(OptgenError, ValueError):
    """The output folder cannot take a new run, or the run in it cannot be resumed this way."""


def prepare_run_folder(out_dir: str | Path) -> Path:
    """Create ``out_dir`` for a new run; refuse a folder that already holds anything."""
    folder = Path(out_dir)
    if folder.exists():
        if not folder.is_dir():
            raise RunFolderError(f"{folder}: exists and is not a folder")
        if any(folder.iterdir()):
            raise RunFolderError(f"{folder}: already holds files; a run never overwrites another. "
                                 f"Choose a new --out folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{folder}: cannot create the run folder ({exc.strerror})") from None
    return folder


@dataclass(frozen=True)
class Recorded:
    """What a run folder recorded when its run started."""

    folder: Path
    bench_text: str
    bench_source: str
    bench_dir: Path | None
    seed: int
    count: int
    calibrations: Path | None
    colour_nm: float | None = None      # one colour's pass of a multi-colour run
    colour_run: bool = False            # the folder of a multi-colour run
    class_index: int | None = None      # the class the run generated (optgen run --class)


def recorded(folder: str | Path) -> Recorded:
    """What the run in ``folder`` was started with (RunFolderError if it holds no run)."""
    from optgen.lab.runfile.reader import read_run_attrs

    folder = Path(folder)
    if (folder / COLOUR_RUN_FILE).is_file():
        stored = _colour_settings(folder)
        return Recorded(folder, stored["bench_file"], str(folder / COLOUR_RUN_FILE), _path(stored.get("bench_dir")),
                        int(stored["seed"]), int(stored["count"]), _path(stored.get("calibrations")), colour_run=True,
                        class_index=None if stored.get("class") is None else int(stored["class"]))
    if not (folder / "run.h5").is_file():
        raise RunFolderError(f"{folder}: no run.h5 here; nothing to resume")
    attrs = read_run_attrs(folder / "run.h5")
    args = attrs.get("run_args") or {}
    return Recorded(folder, attrs["bench_file"], str(attrs.get("bench_source", folder / "run.h5")),
                    _path(args.get("bench_dir")), int(args.get("seed", 0)), int(attrs["count"]),
                    _path(args.get("calibrations")), colour_nm=args.get("colour_nm"),
                    class_index=None if args.get("class") is None else int(args["class"]))


def resume_settings(folder: str | Path, *, bench: Path | None = None, seed: int | None = None,
                    calibrations: Path | None = None):
    """(bench config, bench folder, seed, count, calibration store) to resume the run in ``folder``:
    the recorded ones; a ``bench`` file must be the one recorded, a ``seed`` must repeat it."""
    from optgen.lab.bench.parse import load_bench, parse_bench

    rec = recorded(folder)
    if seed is not None and seed != rec.seed:
        raise RunFolderError(f"--seed {seed}: the run in {rec.folder} was started with --seed {rec.seed}; a "
                             f"resumed run keeps its seed (leave --seed out)")
    if rec.colour_nm is not None:
        raise RunFolderError(f"{rec.folder}: one colour ({rec.colour_nm:g} nm) of a multi-colour run; resume the "
                             f"whole run: optgen run --resume {rec.folder.resolve().parent}")
    if bench is not None:
        cfg = load_bench(bench)
        if cfg.text != rec.bench_text:
            raise RunFolderError(f"{bench}: not the bench file the run in {rec.folder} was made with "
                                 f"({rec.bench_source}); resume it on its own bench")
        base_dir = bench.parent
    else:
        cfg = parse_bench(rec.bench_text, f"{rec.bench_source} (the bench file recorded by the run)")
        base_dir = rec.bench_dir
    return cfg, base_dir, rec.seed, rec.count, calibrations or rec.calibrations


def check_same_run(path: Path, stored: dict, attrs: dict) -> None:
    """Refuse to continue a run made on another bench, software version or calibration set
    (``stored``: the run file's attributes; ``attrs``: what this session would record)."""
    for key, what in SAME_RUN_KEYS:
        if key in stored and stored[key] != attrs[key]:
            raise RunFolderError(f"{path}: the run was made with another {what} than this resume "
                                 f"would use ({key} differs); resume it with the same bench file, calibrations "
                                 f"and settings, or start a new run")
    theirs = (stored.get("software") or {}).get("optgen")
    ours = attrs["software"].get("optgen")
    if theirs != ours:
        raise RunFolderError(f"{path}: the run was made by optgen {theirs}, this is optgen {ours}; "
                             f"a run is resumed by the version that started it")


def check_resumable(path: Path, attrs: dict) -> None:
    """Before a run file is opened for writing: this session may continue it (read-only checks)."""
    from optgen.lab.runfile.reader import read_run_attrs, read_run_status

    if not path.is_file():
        raise RunFolderError(f"{path.parent}: no run.h5 here; nothing to resume")
    check_same_run(path, read_run_attrs(path), attrs)
    status = read_run_status(path)
    if status["first_missing"] is None:
        raise RunFolderError(f"{path}: every frame is already stored ({status['status']}); nothing to resume")


def check_same_colour_run(folder: Path, settings: dict) -> None:
    """Refuse to continue a multi-colour run with other colours, count, seed, model, bench, class or noise
    (the colours still to run would not be images of the same noise as those done)."""
    stored = _colour_settings(folder)
    for key in SAME_COLOUR_RUN_KEYS:
        if stored.get(key) != settings.get(key):
            if key == "noise":
                made = f"on {stored['noise'].get('count')} given noise vectors" if stored.get(key) else "on noise drawn from its seed"
                raise RunFolderError(f"{folder}: the run was made {made}; resume it with the same noise "
                                     f"(run_colours(..., noise=) with the vectors it was given)")
            raise RunFolderError(f"{folder}: the run was made with another {key.replace('_', ' ')} "
                                 f"({stored.get(key)!r:.80}); resume it with the same bench and model")


def _colour_settings(folder: Path) -> dict:
    path = folder / COLOUR_RUN_FILE
    if not path.is_file():
        raise RunFolderError(f"{folder}: no {COLOUR_RUN_FILE}; not a multi-colour run folder")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{path}: not readable ({exc}); the colour run's record is damaged") from None
    if not isinstance(stored, dict):
        raise RunFolderError(f"{path}: expected a JSON object, the colour run's record")
    return stored


def _path(text) -> Path | None:
    return Path(text) if text else None
