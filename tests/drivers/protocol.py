"""Scripted transports in the style of pymeasure's ``expected_protocol``.

Each script is a list of ``(bytes the driver must write, reply)`` pairs, consumed in order.
A write that differs from the script, or comes after it ends, fails the test at once; pairs
left unused when the ``with`` block ends fail it too. The instrument is built inside, so the
connect handshake is part of every script.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["TIMEOUT", "ExpectedSerialPort", "ExpectedVisaResource", "expected_protocol",
           "expected_visa_protocol", "small_world"]

TIMEOUT = object()  # a VISA query that gets no reply


class _Script:
    def __init__(self, pairs: list[tuple[bytes, Any]]):
        self.pairs = list(pairs)
        self.index = 0

    def take(self, data: bytes) -> Any:
        if self.index >= len(self.pairs):
            raise AssertionError(f"unexpected write {data!r}: the script has ended")
        expected, reply = self.pairs[self.index]
        if data != expected:
            raise AssertionError(f"write #{self.index}: expected {expected!r}, got {data!r}")
        self.index += 1
        return reply

    def assert_done(self) -> None:
        left = self.pairs[self.index:]
        assert not left, f"{len(left)} scripted pair(s) never used, first {left[0]!r}"


class ExpectedSerialPort(_Script):
    """A fake pyserial port. A reply is bytes, None (nothing comes: the read times out at once)
    or an exception (raised by the next read, as a dropped link would)."""

    def __init__(self, pairs: list[tuple[bytes, bytes | Exception | None]]):
        super().__init__(pairs)
        self.pending = b""
        self.failure: Exception | None = None
        self.closed = False

    def __call__(self) -> ExpectedSerialPort:  # the driver's opener
        self.closed = False
        return self

    def write(self, data: bytes) -> int:
        reply = self.take(bytes(data))
        if isinstance(reply, Exception):
            self.failure = reply
        elif reply:
            self.pending += reply
        return len(data)

    def read_until(self, expected: bytes = b"\n", size: int | None = None) -> bytes:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        end = self.pending.find(expected)
        if end < 0:  # nothing complete arrived before the timeout
            out, self.pending = self.pending, b""
            return out
        out, self.pending = self.pending[:end + len(expected)], self.pending[end + len(expected):]
        return out

    def reset_input_buffer(self) -> None:
        self.pending = b""

    def close(self) -> None:
        self.closed = True


class ExpectedVisaResource(_Script):
    """A fake pyvisa resource: pairs of (message + write termination as bytes, reply).

    A reply of None marks a write (no answer expected); a string answers a query;
    :data:`TIMEOUT` makes the query time out.
    """

    def __init__(self, pairs: list[tuple[bytes, Any]]):
        super().__init__(pairs)
        self.opened: list[tuple[str, dict]] = []
        self.write_termination = "\n"
        self.closed = False

    def __call__(self, address: str, **kwargs: Any) -> ExpectedVisaResource:  # the driver's open_resource
        self.opened.append((address, kwargs))
        self.write_termination = kwargs.get("write_termination", self.write_termination)
        self.closed = False
        return self

    def write(self, message: str) -> int:
        data = (message + self.write_termination).encode("ascii")
        reply = self.take(data)
        assert reply is None, f"{data!r} was written, but the script expects a query answered {reply!r}"
        return len(data)

    def query(self, message: str) -> str:
        data = (message + self.write_termination).encode("ascii")
        reply = self.take(data)
        assert reply is not None, f"{data!r} was queried, but the script expects a write"
        if reply is TIMEOUT:
            from pyvisa.constants import StatusCode
            from pyvisa.errors import VisaIOError
            raise VisaIOError(StatusCode.error_timeout)
        return reply

    def close(self) -> None:
        self.closed = True


@contextmanager
def _session(script: _Script, make: Callable[[Any], Any]) -> Iterator[Any]:
    instrument = make(script)
    try:
        yield instrument
        script.assert_done()
    finally:
        instrument.closed = True  # the script ends the session: close() would need scripted bytes


@contextmanager
def expected_protocol(make: Callable[[Any], Any], pairs: list[tuple[bytes, Any]]) -> Iterator[Any]:
    """``make(opener)`` builds the serial laser on a scripted port; yields it."""
    with _session(ExpectedSerialPort(pairs), make) as instrument:
        yield instrument


@contextmanager
def expected_visa_protocol(make: Callable[[Any], Any], pairs: list[tuple[bytes, Any]]) -> Iterator[Any]:
    """``make(open_resource)`` builds the VISA laser on a scripted resource; yields it."""
    with _session(ExpectedVisaResource(pairs), make) as instrument:
        yield instrument


def small_world():
    """A 32 x 32 physics twin, enough for a laser to write its emission and setpoint into."""
    from optgen.simulators import LaserTruth, OpticalWorld, SensorTruth, SLMTruth, VirtualClock
    response = np.linspace(0.02, 6.3, 256)
    return OpticalWorld(wavelength_m=520e-9, pitch_m=8e-6, grid_shape=(32, 32), d1_m=0.01, d2_m=0.01,
                        encoding=SLMTruth(response), decoding=SLMTruth(response),
                        sensor=SensorTruth(resolution=(32, 32), pitch_m=8e-6),
                        laser=LaserTruth(device_max_power_w=0.1), clock=VirtualClock())
