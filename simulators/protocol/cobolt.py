"""A Cobolt 06-series laser answering its serial protocol on a pseudo-terminal.

Replies as public sources describe the real laser: commands end in CR, replies in CR LF;
``OK`` for a command, one value line for a query, ``Syntax error: illegal command`` for an
unknown command, ``Syntax error: Value is out of range.`` for a bad power and
``Syntax error: not allowed in autostart mode.`` for ``l1`` with autostart on (the power-up
default, which this twin copies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optgen.simulators.protocol._pty import PtySerialTwin

if TYPE_CHECKING:
    from optgen.simulators.world import OpticalWorld

__all__ = ["CoboltTwin"]

ILLEGAL = "Syntax error: illegal command"


class CoboltTwin(PtySerialTwin):
    """A Cobolt laser: emission, setpoint, autostart, constant-power mode, fault code, interlock."""

    def __init__(self, world: OpticalWorld | None = None, *, model: str = "0520-06-01-0100-C",
                 serial: str = "21345", firmware: str = "6.1.4", max_power_w: float = 0.1,
                 autostart: bool = True):
        self.model = model
        self.serial = serial
        self.firmware = firmware
        self.autostart = autostart
        self.constant_power = False
        self.fault_code = "0"
        super().__init__(world, max_power_w=max_power_w)

    def error_reply(self, command: str) -> str:
        return ILLEGAL

    def active_faults(self) -> list[str]:
        faults = super().active_faults()
        return faults + ([f"fault code {self.fault_code}"] if self.fault_code != "0" else [])

    def set_fault(self, code: str) -> None:
        """Plant an f? fault code ('1' temperature, '3' interlock, '4' constant power time out)."""
        with self._lock:
            self.fault_code = str(code)
            if code != "0":
                self.emission = False
            self._mirror()

    def set_interlock(self, closed: bool) -> None:
        super().set_interlock(closed)
        if not closed:
            self.set_fault("3")

    def power_cycle(self) -> None:
        with self._lock:
            self.autostart = True
            self.constant_power = False
        super().power_cycle()

    def handle(self, command: str) -> list[str]:
        cmd = command.strip()
        queries = {
            "sn?": lambda: self.serial,
            "glm?": lambda: self.model,
            "gfv?": lambda: self.firmware,
            "gmlp?": lambda: f"{self.max_power_w * 1000:.6f}",
            "@cobas?": lambda: "1" if self.autostart else "0",
            "gam?": lambda: "1" if self.constant_power else "0",
            "l?": lambda: "1" if self.emission else "0",
            "p?": lambda: f"{self.setpoint_w:.4f}",
            "pa?": lambda: f"{self.measured_power_w():.4f}",
            "f?": lambda: self.fault_code,
            "ilk?": lambda: "0" if self.interlock_closed else "1",
            "hrs?": lambda: "1234.56",
            "?": lambda: "OK",
        }
        if cmd in queries:
            return [queries[cmd]()]
        if cmd in ("@cobas 0", "@cobas 1"):
            self.autostart = cmd.endswith("1")
        elif cmd == "cp":
            self.constant_power = True
        elif cmd == "ci":
            self.constant_power = False
        elif cmd == "l0":
            self.emission = False
        elif cmd == "l1":
            if self.autostart:
                return ["Syntax error: not allowed in autostart mode."]
            if not self.interlock_closed:
                self.fault_code = "3"
            self.emission = self.interlock_closed and self.fault_code == "0"
        elif cmd == "cf":
            self.fault_code = "0" if self.interlock_closed else "3"
        elif cmd.startswith("p "):
            try:
                watts = float(cmd[2:])
            except ValueError:
                return [ILLEGAL]
            if not 0.0 <= watts <= self.max_power_w:
                return ["Syntax error: Value is out of range."]
            self.setpoint_w = watts
        else:
            return [ILLEGAL]
        return ["OK"]
