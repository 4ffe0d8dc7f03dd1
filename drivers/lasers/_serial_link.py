"""A line-based serial link with a finite timeout on every read and errors that say what to check.

The link knows nothing of a device's protocol beyond its terminators: a driver sends one
command and reads the number of reply lines it expects, telling the link which lines are the
device's error replies. pyserial is imported only when a port is opened, so importing the
drivers needs no hardware back end.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from optgen.drivers.errors import DeviceError, LinkLost

# every command and reply line at DEBUG (optgen --log-level debug): what a lab writing a command
# table, or reporting a laser that misbehaves, needs to see
wire_log = logging.getLogger("optgen.drivers.lasers.wire")

__all__ = ["DeviceRefused", "LinkTimeout", "SerialLink", "SerialPort", "read_reply", "wire_log"]


class SerialPort(Protocol):
    """The part of ``serial.Serial`` the link uses (a test fake implements the same)."""

    def write(self, data: bytes) -> int | None: ...

    def read_until(self, expected: bytes = ..., size: int | None = ...) -> bytes: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


class DeviceRefused(DeviceError):
    """The device answered a command with its own error reply (``ERR-nnn``, ``Syntax error``...)."""

    def __init__(self, device: str, command: str, reply: str, meaning: str = ""):
        self.command = command
        self.reply = reply
        detail = f" ({meaning})" if meaning else ""
        super().__init__(device, f"the device refused {command!r}: it answered {reply!r}{detail}")


_ENDS = {b"\n": "LF", b"\r": "CR"}
LATE_REPLY_S = 0.1       # how long a reply to a command sent blind is waited for, to be discarded


class LinkTimeout(LinkLost, TimeoutError):
    """No complete reply line arrived within the link's timeout."""


def read_reply(read_line: Callable[[], str], device: str, command: str, *, lines: int,
               until: Callable[[str], bool] | None, skip: Callable[[str], bool],
               is_error: Callable[[str], bool], max_lines: int) -> list[str]:
    """The reply to ``command``, read with ``read_line``: ``lines`` lines, or every line before the
    one ``until`` accepts. Empty lines, ``skip`` lines and an echo of the command are dropped; an
    ``is_error`` line raises :class:`DeviceRefused`."""
    replies: list[str] = []
    for _ in range(max_lines):
        if until is None and len(replies) >= lines:
            return replies
        line = read_line()
        if not line or skip(line) or line == command:
            continue
        if is_error(line):
            raise DeviceRefused(device, command, line)
        if until is not None and until(line):
            return replies
        replies.append(line)
    if until is None and len(replies) >= lines:
        return replies
    raise DeviceError(device, f"garbled reply to {command!r}: {max_lines} lines without the end of the reply "
                              f"(last {replies[-3:]!r})")


FLOW_CONTROL = ("none", "rtscts", "dsrdtr", "xonxoff")


def _open_pyserial(port: str, baudrate: int, timeout_s: float, flow_control: str = "none") -> SerialPort:
    try:
        import serial  # pyserial
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the serial laser drivers need pyserial: pip install pyserial "
                          "(or pip install 'optgen[hardware]')") from exc
    # serial_for_url takes plain device paths as well as socket://, spy://, loop:// URLs
    return serial.serial_for_url(port, baudrate=baudrate, bytesize=8, parity="N", stopbits=1,
                                 timeout=timeout_s, write_timeout=timeout_s, exclusive=True,
                                 rtscts=flow_control == "rtscts", dsrdtr=flow_control == "dsrdtr",
                                 xonxoff=flow_control == "xonxoff")


