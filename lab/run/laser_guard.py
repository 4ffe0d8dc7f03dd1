"""Watching the laser during a run: a frame is kept only once the laser is known to have been
fine until after it was exposed.

The storage worker calls :meth:`LaserGuard.confirm` with the end of a frame's exposure; if
the last check is older, the laser is asked now (faults, emission, measured power). A fault or
an emission that went off raises :class:`LaserFault` and the frame is not stored. A lost
link (serial cable, USB hub) is reconnected once per run and the state read back; a second
loss, or a reconnect that fails, stops the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from optgen.drivers.errors import DeviceError, LinkLost

__all__ = ["LaserFault", "LaserGuard"]


class LaserFault(DeviceError):
    """The laser reported a fault, or stopped emitting, while the run needed it on."""


class LaserGuard:
    """Confirms the laser's state after each frame (at most one query per frame batch)."""

    def __init__(self, laser, clock, record_event: Callable[[str, str], None]):
        self.laser = laser
        self.clock = clock
        self.record_event = record_event
        self.checked_until_s = -math.inf
        self.power_w = math.nan
        self.reconnected = False
        self.stood_down_s: float | None = None

    def stand_down(self) -> None:
        """The run is about to switch the laser off itself: frames exposed before now stay
        good if the laser reports no fault (its emission going off is then ours).

        If no frame was confirmed yet (the storage worker lags behind the captures), the power is
        measured now, while the laser still emits: the frames confirmed after the laser went off
        then record it, not NaN (a colour run divides each frame by it)."""
        self.stood_down_s = self.clock.now()
        if math.isnan(self.power_w):
            try:
                if self.laser.emission:
                    self.power_w = float(self.laser.measured_power())
            except DeviceError:
                pass                           # the off that follows says what is wrong with the link

    def confirm(self, t_s: float) -> float:
        """Make sure the laser was fine until ``t_s`` (bench clock); returns the power it measured."""
        if self.checked_until_s >= t_s:
            return self.power_w
        now = self.clock.now()
        try:
            faults, emission, power = self._read()
        except LinkLost as exc:
            faults, emission, power = self._reconnect(exc)
        if faults:
            raise LaserFault(self.laser.name, f"reported {', '.join(faults)} during the run; the frames after the "
                                              f"last good check are not kept. Check the interlock, the key switch "
                                              f"and the laser's temperature")
        if not emission and self.stood_down_s is not None and t_s <= self.stood_down_s:
            return self.power_w                 # switched off by the run, after this frame
        if not emission:
            acted = getattr(getattr(self.laser, "watchdog", None), "acted", None)
            why = (f"the laser watchdog switched it off: {acted['message']}" if acted else
                   "interlock, key switch or a controller that switched it off")
            raise LaserFault(self.laser.name, f"emission went off during the run ({why}); the frames after the "
                                              f"last good check are not kept")
        self.checked_until_s, self.power_w = now, power
        return power

    def _read(self) -> tuple[list[str], bool, float]:
        return self.laser.faults(), self.laser.emission, self.laser.measured_power()

    def _reconnect(self, exc: LinkLost) -> tuple[list[str], bool, float]:
        if self.reconnected:
            raise LaserFault(self.laser.name, f"the link was lost a second time in this run ({exc}); stopping") from exc
        self.reconnected = True
        self.record_event("link", f"{self.laser.name}: link lost ({exc}); reconnecting once")
        try:
            readback = self.laser.reconnect()
        except Exception as again:
            raise LaserFault(self.laser.name, f"the link was lost and reconnecting failed: {again}") from again
        self.record_event("link", f"{self.laser.name}: reconnected; read back emission "
                                  f"{'on' if readback.emission else 'off'}, setpoint {readback.setpoint_w * 1e3:.6g} mW, "
                                  f"faults {list(readback.faults) or 'none'}")
        return self._read()
