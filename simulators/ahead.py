"""Work done ahead of need on background threads, each result filed under the key of its inputs.

The hardware-timed twin (wall clock) must deliver a frame exposure + readout after the
exposure starts, yet one frame of the published model costs more than that to compute. It
computes ahead instead: when an SLM upload arrives, the settled light (and the camera's next
frame) are computed on this thread while the liquid crystal settles. A result is used only
when the key it was computed under still describes the world (upload counters, laser state,
exposure), so a stale result is never used; an exception in the thread is raised by
``Future.result()`` to whoever uses the result.

numpy's FFTs and random draws release the GIL, so the thread runs beside the caller. Jobs
go to named lanes, one thread each, in the order they were submitted: the light's render and
the camera's noise draw run on two lanes, so the render of the next upload overlaps the noise
of the last one (a frame job waits for its render's future), and the draws stay in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["AheadWorker"]


class AheadWorker:
    """One worker thread per lane and named one-result slots; a lane runs its jobs in the order
    they were submitted."""

    def __init__(self, name: str = "optgen-twin-ahead"):
        self._name = name
        self._lock = threading.Lock()
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._slots: dict[str, tuple[Hashable, Future]] = {}

    def submit(self, slot: str, key: Hashable, fn: Callable, *args, lane: str = "main") -> Future:
        """Run ``fn(*args)`` on ``lane``'s thread; the result replaces what ``slot`` held.

        The slot's previous job is cancelled if it has not started (a running one finishes
        and its result is dropped).
        """
        with self._lock:
            old = self._slots.pop(slot, None)
            if old is not None:
                old[1].cancel()
            executor = self._executors.get(lane)
            if executor is None:
                executor = self._executors[lane] = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"{self._name}-{lane}")
            future = executor.submit(fn, *args)
            self._slots[slot] = (key, future)
            return future

    def get(self, slot: str, key: Hashable) -> Future | None:
        """The future filed in ``slot`` under ``key``, or None (nothing there, or computed for other inputs)."""
        with self._lock:
            entry = self._slots.get(slot)
        if entry is None or entry[0] != key:
            return None
        return entry[1]

    def take(self, slot: str, key: Hashable) -> Future | None:
        """Like :meth:`get`, but the slot is emptied: a result that may be used once (a noise draw)."""
        with self._lock:
            entry = self._slots.get(slot)
            if entry is None or entry[0] != key:
                return None
            del self._slots[slot]
        return entry[1]

    def discard(self, slot: str) -> None:
        """Forget what ``slot`` holds (cancel it if it has not started)."""
        with self._lock:
            entry = self._slots.pop(slot, None)
        if entry is not None:
            entry[1].cancel()

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait until every job submitted so far has run (each lane runs its jobs in order)."""
        with self._lock:
            executors = list(self._executors.values())
        for executor in executors:
            executor.submit(lambda: None).result(timeout_s)

    def close(self) -> None:
        """Drop every slot and stop the thread; a later ``submit`` starts a new one."""
        with self._lock:
            for _, future in self._slots.values():
                future.cancel()
            self._slots.clear()
            executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
