"""Coherent OBIS (LX/LS) lasers over their serial port (USB virtual COM port or RS-232).

Protocol (Coherent's SCPI-like command set): 8N1, commands end in CR LF, replies end in CR LF.
With handshaking on (the power-up default, and what this driver sets) a query is answered by
its value line and then ``OK``, a command by ``OK``, and a refused command or query by an
``ERR-nnn`` line. The driver puts the laser in internal CW constant-power mode
(``SOUR:AM:INT CWP``); powers are in watts.
"""

from __future__ import annotations

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
    wavelength_in,
)
from optgen.drivers.lasers._serial_link import LinkTimeout, SerialLink, SerialPort

__all__ = ["ObisLaser", "OBIS_FAULT_BITS"]

# SYST:FAUL? is a hexadecimal bit field. Bit names as the OBIS manual's fault-code table gives
# them (read from the open-source obis-laser driver, which quotes the manual's table 7-6).
OBIS_FAULT_BITS = {
    0: "base plate temperature fault", 1: "diode temperature fault", 2: "internal temperature fault",
    3: "laser power supply fault", 4: "I2C error", 5: "diode over current", 6: "memory checksum error",
    7: "checksum recovery", 8: "buffer overflow", 9: "warm-up time limit exceeded",
    10: "TEC driver error", 11: "bus error", 12: "diode temperature limit error",
    13: "laser ready fault", 14: "photodiode fault", 15: "fatal fault", 16: "start-up fault",
    17: "watchdog timer reset", 18: "field calibration error", 20: "laser over power fault",
}

_ERROR_MEANINGS = {"ERR-100": "unrecognised command or query"}


def _is_error(line: str) -> bool:
    return line.upper().startswith("ERR")


def _meaning(line: str) -> str:
    return _ERROR_MEANINGS.get(line.upper(), "see the error-code table in the OBIS manual")


class ObisLaser(ConnectedLaser):
    """A Coherent OBIS laser on a serial port.

    ``expected_model`` must appear in the ``*IDN?`` reply; the wavelength in that reply must
    match ``wavelength_nm`` within ``wavelength_tolerance_nm`` (None skips the check).
    ``opener`` replaces pyserial (tests pass a scripted fake).
    """

    driver = "obis"

    def __init__(self, port: str, name: str, wavelength_nm: float, max_power_w: float,
                 timeout_s: float = 1.0, *, baudrate: int = 115200, expected_model: str | None = "OBIS",
                 wavelength_tolerance_nm: float | None = 2.0,
                 opener: Callable[[], SerialPort] | None = None):
        super().__init__(name, wavelength_nm, max_power_w, port)
        self.expected_model = expected_model
        self.wavelength_tolerance_nm = wavelength_tolerance_nm
        self._link = SerialLink(port, device=name, baudrate=baudrate, write_terminator=b"\r\n",
                                timeout_s=timeout_s, opener=opener)
        self._start()

    # --- protocol ---------------------------------------------------------------------
    def _query(self, command: str) -> str:
        value, ack = self._link.exchange(command, 2, is_error=_is_error, meaning=_meaning)
        if ack.upper() != "OK":
            raise DeviceError(self.name, f"garbled reply to {command!r}: expected 'OK' after "
                                         f"{value!r}, got {ack!r}")
        return value

    def _command(self, command: str) -> None:
        (ack,) = self._link.exchange(command, 1, is_error=_is_error, meaning=_meaning)
        if ack.upper() != "OK":
            raise DeviceError(self.name, f"garbled reply to {command!r}: expected 'OK', got {ack!r}")

    # --- connection -------------------------------------------------------------------
    def watchdog_spec(self) -> dict | None:
        return self._link.watchdog_spec("SOUR:AM:STAT OFF", "SOUR:AM:STAT?", ("OFF",), ("ON",))

    def _send_off_blind(self) -> None:
        self._link.write_blind("SOUR:AM:STAT OFF")

    def _open_transport(self) -> None:
        self._link.open()

    def _close_transport(self) -> None:
        self._link.close()

    def _handshake(self, previous: DeviceIdentity | None) -> LaserReadback:
        try:  # frame every reply with OK; a laser left with handshaking off may not acknowledge this one
            self._command("SYST:COMM:HAND ON")
        except LinkTimeout:
            pass
        idn = self._query("*IDN?")
        check_model(self.name, idn, self.expected_model, "*IDN?")
        check_wavelength(self.name, wavelength_in(idn), self.wavelength_nm, self.wavelength_tolerance_nm,
                         "in its *IDN? reply")
        serial = self._query("SYST:INF:SNUM?")
        self._accept_identity(_identity_from_idn(idn, serial), previous)
        self._device_max_w = parse_float(self.name, "SOUR:POW:LIM:HIGH?", self._query("SOUR:POW:LIM:HIGH?"))
        self._command("SOUR:AM:INT CWP")
        return LaserReadback(emission=self._get_emission_hw(), setpoint_w=self._get_power_setpoint_hw(),
                             faults=tuple(self._get_faults_hw()))

    # --- hardware hooks ---------------------------------------------------------------
    def _set_power_hw(self, watts: float) -> None:
        self._command(f"SOUR:POW:LEV:IMM:AMPL {format_fixed(watts, self.ceiling_w)}")

    def _get_power_setpoint_hw(self) -> float:
        return parse_float(self.name, "SOUR:POW:LEV:IMM:AMPL?", self._query("SOUR:POW:LEV:IMM:AMPL?"))

    def _get_measured_power_hw(self) -> float:
        return parse_float(self.name, "SOUR:POW:LEV?", self._query("SOUR:POW:LEV?"))

    def _set_emission_hw(self, on: bool) -> None:
        self._command("SOUR:AM:STAT ON" if on else "SOUR:AM:STAT OFF")

    def _get_emission_hw(self) -> bool:
        return parse_on_off(self.name, "SOUR:AM:STAT?", self._query("SOUR:AM:STAT?"), on=("ON",), off=("OFF",))

    def _get_faults_hw(self) -> list[str]:
        reply = self._query("SYST:FAUL?")
        try:
            code = int(reply, 16)
        except ValueError:
            raise DeviceError(self.name, f"garbled reply to 'SYST:FAUL?': {reply!r} is not a hexadecimal "
                                         f"fault code") from None
        faults = [OBIS_FAULT_BITS.get(bit, f"fault bit {bit}") for bit in range(32) if code >> bit & 1]
        interlock_closed = parse_on_off(self.name, "SYST:LOCK?", self._query("SYST:LOCK?"),
                                        on=("ON",), off=("OFF",))
        if not interlock_closed:
            faults.append("interlock open or key switch off (SYST:LOCK? = OFF)")
        return faults


def _identity_from_idn(idn: str, serial: str) -> DeviceIdentity:
    """'Coherent, Inc - OBIS 405nm 50mW C - V1.0.1 - Dec 14 2010' -> vendor, model, firmware."""
    parts = [p.strip() for p in idn.split(" - ")]
    if len(parts) >= 3:
        return DeviceIdentity(parts[0], parts[1], serial, " - ".join(parts[2:]))
    return DeviceIdentity("Coherent", idn, serial, "")
