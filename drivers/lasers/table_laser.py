"""Any laser whose serial or VISA protocol a command table describes (see :mod:`.command_table`).

The driver gives such a laser the whole optgen laser contract: the identity checked before
anything that changes the device is sent, the ceiling (never rounded above it), every setter
answered by the device's read-back, emission-off verified by the table's query (sent blind and
re-verified after reconnecting when replies are lost), a reconnect that refuses another laser,
and the watchdog process, which reaches the laser with the table's off command and query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import DeviceIdentity
from optgen.drivers.lasers._base import ConnectedLaser
from optgen.drivers.lasers._common import LaserReadback, check_model, check_wavelength
from optgen.drivers.lasers._serial_link import LinkTimeout, SerialLink, SerialPort
from optgen.drivers.lasers._visa_link import VisaLineLink
from optgen.drivers.lasers.command_table import CommandTable, Reading, TableCommand, load_table

__all__ = ["TableLaser"]


class TableLaser(ConnectedLaser):
    """A laser driven through a command table (a shipped table's name, a TOML path, or a
    :class:`CommandTable`). ``address`` is the serial port (or ``socket://``/``rfc2217://`` URL)
    for a serial table and the VISA resource name for a VISA one; ``baudrate`` overrides the
    table's. ``opener`` (serial) and ``open_resource`` (VISA) replace the real back ends in tests.
    """

    driver = "table"

    def __init__(self, address: str, name: str, wavelength_nm: float, max_power_w: float,
                 timeout_s: float = 1.0, *, table: str | Path | CommandTable, baudrate: int | None = None,
                 visa_library: str = "@py", wavelength_tolerance_nm: float | None = 2.0,
                 base_dir: str | Path | None = None, opener: Callable[[], SerialPort] | None = None,
                 open_resource: Callable[..., Any] | None = None):
        self.table = table if isinstance(table, CommandTable) else load_table(table, base_dir)
        self._asked: dict[str, list[str]] | None = None      # replies already read, during a fault read-out
        super().__init__(name, wavelength_nm, max_power_w, address)
        self.wavelength_tolerance_nm = wavelength_tolerance_nm
        t = self.table
        try:
            if t.transport == "serial":
                self._link: SerialLink | VisaLineLink = SerialLink(
                    address, device=name, baudrate=baudrate or t.baudrate, timeout_s=timeout_s, encoding=t.encoding,
                    write_terminator=t.write_terminator.encode("ascii"),
                    read_terminator=t.read_terminator.encode("ascii"), flow_control=t.flow_control, opener=opener)
            else:
                self._link = VisaLineLink(address, device=name, write_terminator=t.write_terminator,
                                          read_terminator=t.read_terminator, encoding=t.encoding,
                                          timeout_s=timeout_s, visa_library=visa_library,
                                          baudrate=baudrate or t.baudrate, open_resource=open_resource)
        except BaseException:
            self.closed = True
            raise
        self._start()

    # --- the conversation ---------------------------------------------------------------
    def _is_error(self, line: str) -> bool:
        return self.table.error is not None and self.table.error.search(line) is not None

    def _skip(self, line: str) -> bool:
        return any(p.search(line) for p in self.table.ignore)

    def _converse(self, command: str, lines: int) -> list[str]:
        ack = self.table.ack
        until = (lambda line: ack.search(line) is not None) if ack is not None else None
        return self._link.converse(command, lines=lines, until=until, skip=self._skip, is_error=self._is_error)

    def _reply(self, text: str, lines: int, pattern: re.Pattern | None) -> tuple[list[str], re.Match | None]:
        """Send ``text``; its reply lines and the first match of ``pattern`` in them. Without an
        ack line, a reply that does not match may be a late reply to an earlier command (one sent
        blind, one that timed out): up to two more lines are read for the real one."""
        replies = self._converse(text, lines)
        if pattern is None:
            return replies, None
        for attempt in range(3):
            for line in replies:
                match = pattern.search(line)
                if match is not None:
                    return replies, match
            if self.table.ack is not None or attempt == 2:
                break
            try:
                replies = replies + self._link.read_more(text, skip=self._skip, is_error=self._is_error)
            except LinkTimeout:
                break
        return replies, None

    def _send(self, command: TableCommand, value: str | None = None) -> None:
        """A command; its reply (the ack, or the table's command reply line) checked."""
        text = command.send if value is None else command.send.replace("{value}", value)
        if self._asked is not None:
            self._asked.clear()               # a command may change what the queries answer
        lines = 0 if self.table.ack is not None else self.table.command_lines
        replies, match = self._reply(text, lines, command.reply)
        if command.reply is not None and match is None:
            raise DeviceError(self.name, f"the device did not confirm {text!r}: it answered {replies!r}, "
                                         f"expected a line matching {command.reply.pattern!r} "
                                         f"(table {self.table.source})")

    def _ask(self, reading: Reading) -> tuple[list[str], re.Match | None]:
        """The reply to ``reading``'s query and its match. During a read-out (the connect handshake,
        the faults) a query asked already is not sent again: checks of one status word share a reply."""
        asked = self._asked
        if asked is not None and reading.query in asked:
            replies = asked[reading.query]
            return replies, next((m for m in map(reading.pattern.search, replies) if m is not None), None)
        replies, match = self._reply(reading.query, 1, reading.pattern)
        if asked is not None:
            asked[reading.query] = replies
        return replies, match

    def _match(self, reading: Reading) -> re.Match:
        replies, match = self._ask(reading)
        if match is not None:
            return match
        raise DeviceError(self.name, f"garbled reply to {reading.query!r}: {replies!r} has no match for "
                                     f"{reading.pattern.pattern!r} ([{reading.key}] of table {self.table.source})")

    def _value(self, reading: Reading) -> str:
        return self._match(reading).group("value").strip()

    def _number(self, reading: Reading, scale_w: float | None = None) -> float:
        match = self._match(reading)
        text = match.group("value").strip()
        scale = reading.scale
        if "unit" in reading.pattern.groupindex and match.group("unit") is not None:
            unit = match.group("unit")
            if unit not in reading.units:
                raise DeviceError(self.name, f"reply to {reading.query!r} is in {unit!r}: expected one of "
                                             f"{', '.join(reading.units)}")
            scale = reading.units[unit]
        try:
            if reading.format == "hex-fraction":
                number = int(text, 16) / reading.full_scale * (scale_w if scale_w is not None else math.nan)
            else:
                number = float(text) * scale
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            kind = "a hexadecimal number" if reading.format == "hex-fraction" else "a number"
            raise DeviceError(self.name, f"garbled reply to {reading.query!r}: {text!r} is not {kind}")
        return number

    def _flag(self, reading: Reading) -> bool:
        text = self._value(reading)
        if reading.format == "hex-bit":
            try:
                return bool(int(text, 16) >> reading.bit & 1)
            except ValueError:
                raise DeviceError(self.name, f"garbled reply to {reading.query!r}: {text!r} is not a hexadecimal "
                                             f"status word") from None
        word = text.upper()
        if word in reading.true_values:
            return True
        if word in reading.false_values:
            return False
        raise DeviceError(self.name, f"garbled reply to {reading.query!r}: {text!r}, expected one of "
                                     f"{', '.join(reading.true_values + reading.false_values)}")

    # --- connection -------------------------------------------------------------------
    def watchdog_spec(self) -> dict | None:
        e = self.table.emission
        if e.format == "words":
            off, on = e.false_values, e.true_values
        else:
            off, on = (), ()
        spec = self._link.watchdog_spec(self.table.emission_off.send, e.query, off, on)
        if spec is not None:
            spec["reply_pattern"] = e.pattern.pattern
            if e.format == "hex-bit":
                spec["on_bit"] = e.bit
        return spec

    def _covered_text(self) -> str:
        if self.table.transport == "serial":
            return super()._covered_text()
        return self._covered_once_free_text()

    def _send_off_blind(self) -> None:
        self._link.write_blind(self.table.emission_off.send)

    def _open_transport(self) -> None:
        self._link.open()

    def _close_transport(self) -> None:
        self._link.close()

    def _run_setup(self) -> None:
        """The table's first commands (echo and prompt off and the like). A device in an unknown
        talk mode may answer them irregularly, so a missing reply is not an error here."""
        for command in self.table.setup:
            try:
                self._send(command)
            except LinkTimeout:
                pass

    def _handshake(self, previous: DeviceIdentity | None) -> LaserReadback:
        return self._reading_out(lambda: self._identify_and_read_back(previous))

    def _identify_and_read_back(self, previous: DeviceIdentity | None) -> LaserReadback:
        t = self.table
        self._run_setup()
        model = self._model()
        check_model(self.name, model, t.expected_model, f"{t.model.query!r}")
        if t.wavelength is not None:
            check_wavelength(self.name, self._number(t.wavelength), self.wavelength_nm,
                             self.wavelength_tolerance_nm, f"to {t.wavelength.query!r}")
        serial = self._value(t.serial) if t.serial is not None else ""
        firmware = self._value(t.firmware) if t.firmware is not None else ""
        self._accept_identity(DeviceIdentity(t.vendor, model, serial, firmware), previous)
        for command in t.prepare:
            self._send(command)
        self._device_max_w = self._number(t.maximum) if t.maximum is not None else t.maximum_w
        if not self._device_max_w > 0:
            raise DeviceError(self.name, f"the laser reports a maximum power of {self._device_max_w:g} W "
                                         f"({t.maximum.query if t.maximum else 'maximum_mw'}): it cannot emit")
        return LaserReadback(emission=self._get_emission_hw(), setpoint_w=self._get_power_setpoint_hw(),
                             faults=tuple(self._get_faults_hw()))

    def _model(self) -> str:
        """The model from the identity query; a reply without one is a wrong device, said so."""
        t = self.table
        replies, match = self._ask(t.model)
        if match is not None:
            return match.group("value").strip()
        raise DeviceError(self.name, f"unexpected identity: {t.model.query!r} answered {replies!r}, not a "
                                     f"{t.family} (no match for {t.model.pattern.pattern!r}, table {t.source}). "
                                     f"Is this the right port, baud rate and laser?")

    def clear_faults(self) -> list[str]:
        """Send the table's clear-faults command and return the faults still active."""
        self._require_open()
        if self.table.clear_faults is None:
            raise DeviceError(self.name, f"table {self.table.source} has no clear_faults command")
        self._send(self.table.clear_faults)
        return self.faults()

    def describe(self) -> dict:
        return {**super().describe(), "table": self.table.source, "family": self.table.family}

    # --- hardware hooks ---------------------------------------------------------------
    def _set_power_hw(self, watts: float) -> None:
        self._send(self.table.power_set, self.table.power_text(watts, self.ceiling_w, self._device_max_w))

    def _get_power_setpoint_hw(self) -> float:
        return self._number(self.table.setpoint, self._device_max_w)

    def _get_measured_power_hw(self) -> float:
        if self.table.measured is None:
            raise DeviceError(self.name, f"table {self.table.source} has no [measured] power query")
        return self._number(self.table.measured, self._device_max_w)

    def _set_emission_hw(self, on: bool) -> None:
        self._send(self.table.emission_on if on else self.table.emission_off)

    def _get_emission_hw(self) -> bool:
        return self._flag(self.table.emission)

    def _get_faults_hw(self) -> list[str]:
        return self._reading_out(self._faults_from_checks)

    def _reading_out(self, read: Callable[[], Any]) -> Any:
        """``read()`` with each query sent at most once (see :meth:`_ask`)."""
        outer = self._asked is None
        if outer:
            self._asked = {}
        try:
            return read()
        finally:
            if outer:
                self._asked = None

    def _faults_from_checks(self) -> list[str]:
        faults: list[str] = []
        for check in self.table.faults:
            if check.format == "hex-bits":
                text = self._value(check)
                try:
                    word = int(text, 16)
                except ValueError:
                    raise DeviceError(self.name, f"garbled reply to {check.query!r}: {text!r} is not a "
                                                 f"hexadecimal fault word") from None
                faults += [check.bits.get(bit, f"{check.name}: bit {bit}") for bit in range(64) if word >> bit & 1]
            elif self._flag(check) == (check.fault_when == "true"):
                faults.append(check.name)
        return faults
