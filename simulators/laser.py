"""A simulated laser: the laser interface over the world model's emission and power."""

from __future__ import annotations

from drivers.errors import DeviceError
from drivers.identity import DeviceIdentity
from drivers.laser import Laser

from .world import OpticalWorld

__all__ = ["SimulatedLaser"]


class SimulatedLaser(Laser):
    """The twin's laser. ``stuck_on`` plants a failure: emission cannot be switched off."""

    def __init__(self, world: OpticalWorld, *, wavelength_nm: float, max_power_w: float,
                 name: str = "laser"):
        self.world = world
        self.stuck_on = False
        super().__init__(name, wavelength_nm, max_power_w)

    @property
    def identity(self) -> DeviceIdentity:
        return DeviceIdentity("optgen", f"simulated {self.wavelength_nm:g} nm laser", serial="twin",
                              firmware="twin")

    @property
    def device_max_power_w(self) -> float:
        return self.world.laser.device_max_power_w

    def safe_off(self) -> None:
        self._emission_off_verified()

    def _set_power_hw(self, watts: float) -> None:
        self.world.laser_setpoint_w = watts

    def _get_power_setpoint_hw(self) -> float:
        return self.world.laser_setpoint_w

    def _get_measured_power_hw(self) -> float:
        return self.world.delivered_power_w()

    def _set_emission_hw(self, on: bool) -> None:
        if on and self.world.laser_faults:
            raise DeviceError(self.name, f"cannot emit with active faults {self.world.laser_faults}")
        if not on and self.stuck_on:
            return
        self.world.laser_emission = on

    def _get_emission_hw(self) -> bool:
        return self.world.laser_emission

    def _get_faults_hw(self) -> list[str]:
        return list(self.world.laser_faults)
