"""Time sources for the twin: the wall clock, or a virtual clock that advances instantly."""

from __future__ import annotations

import time
from typing import Protocol

from optgen.drivers import stop


class Clock(Protocol):
    """What the twin and the run loop need of time.

    ``realtime`` says whether other threads can act while one sleeps (a wall clock); on a
    virtual clock nothing happens during a sleep except that time moves on.
    """

    realtime: bool

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


def sleep_until(clock: Clock, t: float) -> None:
    """Sleep until ``clock.now() >= t`` (no-op if that time has passed)."""
    clock.sleep(t - clock.now())


class WallClock:
    """Real time: ``sleep`` really sleeps (a real bench, or a hardware-timed twin), in slices
    that notice a stop (:func:`drivers.stop.sleep`)."""

    realtime = True

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        stop.sleep(seconds)


class VirtualClock:
    """Simulated time: ``sleep`` advances the clock at once, so tests and demos run fast.

    The twin still sees the waits (an SLM that was not given its settle time shows a mix
    of the old and new pattern), only nobody waits for them.
    """

    realtime = False

    def __init__(self, start: float = 0.0):
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def sleep(self, seconds: float) -> None:
        stop.check()
        if seconds > 0:
            self._t += float(seconds)
