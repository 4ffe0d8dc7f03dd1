"""The laser as an ophyd-async device: setpoint (with the ceiling), read-backs, emission, faults.

Soft signals with a getter and a setter wrap the synchronous driver (``optgen.drivers.laser.Laser``);
every call runs on the bench's :class:`~optgen.lab.bluesky.device_thread.DeviceThread`.

Emission follows bluesky's own life cycle, so the RunEngine turns it off on every way a plan ends:

- the laser emits only while it is *staged* (``optgen.lab.bluesky.plans.capturing`` stages it
  around the part of a plan that captures); setting ``emission`` to True otherwise is refused;
- ``unstage()`` turns emission off and verifies it (``Laser.safe_off``) before it returns; the
  RunEngine unstages whatever a plan left staged when it ends, fails, is aborted or halted, and it
  calls ``unstage()`` there without awaiting it, so this one is synchronous;
- ``pause()`` (the RunEngine pauses, Ctrl-C, a suspender trips) turns it off, verified, and
  ``resume()`` lights it again only if it was lit, is still staged and reports no fault.

Setting ``emission`` to False is ``safe_off()`` too: off, and verified off, or LaserSafetyError.
"""

from __future__ import annotations

import logging
import time

from bluesky.protocols import Reading
from ophyd_async.core import AsyncStatus, StandardReadable, StandardReadableFormat, completed_status, soft_signal_rw
from ophyd_async.core import soft_signal_r_and_setter as soft_signal_r

from optgen.drivers.errors import DeviceError
from optgen.drivers.laser import Laser
from optgen.lab.bluesky.device_thread import DeviceThread

__all__ = ["EmissionRefused", "LaserFaulted", "OptgenLaser", "fault_list", "fault_text"]

log = logging.getLogger("optgen.bluesky")


class EmissionRefused(DeviceError):
    """Emission was asked for outside a plan that captures (the laser device is not staged)."""


FAULT_SEPARATOR = "; "


def fault_text(faults) -> str:
    """The driver's fault list as the ``faults`` signal's value: joined by ``"; "``, ``""`` when none (a fault
    the device words as blank still counts: it would otherwise read as no fault)."""
    return FAULT_SEPARATOR.join(str(f).strip() or "fault (no description)" for f in faults)


def fault_list(text: str) -> list[str]:
    """The ``faults`` signal's value as a list again (``[]`` when none)."""
    return [f for f in (text or "").split(FAULT_SEPARATOR) if f]


class LaserFaulted(DeviceError):
    """The laser reports a fault or an open interlock where light was about to be needed."""


