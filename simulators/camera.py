"""A simulated camera: renders the world's light on its own pixels with the planted sensor physics."""

from __future__ import annotations

import numpy as np

from drivers.camera import BenchCamera
from drivers.errors import CaptureTimeout
from drivers.identity import DeviceIdentity

from .noise import expose
from .world import OpticalWorld

__all__ = ["SimulatedCamera"]


class SimulatedCamera(BenchCamera):
    """The twin's image sensor. Exposure and readout take (virtual or wall-clock) time.

    ``stall`` makes every capture time out, as a camera that stops delivering frames.
    """

    def __init__(self, world: OpticalWorld, *, exposure_s: float = 1e-3, name: str = "camera",
                 exposure_bounds_s=(1e-6, 10.0)):
        self.world = world
        sensor = world.sensor
        self._exposure = float(exposure_s)
        self.stall = False
        self.last_power_w = 0.0
        self.last_saturated = 0
        self.last_mid_exposure_t = 0.0
        super().__init__(tuple(sensor.resolution), bitdepth=int(sensor.bitdepth),
                         pitch_um=sensor.pitch_m * 1e6, readout_s=sensor.readout_s, name=name,
                         exposure_bounds_s=exposure_bounds_s, capture_attempts=1)

    @property
    def identity(self) -> DeviceIdentity:
        return DeviceIdentity("optgen", "simulated camera", serial="twin", firmware="twin")

    @staticmethod
    def info(verbose: bool = True) -> list:
        return []

    def close(self) -> None:
        """Nothing to release."""

    @property
    def saturation_dn(self) -> int:
        """The full well or the ADC's top, whichever comes first."""
        s = self.world.sensor
        return int(min(2 ** int(s.bitdepth) - 1, np.floor(s.full_well_e * s.gain_dn_per_e + s.dark_offset_dn)))

    def _get_exposure_hw(self) -> float:
        return self._exposure

    def _set_exposure_hw(self, exposure_s: float) -> None:
        self._exposure = float(exposure_s)

    def _get_image_hw(self, timeout_s: float) -> np.ndarray:
        clock = self.world.clock
        if self.stall:
            clock.sleep(timeout_s)
            raise CaptureTimeout(self.name, f"no frame within {timeout_s:.3g} s")
        t_start = clock.now()
        power = self.world.delivered_power_w()
        self.last_mid_exposure_t = t_start + self._exposure / 2.0
        pixel_power = self.world.sensor_power(self.last_mid_exposure_t, power)
        frame, saturated = expose(pixel_power, self._exposure, self.world.wavelength_m,
                                  self.world.sensor, self.world.rng)
        clock.sleep(self._exposure + self.readout_s)
        self.last_power_w = power
        self.last_saturated = saturated
        return frame
