"""The public Python API of optgen, exported by the ``optgen`` package (see docs/api.md).

    >>> import optgen
    >>> with optgen.open_bench() as bench:              # the embedded simulated bench
    ...     run = bench.generate(4, seed=1, out="runs/api")
    >>> optgen.open_run("runs/api").images.shape
    (4, 32, 32)

Every error is an :class:`optgen.OptgenError` naming the file, key or value at fault, raised
before anything reaches hardware; the laser is off when a :class:`Bench` closes, whatever happens.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from optgen.drivers.errors import OptgenError
from optgen.lab.bench.config import BenchConfig
from optgen.lab.runfile.layout import RunFileError

__all__ = ["Bench", "BenchClosedError", "Run", "load_bench", "load_model", "open_bench", "open_run"]

SYNC_MODES = ("pipelined", "wait", "trigger")


class BenchClosedError(OptgenError):
    """A :class:`Bench` was used after it was closed."""


def load_bench(path: str | Path | None = None) -> BenchConfig:
    """Read and validate a bench file.

    Parameters
    ----------
    path : str or Path, optional
        The bench file (TOML). None: the embedded simulated bench.

    Returns
    -------
    BenchConfig
        The validated bench (frozen dataclasses, one per table).

    Raises
    ------
    optgen.OptgenError
        ``BenchFileError`` naming the file, the ``[table] key``, the value and what is allowed.
    """
    from optgen.lab.bench.parse import load_bench as _load

    return _load(path)


def load_model(name_or_path: str | Path):
    """Load an optical generative model.

    Parameters
    ----------
    name_or_path : str or Path
        A shipped model's name (``"digits-v7"``) or a model file (``.npz``, from ``optgen train``).

    Returns
    -------
    OpticalModel
        Its numpy encoder (noise -> seed phases), decoder phase per colour and geometry.

    Raises
    ------
    optgen.OptgenError
        ``ModelFileError`` naming the file and the field at fault; the whole file is checked.
    """
    from optgen.lab.model import load_model as _load

    return _load(str(name_or_path))


def open_bench(bench: str | Path | BenchConfig | None = None, *, calibrations: str | Path | None = None,
               base_dir: str | Path | None = None) -> "Bench":
    """Open every device of a bench (use it as a context manager).

    The bench file, its calibration files and what its ``[run]`` table names (the model, a seed
    file, a decoder phase) are all read and checked before any device opens.

    Parameters
    ----------
    bench : str, Path or BenchConfig, optional
        A bench file, a loaded bench, or None for the embedded simulated bench.
    calibrations : str or Path, optional
        The calibration store (default: the bench file's ``[calibration] store``).
    base_dir : str or Path, optional
        The folder relative paths of the bench file start from (default: the bench file's own).

    Returns
    -------
    Bench
        The open bench; closing it turns the laser off (verified) and releases every device.

    Raises
    ------
    optgen.OptgenError
        A bad bench or calibration file (before any device opens), or a device that cannot open
        (the devices opened before it are closed again, the laser off).
    """
    from optgen.lab.run.sources import RunSources

    config = bench if isinstance(bench, BenchConfig) else load_bench(bench)
    if base_dir is None and Path(config.source).is_file():
        base_dir = Path(config.source).parent
    base_dir = Path(base_dir) if base_dir is not None else None
    store = Path(calibrations) if calibrations is not None else None
    sources = RunSources(config, base_dir)          # the model and seed files, checked before any device
    return Bench.open(config, sources, store)


def open_run(path: str | Path) -> "Run":
    """Open a run folder (from ``optgen run`` or :meth:`Bench.generate`) read-only.

    Parameters
    ----------
    path : str or Path
        The run folder (or its ``run.h5``). A run still being written, or a killed one, can be read.

    Returns
    -------
    Run
        Its images, seeds and metadata; frames are read from disk when asked for.

    Raises
    ------
    optgen.OptgenError
        ``RunFileError`` when the folder holds no readable run file.
    """
    folder = Path(path)
    if folder.name == "run.h5":
        folder = folder.parent
    return Run._from_folder(folder)


class Bench:
    """An open bench: generate images, calibrate, show patterns, capture frames.

    Made by :func:`open_bench`. Every method refuses to run once the bench is closed.
    """

    def __init__(self, devices, sources, store: Path | None, base_dir: Path | None = None):
        self._devices = devices
        self._given_sources = sources
        self._base_dir = sources.base_dir if sources is not None else base_dir
        self._store = store

    @classmethod
    def open(cls, config: BenchConfig, sources=None, store: Path | None = None,
             base_dir: Path | None = None) -> "Bench":
        """Open the devices of ``config``; ``sources`` (``optgen.lab.run.sources.RunSources``) are
        what its runs show, checked already, or None to load them at the first run (a bench opened
        only to calibrate). :func:`open_bench` is the usual way in."""
        from optgen.lab.bench.assemble import build_bench

        return cls(build_bench(config, store), sources, store, base_dir)

    @property
    def _sources(self):
        if self._given_sources is None:
            from optgen.lab.run.sources import RunSources

            self._given_sources = RunSources(self.config, self._base_dir)
        return self._given_sources

    # --- life cycle ---------------------------------------------------------------------
    @property
    def config(self) -> BenchConfig:
        """The bench file this bench was opened from."""
        return self._devices.config

    @property
    def devices(self):
        """The open devices (``laser``, ``encoding_slm``, ``decoding_slm``, ``camera``, ``clock``)."""
        self._check_open()
        return self._devices

    @property
    def closed(self) -> bool:
        return self._devices.closed

    def close(self) -> None:
        """Laser off (verified), then release every device. Safe to call twice."""
        self._devices.close()

    def __enter__(self) -> "Bench":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._devices.closed:
            raise BenchClosedError(f"{self.config.name}: the bench is closed (its devices are released and the "
                                   f"laser off); open it again with optgen.open_bench()")

    # --- generating ---------------------------------------------------------------------
    def generate(self, count: int, seed: int = 0, out: str | Path | None = None, *, sync: str = "pipelined",
                 retries: int = 3, progress: Callable[[int, int], None] | None = None,
                 label: int | None = None) -> "Run":
        """Generate ``count`` images with the bench file's model (its ``[run]`` table).

        Parameters
        ----------
        count : int
            Images to generate (>= 1).
        seed : int, default 0
            Random seed of the encoder's noise (>= 0): the same seed gives the same seeds.
        out : str or Path, optional
            A new run folder to write what ``optgen run`` writes (run.h5, run.log, summary.json,
            contact_sheet.png). None: the images come back in memory only.
        sync : {"pipelined", "wait", "trigger"}, default "pipelined"
            The capture timing (see ``optgen run --help``).
        retries : int, default 3
            Attempts beyond the first for a frame that came late or timed out.
        progress : callable, optional
            Called as ``progress(done, total)`` while frames are stored.
        label : int, optional
            Generate only this class (a digit for the digits models): a model trained on labelled
            images reads the class from its noise, so the noise is drawn for that class.

        Returns
        -------
        Run
            The generated images (N, n, n) float32, their seeds and the run's metadata; its
            ``status`` says "complete", or why the run stopped.

        Raises
        ------
        optgen.OptgenError
            A bad argument, model or run folder (before any light), or a device failure (the run
            file records the stop, the laser is off).
        """
        from optgen.lab.run.folder import prepare_run_folder

        self._check_open()
        count, seed = _whole("count", count, 1), _whole("seed", seed, 0)
        if label is not None:
            label = _whole("label", label, 0)
        seeds = self._sources.seeds(seed, label)
        if count > len(seeds):
            raise OptgenError(f"count = {count}: the seed source {seeds.name} holds only {len(seeds)} seeds")
        run_args = {"seed": seed, "bench_dir": str(self._base_dir.resolve()) if self._base_dir else None,
                    "calibrations": str(self._store.resolve()) if self._store is not None else None,
                    "class": label}
        if out is not None:
            folder = prepare_run_folder(out)
            self._run(seeds, folder, count, progress, sync, retries, run_args, resume=False)
            return open_run(folder)
        with tempfile.TemporaryDirectory(prefix="optgen-run-") as tmp:
            self._run(seeds, Path(tmp) / "run", count, progress, sync, retries, run_args, resume=False)
            return Run._from_folder(Path(tmp) / "run", keep_frames=False)

    def resume(self, out: str | Path, *, sync: str = "pipelined", retries: int = 3,
               progress: Callable[[int, int], None] | None = None) -> "Run":
        """Take the frames still missing from the run in ``out`` (stopped, failed or killed).

        The run is continued with the seed, frame count and calibrations it recorded; this bench
        must be the one it was made on (the same bench file), else it is refused before any light.

        Returns
        -------
        Run
            The whole run, as :func:`open_run` reads it afterwards.
        """
        from optgen.lab.run.folder import RunFolderError, recorded

        self._check_open()
        rec = recorded(out)
        if rec.colour_run or rec.colour_nm is not None:
            raise RunFolderError(f"{out}: a multi-colour run; resume it with optgen run --resume {out}")
        if rec.bench_text != self.config.text:
            raise RunFolderError(f"{out}: made on another bench file ({rec.bench_source}); resume it on its own bench")
        run_args = {"seed": rec.seed, "bench_dir": str(rec.bench_dir) if rec.bench_dir else None,
                    "calibrations": str(rec.calibrations) if rec.calibrations else None, "class": rec.class_index}
        self._run(self._sources.seeds(rec.seed, rec.class_index), Path(out), rec.count, progress, sync, retries,
                  run_args, resume=True)
        return open_run(out)

    def _run(self, seeds, folder: Path, count: int, progress, sync: str, retries: int, run_args: dict,
             resume: bool):
        from optgen.lab.run.generate import run_generation

        if sync not in SYNC_MODES:
            raise OptgenError(f"sync = {sync!r}: expected one of {', '.join(SYNC_MODES)}")
        retries = _whole("retries", retries, 0)
        return run_generation(self._devices, seeds, self._sources.decoder_phase, self._sources.decoder_id, folder,
                              count, progress, resume=resume, sync=sync, max_retries=retries, run_args=run_args)

    # --- calibrating --------------------------------------------------------------------
    def calibrate(self, what: str = "all", *, rounds: int = 2, progress=None):
        """Calibrate the bench and use the result from now on.

        Parameters
        ----------
        what : {"all", "camera", "lut", "wavefront", "distances", "alignment"}, default "all"
            Which calibrations to measure (``all``: camera, both SLMs' LUTs, the distances and both
            wavefronts, alignment).
        rounds : int, default 2
            Alternating LUT rounds over the two SLMs.
        progress : callable, optional
            Called with a line of progress (step, pattern, time left) about once a second.

        Returns
        -------
        CalibrationReport
            The files written (``files``), their pictures, the figures and the counts.

        Raises
        ------
        optgen.OptgenError
            A calibration that cannot work (no light, saturation...): the previous one stays in force.
        """
        from optgen.calibration.procedure import STEPS, calibrate
        from optgen.calibration.store import CalibrationStore
        from optgen.lab.bench.calibrations import load_bench_calibrations, store_folder

        self._check_open()
        if what != "all" and what not in STEPS:
            raise OptgenError(f"what = {what!r}: expected all or one of {', '.join(STEPS)}")
        rounds = _whole("rounds", rounds, 1)
        folder = store_folder(self.config, self._store)
        bench = self._devices
        with self._watchdog_reports_to(folder):
            report = calibrate(bench, what, CalibrationStore(folder), rounds=rounds, truths=bench.truths,
                               show_progress=progress)
        bench.reload_calibrations(load_bench_calibrations(self.config, folder))
        return report

    @contextmanager
    def _watchdog_reports_to(self, folder: Path):
        """Where the laser watchdog says what it did, should it act while the block runs (the store)."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OptgenError(f"{folder}: cannot create the calibration store ({exc.strerror or exc})") from None
        self._devices.laser.report_to(folder, "calibration")
        try:
            yield
        finally:
            self._devices.laser.report_to(None)

    def check(self):
        """Re-measure a few points of each calibration in force and compare (``optgen calibrate
        check``). Returns the drift check: ``ok``, the items with their tolerances, ``lines()``."""
        from optgen.calibration.check import check_drift
        from optgen.lab.bench.calibrations import store_folder

        self._check_open()
        with self._watchdog_reports_to(store_folder(self.config, self._store)):
            return check_drift(self._devices)

    # --- single shots -------------------------------------------------------------------
    def show(self, encoding: np.ndarray | None = None, decoding: np.ndarray | None = None) -> None:
        """Show phase patterns (radians) and wait until the SLMs have settled.

        Parameters
        ----------
        encoding, decoding : ndarray, optional
            A pattern for that SLM: its whole shape, or a smaller block shown centred. None
            leaves that SLM as it is.
        """
        from optgen.drivers.common.patterns import embed_centered

        self._check_open()
        waits = []
        for slm, pattern in ((self._devices.encoding_slm, encoding), (self._devices.decoding_slm, decoding)):
            if pattern is None:
                continue
            phase = np.asarray(pattern, dtype=np.float32)
            if phase.ndim != 2:
                raise OptgenError(f"{slm.name}: a pattern of shape {phase.shape}; expected a 2-D phase in radians")
            if phase.shape != tuple(slm.shape):
                phase = embed_centered(phase, slm.shape)
            slm.set_phase(phase)
            waits.append(slm.timing.wait_s)
        if waits:
            self._devices.clock.sleep(max(waits))

    def capture(self, *, light: bool = True) -> np.ndarray:
        """One camera frame (uint16), with the laser on at the bench power only while it is taken.

        Parameters
        ----------
        light : bool, default True
            False takes a dark frame (the laser stays off).
        """
        self._check_open()
        bench = self._devices
        if not light:
            bench.laser.set_emission(False)
            return bench.camera.capture()
        try:
            bench.laser.set_power(self.config.laser.power_w)
            if not bench.laser.set_emission(True):
                raise OptgenError(f"{bench.laser.name}: emission did not turn on (read-back says off)")
            return bench.camera.capture()
        finally:
            bench.laser.safe_off()


class Run:
    """A run's images, seeds and metadata (from :func:`open_run` or :meth:`Bench.generate`)."""

    def __init__(self, folder: Path | None, images: np.ndarray, seeds: np.ndarray, indices: np.ndarray,
                 metadata: dict, status: dict):
        self.folder = folder
        self.images = images          #: (N, n, n) float32, counts above dark, the frames stored so far
        self.seeds = seeds            #: (N, s, s) float32, the seed phases shown (radians)
        self.indices = indices        #: (N,) the frame index of each
        self.metadata = metadata      #: the run file's attributes: bench file, devices, software, ...
        self.status = status          #: status, stop_reason, frames_written, first_missing, events ...

    @classmethod
    def _from_folder(cls, folder: Path, keep_frames: bool = True) -> "Run":
        from optgen.lab.runfile.reader import RunFile

        if not (folder / "run.h5").is_file():
            raise RunFileError(f"{folder}: no run.h5 here; not a run folder (optgen run writes one)")
        with RunFile(folder / "run.h5") as f:
            return cls(folder if keep_frames else None, f.images(), f.seed_phase(), f.indices, dict(f.attrs),
                       f.status())

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"Run({self.folder}, {len(self)} images, {self.status.get('status')})"

    @property
    def calibrations(self) -> dict:
        """The ids of the calibrations the run used."""
        return dict(self.metadata.get("calibrations") or {})

    @property
    def summary(self) -> dict:
        """The run folder's summary.json (energy per image, timings, the laser's state...); {} if none."""
        import json

        path = self.folder / "summary.json" if self.folder is not None else None
        if path is None or not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def frame(self, index: int) -> np.ndarray:
        """Raw camera frame ``index`` (H, W) uint16, read from the run folder now."""
        from optgen.lab.runfile.reader import RunFile

        if self.folder is None:
            raise OptgenError("this run was generated without a folder: raw frames are kept only in a run folder "
                              "(Bench.generate(..., out=FOLDER))")
        with RunFile(self.folder / "run.h5") as f:
            if not 0 <= int(index) < f.count or not f.written[int(index)]:
                raise OptgenError(f"{self.folder}: frame {index} is not stored (frames stored: {len(self)})")
            return f.frame(index)


def _whole(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise OptgenError(f"{name} = {value!r}: expected a whole number >= {low}")
    return int(value)