class OptgenLaser(StandardReadable):
    """An optgen laser driver as an ophyd-async device.

    Signals (all in watts or as the driver words them):

    - ``power``: the setpoint; setting it checks the ceiling (the bench file's, never above the
      device's maximum) before anything is sent, and reads back what the laser reports;
    - ``measured_power``: the output power the laser measures now;
    - ``emission``: whether it emits (read back); see the module's note for setting it;
    - ``faults``: active faults and interlocks as one text, joined by ``"; "``, ``""`` when none (text,
      not a list: every event row and Tiled's table hold it as it is; :func:`fault_list` splits it);
    - ``ceiling``, ``wavelength_nm``: configuration.
    """

    def __init__(self, laser: Laser, thread: DeviceThread, name: str = ""):
        self.driver = laser
        self._thread = thread
        self.armed = False        # staged: inside a plan that captures
        self._lit = False         # emission asked on by a plan and not off since
        self._relight = False     # lit when the RunEngine paused: light it again on resume
        with self.add_children_as_readables(StandardReadableFormat.UNCACHED_SIGNAL):
            self.power = soft_signal_rw(float, units="W", getter=self._get_power, setter=self._set_power)
            self.measured_power, _ = soft_signal_r(float, units="W", getter=self._get_measured)
            self.emission = soft_signal_rw(bool, getter=self._get_emission, setter=self._set_emission)
            self.faults, _ = soft_signal_r(str, getter=self._get_faults)
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.ceiling, _ = soft_signal_r(float, laser.ceiling_w, units="W")
            self.wavelength_nm, _ = soft_signal_r(float, laser.wavelength_nm, units="nm")
        super().__init__(name=name)

    async def read(self) -> dict[str, Reading]:
        """Every read-back in one device-thread call, in the order the signals' own getters would be
        queued (faults, setpoint, emission, measured power): one hop to the device thread per event
        instead of four (about a millisecond a frame of the RunEngine's time on the twin)."""
        values = await self._thread.call(self._read_backs)
        now = time.time()
        signals = (self.faults, self.power, self.emission, self.measured_power)
        return {signal.name: {"value": value, "timestamp": now, "alarm_severity": 0}
                for signal, value in zip(signals, values, strict=True)}

    def _read_backs(self) -> tuple[str, float, bool, float]:
        """Device thread: (faults, setpoint, emission, measured power), read now."""
        d = self.driver
        return fault_text(d.faults()), float(d.power_setpoint()), bool(d.emission), float(d.measured_power())

    # --- getters and setters (awaited on the RunEngine's loop, run on the device thread) ---------
    async def _get_power(self) -> float:
        return await self._thread.call(self.driver.power_setpoint)

    async def _set_power(self, watts: float) -> float:
        # refused before anything is queued for the laser (check_power only reads the ceilings),
        # and set_power checks again before its first byte
        watts = self.driver.check_power(watts)
        return await self._thread.call(self.driver.set_power, watts)

    async def _get_measured(self) -> float:
        return await self._thread.call(self.driver.measured_power)

    async def _get_emission(self) -> bool:
        return await self._thread.call(lambda: self.driver.emission)

    async def _get_faults(self) -> str:
        return fault_text(await self._thread.call(self.driver.faults))

    async def _set_emission(self, on: bool) -> bool:
        if not on:
            self._lit = False
            await self._thread.call(self.driver.safe_off)
            return False
        if not self.armed:
            raise EmissionRefused(self.driver.name, "emission only inside a plan that captures: stage the laser "
                                                    "first (optgen.bluesky.plans.capturing does)")
        await self._thread.call(self._light)
        self._lit = True
        return True

    def _light(self) -> None:
        """Device thread: emission on, if no fault is reported, and read back on."""
        faults = self.driver.faults()
        if faults:
            raise LaserFaulted(self.driver.name, f"reports {', '.join(faults)}; not switching emission on "
                                                 f"(check the interlock and the key switch)")
        if not self.driver.set_emission(True):
            raise DeviceError(self.driver.name, "emission did not turn on (read-back says off)")

    # --- the RunEngine's hooks -----------------------------------------------------------------
    @AsyncStatus.wrap
    async def stage(self) -> None:
        """Arm: emission may be switched on until ``unstage()``. Refused while a fault is reported."""
        faults = await self._thread.call(self.driver.faults)
        if faults:
            raise LaserFaulted(self.driver.name, f"reports {', '.join(faults)}; a plan that captures cannot start")
        self.armed = True

    def unstage(self) -> AsyncStatus:
        """Disarm and turn emission off, verified, before returning (LaserSafetyError if it cannot
        be verified). Synchronous on purpose: the RunEngine's clean-up does not await it."""
        self.armed = self._lit = self._relight = False
        self._thread.call_now(self.driver.safe_off)
        return completed_status()

    async def pause(self) -> None:
        """The RunEngine pauses or suspends: emission off, verified; remembered if it was lit."""
        self._relight = self._lit and self.armed
        self._lit = False
        await self._thread.call(self.driver.safe_off)

    async def resume(self) -> None:
        """The RunEngine resumes: light again what the pause turned off (still staged, no fault)."""
        relight, self._relight = self._relight, False
        if relight and self.armed:
            await self._thread.call(self._light)
            self._lit = True

    def safe_off_now(self) -> None:
        """Emission off, verified, from any thread (blocking, bounded)."""
        self._lit = self._relight = False
        self._thread.call_now(self.driver.safe_off)
