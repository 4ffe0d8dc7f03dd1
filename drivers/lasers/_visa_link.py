"""A line-based link over VISA (a serial port as ``ASRL...::INSTR``, USB or TCP/IP), with the same
``converse`` / ``write_blind`` / ``open`` / ``close`` as :class:`SerialLink`, for the command-table
laser. pyvisa is imported only when the resource opens."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from optgen.drivers.errors import DeviceError, LinkLost
from optgen.drivers.lasers._serial_link import LATE_REPLY_S, LinkTimeout, read_reply, wire_log

__all__ = ["VisaLineLink"]


class VisaLineLink:
    """One VISA resource read line by line: each read ends at ``read_terminator`` (spaces, CR and
    stray NUL bytes are stripped) and is limited by ``timeout_s``. ``open_resource(resource,
    **kwargs)`` replaces pyvisa (tests)."""

    def __init__(self, resource: str, *, device: str, write_terminator: str, timeout_s: float,
                 read_terminator: str = "\n", encoding: str = "ascii", visa_library: str = "@py",
                 baudrate: int | None = None,
                 open_resource: Callable[..., Any] | None = None):
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise DeviceError(device, f"timeout {timeout_s!r} s: expected a finite number > 0")
        self.port_name = str(resource)
        self.device = device
        self.write_terminator = write_terminator
        self.read_terminator = read_terminator
        self.encoding = encoding
        self.timeout_s = float(timeout_s)
        self.visa_library = visa_library
        self.baudrate = baudrate
        self._open_resource = open_resource
        self._res: Any = None
        self._lock = threading.RLock()

    @property
    def is_open(self) -> bool:
        return self._res is not None

    def watchdog_spec(self, off: str, query: str, off_replies: tuple[str, ...],
                      on_replies: tuple[str, ...]) -> dict | None:
        if self._open_resource is not None:
            return None
        return {"transport": "visa", "resource": self.port_name, "visa_library": self.visa_library,
                "read_terminator": self.read_terminator, "write_terminator": self.write_terminator, "off": off,
                "query": query,
                "off_replies": list(off_replies), "on_replies": list(on_replies)}

    def open(self) -> None:
        with self._lock:
            if self._res is not None:
                return
            kwargs: dict[str, Any] = dict(read_termination=self.read_terminator,
                                          write_termination=self.write_terminator, encoding=self.encoding,
                                          timeout=int(math.ceil(self.timeout_s * 1000)))
            if self.port_name.upper().startswith("ASRL") and self.baudrate:
                kwargs["baud_rate"] = int(self.baudrate)
            try:
                if self._open_resource is not None:
                    self._res = self._open_resource(self.port_name, **kwargs)
                else:
                    try:
                        import pyvisa
                    except ImportError as exc:  # pragma: no cover - depends on the environment
                        raise ImportError("a VISA laser needs pyvisa and pyvisa-py: pip install pyvisa pyvisa-py "
                                          "(or pip install 'optgen[hardware]')") from exc
                    self._res = pyvisa.ResourceManager(self.visa_library).open_resource(self.port_name, **kwargs)
            except ImportError:
                raise
            except Exception as exc:
                raise DeviceError(self.device, f"cannot open VISA resource {self.port_name!r} (library "
                                               f"{self.visa_library!r}): {exc}. Check the resource name "
                                               f"(optgen devices --probe), cable and power") from exc

    def close(self) -> None:
        # only the resource: closing the shared ResourceManager would end other devices' sessions
        with self._lock:
            res, self._res = self._res, None
            if res is not None:
                try:
                    res.close()
                except Exception:  # closing a dead link must not hide the real error
                    pass

    def reopen(self) -> None:
        self.close()
        self.open()

    def write_blind(self, command: str) -> None:
        with self._lock:
            if self._res is None:
                self.open()
            try:
                wire_log.debug("%s %s > %r (blind)", self.device, self.port_name, command)
                self._res.write(command)
                time.sleep(LATE_REPLY_S)              # a reply that does come is discarded (SerialLink's reason)
                self._discard_input(self._res)
            except Exception as exc:
                raise self._failed(command, exc) from exc

    def converse(self, command: str, *, lines: int = 1, until: Callable[[str], bool] | None = None,
                 skip: Callable[[str], bool] = lambda line: False,
                 is_error: Callable[[str], bool] = lambda line: False, max_lines: int = 64) -> list[str]:
        """As :meth:`SerialLink.converse`."""
        with self._lock:
            if self._res is None:
                raise DeviceError(self.device, f"VISA resource {self.port_name} is not open (sending {command!r}); "
                                               f"call reconnect()")
            res = self._res
            try:
                self._discard_input(res)
                wire_log.debug("%s %s > %r", self.device, self.port_name, command)
                res.write(command)
            except Exception as exc:
                raise self._failed(command, exc) from exc
            return read_reply(lambda: self._read_line(res, command), self.device, command, lines=lines,
                              until=until, skip=skip, is_error=is_error, max_lines=max_lines)

    def read_more(self, command: str, *, skip: Callable[[str], bool] = lambda line: False,
                  is_error: Callable[[str], bool] = lambda line: False) -> list[str]:
        """As :meth:`SerialLink.read_more`."""
        with self._lock:
            if self._res is None:
                raise DeviceError(self.device, f"VISA resource {self.port_name} is not open (reading the reply to "
                                               f"{command!r}); call reconnect()")
            res = self._res
            return read_reply(lambda: self._read_line(res, command), self.device, command, lines=1, until=None,
                              skip=skip, is_error=is_error, max_lines=8)

    def _discard_input(self, res: Any) -> None:
        """Drop what is waiting to be read (a serial resource only: elsewhere VISA has no such buffer)."""
        clear = getattr(res, "flush", None)
        if clear is not None and self.port_name.upper().startswith("ASRL"):
            from pyvisa import constants

            clear(constants.BufferOperation.discard_read_buffer)

    def _read_line(self, res: Any, command: str) -> str:
        try:
            line = str(res.read()).strip().strip("\x00").strip()
            wire_log.debug("%s %s < %r", self.device, self.port_name, line)
            return line
        except Exception as exc:
            if "VI_ERROR_TMO" in str(exc) or isinstance(exc, TimeoutError):
                raise LinkTimeout(self.device, f"no complete reply to {command!r} from {self.port_name} within "
                                               f"{self.timeout_s:g} s. Usual causes: wrong baud rate or "
                                               f"terminator, the device is off, or the wrong resource") from None
            raise self._failed(command, exc) from exc

    def _failed(self, command: str, exc: Exception) -> LinkLost:
        return LinkLost(self.device, f"VISA I/O with {self.port_name} failed on {command!r}: {exc}. The device may "
                                     f"have been unplugged; reconnect() reopens it")
