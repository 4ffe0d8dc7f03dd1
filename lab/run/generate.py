"""A run: seed -> phase -> LUT -> encoding SLM -> settle -> capture -> register -> store.

The decoder phase is uploaded once. The timing-critical path (:mod:`lab.capture_loop`) runs
on this thread; seed patterns are prepared ahead on one thread and frames are registered and
stored on another (:mod:`lab.frame_store`), each frame durable before the next is written
(:mod:`lab.storage`), so a resume (``resume=True``) continues at the frames still missing.
The laser emits only while frames are captured and is turned off, and verified off, on every
exit path: normal end, exception, Ctrl-C (once: finish the frames in flight; twice: now),
SIGTERM and interpreter exit (the laser registry's atexit hook). Every stop records its
reason in the run file, run.log and summary.json.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import platform
import queue
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from optgen.drivers.errors import DeviceError
from optgen.drivers.stop import StopControl
from optgen.drivers.stop import active as active_stop
from optgen.lab.bench.assemble import Bench
from optgen.lab.model.provenance import adapted_elsewhere
from optgen.lab.run.capture_loop import SYNC_MODES, CaptureLoopStats, PatternPreparer, capture_frames
from optgen.lab.run.device_log import DeviceLogTap
from optgen.lab.run.energy import energy_per_image
from optgen.lab.run.folder import check_resumable, prepare_run_folder
from optgen.lab.run.frame_store import StorageStalled, StoreWorker
from optgen.lab.run.laser_guard import LaserGuard
from optgen.lab.run.patterns import check_model_phase
from optgen.lab.run.placement import place_decoder
from optgen.lab.run.readout import FULL, readout_window
from optgen.lab.run.registration import OutputRegistration
from optgen.lab.run.seeds import SeedSource
from optgen.lab.runfile.contact_sheet import write_contact_sheet
from optgen.lab.runfile.reader import RunFile
from optgen.lab.runfile.storage import RunFileBusy, RunWriter

__all__ = ["RunLog", "RunResult", "run_generation", "run_summary", "write_json_atomic", "write_run_outputs"]

log = logging.getLogger("optgen.run")


@dataclass
class RunResult:
    folder: Path
    status: str
    frames_written: int
    summary: dict


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("optgen", "numpy", "scipy", "slmsuite", "h5py", "opencv-python"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _open_writer(folder: Path, resume: bool, count: int, frame_shape: tuple[int, int], g, seed_shape, attrs: dict):
    """A new run file, or (``resume``) the run's own after checking, read-only, that this run
    may continue it: a refused resume leaves the file as it was."""
    path = folder / "run.h5"
    if not resume:
        return RunWriter(path, count, frame_shape, (g.output_pixels, g.output_pixels), seed_shape, attrs=attrs)
    check_resumable(path, attrs)
    return RunWriter.resume(path)


def _recorded_readout(path: Path):
    """What a run file says its frames are (``readout_window``), None where it cannot be read (the
    resume's own checks then say why)."""
    from optgen.lab.runfile.reader import read_run_attrs

    try:
        return read_run_attrs(path).get("readout_window")
    except Exception:
        return None


def run_generation(bench: Bench, seeds: SeedSource, decoder_phase: np.ndarray, decoder_id: str,
                   out_dir: str | Path, count: int,
                   progress: Callable[[int, int], None] | None = None, *, resume: bool = False,
                   sync: str = "pipelined", max_retries: int = 3, stop: StopControl | None = None,
                   run_args: dict | None = None) -> RunResult:
    """Generate ``count`` frames on ``bench`` into a new run folder (or, with ``resume``, the
    missing frames of the run in ``out_dir``); returns what happened.

    ``progress(done, total)`` is called on this thread as frames are stored. Raises after
    cleaning up if the run fails or is interrupted; the run file then records why.
    ``stop``: the stop control (default: the one whose signal handlers are installed, else a new one).
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count = {count!r}: expected a positive whole number of frames")
    if count > len(seeds):
        raise ValueError(f"count = {count}: the seed source {seeds.name} holds only {len(seeds)} seeds")
    if sync not in SYNC_MODES:
        raise ValueError(f"sync = {sync!r}: expected one of {', '.join(SYNC_MODES)}")
    if sync == "trigger" and not (hasattr(bench.camera, "trigger_from") and hasattr(bench.camera, "trigger_off")):
        raise DeviceError(bench.camera.name, "--sync trigger needs a camera whose trigger input is wired to the SLM's "
                                             "frame-shown output (this driver has none); use pipelined or wait")
    if sync == "trigger" and hasattr(bench.camera, "check_trigger_from"):    # before any light
        bench.camera.check_trigger_from(bench.encoding_slm, bench.encoding_slm.timing.settle_s)
    cfg = bench.config
    g = cfg.geometry
    decoder_phase = check_model_phase("decoder phase", decoder_phase, (g.decoder_px, g.decoder_px))
    bench.laser.check_power(cfg.laser.power_w)
    folder = Path(out_dir) if resume else prepare_run_folder(out_dir)
    cals = bench.calibrations
    registration = OutputRegistration(cfg, output_to_sensor=cals.output_to_sensor() if cals else None)
    placement = cals.decoder_placement() if cals else None
    attrs = {"bench_file": cfg.text, "bench_source": cfg.source, "bench_name": cfg.name,
             "calibrations": bench.calibration_ids(), "calibration_ages_h": cals.ages_h() if cals else {},
             "calibration_store": str(Path(cals.store).resolve()) if cals else "",
             "devices": bench.describe(),
             "seed_source": seeds.describe(), "decoder_phase": decoder_id, "software": software_versions(),
             "count": int(count), "run_args": run_args or {}}
    recorded = _recorded_readout(folder / "run.h5") if resume else None
    with readout_window(bench.camera, registration, cfg.run.readout, recorded) as window:
        attrs["readout_window"] = list(window) if window is not None else FULL
        frame_shape = (window[3], window[1]) if window is not None else tuple(bench.camera.shape)
        writer = _open_writer(folder, resume, count, frame_shape, g, seeds.shape, attrs)
        todo = [int(i) for i in writer.missing()]
        stop = stop or active_stop() or StopControl()
        run_log = RunLog(folder / "run.log", writer)
        run_log.event("start", f"{'resuming' if resume else 'starting'}: {len(todo)} of {count} frames to take, "
                               f"sync {sync}, bench {cfg.name!r}")
        if window is not None:
            rows, cols = registration.sensor_shape
            run_log.event("camera", f"reading out the window (x, width, y, height) {tuple(window)} under the output "
                                    f"window: {window[1] * window[3] / (rows * cols):.0%} of the sensor's pixels",
                          level=logging.INFO)
        other_colours = getattr(cals, "other_colours", None) or []
        for line in getattr(cals, "skipped", None) or []:     # another of the bench's colours: expected, not a warning
            run_log.event("calibration", f"not used: {line}", level=logging.INFO if line in other_colours else None)
        model = getattr(seeds, "model", None)
        corrected = bench.config.calibration.correct_decoder_wavefront
        warning = adapted_elsewhere(model, bench.calibration_ids(), corrected) if model is not None else None
        if warning:
            run_log.event("warning", warning)
        if cals is not None and cals.in_force():
            ages = cals.ages_h()
            run_log.event("calibration", "in force: " + ", ".join(f"{name} {record.id} ({ages.get(name, float('nan')):.1f} h old)"
                                                                  for name, record in cals.in_force().items()),
                          level=logging.INFO)          # news, not a warning: optgen run prints it on its own
        else:
            run_log.event("calibration", "UNCALIBRATED: " + ("no calibration store" if cals is None else
                                                             f"no calibration for this bench in {cals.store}"),
                          level=logging.INFO)
        end = _RunEnd(bench, writer, run_log, count, sync, seeds.flops_per_seed)
        with stop.signals():
            graceful, stop.graceful = stop.graceful, True     # the first Ctrl-C finishes the frames in flight
            bench.laser.report_to(folder, "run")               # where the laser watchdog would say what it did
            try:
                bench.laser.set_emission(False)
                dark = bench.camera.capture()
                end.dark_level = float(np.median(dark))
                writer.write_dark(dark)                       # a resumed session's dark goes to /dark_1, ...
                writer.write_decoder_phase(decoder_phase)     # on resume: checks it is the run's decoder
                registration.dark_level_dn = end.dark_level
                correction, dark_used = (cals.pixel_correction(dark, bench.camera.timing.exposure_s, window)
                                         if cals else (None, ""))
                if correction is not None:                    # dark, flat field and hot pixels pixel by pixel
                    registration.use_correction(correction)
                    run_log.event("camera", f"frames corrected pixel by pixel: {dark_used}; "
                                            f"{correction.hot_count} hot pixels replaced")
                # the decoder lands centred and unrotated in the beam however SLM2 sits (measured placement)
                bench.decoding_slm.set_phase(place_decoder(decoder_phase, bench.decoding_slm.shape, placement,
                                                           cfg.decoding_slm.pitch_um * 1e-6))
                bench.clock.sleep(bench.decoding_slm.timing.wait_s)
                accepted = bench.laser.set_power(cfg.laser.power_w)
                if abs(accepted - cfg.laser.power_w) > 0.05 * cfg.laser.power_w + 1e-9:
                    raise DeviceError(bench.laser.name, f"asked for {cfg.laser.power_w * 1e3:.6g} mW, the laser reports "
                                                        f"{accepted * 1e3:.6g} mW (outside its range or resolution?)")
                saturation = (cals.saturation_dn() if cals else None) or bench.camera.saturation_dn
                end.preparer = PatternPreparer(bench.encoding_slm, seeds, g.superpixel_px, todo)
                end.guard = LaserGuard(bench.laser, bench.clock, run_log.event)
                end.store = StoreWorker(writer, registration, end.guard, saturation, end.dark_level,
                                        stall_s=cfg.safety.storage_stall_s)
                reporter = _Progress(progress, writer, count)
                # a Ctrl-C during the set-up stops here: the light never comes on
                if not stop.requested and not bench.laser.set_emission(True):
                    raise DeviceError(bench.laser.name, "emission did not turn on (read-back says off)")
                t_on = bench.clock.now()
                try:
                    capture_frames(bench, end.preparer, end.store, stop, sync=sync, max_retries=max_retries,
                                   record_event=run_log.event, on_iteration=reporter.update, stats=end.loop_stats)
                finally:
                    stop.cleaning = True                      # a signal from here on waits for the cleanup
                    end.on_time_s = bench.clock.now() - t_on
                    end.laser_off()                           # every frame is in: storing needs no light
                end.store.finish()
                reporter.update()
                if writer.n_written == count:
                    end.status, end.reason = "complete", ""
                else:
                    end.status, end.reason = "stopped", stop.reason or "stopped before every frame was taken"
            except KeyboardInterrupt:
                end.status, end.reason = "stopped", "interrupted (Ctrl-C)"
                raise
            except SystemExit as exc:
                end.status, end.reason = "stopped", f"terminated (exit {exc.code})"
                raise
            except Exception as exc:
                end.failed(exc)
                raise
            finally:
                stop.cleaning = True
                try:
                    end.finish(folder)
                finally:
                    bench.laser.report_to(None)
                    stop.graceful = graceful
        return RunResult(folder, end.status, end.summary["frames_written"], end.summary)


class _RunEnd:
    """How a run ends, in the order a hung disk or a full one cannot spoil: the laser off (and
    verified) first; then the run file, unless its storage stalled (a write that never returns
    may hold the file's lock, so it is left alone); then summary.json; the pictures last."""

    def __init__(self, bench: Bench, writer: RunWriter, run_log: "RunLog", count: int, sync: str,
                 flops_per_seed: float):
        self.bench, self.writer, self.run_log = bench, writer, run_log
        self.count, self.sync, self.flops_per_seed = count, sync, flops_per_seed
        self.status, self.reason = "failed", "not started"
        self.store: StoreWorker | None = None
        self.preparer: PatternPreparer | None = None
        self.guard: LaserGuard | None = None
        self.loop_stats = CaptureLoopStats()
        self.dark_level = 0.0
        self.on_time_s = 0.0
        self.laser_verified_off = False
        self.laser_error: BaseException | None = None
        self.summary: dict = {}
        self.started = time.perf_counter()
        self.t_bench0 = bench.clock.now()
        self.stored_before = writer.n_written

    @property
    def stalled(self) -> bool:
        return self.store is not None and self.store.stalled

    def failed(self, exc: BaseException) -> None:
        self.status, self.reason = "failed", f"{type(exc).__name__}: {exc}"
        if isinstance(exc, StorageStalled):
            self.reason = str(exc)
        store_error = self.store.error if self.store is not None else None
        cause = store_error if store_error not in (None, exc) else exc.__context__
        if cause is not None:               # e.g. the laser could not be switched off after a lost link
            self.reason += f" (while stopping after {type(cause).__name__}: {cause})"

    def laser_off(self) -> None:
        """Emission off, verified (raises LaserSafetyError if it cannot be); once is enough."""
        if self.laser_verified_off:
            return
        if self.guard is not None:
            self.guard.stand_down()
        self.bench.laser.safe_off()
        self.laser_verified_off = True

    def finish(self, folder: Path) -> None:
        """Everything after the capture, on every exit path; raises a failed safe-off last."""
        try:
            self.laser_off()
        except BaseException as exc:       # noqa: BLE001 - recorded, raised at the end
            self.laser_error = exc
            self.run_log.event("laser", f"NOT verified off: {exc}")
        if self.stalled:
            self.status = "failed"
            self.run_log.storage_hung = True
        else:
            self._close_storage()
        if self.preparer is not None:
            self.preparer.close()
        n = self.writer.n_written
        self.run_log.event("end", f"{self.status}{': ' + self.reason if self.reason else ''}; {n} of {self.count} "
                                  f"frames stored ({n - self.stored_before} in this session)")
        self.summary = self._summary()
        try:
            if not self.stalled:
                self.writer.close(self.status, self.reason, {"summary": self.summary})
        finally:
            self.run_log.close()
            write_run_outputs(folder, self.summary, pictures=not self.stalled)
        if self.laser_error is not None:
            raise self.laser_error

    def _close_storage(self) -> None:
        try:
            self.writer.mark_stopped(self.status, self.reason)    # why, recorded before anything else can fail
        finally:
            if self.store is not None:
                try:
                    self.store.finish()                           # frames already captured are stored
                except BaseException as exc:                     # noqa: BLE001 - the first error is the one raised
                    self.run_log.event("store", f"{type(exc).__name__}: {exc}")
                    if self.stalled:
                        self.status, self.reason = "failed", str(exc)
                        self.run_log.storage_hung = True

    def _summary(self) -> dict:
        bench, store, stats = self.bench, self.store, self.loop_stats
        setpoint = _setpoint(bench)
        elapsed = time.perf_counter() - self.started
        summary = run_summary(bench, self.writer, self.status, self.reason, elapsed, self.on_time_s,
                              self.dark_level, setpoint, read_images=not self.stalled)
        summary["laser_verified_off"] = self.laser_verified_off
        summary["frames_this_session"] = self.writer.n_written - self.stored_before
        summary["sync"] = self.sync
        summary["retakes"] = stats.retakes
        summary["capture_timeouts"] = stats.capture_timeouts
        summary["critical_path_overhead_ms"] = stats.overhead_ms()
        summary["store_wait_s"] = round(stats.store_wait_s, 4)
        if self.stalled:
            summary["storage_stalled"] = True
        if store is not None and store.stored:
            summary["store_ms_per_frame"] = round(store.busy_s / store.stored * 1e3, 3)
        summary["energy_per_image"] = energy_per_image(
            bench.config, summary["frames_this_session"], setpoint, self.on_time_s,
            bench.clock.now() - self.t_bench0, store.counts_above_dark if store is not None else 0.0,
            self.flops_per_seed)
        return summary


class _Progress:
    """Calls ``progress(done, total)`` on the run's thread as the worker stores frames."""

    def __init__(self, progress, writer, total: int):
        self.progress, self.writer, self.total = progress, writer, total
        self.reported = writer.n_written

    def update(self) -> None:
        if self.progress is None:
            return
        while self.reported < self.writer.n_written:
            self.reported += 1
            self.progress(self.reported, self.total)


class RunLog:
    """run.log in the run folder (appended to on resume), and the same events in the run file;
    run.log also gets the drivers' log, each SLM upload, capture and laser command at DEBUG.

    The log file is written on a thread of its own, so a hung disk never blocks the run loop,
    and :meth:`close` waits for it a bounded time. Once the run's storage has stalled
    (``storage_hung``), events go to run.log only: the run file may be locked by the hung write.
    """

    CLOSE_WAIT_S = 5.0
    EVENT_WAIT_S = 5.0      # the longest the run loop waits to put an event into the run file (a hung write holds it)

    def __init__(self, path: Path, writer):
        self.writer = writer
        self.storage_hung = False
        self.logger = logging.getLogger("optgen.run")
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.handler = logging.handlers.QueueHandler(self._queue)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.INFO)
        self._devices = DeviceLogTap(self.handler)        # each device operation at DEBUG (lab.run.device_log)
        self._file = logging.FileHandler(path, encoding="utf-8", delay=True)
        self._file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self._thread = threading.Thread(target=self._write, name="optgen-run-log", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            try:
                self._file.handle(record)
            except Exception:   # noqa: BLE001 - a log line must never stop the run
                pass

    def event(self, kind: str, text: str, level: int | None = None) -> None:
        if level is None:
            level = logging.CRITICAL if kind == "laser" else (
                logging.WARNING if kind in ("retry", "link", "store", "calibration", "warning") else logging.INFO)
        self.logger.log(level, "%s: %s", kind, text)
        if self.storage_hung:
            return
        try:
            self.writer.record_event(kind, text, timeout_s=self.EVENT_WAIT_S)
        except RunFileBusy as exc:                # a write holds the file: this and later events go to run.log only
            self.storage_hung = True
            self.logger.error("could not record the event in the run file: %s", exc)
        except Exception as exc:   # noqa: BLE001 - the log file still has it
            self.logger.error("could not record the event in the run file: %s", exc)

    def close(self) -> None:
        self._devices.close()
        self.logger.removeHandler(self.handler)
        self._queue.put(None)
        self._thread.join(self.CLOSE_WAIT_S)
        if not self._thread.is_alive():
            self._file.close()


def _setpoint(bench: Bench) -> float:
    """The laser setpoint for the summary; NaN if the laser no longer answers."""
    try:
        return bench.laser.power_setpoint()
    except Exception:
        return float("nan")


def run_summary(bench: Bench, writer: RunWriter, status: str, reason: str, elapsed_s: float, on_time_s: float,
                dark_level: float, setpoint_w: float, read_images: bool = True) -> dict:
    """What summary.json says of a run (``read_images``: also the image statistics, read from the run file)."""
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
        "calibrations_not_used": list(getattr(bench.calibrations, "skipped", None) or []),
        "dark_level_dn": dark_level,
        "laser_setpoint_w": setpoint_w,
        "laser_on_time_s": round(on_time_s, 6),
    }
    if n and read_images:
        written = writer.written[:]
        images = writer.images[...][written]
        saturated = writer.meta["saturated_pixels"][...][written]
        summary.update({
            "image_mean_counts": float(np.mean(images)),
            "image_max_counts": float(np.max(images)),
            "frames_with_saturation": int(np.count_nonzero(saturated)),
        })
    return summary


def write_run_outputs(folder: Path, summary: dict, pictures: bool = True, timeout_s: float = 10.0) -> None:
    """summary.json first, then contact_sheet.png (from the stored images): a full disk or a
    failed picture still leaves the summary. Each file is written on a thread and waited for at
    most ``timeout_s``, so a hung disk cannot hold the process."""
    summary["run_file"] = "run.h5"
    if not _bounded(lambda: write_json_atomic(folder / "summary.json", summary), timeout_s, "summary.json"):
        return
    if not (pictures and summary["frames_written"]):
        return

    def sheet() -> None:
        with RunFile(folder / "run.h5") as run:
            images = run.images(limit=64)
            numbers = [f"#{i}" for i in run.indices[:len(images)]]
        write_contact_sheet(folder / "contact_sheet.png", images, labels=numbers)
        summary["contact_sheet"] = "contact_sheet.png"
        write_json_atomic(folder / "summary.json", summary)

    _bounded(sheet, timeout_s, "contact_sheet.png")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON next to ``path`` and rename it over: a reader sees the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _bounded(job: Callable[[], None], timeout_s: float, what: str) -> bool:
    """Run ``job`` on a thread; False (logged) if it failed or did not finish within ``timeout_s``."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            job()
        except BaseException as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"optgen-write-{what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        log.error("%s was not written within %g s (disk hung?)", what, timeout_s)
        return False
    if errors:
        log.error("%s could not be written: %s", what, errors[0])
        return False
    return True
