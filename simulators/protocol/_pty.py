"""A simulated serial device on a pseudo-terminal: the real driver opens ``twin.port`` with pyserial.

A daemon thread reads the pty's master side, splits commands at CR or LF (a CR LF pair ends one
command), lets the subclass answer, and writes the reply lines (each ending in CR LF, unless the
subclass frames them otherwise in :meth:`PtySerialTwin.encode_reply`). Faults can be injected for the
next commands: ``no_reply`` (the command is lost), ``mute`` (the command is carried out but
its reply is lost: a laser that still hears commands whose replies never arrive), ``garbled``
(the reply is mangled), ``error`` (the device refuses it) and ``drop`` (the link goes away, as
when a USB cable is pulled: the port stops existing).
"""

from __future__ import annotations

import os
import select
import threading
import tty
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optgen.simulators.world import OpticalWorld

__all__ = ["FAULT_KINDS", "PtySerialTwin", "live_ports"]

FAULT_KINDS = ("no_reply", "mute", "garbled", "error", "drop")


@dataclass
class _Injection:
    kind: str
    times: int | None  # None: until cleared
    match: str | None  # only commands starting with this (case-insensitive)


def garble(line: str) -> str:
    """A reply line mangled beyond parsing (still ASCII, so it reads as a line)."""
    return "#" + line[::-1] + "~?"


_LIVE_PORTS: set[str] = set()


def live_ports() -> frozenset[str]:
    """The pty paths of the twins alive in this process (their light ends with it)."""
    return frozenset(_LIVE_PORTS)


class PtySerialTwin:
    """Base of the protocol twins. Subclasses implement :meth:`handle` and :meth:`error_reply`.

    State shared by every laser twin: ``emission``, ``setpoint_w``, ``max_power_w``,
    ``interlock_closed``. With a ``world``, emission, setpoint and faults are mirrored into
    ``world.laser_emission`` / ``world.laser_setpoint_w`` / ``world.laser_faults`` after every
    command, so the physics twin sees the protocol-level laser.
    """

    #: whether an empty command (a bare terminator) is passed to :meth:`handle`; else it is skipped
    answers_empty_commands = False

    def __init__(self, world: OpticalWorld | None = None, *, max_power_w: float = 0.1):
        self.world = world
        self.max_power_w = float(max_power_w)
        self.emission = False
        self.setpoint_w = 0.0
        self.interlock_closed = True
        self.received: list[str] = []
        self._injections: list[_Injection] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        _LIVE_PORTS.add(self.port)
        self.dropped = False
        self._mirror()
        self._thread = threading.Thread(target=self._serve, name=f"{type(self).__name__} {self.port}",
                                        daemon=True)
        self._thread.start()

    # --- to override ------------------------------------------------------------------
    def handle(self, command: str) -> list[str]:
        """Execute one command; return the reply lines (without terminators)."""
        raise NotImplementedError

    def error_reply(self, command: str) -> str:
        """The device's refusal line for an injected ``error`` fault."""
        raise NotImplementedError

    def encode_reply(self, command: str, replies: list[str], fault: str | None = None) -> bytes:
        """The bytes written for one command's reply lines (empty: nothing is written).

        ``fault`` is the injection that shaped ``replies`` (``'garbled'`` or ``'error'``; the lines
        are already garbled or replaced), for a subclass whose framing should show it too. The
        default: each line in ASCII, ending in CR LF.
        """
        return b"".join(line.encode("ascii") + b"\r\n" for line in replies)

    def active_faults(self) -> list[str]:
        """Faults as words, for the world model (empty if none)."""
        return [] if self.interlock_closed else ["interlock open"]

    def measured_power_w(self) -> float:
        """What the laser's own monitor reads: the world's (its read-back draws, not the frames'), else the
        setpoint."""
        if self.world is not None:
            return self.world.measured_power_w()
        return self.setpoint_w if self.emission else 0.0

    # --- test controls ----------------------------------------------------------------
    def inject(self, kind: str, *, times: int | None = 1, match: str | None = None) -> None:
        """Make the next ``times`` commands (starting with ``match``, if given) fail as ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault {kind!r}: expected one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._injections.append(_Injection(kind, times, match.upper() if match else None))

    def clear_injections(self) -> None:
        with self._lock:
            self._injections.clear()

    def set_interlock(self, closed: bool) -> None:
        """Open or close the interlock; opening it stops emission at once, as on the real laser."""
        with self._lock:
            self.interlock_closed = bool(closed)
            if not closed:
                self.emission = False
            self._mirror()

    def power_cycle(self) -> None:
        """Switch the laser off and on: emission off, setpoint back to zero."""
        with self._lock:
            self.emission = False
            self.setpoint_w = 0.0
            self._mirror()

    def close(self) -> None:
        """Stop the thread and release the pty (safe to call twice)."""
        _LIVE_PORTS.discard(self.port)
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        for fd_name in ("_master", "_slave"):
            fd = getattr(self, fd_name)
            if fd is not None:
                setattr(self, fd_name, None)
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> PtySerialTwin:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- machinery --------------------------------------------------------------------
    def _mirror(self) -> None:
        if self.world is not None:
            self.world.laser_setpoint_w = self.setpoint_w
            self.world.laser_emission = self.emission
            self.world.laser_faults = self.active_faults()

    def _take_injection(self, command: str) -> str | None:
        for injection in self._injections:
            if injection.match is None or command.upper().startswith(injection.match):
                if injection.times is not None:
                    injection.times -= 1
                    if injection.times <= 0:
                        self._injections.remove(injection)
                return injection.kind
        return None

    def _serve(self) -> None:
        buffer = b""
        after_cr = False  # the last command ended in CR: a LF right after it belongs to that CR
        while not self._stop.is_set():
            master = self._master
            if master is None:
                return
            try:
                ready, _, _ = select.select([master], [], [], 0.02)
                if not ready:
                    continue
                data = os.read(master, 4096)
            except OSError:  # no reader on the slave side for a moment, or the pty is gone
                if self._stop.wait(0.01):
                    return
                continue
            buffer += data
            while True:
                if after_cr and buffer:
                    after_cr = False
                    if buffer.startswith(b"\n"):
                        buffer = buffer[1:]
                        continue
                ends = [i for i in (buffer.find(b"\r"), buffer.find(b"\n")) if i >= 0]
                if not ends:
                    break
                end = min(ends)
                after_cr = buffer[end:end + 1] == b"\r"
                raw, buffer = buffer[:end], buffer[end + 1:]
                command = raw.decode("ascii", errors="replace").strip()
                if (command or self.answers_empty_commands) and not self._respond(command):
                    return

    def _respond(self, command: str) -> bool:
        """Answer one command; False when the link was dropped."""
        with self._lock:
            self.received.append(command)
            fault = self._take_injection(command)
            if fault == "drop":
                self._drop()
                return False
            if fault == "no_reply":
                return True
            if fault == "error":
                replies = [self.error_reply(command)]
            else:
                replies = self.handle(command)
                if fault == "garbled":
                    replies = [garble(line) for line in replies]
            data = b"" if fault == "mute" else self.encode_reply(command, replies, fault)
            self._mirror()
            master = self._master
        if data and master is not None:
            try:
                os.write(master, data)
            except OSError:
                pass
        return True

    def _drop(self) -> None:
        self.dropped = True
        master, self._master = self._master, None
        slave, self._slave = self._slave, None
        for fd in (master, slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
