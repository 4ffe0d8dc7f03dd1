"""The timing-critical path of a run: upload a seed pattern, let it settle, expose, hand on.

Three ways to time it (``sync``):

- ``"pipelined"`` (software-timed, the default): the next pattern is uploaded while the last
  one still sits out the SLM's latency (:class:`lab.pipeline.ShowCaptureSchedule`); each
  frame's real times are checked at once and a frame that might hold the next pattern is
  taken again after its pattern is shown again;
- ``"wait"`` (software-timed): upload, wait latency + settle, capture;
- ``"trigger"`` (hardware-timed, :mod:`lab.triggered_loop`): the SLM's frame-shown output
  triggers the camera after the settle time; the loop uploads ahead at the refresh edges that
  keep every exposure clean and takes the triggered frames in order.

Everything else happens elsewhere: seed patterns are computed ahead on a thread
(:class:`PatternPreparer`, through the SLM's LUT), registration, metrics and storage on the
storage worker (:mod:`lab.frame_store`). A camera timeout is retried; a frame is attempted at
most ``1 + max_retries`` times before the run stops with the reason.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from optgen.drivers.common.schedule import ShowCaptureSchedule, Shown
from optgen.drivers.stop import StopControl
from optgen.lab.run.capture_parts import (
    CaptureLoopStats,
    DeviceTime,
    FrameHandler,
    PatternPreparer,
    Prepared,
    RunFault,
    Uploader,
    frame_shown_s,
)
from optgen.lab.run.frame_store import StoreWorker
from optgen.lab.run.triggered_loop import triggered_frames

__all__ = ["SYNC_MODES", "CaptureLoopStats", "PatternPreparer", "Prepared", "RunFault", "capture_frames"]

SYNC_MODES = ("pipelined", "wait", "trigger")
# patterns shown and not yet captured: at 60 Hz with a 2-frame latency + settle, 3 wait while a 4th is uploaded
MAX_UPLOADS_AHEAD = 4
MIN_GUARD_S = 0.0005       # the upload-ahead margin: from 0.5 ms, doubled after each late capture up to
MAX_GUARD_S = 0.004        # this, and halved again after RELAX_AFTER clean captures in a row (a rare stall
RELAX_AFTER = 50           # must not cost every later frame: at 500 Hz a 4 ms margin is two refresh frames)
LATE_WINDOW, LATE_LIMIT = 50, 5   # then 5 late captures in 50 take one pattern off the upload-ahead depth


def capture_frames(bench, preparer: PatternPreparer, store: StoreWorker, stop: StopControl, *,
                   sync: str = "pipelined", max_retries: int = 3,
                   record_event: Callable[[str, str], None] = lambda kind, text: None,
                   on_iteration: Callable[[], None] = lambda: None,
                   stats: CaptureLoopStats | None = None) -> CaptureLoopStats:
    """Show every prepared pattern and hand its clean frame to ``store``; returns the counts.

    Returns early (after the frames in flight) when ``stop`` is requested. ``on_iteration``
    runs after each step (progress reports; not counted as loop overhead). ``stats``: counts
    kept in the caller's object, so they survive a run that ends in an exception.
    """
    if sync not in SYNC_MODES:
        raise ValueError(f"sync = {sync!r}: expected one of {', '.join(SYNC_MODES)}")
    slm, camera, clock = bench.encoding_slm, bench.camera, bench.clock
    stats = stats if stats is not None else CaptureLoopStats()
    dev = DeviceTime()
    frames = FrameHandler(camera, preparer, store, stop, stats, dev, max_retries, record_event)
    if sync == "trigger":
        return triggered_frames(bench, frames, max_ahead=MAX_UPLOADS_AHEAD, on_iteration=on_iteration)
    if sync == "wait":
        while frames.more():
            t_iter, dev_before = time.perf_counter(), dev.total
            store.check()
            p = frames.next_pattern()
            dev.call(slm.set_phase, p.gray)
            dev.call(clock.sleep, slm.timing.wait_s)
            frame = frames.capture(p)
            if frame is not None:
                frames.hand_on(p, frame, clock.now() - camera.timing.readout_s)
            frames.iteration_done(t_iter, dev_before)
            on_iteration()
        return stats
    _software_pipelined(bench, frames, record_event, on_iteration)
    return stats


def _software_pipelined(bench, frames: FrameHandler, record_event: Callable[[str, str], None],
                        on_iteration: Callable[[], None]) -> None:
    """Upload ahead of the captures (software-timed); check each frame's real times, retake a late one."""
    slm, camera, clock = bench.encoding_slm, bench.camera, bench.clock
    dev, stats = frames.dev, frames.stats
    # a capture call starts exposing within microseconds on the twin and a camera's driver; a late
    # one is caught by the check after it and retaken, so the planning margin can be small
    schedule = ShowCaptureSchedule(slm.timing, camera.timing, guard_s=MIN_GUARD_S, max_ahead=MAX_UPLOADS_AHEAD)
    uploader = Uploader(slm, clock) if getattr(clock, "realtime", False) else None
    uploads: dict[int, Future] = {}
    shown: dict[int, Prepared] = {}          # pending uploads, by upload order
    retaken: set[int] = set()
    late: deque[bool] = deque(maxlen=LATE_WINDOW)     # recent captures: was each one late?
    clean_run = 0                                     # clean captures since the last late one
    try:
        while frames.more() or schedule.pending:
            t_iter, dev_before = time.perf_counter(), dev.total
            frames.store.check()
            now = clock.now()
            t_up = schedule.next_upload_s(now)
            if uploader is not None and schedule.pending:
                # one upload per refresh frame: call after the last one latched, else both fall
                # in one frame and the later edge is mispredicted by a whole frame
                t_up = max(t_up, schedule.pending[-1].edge_s + 0.1 * slm.timing.frame_s)
            if any(shown[id(e)].index in retaken for e in schedule.pending):
                upload_now = False           # a retake is taken alone: nothing moves before it is in
            elif uploader is None:
                upload_now = frames.more() and schedule.upload_first(now)
            else:   # the thread waits for the upload time, so it may fall inside the next capture
                upload_now = frames.more() and (not schedule.pending or
                                                t_up <= schedule.capture_plan(now)[0] + schedule.capture_s)
            if upload_now:
                p = frames.next_pattern()
                if uploader is None:
                    dev.call(clock.sleep, t_up - now)
                    call = clock.now()
                    dev.call(slm.set_phase, p.gray)
                    entry = Shown(p.index, call, clock.now(), frame_shown_s(slm))
                else:
                    call = max(now, t_up)
                    entry = Shown(p.index, call, uploader.predicted_edge_s(call))
                    uploads[id(entry)] = uploader.submit(p.gray, entry, call)
                schedule.pending.append(entry)
                shown[id(entry)] = p
                stats.add_overhead(time.perf_counter() - t_iter - (dev.total - dev_before))
                continue
            oldest = schedule.pending[0]
            if id(oldest) in uploads:
                dev.call(uploader.wait, uploads.pop(id(oldest)))     # its real edge (and any upload error)
                now = clock.now()
            dev.call(clock.sleep, schedule.capture_plan(now)[0] - now)
            t0 = clock.now()
            p = shown.pop(id(oldest))
            frame = frames.capture(p)
            t1 = clock.now()
            schedule.pending.popleft()
            schedule.camera_free_s = t1
            schedule.observe(t1 - t0)
            if frame is not None:
                # judged by when the exposure really began where the camera says (the twin does;
                # a thread that lost the CPU between the call and the exposure is caught too)
                started = camera.last_exposure_start_s if camera.last_exposure_start_s is not None else t0
                following = schedule.pending[0] if schedule.pending else None
                # the next pattern's shown time once its upload returned (read once: the thread sets it)
                next_shown = following.shown_s if following is not None else None
                if schedule.clean(oldest, started, following.call_s if following else None, next_shown):
                    late.append(False)
                    clean_run += 1
                    if clean_run >= RELAX_AFTER and schedule.guard_s > MIN_GUARD_S:
                        schedule.guard_s, clean_run = max(schedule.guard_s / 2.0, MIN_GUARD_S), 0
                    frames.hand_on(p, frame, started + schedule.exposing_s)
                    retaken.discard(p.index)
                else:
                    # this machine's timing is looser than planned: widen the margin (then upload
                    # less far ahead), take it again
                    late.append(True)
                    clean_run = 0
                    if schedule.guard_s >= MAX_GUARD_S and sum(late) >= LATE_LIMIT and schedule.max_ahead > 1:
                        schedule.max_ahead -= 1
                        late.clear()
                        record_event("timing", f"late captures at a {MAX_GUARD_S * 1e3:g} ms margin: uploading "
                                               f"at most {schedule.max_ahead} pattern(s) ahead from now on")
                    schedule.guard_s = min(2.0 * schedule.guard_s, MAX_GUARD_S)
                    frames.retake(p, "the frame may hold the next pattern (a late capture)")
                    retaken.add(p.index)
            frames.iteration_done(t_iter, dev_before)
            on_iteration()
    finally:
        if uploader is not None:
            uploader.close()
