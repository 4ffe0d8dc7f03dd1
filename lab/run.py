"""Run loop v1: seed -> phase -> LUT -> encoding SLM -> wait latency + settle -> capture -> store.

The decoder phase is uploaded once. The laser emits only while frames are captured and
is turned off, and verified off, on every exit path: normal end, exception, Ctrl-C,
SIGTERM (turned into SystemExit while a run is active) and interpreter exit (the laser
registry's atexit hook). Every stored frame is flushed at once, so nothing captured is lost.
"""

from __future__ import annotations

import json
import platform
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from calibration.alignment import place_decoder
from drivers.errors import DeviceError, OptgenError

from .bench import Bench
from .contact_sheet import write_contact_sheet
from .energy import energy_per_image
from .patterns import check_model_phase, seed_to_slm_phase
from .registration import OutputRegistration
from .seeds import SeedSource
from .storage import RunWriter

__all__ = ["RunFolderError", "RunResult", "prepare_run_folder", "run_generation"]


class RunFolderError(OptgenError, ValueError):
    """The output folder cannot take a new run."""


@dataclass
class RunResult:
    folder: Path
    status: str
    frames_written: int
    summary: dict


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


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("optgen", "numpy", "scipy", "slmsuite", "h5py", "opencv-python"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """While active (main thread only), SIGTERM raises SystemExit so every ``finally`` runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _seed_gray(display: np.ndarray, seed_shape: tuple[int, int], superpixel_px: int) -> np.ndarray:
    """Gray level at the centre of each seed superpixel of the (centred) seed on ``display``."""
    rows, cols = display.shape
    n_r, n_c = seed_shape
    r0 = (rows - n_r * superpixel_px) // 2 + superpixel_px // 2
    c0 = (cols - n_c * superpixel_px) // 2 + superpixel_px // 2
    return display[r0:r0 + n_r * superpixel_px:superpixel_px, c0:c0 + n_c * superpixel_px:superpixel_px]


def run_generation(bench: Bench, seeds: SeedSource, decoder_phase: np.ndarray, decoder_id: str,
                   out_dir: str | Path, count: int,
                   progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Generate ``count`` frames on ``bench`` into a new run folder; returns what happened.

    Raises after cleaning up if the run fails or is interrupted; the run file then records why.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count = {count!r}: expected a positive whole number of frames")
    if count > len(seeds):
        raise ValueError(f"count = {count}: the seed source {seeds.name} holds only {len(seeds)} seeds")
    cfg = bench.config
    g = cfg.geometry
    decoder_phase = check_model_phase("decoder phase", decoder_phase, (g.decoder_px, g.decoder_px))
    bench.laser.check_power(cfg.laser.power_w)
    folder = prepare_run_folder(out_dir)
    cals = bench.calibrations
    registration = OutputRegistration(cfg, output_to_sensor=cals.output_to_sensor() if cals else None)
    placement = cals.decoder_placement() if cals else None
    seed_shape = seeds.shape
    writer = RunWriter(
        folder / "run.h5", count, bench.camera.shape, (g.output_pixels, g.output_pixels), seed_shape,
        attrs={"bench_file": cfg.text, "bench_source": cfg.source, "bench_name": cfg.name,
               "calibrations": bench.calibration_ids(), "devices": bench.describe(),
               "seed_source": seeds.describe(), "decoder_phase": decoder_id, "software": software_versions(),
               "count": int(count)})
    status, reason = "failed", "not started"
    started = time.perf_counter()
    t_bench0 = bench.clock.now()
    on_time_s = 0.0
    dark_level = 0.0
    counts_above_dark = 0.0
    try:
        with sigterm_as_exit():
            bench.laser.set_emission(False)
            dark = bench.camera.capture()
            dark_level = float(np.median(dark))
            writer.file.create_dataset("dark", data=dark)
            registration.dark_level_dn = dark_level
            writer.write_decoder_phase(decoder_phase)
            # the decoder lands centred and unrotated in the beam however SLM2 sits (measured placement)
            bench.decoding_slm.set_phase(place_decoder(decoder_phase, bench.decoding_slm.shape, placement,
                                                       cfg.decoding_slm.pitch_um * 1e-6))
            bench.clock.sleep(bench.decoding_slm.timing.wait_s)
            accepted = bench.laser.set_power(cfg.laser.power_w)
            if abs(accepted - cfg.laser.power_w) > 0.05 * cfg.laser.power_w + 1e-9:
                raise DeviceError(bench.laser.name, f"asked for {cfg.laser.power_w * 1e3:.6g} mW, the laser reports "
                                                    f"{accepted * 1e3:.6g} mW (outside its range or resolution?)")
            pattern = np.zeros(bench.encoding_slm.shape, dtype=np.float32)
            saturation = (cals.saturation_dn() if cals else None) or bench.camera.saturation_dn
            if not bench.laser.set_emission(True):
                raise DeviceError(bench.laser.name, "emission did not turn on (read-back says off)")
            t_on = bench.clock.now()
            try:
                for index in range(count):
                    seed = seeds.seed(index)
                    seed_to_slm_phase(seed.phase, g.superpixel_px, bench.encoding_slm.shape, out=pattern)
                    display = bench.encoding_slm.set_phase(pattern)
                    bench.clock.sleep(bench.encoding_slm.timing.wait_s)
                    frame = bench.camera.capture()
                    meta = {"timestamp_s": time.time(), "exposure_s": bench.camera.timing.exposure_s,
                            "laser_power_w": bench.laser.measured_power(),
                            "saturated_pixels": int(np.count_nonzero(frame >= saturation))}
                    writer.write(index, frame, registration.image(frame), seed.phase,
                                 _seed_gray(display, seed_shape, g.superpixel_px), seed.index, seed.id, meta)
                    counts_above_dark += float(frame.sum(dtype=np.float64)) - dark_level * frame.size
                    if progress is not None:
                        progress(index + 1, count)
            finally:
                on_time_s = bench.clock.now() - t_on
                bench.laser.safe_off()
        status, reason = "complete", ""
    except KeyboardInterrupt:
        status, reason = "stopped", "interrupted (Ctrl-C)"
        raise
    except SystemExit as exc:
        status, reason = "stopped", f"terminated (exit {exc.code})"
        raise
    except Exception as exc:
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        laser_off = False
        try:
            bench.laser.safe_off()
            laser_off = True
        finally:
            elapsed = time.perf_counter() - started
            setpoint = _setpoint(bench)
            summary = _summary(bench, writer, status, reason, elapsed, on_time_s, dark_level, setpoint)
            summary["laser_verified_off"] = laser_off
            summary["energy_per_image"] = energy_per_image(
                cfg, writer.n_written, setpoint, on_time_s, bench.clock.now() - t_bench0, counts_above_dark,
                seeds.flops_per_seed)
            writer.close(status, reason, {"summary": summary})
            _write_outputs(folder, summary)
    return RunResult(folder, status, summary["frames_written"], summary)


def _setpoint(bench: Bench) -> float:
    """The laser setpoint for the summary; NaN if the laser no longer answers."""
    try:
        return bench.laser.power_setpoint()
    except Exception:
        return float("nan")


def _summary(bench: Bench, writer: RunWriter, status: str, reason: str, elapsed_s: float, on_time_s: float,
             dark_level: float, setpoint_w: float) -> dict:
    n = writer.n_written
    summary = {
        "status": status,
        "stop_reason": reason,
        "frames_requested": writer.count,
        "frames_written": n,
        "wall_time_s": round(elapsed_s, 4),
        "frames_per_s": round(n / elapsed_s, 3) if elapsed_s > 0 and n else 0.0,
        "bench": bench.config.name,
        "simulated": bench.world is not None,
        "calibrations": bench.calibration_ids(),
        "dark_level_dn": dark_level,
        "laser_setpoint_w": setpoint_w,
        "laser_on_time_s": round(on_time_s, 6),
    }
    if n:
        written = writer.written[:]
        images = writer.images[...][written]
        saturated = writer.meta["saturated_pixels"][...][written]
        summary.update({
            "image_mean_counts": float(np.mean(images)),
            "image_max_counts": float(np.max(images)),
            "frames_with_saturation": int(np.count_nonzero(saturated)),
        })
    return summary


def _write_outputs(folder: Path, summary: dict) -> None:
    """contact_sheet.png (from the stored images) and summary.json."""
    n = summary["frames_written"]
    if n:
        import h5py

        with h5py.File(folder / "run.h5", "r") as f:
            written = f["meta/written"][:]
            images = f["images"][np.flatnonzero(written)[:64]]
        write_contact_sheet(folder / "contact_sheet.png", images)
        summary["contact_sheet"] = "contact_sheet.png"
    summary["run_file"] = "run.h5"
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
