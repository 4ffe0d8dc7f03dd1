"""What every timing of the capture loop shares: seed patterns computed ahead, uploads on their
own thread, the retry rule, the hand-over to storage and the loop's counts.

:mod:`lab.capture_loop` (software-timed) and :mod:`lab.triggered_loop` (hardware-triggered)
are built from these parts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field

import numpy as np

from optgen.drivers.common.schedule import Shown
from optgen.drivers.errors import CaptureTimeout, DeviceError
from optgen.drivers.stop import StopControl
from optgen.lab.run.frame_store import CapturedFrame, StoreWorker
from optgen.lab.run.patterns import SeedGrayLevels

__all__ = ["CaptureLoopStats", "DeviceTime", "FrameHandler", "PatternPreparer", "Prepared", "RunFault", "Uploader",
           "frame_shown_s", "seed_gray_levels"]

# no wait on another thread of the loop is unbounded: a hung display driver or a stuck pattern
# computation stops the run (and the laser) with the reason instead of holding it forever
THREAD_TIMEOUT_S = 10.0
CLOSE_WAIT_S = 1.0         # at the end, an upload under way gets this long (a refresh frame is <= 50 ms): the
                           # laser goes off after the loop returns, so a hung driver must not hold it longer


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
        self._gray_levels = SeedGrayLevels(slm, self.superpixel_px)
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
        gray = self._gray_levels(seed.phase)
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


class Uploader:
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

    def submit(self, gray: np.ndarray, entry: Shown, not_before_s: float | Callable[[], float]) -> Future:
        """Upload ``gray`` on the thread, not before ``not_before_s`` (bench clock; a callable is
        asked on the thread, once the uploads before this one have returned)."""
        def job() -> None:
            t = not_before_s() if callable(not_before_s) else not_before_s
            self.clock.sleep(t - self.clock.now())
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


class DeviceTime:
    """Time spent inside device calls and waits (the rest of the loop is its own overhead)."""

    def __init__(self):
        self.total = 0.0

    def call(self, fn: Callable, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.total += time.perf_counter() - t0


class FrameHandler:
    """The patterns still to show, the retry rule and the hand-over of clean frames to storage."""

    def __init__(self, camera, preparer: PatternPreparer, store: StoreWorker, stop: StopControl,
                 stats: CaptureLoopStats, dev: DeviceTime, max_retries: int,
                 record_event: Callable[[str, str], None]):
        self.camera, self.preparer, self.store, self.stop = camera, preparer, store, stop
        self.stats, self.dev, self.max_retries, self.record_event = stats, dev, int(max_retries), record_event
        self.retakes: deque[Prepared] = deque()
        self.attempts: dict[int, int] = {}
        self.handed: list[int] = []

    def next_pattern(self) -> Prepared:
        """A pattern to show again first, else the next prepared one."""
        return self.retakes.popleft() if self.retakes else self.preparer.next()

    def more(self) -> bool:
        """Whether another pattern should be shown (none once a stop is requested)."""
        return not self.stop.requested and bool(self.retakes or len(self.preparer))

    def capture(self, p: Prepared) -> np.ndarray | None:
        """One frame for ``p``; None after a camera timeout (the pattern is shown again)."""
        try:
            return self.dev.call(self.camera.capture)
        except CaptureTimeout as exc:
            self.stats.capture_timeouts += 1
            self.retake(p, f"camera timeout ({exc})")
            return None

    def retake(self, p: Prepared, why: str) -> None:
        """Show ``p`` again next; after ``1 + max_retries`` attempts the run stops with the reason."""
        self.attempts[p.index] = self.attempts.get(p.index, 1) + 1
        if self.attempts[p.index] > 1 + self.max_retries:
            raise RunFault(self.camera.name, f"frame {p.index}: no clean frame in {1 + self.max_retries} attempts "
                                             f"(last: {why}); stopping")
        self.stats.retakes += 1
        self.record_event("retry", f"frame {p.index}: {why}; showing it again (attempt {self.attempts[p.index]})")
        self.retakes.appendleft(p)

    def hand_on(self, p: Prepared, frame: np.ndarray, end_s: float) -> None:
        """Queue a clean frame for storage (blocks only while the storage queue is full)."""
        item = CapturedFrame(p.index, frame, p.seed_phase, p.seed_gray, p.seed_index, p.seed_id, end_s,
                             self.camera.timing.exposure_s, time.time())
        t0 = time.perf_counter()
        self.store.put(item)
        waited = time.perf_counter() - t0
        self.stats.store_wait_s += waited
        self.dev.total += waited           # a full queue is the storage's time, not the loop's
        self.handed.append(p.index)

    def iteration_done(self, t_iter: float, dev_before: float) -> None:
        """Count the loop's own time of this step and the frames it handed on."""
        self.stats.add_overhead(time.perf_counter() - t_iter - (self.dev.total - dev_before))
        while self.handed:
            self.handed.pop()
            self.stats.frame_done()
