"""A slot holding the newest item of a stream (camera frames, rendered frames), waited on with a bound."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

__all__ = ["LatestSlot"]

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """The newest item and its sequence number; older items are dropped (a live view shows the
    newest frame, never a queue of stale ones). Counts the rate of items put over the last ``window``."""

    def __init__(self, window: int = 30) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self.seq = 0
        self._times: deque[float] = deque(maxlen=window)

    def put(self, item: T) -> int:
        """Store ``item`` as the newest; returns its sequence number (1, 2, ...)."""
        with self._cond:
            self.seq += 1
            self._item = item
            self._times.append(time.monotonic())
            self._cond.notify_all()
            return self.seq

    def newest(self) -> tuple[int, T | None]:
        with self._cond:
            return self.seq, self._item

    def wait_newer(self, after: int, timeout_s: float) -> tuple[int, T | None]:
        """The newest item once its number is above ``after``, waiting at most ``timeout_s``;
        (seq, None) when nothing newer came in time."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        with self._cond:
            while self.seq <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return self.seq, None
                self._cond.wait(left)
            return self.seq, self._item

    def rate_hz(self) -> float:
        """Items per second over the last window (0 with fewer than two, or none for 2 s)."""
        with self._cond:
            times = list(self._times)
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)
