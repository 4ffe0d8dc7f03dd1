"""The laser interface: power with a ceiling, emission, faults and a mandatory, verified safe-off.

Public methods validate and then call small ``_..._hw`` hooks that a driver implements.
Every open laser is kept in a registry so that :func:`all_lasers_safe_off` (called at
interpreter exit) can turn every one of them off.

A laser that another process can reach (:meth:`Laser.watchdog_spec`) gets a watchdog process
(:mod:`optgen.drivers.watchdog`) before its emission first goes on: if this process dies or
stalls, the watchdog turns the emission off and verifies it. A laser whose light ends with this
process (the twin's) needs none (:attr:`Laser.light_ends_with_process`).
"""

from __future__ import annotations

import atexit
import logging
import math
import weakref
from abc import ABC, abstractmethod

from optgen.drivers import stop
from optgen.drivers.errors import DeviceError, LaserSafetyError, PowerCeilingError
from optgen.drivers.identity import DeviceIdentity

__all__ = ["Laser", "all_lasers_safe", "all_lasers_safe_off", "open_lasers"]

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


def all_lasers_safe(log_waiting: bool = False) -> bool:
    """Whether every laser this process made is verified off, has light that ends with the
    process, or has a watchdog that took over (what lets a stuck process end itself)."""
    unsafe = [laser.name for laser in list(_OPEN_LASERS) if not laser.safe_to_leave()]
    if unsafe and log_waiting:
        log.critical("not exiting: %s not verified off and not covered by a watchdog; waiting for it",
                     ", ".join(unsafe))
    return not unsafe


def _register(laser: "Laser") -> None:
    global _ATEXIT_REGISTERED
    _OPEN_LASERS.add(laser)
    if not _ATEXIT_REGISTERED:
        atexit.register(all_lasers_safe_off)
        stop.set_laser_safety_check(all_lasers_safe)
        _ATEXIT_REGISTERED = True


