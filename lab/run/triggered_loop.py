"""The hardware-triggered capture loop: the SLM's frame-shown output triggers the camera.

The camera's trigger delay is the SLM's settle time, so each exposure starts exactly when its
pattern has settled, whenever the loop asks for the frame: no software timing on the camera
side. The loop uploads ahead (up to ``max_ahead`` patterns shown and not yet captured), each
upload latched at the refresh edge :class:`lab.pipeline.TriggeredSchedule` picks, and takes
the frames in order. Each frame is matched to its pattern by the trigger that started it
(where the camera reports it): a frame of an older trigger (left over from a timeout) is
dropped, a pattern whose trigger the camera missed is shown again, and every frame is checked
to be over before the next pattern could move.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from optgen.drivers.common.schedule import Shown, TriggeredSchedule
from optgen.drivers.errors import DeviceError
from optgen.lab.run.capture_parts import FrameHandler, Prepared, RunFault, Uploader, frame_shown_s

__all__ = ["triggered_frames"]

STALE_FRAMES_MAX = 8      # frames of earlier triggers dropped in a row before the run stops


def triggered_frames(bench, frames: FrameHandler, *, max_ahead: int,
                     on_iteration: Callable[[], None] = lambda: None) -> None:
    """Show every pattern ``frames`` holds and hand on its clean frame (camera triggered by the SLM)."""
    slm, camera, clock = bench.encoding_slm, bench.camera, bench.clock
    if not hasattr(camera, "trigger_from") or not hasattr(camera, "trigger_off"):
        raise DeviceError(camera.name, "hardware-triggered runs need a camera with a trigger input wired to the "
                                       "SLM's frame-shown output; use sync 'pipelined' or 'wait'")
    dev, stats = frames.dev, frames.stats
    pending: deque[tuple[Shown, Prepared, Future | None]] = deque()
    last: Shown | None = None               # the last upload made (its edge paces the next one)
    stale = 0
    camera.trigger_from(slm, delay_s=slm.timing.settle_s)
    uploader = None
    try:
        # Armed first: a real camera says whether it takes a trigger during readout once armed.
        schedule = TriggeredSchedule(slm.timing, camera.timing,
                                     overlap=getattr(camera, "trigger_overlap", "off") == "readout")
        uploader = Uploader(slm, clock) if getattr(clock, "realtime", False) else None
        while frames.more() or pending:
            t_iter, dev_before = time.perf_counter(), dev.total
            frames.store.check()
            if frames.more() and len(pending) < max(1, max_ahead):
                p = frames.next_pattern()
                entry = Shown(p.index, math.inf, math.nan)

                def earliest(previous: Shown | None = last) -> float:
                    return schedule.earliest_call_s(previous)

                if uploader is not None:
                    future = uploader.submit(p.gray, entry, earliest)
                else:
                    dev.call(clock.sleep, earliest() - clock.now())
                    entry.call_s = clock.now()
                    dev.call(slm.set_phase, p.gray)
                    entry.edge_s, entry.shown_s = clock.now(), frame_shown_s(slm)
                    future = None
                pending.append((entry, p, future))
                last = entry
                stats.add_overhead(time.perf_counter() - t_iter - (dev.total - dev_before))
                continue
            entry, p, future = pending[0]
            if future is not None:
                dev.call(uploader.wait, future)       # its real edge and shown time (and any upload error)
            frame = frames.capture(p)
            if frame is None:                         # a camera timeout: shown again later
                pending.popleft()
            else:
                stale = _take(schedule, camera, frames, pending, frame, stale)
            frames.iteration_done(t_iter, dev_before)
            on_iteration()
    finally:
        if uploader is not None:
            uploader.close()
        camera.trigger_off(slm)


def _take(schedule: TriggeredSchedule, camera, frames: FrameHandler,
          pending: deque, frame: np.ndarray, stale: int) -> int:
    """File a frame under the pending pattern whose trigger started it; returns the count of
    stale frames dropped in a row."""
    trigger = getattr(camera, "last_trigger_s", None)
    k = 0
    if trigger is not None:
        tolerance = 0.5 * schedule.slm.frame_s
        k = next((i for i, (e, _, _) in enumerate(pending) if abs(schedule.trigger_s(e) - trigger) < tolerance), -1)
        if k < 0:
            if trigger < schedule.trigger_s(pending[0][0]):     # an earlier trigger's frame: drop it
                if stale + 1 > STALE_FRAMES_MAX:
                    raise RunFault(camera.name, f"{stale + 1} frames in a row from triggers no pattern was "
                                                "waiting for; is the trigger input wired to another output?")
                return stale + 1
            k = len(pending)                              # every pending pattern's trigger was missed
    for _ in range(k):                                    # patterns whose trigger the camera missed
        _, missed, _ = pending.popleft()
        frames.retake(missed, "the camera missed its trigger (busy, or its trigger input is not the SLM's "
                              "frame-shown output?)")
    if not pending:
        return 0
    entry, p, _ = pending.popleft()
    following = pending[0][0] if pending else None
    started = camera.last_exposure_start_s
    if started is None:
        started = schedule.trigger_s(entry) + schedule.slm.settle_s
    if schedule.clean(entry, started, following):
        frames.hand_on(p, frame, started + schedule.camera.exposure_s)
    else:
        frames.retake(p, "the next pattern moved during the exposure")
    return 0
