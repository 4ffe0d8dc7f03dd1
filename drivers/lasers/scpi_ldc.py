"""A laser diode on a SCPI laser-diode controller over VISA (Thorlabs CLD101x / ITC4000 family).

The controller drives a current, not a power. This driver works in constant-current mode
(``SOUR:FUNC:MODE CURR``) and converts with a linear light-current model the bench file
states: P = slope_w_per_a * (I - threshold_a) above threshold, 0 below; a power of 0 sets
0 A. So the setpoint it reports is the model's power at the current the controller reports,
and the device maximum is the model's power at the controller's current limit
(``SOUR:CURR:LIM?``): both are only as right as the slope measured on the bench.
The measured power is the controller's monitor-photodiode reading, ``MEAS:POW2?`` on the
Thorlabs ITC4000/CLD101x (it needs the photodiode responsivity set on the controller), or,
with ``power_query=None``, the model applied to the measured current ``MEAS:CURR?``.

Each command is followed by ``SYST:ERR?``; a non-zero error code is raised. VISA back end:
pyvisa-py (``"@py"``) by default; a pyvisa-sim YAML (``"file.yaml@sim"``) for the twin.
USB resources with pyvisa-py also need pyusb and libusb.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import DeviceIdentity
from optgen.drivers.lasers._base import ConnectedLaser
from optgen.drivers.lasers._common import LaserReadback, check_model, format_fixed, parse_float, parse_on_off
from optgen.drivers.lasers._serial_link import DeviceRefused

__all__ = ["ScpiLaserDiodeController"]


class ScpiLaserDiodeController(ConnectedLaser):
    """A laser diode driven by a SCPI controller; power set through a stated L-I slope.

    ``open_resource(resource, **kwargs)`` replaces ``pyvisa.ResourceManager(visa_library)
    .open_resource`` (tests pass a scripted fake).
    """

    driver = "scpi-ldc"

    def __init__(self, resource: str, name: str, wavelength_nm: float, max_power_w: float,
                 timeout_s: float = 1.0, *, slope_w_per_a: float, threshold_a: float = 0.0,
                 expected_model: str | None = None, visa_library: str = "@py",
                 power_query: str | None = "MEAS:POW2?", termination: str = "\n",
                 open_resource: Callable[..., Any] | None = None):
        super().__init__(name, wavelength_nm, max_power_w, resource)
        for label, value, ok in (("slope_w_per_a", slope_w_per_a, "> 0"), ("threshold_a", threshold_a, ">= 0"),
                                 ("timeout_s", timeout_s, "> 0")):
            good = isinstance(value, (int, float)) and math.isfinite(value)
            if not good or not (value > 0 if ok == "> 0" else value >= 0):
                self.closed = True
                raise DeviceError(name, f"{label} = {value!r}: expected a finite number {ok}")
        self.slope_w_per_a = float(slope_w_per_a)
        self.threshold_a = float(threshold_a)
        self.expected_model = expected_model
        self.visa_library = visa_library
        self.power_query = power_query
        self.termination = termination
        self.timeout_s = float(timeout_s)
        self._open_resource = open_resource
        self._rm: Any = None
        self._res: Any = None
        self._current_limit_a = 0.0
        self._start()

    # --- light-current model ------------------------------------------------------------
    def power_at(self, amps: float) -> float:
        """The model's power (W) at a diode current (A)."""
        return max(0.0, self.slope_w_per_a * (amps - self.threshold_a))

    def current_for(self, watts: float) -> float:
        """The diode current (A) the model needs for a power (W); 0 W is 0 A."""
        return 0.0 if watts <= 0 else self.threshold_a + watts / self.slope_w_per_a

    # --- protocol ---------------------------------------------------------------------
    def _query(self, command: str) -> str:
        res = self._require_resource(command)
        try:
            return str(res.query(command)).strip()
        except Exception as exc:
            raise self._visa_failed(command, exc) from exc

    def _command(self, command: str) -> None:
        res = self._require_resource(command)
        try:
            res.write(command)
        except Exception as exc:
            raise self._visa_failed(command, exc) from exc
        self._check_error(command)

    def _check_error(self, command: str) -> None:
        reply = self._query("SYST:ERR?")
        code_text = reply.split(",", 1)[0].strip()
        try:
            code = int(code_text)
        except ValueError:
            raise DeviceError(self.name, f"garbled reply to 'SYST:ERR?' after {command!r}: {reply!r}") from None
        if code != 0:
            raise DeviceRefused(self.name, command, reply, "from SYST:ERR?")

    def _require_resource(self, command: str) -> Any:
        if self._res is None:
            raise DeviceError(self.name, f"VISA resource {self.address} is not open (sending {command!r}); "
                                         f"call reconnect()")
        return self._res

    def _visa_failed(self, command: str, exc: Exception) -> DeviceError:
        if "VI_ERROR_TMO" in str(exc) or isinstance(exc, TimeoutError):
            return DeviceError(
                self.name,
                f"no reply to {command!r} from {self.address} within {self.timeout_s:g} s. Usual causes: "
                f"wrong termination (this driver uses {self.termination!r}), a command the controller does "
                f"not know (see SYST:ERR?), the controller is off, or the wrong resource")
        return DeviceError(self.name, f"VISA I/O with {self.address} failed on {command!r}: {exc}. The "
                                      f"controller may have been unplugged; reconnect() reopens it")

    # --- connection -------------------------------------------------------------------
    def watchdog_spec(self) -> dict | None:
        """The controller over VISA: the watchdog can open it once this process has let go of it
        (it died); a stalled process still holds it (see :meth:`watchdog_coverage`)."""
        if self._open_resource is not None:
            return None
        return {"transport": "visa", "resource": self.address, "visa_library": self.visa_library,
                "read_terminator": self.termination, "write_terminator": self.termination,
                "off": "OUTP OFF", "query": "OUTP?", "off_replies": ["0", "OFF"], "on_replies": ["1", "ON"]}

    def _covered_text(self) -> str:
        return self._covered_once_free_text()

    def _send_off_blind(self) -> None:
        if self._res is None:
            self._open_transport()
        try:
            self._res.write("OUTP OFF")
        except Exception as exc:
            raise self._visa_failed("OUTP OFF", exc) from exc

    def _open_transport(self) -> None:
        kwargs = dict(read_termination=self.termination, write_termination=self.termination,
                      timeout=int(math.ceil(self.timeout_s * 1000)))
        try:
            if self._open_resource is not None:
                self._res = self._open_resource(self.address, **kwargs)
            else:
                try:
                    import pyvisa
                except ImportError as exc:  # pragma: no cover - depends on the environment
                    raise ImportError("the scpi-ldc driver needs pyvisa and pyvisa-py: "
                                      "pip install pyvisa pyvisa-py") from exc
                self._rm = pyvisa.ResourceManager(self.visa_library)
                self._res = self._rm.open_resource(self.address, **kwargs)
        except ImportError:
            raise
        except Exception as exc:
            self._close_transport()
            raise DeviceError(self.name, f"cannot open VISA resource {self.address!r} "
                                         f"(library {self.visa_library!r}): {exc}. Check the resource "
                                         f"name (pyvisa-shell: list), cable and power") from exc

    def _close_transport(self) -> None:
        # Only the resource: pyvisa shares one ResourceManager session per back end, and closing
        # it would also end every other device's session opened through that back end.
        res, self._res, self._rm = self._res, None, None
        if res is not None:
            try:
                res.close()
            except Exception:  # closing a dead link must not hide the real error
                pass

    def _handshake(self, previous: DeviceIdentity | None) -> LaserReadback:
        idn = self._query("*IDN?")
        fields = [f.strip() for f in idn.split(",")]
        if len(fields) != 4:
            raise DeviceError(self.name, f"unexpected identity: *IDN? answered {idn!r}, expected "
                                         f"'vendor,model,serial,firmware'. Is this the right resource?")
        check_model(self.name, idn, self.expected_model, "*IDN?")
        self._accept_identity(DeviceIdentity(*fields), previous)
        self._current_limit_a = parse_float(self.name, "SOUR:CURR:LIM?", self._query("SOUR:CURR:LIM?"))
        if self._current_limit_a <= self.threshold_a:
            raise DeviceError(self.name, f"the controller's current limit {self._current_limit_a:g} A is not "
                                         f"above the threshold {self.threshold_a:g} A: the laser cannot emit")
        self._device_max_w = self.power_at(self._current_limit_a)
        self._command("SOUR:FUNC:MODE CURR")
        return LaserReadback(emission=self._get_emission_hw(), setpoint_w=self._get_power_setpoint_hw(),
                             faults=tuple(self._get_faults_hw()))

    # --- hardware hooks ---------------------------------------------------------------
    def _set_power_hw(self, watts: float) -> None:
        amps = self.current_for(watts)
        self._command(f"SOUR:CURR {format_fixed(amps, self._current_limit_a)}")

    def _get_power_setpoint_hw(self) -> float:
        return self.power_at(parse_float(self.name, "SOUR:CURR?", self._query("SOUR:CURR?")))

    def _get_measured_power_hw(self) -> float:
        if self.power_query is None:
            return self.power_at(parse_float(self.name, "MEAS:CURR?", self._query("MEAS:CURR?")))
        return parse_float(self.name, self.power_query, self._query(self.power_query))

    def _set_emission_hw(self, on: bool) -> None:
        self._command("OUTP ON" if on else "OUTP OFF")

    def _get_emission_hw(self) -> bool:
        return parse_on_off(self.name, "OUTP?", self._query("OUTP?"))

    def _get_faults_hw(self) -> list[str]:
        faults = []
        if parse_on_off(self.name, "OUTP:PROT:INTL:TRIP?", self._query("OUTP:PROT:INTL:TRIP?")):
            faults.append("interlock tripped (OUTP:PROT:INTL:TRIP? = 1)")
        if parse_on_off(self.name, "OUTP:PROT:KEYL:TRIP?", self._query("OUTP:PROT:KEYL:TRIP?")):
            faults.append("key lock tripped (OUTP:PROT:KEYL:TRIP? = 1)")
        return faults