class SerialLink:
    """One serial connection: write a command, read its reply lines, each read time-limited.

    ``write_terminator`` ends every command; replies are read up to ``read_terminator`` (LF by
    default) and stripped (of spaces, CR and stray NUL bytes),
    which accepts both CR LF and LF line ends. ``opener`` replaces pyserial (tests pass a fake).
    """

    def __init__(self, port: str, *, device: str, baudrate: int, write_terminator: bytes,
                 timeout_s: float, encoding: str = "ascii", read_terminator: bytes = b"\n",
                 flow_control: str = "none", opener: Callable[[], SerialPort] | None = None):
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise DeviceError(device, f"timeout {timeout_s!r} s: expected a finite number > 0")
        self.port_name = str(port)
        self.device = device
        self.baudrate = int(baudrate)
        self.write_terminator = write_terminator
        self.timeout_s = float(timeout_s)
        self.encoding = encoding
        self.read_terminator = read_terminator
        if flow_control not in FLOW_CONTROL:
            raise DeviceError(device, f"flow control {flow_control!r}: expected one of {', '.join(FLOW_CONTROL)}")
        self.flow_control = flow_control
        self._opener = opener
        self._port: SerialPort | None = None
        self._lock = threading.RLock()

    # --- life cycle -------------------------------------------------------------------
    def watchdog_spec(self, off: str, query: str, off_replies: tuple[str, ...],
                      on_replies: tuple[str, ...]) -> dict | None:
        """How the laser watchdog process reaches the device on this port (None for a port
        that only this process can open: a test's fake)."""
        if self._opener is not None:
            return None
        return {"transport": "serial", "port": self.port_name, "baudrate": self.baudrate,
                "write_terminator": self.write_terminator.decode("ascii"), "off": off, "query": query,
                "off_replies": list(off_replies), "on_replies": list(on_replies), "flow_control": self.flow_control}

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def open(self) -> None:
        """Open the port; a missing or busy port raises DeviceError naming it."""
        with self._lock:
            if self._port is not None:
                return
            try:
                if self._opener is not None:
                    self._port = self._opener()
                else:
                    self._port = _open_pyserial(self.port_name, self.baudrate, self.timeout_s, self.flow_control)
            except ImportError:
                raise
            except Exception as exc:
                raise DeviceError(
                    self.device,
                    f"cannot open serial port {self.port_name!r}: {exc}. Check that the port exists "
                    f"(ls /dev/serial/by-id/), that the laser is powered and plugged in, and that this "
                    f"user may open it (the dialout group on Linux)") from exc

    def close(self) -> None:
        """Close the port (safe to call twice)."""
        with self._lock:
            port, self._port = self._port, None
            if port is not None:
                try:
                    port.close()
                except Exception:  # closing a dead port must not hide the real error
                    pass

    def reopen(self) -> None:
        self.close()
        self.open()

    # --- exchange ---------------------------------------------------------------------
    def write_blind(self, command: str) -> None:
        """Send ``command`` and read nothing (reopening the port if it is closed): for the
        emission-off of a laser whose replies are lost. A reply that does come is discarded
        (:data:`LATE_REPLY_S`), so that it is never read as the answer to a later command (a late
        ``OK`` taken for the serial number made a reconnect refuse the same laser)."""
        with self._lock:
            if self._port is None:
                self.open()
            try:
                wire_log.debug("%s %s > %r (blind)", self.device, self.port_name, command)
                self._port.write(command.encode(self.encoding) + self.write_terminator)
                time.sleep(LATE_REPLY_S)
                self._port.reset_input_buffer()
            except Exception as exc:
                raise self._link_failed(command, exc) from exc

    def exchange(self, command: str, lines: int, *,
                 is_error: Callable[[str], bool] = lambda line: False,
                 meaning: Callable[[str], str] = lambda line: "") -> list[str]:
        """Send ``command`` and return ``lines`` reply lines (stripped).

        A reply line for which ``is_error`` is true raises :class:`DeviceRefused` at once.
        Stale input is discarded before the command is written.
        """
        with self._lock:
            port = self._write_fresh(command)
            replies = []
            for _ in range(lines):
                line = self._read_line(port, command, lines)
                if is_error(line):
                    raise DeviceRefused(self.device, command, line, meaning(line))
                replies.append(line)
            return replies

    def converse(self, command: str, *, lines: int = 1, until: Callable[[str], bool] | None = None,
                 skip: Callable[[str], bool] = lambda line: False,
                 is_error: Callable[[str], bool] = lambda line: False, max_lines: int = 64) -> list[str]:
        """Send ``command`` and read its reply: ``lines`` lines, or, with ``until``, every line up to
        the one for which ``until`` is true (that line is not returned; at most ``max_lines``).

        Lines for which ``skip`` is true (prompts) and a line repeating the command (an echo) are
        dropped; an ``is_error`` line raises :class:`DeviceRefused` at once.
        """
        with self._lock:
            port = self._write_fresh(command)
            expected = lines if until is None else max_lines
            return read_reply(lambda: self._read_line(port, command, expected), self.device, command,
                              lines=lines, until=until, skip=skip, is_error=is_error, max_lines=max_lines)

    def read_more(self, command: str, *, skip: Callable[[str], bool] = lambda line: False,
                  is_error: Callable[[str], bool] = lambda line: False) -> list[str]:
        """One more reply line to ``command`` without sending anything (after a late reply to an
        earlier command was read in its place)."""
        with self._lock:
            port = self._require_port(command)
            return read_reply(lambda: self._read_line(port, command, 1), self.device, command, lines=1,
                              until=None, skip=skip, is_error=is_error, max_lines=8)

    def _write_fresh(self, command: str) -> SerialPort:
        """Discard stale input, then write ``command`` and its terminator; the port."""
        port = self._require_port(command)
        try:
            port.reset_input_buffer()
            wire_log.debug("%s %s > %r", self.device, self.port_name, command)
            port.write(command.encode(self.encoding) + self.write_terminator)
        except Exception as exc:
            raise self._link_failed(command, exc) from exc
        return port

    def _read_line(self, port: SerialPort, command: str, lines: int) -> str:
        try:
            raw = port.read_until(self.read_terminator)
        except Exception as exc:
            raise self._link_failed(command, exc) from exc
        if not raw.endswith(self.read_terminator):
            got = f"; it received only {raw!r}" if raw else ""
            raise LinkTimeout(
                self.device,
                f"no complete reply to {command!r} on {self.port_name} within {self.timeout_s:g} s "
                f"(expected {lines} line(s) ending in {_ENDS.get(self.read_terminator, 'LF')}{got}). Usual "
                f"causes: wrong baud rate "
                f"(this link uses {self.baudrate}) or wrong line terminator "
                f"(commands end in {self.write_terminator!r}), the device is off or still starting, "
                f"or this is the wrong port")
        try:
            line = raw.decode(self.encoding).strip().strip("\x00").strip()
            wire_log.debug("%s %s < %r", self.device, self.port_name, line)
            return line
        except UnicodeDecodeError:
            raise DeviceError(
                self.device,
                f"garbled reply to {command!r} on {self.port_name}: {raw!r} is not {self.encoding} text "
                f"(a wrong baud rate often looks like this)") from None

    def _require_port(self, command: str) -> SerialPort:
        if self._port is None:
            raise DeviceError(self.device, f"serial port {self.port_name} is not open (sending {command!r}); "
                                           f"call reconnect()")
        return self._port

    def _link_failed(self, command: str, exc: Exception) -> LinkLost:
        return LinkLost(
            self.device,
            f"serial link on {self.port_name} failed while sending {command!r}: {exc}. "
            f"The device may have been unplugged or switched off; reconnect() reopens the port")
