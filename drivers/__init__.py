"""Device interfaces and drivers: SLMs, camera, laser. Never imports lab/."""

from .camera import BenchCamera
from .errors import (CaptureTimeout, DeviceError, LaserSafetyError, OptgenError, PhaseInputError,
                     PowerCeilingError)
from .identity import CameraTiming, DeviceIdentity, SLMTiming
from .laser import Laser, all_lasers_safe_off, open_lasers
from .slm import PhaseSLM, check_phase

__all__ = [
    "BenchCamera", "CameraTiming", "CaptureTimeout", "DeviceError", "DeviceIdentity", "Laser",
    "LaserSafetyError", "OptgenError", "PhaseInputError", "PhaseSLM", "PowerCeilingError",
    "SLMTiming", "all_lasers_safe_off", "check_phase", "open_lasers",
]
