"""The run's storage worker: registration, metrics and storage off the timing-critical path.

The capture loop hands each clean frame to :meth:`StoreWorker.put`, which blocks while the
bounded queue is full (the loop slows down; no frame is dropped). The worker confirms the
laser was fine until after the frame's exposure (:class:`lab.laser_guard.LaserGuard`), then
registers the frame onto the output grid and writes it with its seed and metadata; the
writer makes it durable before the next one. The first error (full disk, laser fault, write
error) stops the worker; frames still queued then are not stored (a resume takes them again)
and :meth:`put` / :meth:`check` raise that error on the capture loop's thread.

A worker that spends more than ``stall_s`` on one frame (a hung disk, a stalled network share)
is *stalled*: :meth:`check` raises :class:`StorageStalled`, the run turns the laser off first,
and nothing touches the run file again (a write that never returns may hold its lock). The
thread is a daemon; :func:`storage_hung` lets the command end the process without waiting for it.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np

from optgen.drivers import stop
from optgen.drivers.errors import OptgenError

__all__ = ["CapturedFrame", "StorageStalled", "StoreWorker", "storage_hung"]

_DONE = object()
_STALLED: "weakref.WeakSet[StoreWorker]" = weakref.WeakSet()     # workers that stalled in this process


def storage_hung() -> bool:
    """Whether a storage worker of this process is still inside a write that stalled."""
    return any(worker.hung for worker in list(_STALLED))


class StorageStalled(OptgenError):
    """The storage worker stopped taking frames."""


@dataclass
class CapturedFrame:
    index: int
    frame: np.ndarray
    seed_phase: np.ndarray
    seed_gray: np.ndarray
    seed_index: int
    seed_id: str
    exposure_end_s: float          # bench clock
    exposure_s: float
    timestamp_s: float             # wall clock (time.time) at capture


class StoreWorker:
    """One thread behind a queue of ``depth`` frames."""

    def __init__(self, writer, registration, guard, saturation_dn: float, dark_level_dn: float,
                 depth: int = 8, stall_s: float = 10.0):
        self.writer = writer
        self.stall_s = float(stall_s)
        self.stalled = False
        self._busy_since: float | None = None
        self.registration = registration
        self.guard = guard
        self.saturation_dn = float(saturation_dn)
        self.dark_level_dn = float(dark_level_dn)
        self.error: BaseException | None = None
        self.stored = 0
        self.counts_above_dark = 0.0
        self.busy_s = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._thread = threading.Thread(target=self._work, name="optgen-store", daemon=True)
        self._thread.start()

    def put(self, item: CapturedFrame) -> None:
        """Queue a frame (blocks while the queue is full, noticing a stop); raises the worker's
        error, if any, or StorageStalled (see :meth:`check`)."""
        while True:
            self.check()
            stop.check()
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                pass

    def check(self) -> None:
        """Raise the worker's error, or StorageStalled once one frame has taken over ``stall_s``."""
        if self.error is not None:
            raise self.error
        since = self._busy_since
        if since is not None and time.monotonic() - since > self.stall_s:
            self._stall(time.monotonic() - since)

    @property
    def hung(self) -> bool:
        """Still inside the write that stalled."""
        return self.stalled and self._thread.is_alive() and self._busy_since is not None

    def _stall(self, seconds: float) -> None:
        if not self.stalled:
            self.stalled = True
            _STALLED.add(self)
        raise StorageStalled(f"storage stalled: one frame has not been written in {seconds:.3g} s (bound "
                             f"[safety] storage_stall_s = {self.stall_s:g} s; a hung disk or network share?); "
                             f"the laser was turned off and the run stopped")

    def finish(self, timeout_s: float | None = None) -> None:
        """Store what is queued, stop the thread; raises the worker's error, if any. Waits at most
        ``timeout_s`` (default: ``stall_s`` per queued frame, plus one), and raises StorageStalled
        rather than wait on a stalled worker."""
        if self.stalled:
            raise StorageStalled("storage stalled earlier in this run; the queued frames were not stored")
        if timeout_s is None:
            timeout_s = self.stall_s * (self._queue.qsize() + 1)
        deadline = time.monotonic() + timeout_s
        while self._thread.is_alive():
            try:
                self._queue.put(_DONE, timeout=0.05)
                break
            except queue.Full:
                self.check()
                if time.monotonic() > deadline:
                    break
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(0.05)
            self.check()
        if self._thread.is_alive():
            self._stall(timeout_s)
        self.check()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self.error is not None:
                continue                     # drain without storing: the run is stopping
            t0 = time.perf_counter()
            self._busy_since = time.monotonic()
            try:
                self._store(item)
            except BaseException as exc:     # noqa: BLE001 - handed to the capture loop's thread
                self.error = exc
            finally:
                self._busy_since = None
            self.busy_s += time.perf_counter() - t0

    def _store(self, item: CapturedFrame) -> None:
        power_w = self.guard.confirm(item.exposure_end_s)
        frame = item.frame
        meta = {"timestamp_s": item.timestamp_s, "exposure_s": item.exposure_s, "laser_power_w": power_w,
                "saturated_pixels": int(np.count_nonzero(frame >= self.saturation_dn))}
        self.writer.write(item.index, frame, self.registration.image(frame), item.seed_phase, item.seed_gray,
                          item.seed_index, item.seed_id, meta)
        self.stored += 1
        self.counts_above_dark += float(frame.sum(dtype=np.float64)) - self.dark_level_dn * frame.size
