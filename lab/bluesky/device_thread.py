"""The one thread on which the bluesky devices call optgen's drivers.

optgen's drivers are blocking and not thread-safe. bluesky's RunEngine runs its asyncio loop on a
background thread of its own (and a caller may give it another loop). Every driver call the
ophyd-async devices make goes through one :class:`DeviceThread`: a single worker thread, so two
calls never overlap and they run in the order they were asked for, whatever thread or task asked.
The loop awaits the call (:meth:`DeviceThread.call`) and stays free meanwhile: a pause, an abort or
a suspender is handled while a frame is being exposed, and its laser safe-off is queued behind that
frame on the same thread. The RunEngine's own clean-up calls ``unstage()`` without awaiting it, so
the safety hooks also have a blocking form with a bound (:meth:`DeviceThread.call_now`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from optgen.drivers.errors import DeviceError

__all__ = ["DeviceThread", "DeviceThreadBusy"]

T = TypeVar("T")

# the longest a blocking call waits for the thread: a safe-off queued behind a frame in flight
# waits for that frame (its own timeout is about a second plus two frame times), never forever
CALL_NOW_TIMEOUT_S = 30.0


class DeviceThreadBusy(DeviceError):
    """A blocking device call did not get its turn on the device thread within its bound."""


class DeviceThread:
    """A single worker thread that runs every driver call of one bench, one at a time, in order."""

    def __init__(self, name: str = "optgen-devices"):
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._ident: int | None = None
        self._executor.submit(self._remember_ident).result()
        self.closed = False

    def _remember_ident(self) -> None:
        self._ident = threading.get_ident()

    @property
    def ident(self) -> int | None:
        """The worker thread's identity (``threading.get_ident()`` on it)."""
        return self._ident

    def on_thread(self) -> bool:
        """Whether the caller is the device thread itself."""
        return threading.get_ident() == self._ident

    @staticmethod
    def _guarded(fn: Callable[..., T], *args) -> T:
        """Run ``fn``; a KeyboardInterrupt or SystemExit raised in a driver call on this thread comes
        back as a DeviceError (raised inside the RunEngine's loop it would end the loop's thread)."""
        try:
            return fn(*args)
        except (KeyboardInterrupt, SystemExit) as exc:
            raise DeviceError(getattr(fn, "__qualname__", str(fn)), f"interrupted ({type(exc).__name__})") from None

    async def call(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(*args)`` on the device thread and await its result (from an asyncio loop).

        A call still waiting for its turn when the awaiting task is cancelled is dropped; one
        already running finishes on the thread (a driver call cannot be interrupted)."""
        if self.on_thread():
            return fn(*args)
        return await asyncio.wrap_future(self._executor.submit(self._guarded, fn, *args))

    def call_now(self, fn: Callable[..., T], *args, timeout_s: float = CALL_NOW_TIMEOUT_S) -> T:
        """Run ``fn(*args)`` on the device thread and wait for it here, at most ``timeout_s``
        (DeviceThreadBusy after that; the call still runs when its turn comes)."""
        if self.on_thread():
            return fn(*args)
        future = self._executor.submit(self._guarded, fn, *args)
        try:
            return future.result(timeout_s)
        except FutureTimeout:
            raise DeviceThreadBusy(self.name, f"{getattr(fn, '__qualname__', fn)} did not get its turn within "
                                              f"{timeout_s:g} s (a device call before it is hung)") from None

    def close(self) -> None:
        """Let the calls already queued finish, then end the thread (bounded by the drivers' own timeouts)."""
        if not self.closed:
            self.closed = True
            self._executor.shutdown(wait=True)
