"""Exceptions raised by optgen's devices; each message names the device and what was expected."""

from __future__ import annotations


class OptgenError(Exception):
    """Base of every error optgen raises on purpose."""


class DeviceError(OptgenError):
    """A device refused a request or reported a fault."""

    def __init__(self, device: str, message: str):
        self.device = device
        super().__init__(f"{device}: {message}")


class PhaseInputError(DeviceError, ValueError):
    """A phase pattern is not what the SLM can show (shape, dtype, NaN/inf)."""


class PowerCeilingError(DeviceError, ValueError):
    """A laser power request above the bench's ceiling or the device's maximum."""


class LaserSafetyError(DeviceError):
    """The laser could not be verified off: treat the bench as unsafe."""


class LinkLost(DeviceError, ConnectionError):
    """The connection to a device failed mid-conversation (unplugged, switched off, a dead
    port); the device's ``reconnect()`` may restore it."""


class CaptureTimeout(DeviceError, TimeoutError):
    """The camera delivered no frame within the timeout."""
