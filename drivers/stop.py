"""How a command that can turn light on is asked to stop: signal handlers only record.

While :meth:`StopControl.signals` is active (main thread), SIGINT and SIGTERM set flags on the
control and return: nothing is raised from a handler, so no stop can be swallowed by code that
happened to be running when the signal came (a weakref callback, a finaliser, a ``finally``).
The program acts on the flags at its bounded waits:

- a *graceful* request (the first Ctrl-C during a run: :attr:`StopControl.graceful`) only sets
  :attr:`StopControl.requested`; the run loop shows nothing more, stores the frames in flight and
  ends with status "stopped";
- a stop *now* (the second Ctrl-C, any SIGTERM, the first Ctrl-C where nothing graceful is under
  way) makes :func:`check` raise on the main thread: KeyboardInterrupt for Ctrl-C, SystemExit(128 +
  signal) for SIGTERM. Every ``finally`` then runs: the laser goes off, verified, files close;
- :func:`sleep` sleeps in short slices and checks, so a wait never hides a stop for longer than
  a slice; waits on other threads return early instead of raising;
- inside :meth:`StopControl.shielded` (the laser going off, files closing) :func:`check` does not
  raise: a cleanup is never cut short by the stop that started it.

A guard thread, running while the handlers are installed, writes the operator's notices (a
handler writes nothing: printing from a handler can itself raise), and, if the main thread has
not finished within :data:`EXIT_GRACE_S` of a stop now (a driver call or a disk that never
returns), ends the process with :func:`os._exit` - but only once every laser is verified off or
has a watchdog outside the process that took over (see :mod:`optgen.drivers.watchdog`).
Nothing but a verified safe-off ends a laser's day.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["EXIT_GRACE_S", "SLICE_S", "StopControl", "active", "check", "pet", "sleep"]

log = logging.getLogger("optgen.run")

SLICE_S = 0.05            # the longest a wait hides a stop
EXIT_GRACE_S = 10.0       # after a stop now, the main thread has this long to finish by itself
_GUARD_POLL_S = 0.05

_active: "StopControl | None" = None
_main_thread = threading.main_thread()


def active() -> "StopControl | None":
    """The control whose signal handlers are installed now, if any."""
    return _active


def check() -> None:
    """On the main thread: raise now if a stop now was requested (outside a shielded block).
    Elsewhere: nothing. Marks the main thread as alive (see :func:`pet`)."""
    control = _active
    if control is None or threading.current_thread() is not _main_thread:
        return
    control.last_pet_s = time.monotonic()
    control.raise_if_now()


def pet() -> None:
    """The main thread is making progress (the laser watchdog's heartbeat depends on it)."""
    control = _active
    if control is not None and threading.current_thread() is _main_thread:
        control.last_pet_s = time.monotonic()


@contextmanager
def active_shield() -> Iterator[None]:
    """Shield the block from a stop now of whichever control is active (for a laser's
    safe-off, wherever it is called from)."""
    control = _active
    if control is None:
        yield
        return
    with control.shielded():
        yield


def sleep(seconds: float) -> None:
    """Sleep ``seconds`` in slices of at most :data:`SLICE_S`, checking for a stop between them.

    On the main thread a stop now raises (see :func:`check`); on another thread the sleep just
    ends early, so the thread's owner finds out at its own bounded wait.
    """
    if seconds <= 0:
        check()
        return
    deadline = time.monotonic() + seconds
    on_main = threading.current_thread() is _main_thread
    while True:
        control = _active
        if control is not None:
            if on_main:
                check()
            elif control.now and not control.shield_depth:
                return
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, SLICE_S))


