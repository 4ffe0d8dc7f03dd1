"""The run's storage worker: registration, metrics and storage off the timing-critical path.

The capture loop hands each clean frame to :meth:`StoreWorker.put`, which blocks while the
bounded queue is full (the loop slows down; no frame is dropped). The worker confirms the
laser was fine until after the frame's exposure (:class:`lab.laser_guard.LaserGuard`), then
registers the frame onto the output grid and writes it with its seed and metadata; the
writer makes it durable before the next one. The first error (full disk, laser fault, write
error) stops the worker; frames still queued then are not stored (a resume takes them again)
and :meth:`put` / :meth:`check` raise that error on the capture loop's thread.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from drivers.errors import OptgenError

__all__ = ["CapturedFrame", "StorageStalled", "StoreWorker"]

_DONE = object()


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
                 depth: int = 8):
        self.writer = writer
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

    def put(self, item: CapturedFrame, timeout_s: float = 60.0) -> None:
        """Queue a frame (blocks while the queue is full); raises the worker's error, if any, or
        StorageStalled when the worker takes no frame for ``timeout_s`` (a hung disk)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check()
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    raise StorageStalled(f"the storage worker took no frame for {timeout_s:g} s (disk hung or "
                                         f"far too slow); stopping the run") from None

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def finish(self, timeout_s: float | None = 60.0) -> None:
        """Store what is queued, stop the thread; raises the worker's error, if any."""
        if self._thread.is_alive():
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while self._thread.is_alive():
                try:
                    self._queue.put(_DONE, timeout=0.05)
                    break
                except queue.Full:
                    if deadline is not None and time.monotonic() > deadline:
                        break
            self._thread.join(timeout_s)
        self.check()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self.error is not None:
                continue                     # drain without storing: the run is stopping
            t0 = time.perf_counter()
            try:
                self._store(item)
            except BaseException as exc:     # noqa: BLE001 - handed to the capture loop's thread
                self.error = exc
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
