"""Cobolt 04/06/08-series lasers over their serial port (USB virtual COM port or RS-232).

Protocol (Cobolt's short lowercase commands): 115200 baud 8N1, commands end in CR, replies
end in CR LF. A query is answered by one value line, a command by ``OK``, a refused one by a
``Syntax error: ...`` line (``Syntax error: illegal command`` for an unknown command).
The driver switches autostart off (``@cobas 0``, else ``l1`` is refused) and selects
constant-power mode (``cp``); powers on the wire are in watts, except ``gmlp?`` (mW).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import DeviceIdentity
from optgen.drivers.lasers._base import ConnectedLaser
from optgen.drivers.lasers._common import (
    LaserReadback,
    check_model,
    check_wavelength,
    format_fixed,
    parse_float,
    parse_on_off,
)
from optgen.drivers.lasers._serial_link import SerialLink, SerialPort

__all__ = ["CoboltLaser", "COBOLT_FAULTS"]

# f? codes (Cobolt's own pycobolt library and the 04/06-series manuals)
COBOLT_FAULTS = {"1": "temperature error", "3": "interlock error", "4": "constant power time out"}

# a Cobolt model number starts with the wavelength and the series: 0561-06-01-0100-C
_MODEL_NUMBER = re.compile(r"^(\d{4})-(\d{2})-")


def _is_error(line: str) -> bool:
    low = line.lower()
    return low.startswith("syntax error") or low.startswith("error")


class CoboltLaser(ConnectedLaser):
    """A Cobolt laser on a serial port.

    The model number (``glm?``) must look like a Cobolt part number and contain
    ``expected_model`` when given (e.g. ``"-06-"`` for the 06 series); the wavelength it starts
    with must match ``wavelength_nm`` within ``wavelength_tolerance_nm`` (None skips the check).
    Old 04-series firmware without ``glm?`` is refused with a clear error.
    """

    driver = "cobolt"

    def __init__(self, port: str, name: str, wavelength_nm: float, max_power_w: float,
                 timeout_s: float = 1.0, *, baudrate: int = 115200, expected_model: str | None = None,
                 wavelength_tolerance_nm: float | None = 2.0,
                 opener: Callable[[], SerialPort] | None = None):
        super().__init__(name, wavelength_nm, max_power_w, port)
        self.expected_model = expected_model
        self.wavelength_tolerance_nm = wavelength_tolerance_nm
        self._link = SerialLink(port, device=name, baudrate=baudrate, write_terminator=b"\r",
                                timeout_s=timeout_s, opener=opener)
        self._start()

    # --- protocol ---------------------------------------------------------------------
    def _query(self, command: str) -> str:
        (value,) = self._link.exchange(command, 1, is_error=_is_error)
        return value

    def _command(self, command: str) -> None:
        (ack,) = self._link.exchange(command, 1, is_error=_is_error)
        if ack.upper() != "OK":
            raise DeviceError(self.name, f"garbled reply to {command!r}: expected 'OK', got {ack!r}")

    def clear_faults(self) -> list[str]:
        """Clear a latched fault (``cf``) and return the faults still active."""
        self._require_open()
        self._command("cf")
        return self.faults()

    # --- connection -------------------------------------------------------------------
    def watchdog_spec(self) -> dict | None:
        return self._link.watchdog_spec("l0", "l?", ("0",), ("1",))

    def _send_off_blind(self) -> None:
        self._link.write_blind("l0")

    def _open_transport(self) -> None:
        self._link.open()

    def _close_transport(self) -> None:
        self._link.close()

    def _handshake(self, previous: DeviceIdentity | None) -> LaserReadback:
        serial = self._query("sn?")
        try:
            model = self._query("glm?")
        except DeviceError as exc:
            raise DeviceError(self.name, f"the laser does not report a model number (glm?): {exc}. "
                                         f"Old 04-series firmware is not supported") from exc
        match = _MODEL_NUMBER.match(model)
        if match is None:
            raise DeviceError(self.name, f"unexpected identity: model {model!r} from glm? is not a Cobolt "
                                         f"model number (like 0561-06-01-0100-C). Is this the right port?")
        check_model(self.name, model, self.expected_model, "model number")
        check_wavelength(self.name, float(match.group(1)), self.wavelength_nm, self.wavelength_tolerance_nm,
                         "in its model number")
        firmware = self._query("gfv?")
        self._accept_identity(DeviceIdentity("Cobolt", model, serial, firmware), previous)
        self._command("@cobas 0")
        self._device_max_w = parse_float(self.name, "gmlp?", self._query("gmlp?")) / 1000.0
        self._command("cp")
        return LaserReadback(emission=self._get_emission_hw(), setpoint_w=self._get_power_setpoint_hw(),
                             faults=tuple(self._get_faults_hw()))

    # --- hardware hooks ---------------------------------------------------------------
    def _set_power_hw(self, watts: float) -> None:
        self._command(f"p {format_fixed(watts, self.ceiling_w)}")

    def _get_power_setpoint_hw(self) -> float:
        return parse_float(self.name, "p?", self._query("p?"))

    def _get_measured_power_hw(self) -> float:
        return parse_float(self.name, "pa?", self._query("pa?"))

    def _set_emission_hw(self, on: bool) -> None:
        self._command("l1" if on else "l0")

    def _get_emission_hw(self) -> bool:
        return parse_on_off(self.name, "l?", self._query("l?"), on=("1",), off=("0",))

    def _get_faults_hw(self) -> list[str]:
        faults = []
        code = self._query("f?")
        if code != "0":
            if not code.isdigit():
                raise DeviceError(self.name, f"garbled reply to 'f?': {code!r} is not a fault code")
            faults.append(COBOLT_FAULTS.get(code, f"fault code {code}"))
        if parse_on_off(self.name, "ilk?", self._query("ilk?"), on=("1",), off=("0",)):
            faults.append("interlock open (ilk? = 1)")
        return faults