class StopControl:
    """A stop request shared by the loops, the signal handlers and the caller."""

    def __init__(self) -> None:
        self.requested = False        # stop after the frames in flight (or now, see ``now``)
        self.now = False              # stop at once: :func:`check` raises
        self.reason = ""
        self.graceful = False         # whether the first Ctrl-C only asks for a graceful stop
        self.shield_depth = 0         # >0: a cleanup is running; check() does not raise
        self.last_pet_s = time.monotonic()
        self.now_since_s: float | None = None
        self._exception: BaseException | None = None
        self._signals: list[int] = []     # recorded by the handlers, announced by the guard thread
        self._announced = 0

    # --- requests --------------------------------------------------------------------
    def request(self, reason: str) -> None:
        """Ask for a stop after the frames in flight (idempotent: the first reason stays)."""
        if not self.requested:
            self.requested, self.reason = True, reason

    def request_now(self, reason: str, exception: BaseException | None = None) -> None:
        """Ask for a stop at once: the main thread's next :func:`check` raises ``exception``
        (KeyboardInterrupt by default)."""
        self.request(reason)
        if not self.now:
            self._exception = exception if exception is not None else KeyboardInterrupt()
            self.now_since_s = time.monotonic()
            self.now = True

    @property
    def cleaning(self) -> bool:
        """Whether a shielded cleanup is under way (kept for the run loop's older name)."""
        return self.shield_depth > 0

    @cleaning.setter
    def cleaning(self, value: bool) -> None:
        if value and not self.shield_depth:
            self.shield_depth = 1
        elif not value:
            self.shield_depth = 0

    @contextmanager
    def shielded(self) -> Iterator["StopControl"]:
        """A block that a stop now does not interrupt (the laser going off, files closing)."""
        self.shield_depth += 1
        try:
            yield self
        finally:
            self.shield_depth = max(0, self.shield_depth - 1)

    def raise_if_now(self) -> None:
        """Raise the stop's exception if a stop now is pending and no cleanup is shielded."""
        if self.now and not self.shield_depth and self._exception is not None:
            exc = self._exception
            raise exc.with_traceback(None)

    @property
    def exit_code(self) -> int:
        """The exit status the stop asks for (130 after Ctrl-C, 128 + signal after SIGTERM)."""
        exc = self._exception
        if isinstance(exc, SystemExit) and isinstance(exc.code, int):
            return exc.code
        return 130

    # --- signal handlers: record only --------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self._signals.append(signum)
        if signum == signal.SIGINT:
            if self.graceful and not self.requested:
                self.request("interrupted (Ctrl-C): stopped after the frames in flight")
            else:
                self.request_now("interrupted (Ctrl-C)", KeyboardInterrupt())
        else:
            self.request_now(f"terminated ({signal.Signals(signum).name})", SystemExit(128 + signum))

    @contextmanager
    def signals(self) -> Iterator["StopControl"]:
        """Install the SIGINT/SIGTERM handlers for the block, and the guard thread.

        A no-op off the main thread, and when this control's handlers are already installed
        (an outer block owns them). An inner block with another control takes over the
        handlers and gives them back afterwards.
        """
        global _active
        if threading.current_thread() is not _main_thread or _active is self:
            yield self
            return
        outer = _active
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        _active = self
        guard = _Guard(self)
        guard.start()
        try:
            yield self
        finally:
            guard.stop()
            _active = outer
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if outer is not None and self.now:      # a stop now ends the outer command too
                outer.request_now(self.reason, self._exception)


class _Guard(threading.Thread):
    """Announces recorded signals, and ends a process whose main thread does not stop."""

    def __init__(self, control: StopControl):
        super().__init__(name="optgen-stop-guard", daemon=True)
        self.control = control
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join(1.0)

    def run(self) -> None:
        waited_for_lasers = False
        while not self._done.wait(_GUARD_POLL_S):
            self._announce()
            c = self.control
            if c.now_since_s is None or time.monotonic() - c.now_since_s < EXIT_GRACE_S:
                continue
            if _lasers_safe(log_waiting=not waited_for_lasers):
                log.critical("the main thread did not stop within %.0f s of the stop (%s); every laser is off: "
                             "exiting now", EXIT_GRACE_S, c.reason)
                _flush_and_exit(c.exit_code)
            waited_for_lasers = True

    def _announce(self) -> None:
        c = self.control
        while c._announced < len(c._signals):
            signum = c._signals[c._announced]
            c._announced += 1
            _notice(c, signum)


def _notice(control: StopControl, signum: int) -> None:
    if control.now:
        what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        log.warning("%s: stopping now (the laser goes off first)", what)
    else:
        log.warning("Ctrl-C: finishing the frames in flight, then stopping; press Ctrl-C again to stop now")


# --- the last resort: only with every laser safe -------------------------------------
_laser_safety_check: Callable[[bool], bool] | None = None


def set_laser_safety_check(fn: Callable[[bool], bool]) -> None:
    """Register what says every laser is off or covered (the laser registry does this)."""
    global _laser_safety_check
    _laser_safety_check = fn


def _lasers_safe(log_waiting: bool) -> bool:
    check_fn = _laser_safety_check
    return True if check_fn is None else bool(check_fn(log_waiting))


def _flush_and_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:   # noqa: BLE001 - a broken stream must not keep the process alive
            pass
    os._exit(code)
