"""The RE Manager worker's environment for optgen: the bench, its devices, a RunEngine and the plans
a queue server offers (``start-re-manager --startup-module optgen.lab.bluesky.queue_startup``;
``optgen queue-server`` starts it so).

Read from the environment the launcher sets:

- ``OPTGEN_BENCH``: the bench file ("" or unset: the embedded simulated bench);
- ``OPTGEN_CALIBRATIONS``: the calibration store (default: the bench file's);
- ``OPTGEN_FRAMES_DIR``: where the camera writes its HDF5 frame files (default ``bluesky-frames``);
- ``OPTGEN_TILED_URI`` and ``TILED_API_KEY``: a Tiled server every run is written into
  (``OPTGEN_TILED_DOCUMENTS``: where the runs' documents are kept too; decision 0025).

Names starting with ``_`` are hidden from the queue server's clients; ``bench`` is the device,
``generate``, ``scan_exposure``, ``dark``, ``lut_sweep`` and ``alignment`` the plans. When the environment closes (or the worker
ends) the devices and the bench close: the laser off, verified.
"""

from __future__ import annotations

import os
from multiprocessing import util as _process_exit

from bluesky import RunEngine

import optgen
from optgen.lab.bluesky import plans as _plans
from optgen.lab.bluesky.bench import devices as _devices
from optgen.lab.bluesky.suspenders import suspend_on_laser_fault as _suspend_on_laser_fault
from optgen.lab.bluesky.tiled_data import send_runs_to_tiled_from_environment as _send_runs_to_tiled_from_environment

RE = RunEngine({})
_bench = optgen.open_bench(os.environ.get("OPTGEN_BENCH") or None,
                           calibrations=os.environ.get("OPTGEN_CALIBRATIONS") or None)
bench = _devices(_bench, frames_dir=os.environ.get("OPTGEN_FRAMES_DIR") or "bluesky-frames")
_suspend_on_laser_fault(RE, bench)
_tiled = _send_runs_to_tiled_from_environment(RE, bench)     # OPTGEN_TILED_URI and TILED_API_KEY, if set


def generate(count: int = 1, seed: int = 0):
    """Generate ``count`` images with the bench file's model (as ``optgen run --count N --seed S``)."""
    yield from _plans.generate(bench, count, seed)


def scan_exposure(exposures_ms: list, frames_per_point: int = 1):
    """One frame per exposure (milliseconds), the laser lit throughout."""
    yield from _plans.scan(bench, bench.camera.exposure, [float(v) * 1e-3 for v in exposures_ms],
                           frames_per_point=frames_per_point)


def dark():
    """One frame with the laser off."""
    from bluesky import preprocessors as _bpp

    yield from _bpp.run_wrapper(_plans.dark_frame(bench), md={"plan_name": "dark"})


def lut_sweep(slm: str = "encoding_slm", levels: int = 32):
    """Measure ``slm``'s phase-vs-gray response (as ``optgen calibrate lut``); the fit in stream ``fit``."""
    from optgen.lab.bluesky import calibration_plans as _calibration_plans

    return (yield from _calibration_plans.lut_sweep(bench, slm, levels=levels))


def alignment(grid: int = 3):
    """Measure the sensor's registration and SLM2's placement (as ``optgen calibrate alignment``)."""
    from optgen.lab.bluesky import calibration_plans as _calibration_plans

    return (yield from _calibration_plans.alignment(bench, grid=grid))


def _close() -> None:
    try:
        bench.close()
    finally:
        _bench.close()


# The worker is a forked process that ends with os._exit: atexit never runs there, multiprocessing's exit
# finalizers do (after the Tiled writer's, which has the higher priority and sends what it holds first).
_process_exit.Finalize(None, _close, exitpriority=10)
