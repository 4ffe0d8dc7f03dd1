"""A vendor read that may never return, run on a daemon thread so the caller waits a bounded time.

Shared by the camera drivers whose back end can block for as long as it likes (OpenCV's
``VideoCapture.read``, an slmsuite vendor class's ``get_image``): a read that times out is left to
finish on its thread and is waited for (within the next timeout) before another starts, so two
reads never run at once and a stale frame is never handed on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from optgen.drivers.errors import CaptureTimeout

__all__ = ["BoundedReads", "Call"]


class Call:
    """One call running on a daemon thread: ``done`` is set when it returned or raised."""

    def __init__(self, fn: Callable[[], Any], name: str):
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        threading.Thread(target=self._run, args=(fn,), daemon=True, name=name).start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as error:   # handed to the caller
            self.error = error
        finally:
            self.done.set()


class BoundedReads:
    """Reads one at a time, each waited for at most a timeout.

    ``no_frame`` and ``blocked`` are the CaptureTimeout messages' openings (the timeout follows).
    """

    def __init__(self, device: str, thread_name: str, *, no_frame: str, blocked: str):
        self.device, self.thread_name = device, thread_name
        self.no_frame, self.blocked = no_frame, blocked
        self.pending: Call | None = None

    def read(self, fn: Callable[[], Any], timeout_s: float, wait_s: float | None = None) -> Call:
        """Run ``fn`` once the previous read is over (waiting at most ``timeout_s`` for it) and wait at
        most ``wait_s`` (default ``timeout_s``) for it; the finished call (its ``error`` is the
        caller's to raise)."""
        stale = self.pending
        if stale is not None and not stale.done.wait(timeout_s):
            raise CaptureTimeout(self.device, f"{self.blocked} after {timeout_s:.3g} s more")
        self.pending = call = Call(fn, self.thread_name)
        if not call.done.wait(timeout_s if wait_s is None else wait_s):
            raise CaptureTimeout(self.device, f"{self.no_frame} within {timeout_s:.3g} s")
        self.pending = None
        return call

    def settle(self, timeout_s: float = 1.0) -> None:
        """Before closing the device: let a read in progress end (at most ``timeout_s``)."""
        if self.pending is not None:
            self.pending.done.wait(timeout_s)
