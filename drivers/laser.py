"""The laser interface: power with a ceiling, emission, faults and a mandatory, verified safe-off.

Public methods validate and then call small ``_..._hw`` hooks that a driver implements.
Every open laser is kept in a registry so that :func:`all_lasers_safe_off` (called at
interpreter exit and by the run loop's signal handlers) can turn every one of them off.
"""

from __future__ import annotations

import atexit
import logging
import math
import weakref
from abc import ABC, abstractmethod

from .errors import DeviceError, LaserSafetyError, PowerCeilingError
from .identity import DeviceIdentity

__all__ = ["Laser", "all_lasers_safe_off", "open_lasers"]

log = logging.getLogger(__name__)

_OPEN_LASERS: "weakref.WeakSet[Laser]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def open_lasers() -> list["Laser"]:
    """Every laser object created and not yet closed."""
    return [laser for laser in list(_OPEN_LASERS) if not laser.closed]


def all_lasers_safe_off() -> list[str]:
    """Turn every open laser off; returns the errors (one line per laser that failed)."""
    errors = []
    for laser in open_lasers():
        try:
            laser.safe_off()
        except Exception as exc:  # keep going: the other lasers must go off too
            errors.append(f"{laser.name}: {exc}")
            log.critical("could not verify %s off: %s", laser.name, exc)
    return errors


def _register(laser: "Laser") -> None:
    global _ATEXIT_REGISTERED
    _OPEN_LASERS.add(laser)
    if not _ATEXIT_REGISTERED:
        atexit.register(all_lasers_safe_off)
        _ATEXIT_REGISTERED = True


class Laser(ABC):
    """A laser source with a power ceiling set by the bench file.

    Setters return what the device reports back, not what was asked.
    """

    def __init__(self, name: str, wavelength_nm: float, max_power_w: float):
        if not (math.isfinite(wavelength_nm) and wavelength_nm > 0):
            raise DeviceError(name, f"wavelength {wavelength_nm!r} nm: expected a positive number")
        if not (math.isfinite(max_power_w) and max_power_w > 0):
            raise DeviceError(name, f"power ceiling {max_power_w!r} W: expected a positive number")
        self.name = name
        self.wavelength_nm = float(wavelength_nm)
        self.max_power_w = float(max_power_w)
        self.closed = False
        self.emission_on_s = 0.0  # seconds of emission seen by this object (for energy logging)
        _register(self)

    # --- identity -------------------------------------------------------------------
    @property
    @abstractmethod
    def identity(self) -> DeviceIdentity:
        """Vendor, model, serial and firmware as the device reports them."""

    @property
    def device_max_power_w(self) -> float:
        """The most the device itself can emit; drivers override with the device's value."""
        return math.inf

    @property
    def ceiling_w(self) -> float:
        """The effective ceiling: the bench file's, never above the device's own maximum."""
        return min(self.max_power_w, self.device_max_power_w)

    # --- power ----------------------------------------------------------------------
    def check_power(self, watts: float) -> float:
        """Validate a power request without sending it; returns it as a float."""
        try:
            watts = float(watts)
        except (TypeError, ValueError):
            raise PowerCeilingError(self.name, f"power {watts!r}: expected a number of watts") from None
        if not math.isfinite(watts) or watts < 0:
            raise PowerCeilingError(self.name, f"power {watts!r} W: expected a finite value >= 0")
        if watts > self.ceiling_w:
            raise PowerCeilingError(
                self.name,
                f"power {watts * 1e3:.6g} mW is above the ceiling of {self.ceiling_w * 1e3:.6g} mW "
                f"(bench file max_power_mw = {self.max_power_w * 1e3:.6g}, "
                f"device maximum = {self.device_max_power_w * 1e3:.6g} mW)",
            )
        return watts

    def set_power(self, watts: float) -> float:
        """Set the power setpoint (W) after checking the ceiling; returns the read-back setpoint."""
        self._require_open()
        watts = self.check_power(watts)
        self._set_power_hw(watts)
        return self.power_setpoint()

    def power_setpoint(self) -> float:
        """The setpoint the device reports (W)."""
        return float(self._get_power_setpoint_hw())

    def measured_power(self) -> float:
        """The output power the device measures now (W)."""
        return float(self._get_measured_power_hw())

    # --- emission -------------------------------------------------------------------
    def set_emission(self, on: bool) -> bool:
        """Switch emission on or off; returns the read-back state."""
        self._require_open()
        self._set_emission_hw(bool(on))
        return self.emission

    @property
    def emission(self) -> bool:
        return bool(self._get_emission_hw())

    def reconnect(self):
        """Reopen a lost connection and read the state back (a ``LaserReadback``); drivers
        that talk over a link override this."""
        raise DeviceError(self.name, "this laser driver cannot reconnect")

    def faults(self) -> list[str]:
        """Active faults and interlocks, as the device words them (empty if none)."""
        return list(self._get_faults_hw())

    @abstractmethod
    def safe_off(self) -> None:
        """Turn emission off and verify it by read-back; raise LaserSafetyError if not verified.

        Mandatory for every driver: it is what the run loop calls on every exit path.
        Implementations usually call :meth:`_emission_off_verified`.
        """

    def _emission_off_verified(self, attempts: int = 3) -> None:
        """Send emission-off and read it back, up to ``attempts`` times."""
        last_error: Exception | None = None
        for _ in range(attempts):
            try:
                self._set_emission_hw(False)
                if not self._get_emission_hw():
                    return
            except Exception as exc:  # a flaky link must not stop the retries
                last_error = exc
        detail = f" (last error: {last_error})" if last_error else " (device still reports emission on)"
        raise LaserSafetyError(self.name, f"emission could not be verified off after {attempts} attempts{detail}")

    # --- life cycle -----------------------------------------------------------------
    def close(self) -> None:
        """Safe-off, then release the connection. Safe to call twice."""
        if self.closed:
            return
        try:
            self.safe_off()
        finally:
            self.closed = True
            self._close_hw()

    def __enter__(self) -> "Laser":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _require_open(self) -> None:
        if self.closed:
            raise DeviceError(self.name, "the laser is closed")

    def describe(self) -> dict:
        """Settings snapshot for run metadata."""
        return {
            "name": self.name,
            "identity": self.identity.as_dict(),
            "wavelength_nm": self.wavelength_nm,
            "max_power_w": self.max_power_w,
            "ceiling_w": self.ceiling_w,
            "power_setpoint_w": self.power_setpoint(),
            "emission": self.emission,
            "faults": self.faults(),
        }

    # --- hardware hooks -------------------------------------------------------------
    @abstractmethod
    def _set_power_hw(self, watts: float) -> None: ...

    @abstractmethod
    def _get_power_setpoint_hw(self) -> float: ...

    @abstractmethod
    def _get_measured_power_hw(self) -> float: ...

    @abstractmethod
    def _set_emission_hw(self, on: bool) -> None: ...

    @abstractmethod
    def _get_emission_hw(self) -> bool: ...

    def _get_faults_hw(self) -> list[str]:
        return []

    def _close_hw(self) -> None:
        """Release the connection (after safe-off)."""
