"""Faults planted in a running twin, one at a chosen moment, for the run loop's fault matrix.

Each stage names where the fault strikes and what a lab sees there:

- ``upload``:  the SLM driver raises on one upload (a display driver error);
- ``settle``:  the process stalls 30 ms between an upload and its capture (a scheduling hiccup:
  the next pattern may already move when the frame is exposed);
- ``capture``: the camera times out once;
- ``store``:   the disk fills up on one write;
- ``laser``:   the interlock opens (the laser reports a fault and stops emitting);
- ``link``:    the laser's serial link drops once (reconnect restores it).

:func:`plant` arms one fault on an open twin bench; :func:`clear` undoes the lasting ones (what
the operator fixes before resuming).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from optgen.drivers.errors import CaptureTimeout, DeviceError

__all__ = ["STAGES", "clear", "plant"]

STAGES = ("upload", "settle", "capture", "store", "laser", "link")


_class_patches: list[tuple[type, str, Callable]] = []


def _on_call(obj, name: str, at: int, action: Callable[[], None]) -> None:
    """Run ``action`` before the ``at``-th call of ``obj.name`` (an instance, or a class whose
    instances are made later: that patch lasts until :func:`clear`)."""
    real = getattr(obj, name)
    calls = {"n": 0}
    lock = threading.Lock()

    def patched(*args, **kwargs):
        with lock:
            calls["n"] += 1
            hit = calls["n"] == at
        if hit:
            action()
        return real(*args, **kwargs)

    if isinstance(obj, type):
        _class_patches.append((obj, name, real))
    setattr(obj, name, patched)


def plant(bench, stage: str, at: int) -> None:
    """Arm the ``stage`` fault at its ``at``-th occasion (upload, capture, write... counted from 1)."""
    if stage not in STAGES:
        raise ValueError(f"fault stage {stage!r}: expected one of {', '.join(STAGES)}")
    slm, camera, laser = bench.encoding_slm, bench.camera, bench.laser

    def fail_upload():
        raise DeviceError(slm.name, "display driver error (planted)")

    def stall():
        if getattr(bench.clock, "realtime", False):
            time.sleep(0.030)           # the process itself stalls, not the simulated clock alone
        else:
            bench.clock.sleep(0.030)

    def time_out():
        raise CaptureTimeout(camera.name, "no frame within the timeout (planted)")

    if stage == "upload":
        _on_call(slm, "_set_phase_hw", at, fail_upload)
    elif stage == "settle":
        _on_call(slm, "_set_phase_hw", at, stall)
    elif stage == "capture":
        _on_call(camera, "_get_image_hw", at, time_out)
    elif stage == "store":
        from optgen.lab.runfile import storage
        from optgen.lab.runfile.layout import DiskFullError

        def disk_full():
            raise DiskFullError("the disk is full (planted)")

        _on_call(storage.RunWriter, "write", at, disk_full)
    elif stage == "laser":
        _on_call(camera, "_get_image_hw", at, lambda: laser.trip("interlock open (planted)"))
    elif stage == "link":
        def drop():
            laser.link_down = True
        _on_call(camera, "_get_image_hw", at, drop)


def clear(bench) -> None:
    """What the operator fixes before resuming: laser faults, the link, class-level patches."""
    bench.world.laser_faults.clear()
    bench.laser.link_down = False
    while _class_patches:
        cls, name, real = _class_patches.pop()
        setattr(cls, name, real)