class Laser(ABC):
    """A laser source with a power ceiling set by the bench file.

    Setters return what the device reports back, not what was asked.
    """

    light_ends_with_process = False    # the twin's laser: nothing to turn off once this process is gone
    watchdog_s = 2.0                   # the watchdog's heartbeat bound (the bench file's [safety] watchdog_s)

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
        self.verified_off = False  # emission read back off since it was last asked on
        self.asked_on = False      # whether this process ever asked it to emit
        self.watchdog = None       # optgen.drivers.watchdog.LaserWatchdog, once emission first goes on
        self._reports: list[dict] = []
        # told the read-back after each change: observer(emission=bool | None, setpoint_w=float | None)
        self.observers: list = []
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
        setpoint = self.power_setpoint()
        self._notify(setpoint_w=setpoint)
        return setpoint

    def power_setpoint(self) -> float:
        """The setpoint the device reports (W)."""
        return float(self._get_power_setpoint_hw())

    def measured_power(self) -> float:
        """The output power the device measures now (W)."""
        return float(self._get_measured_power_hw())

    # --- emission -------------------------------------------------------------------
    def set_emission(self, on: bool) -> bool:
        """Switch emission on or off; returns the read-back state. Before light goes on, a laser
        another process can reach gets its watchdog (LaserSafetyError if it cannot start)."""
        self._require_open()
        if on:
            self._ensure_watchdog()
            self.verified_off = False
            self.asked_on = True
            self._tell_watchdog("on")
        self._set_emission_hw(bool(on))
        state = self.emission
        if state:
            self._notify(emission=True)
        else:
            self._mark_off()
        return state

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

    def _off_with_recovery(self) -> None:
        """Emission off, verified. If that fails (a lost link, replies that never come), the
        emission-off command is sent blind first - a laser that still hears commands but whose
        replies are lost goes off - and then the link is reopened and the off verified."""
        with stop.active_shield():
            try:
                self._emission_off_verified()
                return
            except LaserSafetyError as exc:
                first = str(exc)          # text only: an exception kept here would hold this frame
            try:
                self._send_off_blind()
            except Exception as exc:  # noqa: BLE001 - the reconnect below still tries
                log.warning("%s: sending emission-off blind failed: %s", self.name, exc)
            try:
                self.reconnect()
                self._emission_off_verified()
            except Exception as exc:
                raise LaserSafetyError(self.name, f"{first}; emission-off was then sent blind, and verifying it "
                                                  f"after reconnecting failed: {exc}") from None
            log.warning("%s: emission verified off after sending it blind and reconnecting (%s)", self.name, first)

    def _send_off_blind(self) -> None:
        """Write the emission-off command without waiting for any reply (reopening the link if
        it is closed); drivers over a link implement it."""
        raise DeviceError(self.name, "this driver cannot send emission-off blind")

    def _emission_off_verified(self, attempts: int = 3) -> None:
        """Send emission-off and read it back, up to ``attempts`` times."""
        last_error: Exception | None = None
        for _ in range(attempts):
            try:
                self._set_emission_hw(False)
                if not self._get_emission_hw():
                    self._mark_off()
                    return
            except Exception as exc:  # a flaky link must not stop the retries
                last_error = exc
        detail = f" (last error: {last_error})" if last_error else " (device still reports emission on)"
        raise LaserSafetyError(self.name, f"emission could not be verified off after {attempts} attempts{detail}")

    # --- the watchdog outside the process ---------------------------------------------
    def watchdog_spec(self) -> dict | None:
        """How another process reaches this laser and turns it off (see
        :mod:`optgen.drivers.watchdog_process`), or None where it cannot."""
        return None

    def watchdog_coverage(self) -> str:
        """One line for ``optgen devices``: what happens to the light if this process dies."""
        if self.light_ends_with_process:
            return "its light ends with the optgen process (a twin): no watchdog needed"
        if self.watchdog_spec() is None:
            return ("NOT covered: no other process can reach this laser; the bench needs a hardware interlock "
                    "or a modulation input that turns it off (see the README)")
        return self._covered_text()

    def _covered_text(self) -> str:
        return (f"covered: a watchdog process turns emission off and verifies it if optgen dies or stalls "
                f"for {self.watchdog_s:g} s")

    def safe_to_leave(self) -> bool:
        """Never asked to emit, verified off, light that ends with this process, or a watchdog
        that took over."""
        if not self.asked_on or self.verified_off or self.light_ends_with_process:
            return True
        return bool(self.watchdog is not None and (self.watchdog.acted or {}).get("verified_off"))

    def report_to(self, folder, kind: str = "run") -> None:
        """Where the watchdog writes what it did, should it act (a run folder, a calibration
        store); ``None`` forgets it."""
        self._reports = [] if folder is None else [{"folder": str(folder), "kind": kind}]
        if self.watchdog is not None:
            self.watchdog.report_to(self._reports)

    def _ensure_watchdog(self) -> None:
        if self.light_ends_with_process:
            return
        spec = self.watchdog_spec()
        if spec is None:
            return
        if self.watchdog is None:
            from optgen.drivers.watchdog import LaserWatchdog

            self.watchdog = LaserWatchdog(self.name, spec, self.watchdog_s)
            self.watchdog.reports = self._reports
        if not self.watchdog.running:
            self.watchdog.start()

    def _tell_watchdog(self, emission: str) -> None:
        if self.watchdog is not None:
            self.watchdog.state(emission)

    def _mark_off(self) -> None:
        self.verified_off = True
        self._tell_watchdog("off")
        self._notify(emission=False)

    def _notify(self, **state) -> None:
        for observer in self.observers:
            observer(**state)

    # --- life cycle -----------------------------------------------------------------
    def close(self) -> None:
        """Safe-off, then release the connection (and, once verified off, the watchdog). Safe to
        call twice."""
        if self.closed:
            return
        try:
            self.safe_off()
        finally:
            self.closed = True
            try:
                self._close_hw()
            finally:
                if self.watchdog is not None and self.verified_off:
                    self.watchdog.close()      # a laser not verified off keeps its watchdog

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
