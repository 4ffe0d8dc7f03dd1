"""The camera's readout window for a run (``[run] readout = "window"``): only the sensor pixels under
the output window are read out and stored.

A camera reads a window of rows out faster than its whole sensor, and a run file then holds a
fraction of the bytes (on the embedded bench 0.3 of the 1280 x 1024 pixels); the twin draws the
noise of those pixels only. The window is the bounding box of the output window in the sensor
(through the registration in force, calibrated or nominal) with a margin for the interpolation
and for the hot-pixel neighbours; the camera may widen it to its own steps. Every frame of the
run, its dark frame included, is that window; the run file records it (``readout_window``, x,
width, y, height in whole-sensor pixels) and a resumed run reads the same one.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from optgen.drivers.errors import DeviceError
from optgen.lab.run.folder import RunFolderError
from optgen.lab.run.registration import OutputRegistration

__all__ = ["FULL", "readout_window"]

log = logging.getLogger("optgen")

FULL = "full"          # what a run file records when it holds whole frames


def _covers(outer, inner) -> bool:
    x, w, y, h = outer
    a, b, c, d = inner
    return x <= a and y <= c and x + w >= a + b and y + h >= c + d


@contextmanager
def readout_window(camera, registration: OutputRegistration, mode: str,
                   recorded=None) -> Iterator[tuple[int, int, int, int] | None]:
    """For a run whose bench asks for ``mode`` ("full" or "window"): yields None (whole frames;
    nothing is touched) or the window (x, width, y, height) the camera now reads out, with
    ``registration`` moved onto it. ``recorded``: what a resumed run's file says it read out
    (its window, or "full"). The whole sensor comes back when the block ends, however it ends.

    RunFolderError where a resumed run cannot read the window it was made with; DeviceError where
    the output window misses the sensor."""
    if mode != "window":
        yield None
        return
    resumed = None if recorded in (None, FULL) else tuple(int(v) for v in recorded)
    box = resumed or registration.sensor_box()
    if box is None:
        raise DeviceError(camera.name, "[run] readout = \"window\": the output window falls outside the sensor "
                                       "as registered; check the alignment, or read out the full sensor")
    try:
        camera.set_woi(tuple(box))
        got = tuple(int(v) for v in camera.woi)
        if resumed is not None and got != resumed:
            raise RunFolderError(f"{camera.name}: the run was read out through the window (x, width, y, height) "
                                 f"{resumed}, the camera now gives {got}; resume with the same camera settings")
        if not _covers(got, box):
            raise DeviceError(camera.name, f"[run] readout = \"window\": asked for the window (x, width, y, height) "
                                           f"{tuple(box)}, the camera gives {got}, which does not hold the output "
                                           f"window; read out the full sensor ([run] readout = \"full\")")
        registration.read_from(got)
        yield got
    finally:
        try:
            camera.set_woi(None)
        except Exception as exc:           # never hide why the run ended; the next user sees this
            log.warning("%s: could not restore the full sensor after the run (%s: %s)", camera.name,
                        type(exc).__name__, exc)
