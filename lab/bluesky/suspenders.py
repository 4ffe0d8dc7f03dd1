"""A laser fault or an open interlock suspends the RunEngine (a bluesky suspender).

bluesky's suspenders watch a signal through ophyd's (v1) subscription API. The laser's ``faults``
signal is an ophyd-async soft signal over a driver that reports faults only when asked, so this
suspender asks: a task on the RunEngine's loop reads ``faults`` every ``poll_s`` seconds (on the
device thread, like every driver call). A laser that does not answer counts as a fault.

While suspended, the RunEngine pauses the devices it has seen, so the laser goes off (verified) and
the camera rolls back a frame no event points to; when the laser reports no fault again (after
``sleep`` seconds), it resumes from the last checkpoint and the laser is lit again if it was.

If bluesky refuses what the poll hands it (its suspender API changed once, in 1.16), the poll logs one
ERROR naming the laser, records it in ``failure`` and goes on: it never dies unseen.
"""

from __future__ import annotations

import asyncio
import logging

from bluesky.suspenders import SuspenderBase

from optgen.lab.bluesky.laser import OptgenLaser, fault_list

__all__ = ["LaserFaultSuspender", "suspend_on_laser_fault"]

log = logging.getLogger("optgen.bluesky")

INSTALL_TIMEOUT_S = 5.0


class LaserFaultSuspender(SuspenderBase):
    """Suspend while ``laser`` reports any fault (an open interlock among them); resume when none."""

    def __init__(self, laser: OptgenLaser, *, poll_s: float = 0.1, sleep: float = 0.0, pre_plan=None,
                 post_plan=None, tripped_message: str = "the laser reports a fault or an open interlock"):
        if not poll_s > 0:
            raise ValueError(f"poll_s = {poll_s!r}: expected a positive number of seconds")
        super().__init__(laser.faults, sleep=sleep, pre_plan=pre_plan, post_plan=post_plan,
                         tripped_message=tripped_message)
        self.laser, self.poll_s = laser, float(poll_s)
        self.last_faults: tuple[str, ...] = ()
        self.trips = 0
        self.failure: str | None = None    # why the last report to SuspenderBase failed (None: it did not)
        self._task: asyncio.Task | None = None

    def _should_suspend(self, value) -> bool:
        return bool(value)

    def _should_resume(self, value) -> bool:
        return not value

    def _get_justification(self) -> str:
        if not self.tripped:
            return ""
        return f"{self.laser.name}: {', '.join(self.last_faults)} ({self._tripped_message})"

    def install(self, RE, *, event_type=None) -> None:
        """Start watching (called by ``RE.install_suspender``): a poll task on the RunEngine's loop."""
        with self._lock:
            self.RE = RE
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is RE.loop:            # from a plan's install_suspender message, on the loop itself
            RE.loop.create_task(self._start())
        else:
            asyncio.run_coroutine_threadsafe(self._start(), RE.loop).result(INSTALL_TIMEOUT_S)

    async def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            try:
                faults = tuple(fault_list(await self.laser.faults.get_value()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # noqa: BLE001 - a laser that cannot say is treated as faulted
                faults = (f"not answering ({type(exc).__name__}: {exc})",)
            if faults and not self.tripped:
                self.trips += 1
                log.warning("%s: %s: suspending the RunEngine", self.laser.name, ", ".join(faults))
            self.last_faults = faults
            try:
                self._report(faults)
            except Exception as exc:   # noqa: BLE001 - a dead poll task would stop suspending unseen
                if self.failure is None:
                    log.error("%s: the laser-fault suspender could not act on %r (%s: %s): runs are not suspended "
                              "on faults until this is mended (each frame still checks the laser; the interlock "
                              "still stops emission)", self.laser.name, faults, type(exc).__name__, exc)
                self.failure = f"{type(exc).__name__}: {exc}"
            else:
                self.failure = None
            await asyncio.sleep(self.poll_s)

    def _report(self, faults: tuple[str, ...]) -> None:
        """Hand ``faults`` to SuspenderBase's trip/resume logic in the form its bluesky version reads.

        bluesky >= 1.16 reads an ophyd-async signal's value out of a ``{name: reading}`` mapping (what
        ``subscribe_reading`` calls back with); earlier versions take the value itself.
        """
        if getattr(self, "_implements_protocol", False):
            self({self._sig.name: {"value": faults}})
        else:
            self(faults)

    def remove(self) -> None:
        """Stop watching (``RE.remove_suspender``); a suspension in force is released."""
        task, self._task = self._task, None
        if task is not None and self.RE is not None:
            self.RE.loop.call_soon_threadsafe(task.cancel)
        self._report(())    # the way SuspenderBase releases a waiting RunEngine: report "no fault"
        with self._lock:
            self.RE = None
            self._tripped = False


def suspend_on_laser_fault(RE, devices, *, poll_s: float = 0.1, sleep: float = 0.0) -> LaserFaultSuspender:
    """Install a :class:`LaserFaultSuspender` for ``devices.laser`` on ``RE``; returns it."""
    suspender = LaserFaultSuspender(devices.laser, poll_s=poll_s, sleep=sleep)
    RE.install_suspender(suspender)
    return suspender
