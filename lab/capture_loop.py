"""The timing-critical path of a run: upload a seed pattern, let it settle, expose, hand on.

Three ways to time it (``sync``):

- ``"pipelined"`` (software-timed, the default): the next pattern is uploaded while the last
  one still sits out the SLM's latency (:class:`lab.pipeline.ShowCaptureSchedule`); each
  frame's real times are checked at once and a frame that might hold the next pattern is
  taken again after its pattern is shown again;
- ``"wait"`` (software-timed): upload, wait latency + settle, capture;
- ``"trigger"`` (hardware-timed): the SLM's frame-shown output triggers the camera after the
  settle time; the loop uploads and takes the triggered frame.

Everything else happens elsewhere: seed patterns are computed ahead on a thread
(:class:`PatternPreparer`, through the SLM's LUT), registration, metrics and storage on the
storage worker (:mod:`lab.frame_store`). A camera timeout is retried; a frame is attempted at
most ``1 + max_retries`` times before the run stops with the reason.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field

import numpy as np

from drivers.errors import CaptureTimeout, DeviceError

from .frame_store import CapturedFrame, StoreWorker
from .patterns import seed_to_slm_phase
from .pipeline import ShowCaptureSchedule, _Shown
from .stop import StopControl

__all__ = ["SYNC_MODES", "CaptureLoopStats", "PatternPreparer", "Prepared", "RunFault", "capture_frames"]

SYNC_MODES = ("pipelined", "wait", "trigger")
# patterns shown and not yet captured: at 60 Hz with a 2-frame latency + settle, 3 wait while a 4th is uploaded
MAX_UPLOADS_AHEAD = 4
# no wait on another thread of the loop is unbounded: a hung display driver or a stuck pattern
# computation stops the run (and the laser) with the reason instead of holding it forever
THREAD_TIMEOUT_S = 10.0
CLOSE_WAIT_S = 1.0         # at the end, an upload under way gets this long (a refresh frame is <= 50 ms): the
                           # laser goes off after the loop returns, so a hung driver must not hold it longer
MIN_GUARD_S = 0.0005       # the upload-ahead margin: from 0.5 ms, doubled after each late capture up to
MAX_GUARD_S = 0.004        # this, and halved again after RELAX_AFTER clean captures in a row (a rare stall
RELAX_AFTER = 50           # must not cost every later frame: at 500 Hz a 4 ms margin is two refresh frames)
LATE_WINDOW, LATE_LIMIT = 50, 5   # then 5 late captures in 50 take one pattern off the upload-ahead depth


class RunFault(DeviceError):
    """A frame could not be taken within its retries."""


@dataclass
class Prepared:
    index: int
    gray: np.ndarray              # the encoding SLM's gray levels for this seed
    seed_phase: np.ndarray
    seed_gray: np.ndarray
    seed_index: int
    seed_id: str


def seed_gray_levels(display: np.ndarray, seed_shape: tuple[int, int], superpixel_px: int) -> np.ndarray:
    """Gray level at the centre of each seed superpixel of the (centred) seed on ``display``."""
    rows, cols = display.shape
    n_r, n_c = seed_shape
    r0 = (rows - n_r * superpixel_px) // 2 + superpixel_px // 2
    c0 = (cols - n_c * superpixel_px) // 2 + superpixel_px // 2
    return display[r0:r0 + n_r * superpixel_px:superpixel_px, c0:c0 + n_c * superpixel_px:superpixel_px]


class PatternPreparer:
    """Seed -> SLM phase -> gray levels for the next ``ahead`` frames, on one thread, in order."""

    def __init__(self, slm, seeds, superpixel_px: int, indices: Sequence[int], ahead: int = 4):
        self.slm, self.seeds, self.superpixel_px = slm, seeds, int(superpixel_px)
        self._indices = deque(int(i) for i in indices)
        self._futures: deque[Future] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optgen-prepare")
        for _ in range(max(1, ahead)):
            self._submit_next()

    def __len__(self) -> int:
        return len(self._indices) + len(self._futures)

    def _submit_next(self) -> None:
        if self._indices:
            self._futures.append(self._executor.submit(self._prepare, self._indices.popleft()))

    def _prepare(self, index: int) -> Prepared:
        seed = self.seeds.seed(index)
        phase = seed_to_slm_phase(seed.phase, self.superpixel_px, self.slm.shape)
        gray = self.slm.phase_to_gray(phase)
        return Prepared(index, gray, seed.phase, seed_gray_levels(gray, seed.phase.shape, self.superpixel_px),
                        seed.index, seed.id)

    def next(self) -> Prepared:
        """The next frame's pattern (raises what preparing it raised)."""
        future = self._futures.popleft()
        self._submit_next()
        try:
            return future.result(THREAD_TIMEOUT_S)
        except TimeoutError:
            raise RunFault(self.slm.name, f"preparing a seed pattern took over {THREAD_TIMEOUT_S:g} s") from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)   # a pattern being computed is just dropped


