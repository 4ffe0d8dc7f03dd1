"""Device interfaces and drivers: SLMs, camera, laser, and what every layer shares about the
bench. Imports nothing of optgen.calibration, optgen.lab or optgen.simulators.

The names below are imported when first used: ``import optgen.drivers.errors`` does not load
slmsuite and OpenCV.
"""

from __future__ import annotations

from importlib import import_module

_NAMES = {
    "BenchCamera": "camera",
    "CameraTiming": "identity", "DeviceIdentity": "identity", "SLMTiming": "identity",
    "CaptureTimeout": "errors", "DeviceError": "errors", "LaserSafetyError": "errors", "OptgenError": "errors",
    "PhaseInputError": "errors", "PowerCeilingError": "errors",
    "Laser": "laser", "all_lasers_safe_off": "laser", "open_lasers": "laser",
    "PhaseSLM": "slm", "check_phase": "slm",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'optgen.drivers' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
