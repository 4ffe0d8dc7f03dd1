"""A simulated laser: the laser interface over the world model's emission and power."""

from __future__ import annotations

from optgen.drivers.errors import DeviceError, LinkLost
from optgen.drivers.identity import DeviceIdentity
from optgen.drivers.laser import Laser
from optgen.drivers.lasers._common import LaserReadback
from optgen.simulators.world import OpticalWorld

__all__ = ["SimulatedLaser"]


class SimulatedLaser(Laser):
    """The twin's laser, with planted failures: ``stuck_on`` (emission cannot be switched off),
    :meth:`trip` (a fault or an opened interlock cuts the emission), ``link_down`` (every
    command fails as over an unplugged serial cable, until :meth:`reconnect`; with
    ``link_dead`` reconnecting fails too)."""

    def __init__(self, world: OpticalWorld, *, wavelength_nm: float, max_power_w: float,
                 name: str = "laser"):
        self.world = world
        self.stuck_on = False
        self.link_down = False
        self.link_dead = False
        self.reconnects = 0
        super().__init__(name, wavelength_nm, max_power_w)

    def trip(self, fault: str = "interlock open") -> None:
        """A fault as the device reports it: emission stops at once."""
        self.world.laser_faults.append(fault)
        self.world.laser_emission = False

    def reconnect(self) -> LaserReadback:
        """Reopen the (simulated) link and read the state back; the laser kept its state."""
        self._require_open()
        self.reconnects += 1
        if self.link_dead:
            raise LinkLost(self.name, "reconnect failed: no answer on the (simulated) serial port")
        self.link_down = False
        return LaserReadback(self.emission, self.power_setpoint(), tuple(self.faults()))

    def _link(self) -> None:
        if self.link_down:
            raise LinkLost(self.name, "serial link lost (simulated unplugged cable); reconnect() reopens it")

    @property
    def identity(self) -> DeviceIdentity:
        return DeviceIdentity("optgen", f"simulated {self.wavelength_nm:g} nm laser", serial="twin",
                              firmware="twin")

    @property
    def device_max_power_w(self) -> float:
        return self.world.laser.device_max_power_w

    light_ends_with_process = True

    def safe_off(self) -> None:
        self._off_with_recovery()

    def _set_power_hw(self, watts: float) -> None:
        self._link()
        self.world.laser_setpoint_w = watts

    def _get_power_setpoint_hw(self) -> float:
        self._link()
        return self.world.laser_setpoint_w

    def _get_measured_power_hw(self) -> float:
        self._link()
        return self.world.measured_power_w()

    def _set_emission_hw(self, on: bool) -> None:
        self._link()
        if on and self.world.laser_faults:
            raise DeviceError(self.name, f"cannot emit with active faults {self.world.laser_faults}")
        if not on and self.stuck_on:
            return
        self.world.laser_emission = on

    def _get_emission_hw(self) -> bool:
        self._link()
        return self.world.laser_emission

    def _get_faults_hw(self) -> list[str]:
        self._link()
        return list(self.world.laser_faults)