def frame_shown_s(slm) -> float | None:
    """When the SLM showed its last upload (the liquid crystal starts to move), where it reports
    it: the twin does, as a real SLM can through a frame-shown output; None where it does not."""
    shown = getattr(slm, "last_frame_shown_s", None)
    return float(shown) if isinstance(shown, (int, float)) else None


class _Uploader:
    """Uploads on their own thread (wall clock): an SLM upload blocks until the refresh edge
    that latches it, up to a whole frame the capture loop may not lose. The entry's call and
    edge times are filled in by the thread; until then the edge is taken one frame late."""

    def __init__(self, slm, clock):
        self.slm, self.clock = slm, clock
        self.last_edge_s: float | None = None
        self._last: Future | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optgen-upload")

    def predicted_edge_s(self, call_s: float) -> float:
        """The refresh edge an upload called at ``call_s`` should latch at: the SLM refreshes
        periodically, so the next edge after the call, counted from the last edge seen (a
        wrong guess costs a retake, never a mixed frame: the capture waits for the real edge)."""
        frame_s = self.slm.timing.frame_s
        if self.last_edge_s is None:
            return call_s + frame_s
        return self.last_edge_s + frame_s * np.ceil((call_s - self.last_edge_s) / frame_s - 1e-6)

    def submit(self, gray: np.ndarray, entry: _Shown, not_before_s: float) -> Future:
        """Upload ``gray`` on the thread, not before ``not_before_s`` (bench clock)."""
        def job() -> None:
            self.clock.sleep(not_before_s - self.clock.now())
            entry.call_s = self.clock.now()
            self.slm.set_phase(gray)
            entry.edge_s = self.last_edge_s = self.clock.now()
            entry.shown_s = frame_shown_s(self.slm)
        self._last = self._executor.submit(job)
        return self._last

    def wait(self, future: Future) -> None:
        """Until ``future``'s upload has reached the SLM (raises what the upload raised)."""
        try:
            future.result(THREAD_TIMEOUT_S)
        except TimeoutError:
            raise RunFault(self.slm.name, f"an upload did not return within {THREAD_TIMEOUT_S:g} s (display "
                                          f"driver hung?)") from None

    def close(self) -> None:
        """Cancel uploads not started; let the one under way finish, for a bounded time."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._last is not None:
            futures_wait([self._last], CLOSE_WAIT_S)


@dataclass
class CaptureLoopStats:
    frames: int = 0                      # frames handed to storage
    retakes: int = 0                     # patterns shown again (late frame, camera timeout)
    capture_timeouts: int = 0
    store_wait_s: float = 0.0            # time the loop waited for room in the storage queue
    overhead_s: list[float] = field(default_factory=list)   # per frame: loop time outside device calls
    _pending_s: float = 0.0

    def add_overhead(self, seconds: float) -> None:
        self._pending_s += seconds

    def frame_done(self) -> None:
        self.frames += 1
        self.overhead_s.append(self._pending_s)
        self._pending_s = 0.0

    def overhead_ms(self) -> dict:
        if not self.overhead_s:
            return {}
        a = np.asarray(self.overhead_s) * 1e3
        return {"median": round(float(np.median(a)), 4), "p99": round(float(np.percentile(a, 99)), 4),
                "max": round(float(a.max()), 4)}


class _DeviceTime:
    """Time spent inside device calls and waits (the rest of the loop is its own overhead)."""

    def __init__(self):
        self.total = 0.0

    def call(self, fn: Callable, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.total += time.perf_counter() - t0


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
    dev = _DeviceTime()
    # a capture call starts exposing within microseconds on the twin and a camera's driver; a late
    # one is caught by the check after it and retaken, so the planning margin can be small
    schedule = (ShowCaptureSchedule(slm.timing, camera.timing, guard_s=MIN_GUARD_S, max_ahead=MAX_UPLOADS_AHEAD)
                if sync == "pipelined" else None)
    uploader = _Uploader(slm, clock) if schedule is not None and getattr(clock, "realtime", False) else None
    uploads: dict[int, Future] = {}
    retakes: deque[Prepared] = deque()
    attempts: dict[int, int] = {}
    shown: dict[int, Prepared] = {}          # pending uploads of the pipelined mode, by upload order
    handed: list[int] = []
    retaken: set[int] = set()
    late: deque[bool] = deque(maxlen=LATE_WINDOW)     # recent captures: was each one late?
    clean_run = 0                                     # clean captures since the last late one

    def next_pattern() -> Prepared:
        return retakes.popleft() if retakes else preparer.next()

    def more() -> bool:
        return not stop.requested and bool(retakes or len(preparer))

    def capture(p: Prepared) -> np.ndarray | None:
        """One frame of ``p``'s pattern; None after a camera timeout (the pattern is shown again)."""
        try:
            return dev.call(camera.capture)
        except CaptureTimeout as exc:
            stats.capture_timeouts += 1
            retake(p, f"camera timeout ({exc})")
            return None

    def retake(p: Prepared, why: str) -> None:
        attempts[p.index] = attempts.get(p.index, 1) + 1
        if attempts[p.index] > 1 + max_retries:
            raise RunFault(camera.name, f"frame {p.index}: no clean frame in {1 + max_retries} attempts "
                                        f"(last: {why}); stopping")
        stats.retakes += 1
        record_event("retry", f"frame {p.index}: {why}; showing it again (attempt {attempts[p.index]})")
        retakes.appendleft(p)

    def hand_on(p: Prepared, frame: np.ndarray, end_s: float) -> None:
        item = CapturedFrame(p.index, frame, p.seed_phase, p.seed_gray, p.seed_index, p.seed_id, end_s,
                             camera.timing.exposure_s, time.time())
        t0 = time.perf_counter()
        store.put(item)                    # blocks only while the storage queue is full
        waited = time.perf_counter() - t0
        stats.store_wait_s += waited
        dev.total += waited                # a full queue is the storage's time, not the loop's
        handed.append(p.index)

    if sync == "trigger":
        if not hasattr(camera, "trigger_from") or not hasattr(camera, "trigger_off"):
            raise DeviceError(camera.name, "hardware-triggered runs need a camera with a trigger input wired to the "
                                           "SLM's frame-shown output; use sync 'pipelined' or 'wait'")
        camera.trigger_from(slm, delay_s=slm.timing.settle_s)
    try:
        while more() or (schedule is not None and schedule.pending):
            t_iter, dev_before = time.perf_counter(), dev.total
            store.check()
            if schedule is None:                         # wait / trigger: one pattern at a time
                p = next_pattern()
                dev.call(slm.set_phase, p.gray)
                if sync == "wait":
                    dev.call(clock.sleep, slm.timing.wait_s)
                frame = capture(p)
                if frame is not None:
                    hand_on(p, frame, clock.now() - camera.timing.readout_s)
            else:
                now = clock.now()
                t_up = schedule.next_upload_s(now)
                if uploader is not None and schedule.pending:
                    # one upload per refresh frame: call after the last one latched, else both fall
                    # in one frame and the later edge is mispredicted by a whole frame
                    t_up = max(t_up, schedule.pending[-1].edge_s + 0.1 * slm.timing.frame_s)
                if any(shown[id(e)].index in retaken for e in schedule.pending):
                    upload_now = False           # a retake is taken alone: nothing moves before it is in
                elif uploader is None:
                    upload_now = more() and schedule.upload_first(now)
                else:   # the thread waits for the upload time, so it may fall inside the next capture
                    upload_now = more() and (not schedule.pending or
                                             t_up <= schedule.capture_plan(now)[0] + schedule.capture_s)
                if upload_now:
                    p = next_pattern()
                    if uploader is None:
                        dev.call(clock.sleep, t_up - now)
                        call = clock.now()
                        dev.call(slm.set_phase, p.gray)
                        entry = _Shown(p.index, call, clock.now(), frame_shown_s(slm))
                    else:
                        call = max(now, t_up)
                        entry = _Shown(p.index, call, uploader.predicted_edge_s(call))
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
                frame = capture(p)
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
                        hand_on(p, frame, started + schedule.exposing_s)
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
                        retake(p, "the frame may hold the next pattern (a late capture)")
                        retaken.add(p.index)
            stats.add_overhead(time.perf_counter() - t_iter - (dev.total - dev_before))
            while handed:
                handed.pop()
                stats.frame_done()
            on_iteration()
    finally:
        if uploader is not None:
            uploader.close()
        if sync == "trigger":
            camera.trigger_off(slm)
    return stats
