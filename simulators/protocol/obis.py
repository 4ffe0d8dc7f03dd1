"""A Coherent OBIS laser answering its serial protocol on a pseudo-terminal.

Replies as the driver expects them from the real laser: a query gets its value line, then
``OK`` while handshaking is on; a command gets ``OK``; an unknown command gets ``ERR-100``
(Coherent's 'unrecognised command'). The out-of-range code ``ERR-102`` and the exact number
formats are this twin's choices, not taken from the manual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optgen.simulators.protocol._pty import PtySerialTwin

if TYPE_CHECKING:
    from optgen.simulators.world import OpticalWorld

__all__ = ["ObisTwin"]


class ObisTwin(PtySerialTwin):
    """An OBIS laser: emission, setpoint, operating mode, fault bits, interlock, handshake."""

    def __init__(self, world: OpticalWorld | None = None, *, model: str = "OBIS 520nm 100mW LX",
                 serial: str = "190612345", firmware: str = "V1.0.1 - Dec 14 2010", max_power_w: float = 0.1,
                 handshake: bool = True):
        self.idn = f"Coherent, Inc - {model} - {firmware}"
        self.serial = serial
        self.handshake = handshake
        self.mode = "CWP"
        self.fault_bits = 0
        super().__init__(world, max_power_w=max_power_w)

    def error_reply(self, command: str) -> str:
        return "ERR-102"

    def active_faults(self) -> list[str]:
        faults = super().active_faults()
        return faults + ([f"fault bits {self.fault_bits:08X}"] if self.fault_bits else [])

    def set_fault_bits(self, bits: int) -> None:
        """Plant SYST:FAUL? bits; any fault stops emission."""
        with self._lock:
            self.fault_bits = int(bits)
            if bits:
                self.emission = False
            self._mirror()

    def power_cycle(self) -> None:
        with self._lock:
            self.handshake = True
            self.mode = "CWP"
        super().power_cycle()

    def handle(self, command: str) -> list[str]:
        head, _, arg = command.upper().partition(" ")
        arg = arg.strip()
        queries = {
            "*IDN?": lambda: self.idn,
            "SYST:INF:SNUM?": lambda: self.serial,
            "SYST:COMM:HAND?": lambda: "ON" if self.handshake else "OFF",
            "SOUR:POW:LIM:HIGH?": lambda: f"{self.max_power_w:.5f}",
            "SOUR:POW:LIM:LOW?": lambda: "0.00000",
            "SOUR:AM:SOUR?": lambda: self.mode,
            "SOUR:AM:STAT?": lambda: "ON" if self.emission else "OFF",
            "SOUR:POW:LEV:IMM:AMPL?": lambda: f"{self.setpoint_w:.5f}",
            "SOUR:POW:LEV?": lambda: f"{self.measured_power_w():.5f}",
            "SYST:FAUL?": lambda: f"{self.fault_bits:08X}",
            "SYST:LOCK?": lambda: "ON" if self.interlock_closed else "OFF",
        }
        if head in queries and not arg:
            return self._ack([queries[head]()])
        if head == "SYST:COMM:HAND" and arg in ("ON", "OFF"):
            self.handshake = arg == "ON"
            return self._ack([])
        if head == "SOUR:AM:INT" and arg in ("CWP", "CWC"):
            self.mode = arg
            return self._ack([])
        if head == "SOUR:AM:STAT" and arg in ("ON", "OFF"):
            # the laser accepts ON but stays dark while the interlock is open or a fault is active
            self.emission = arg == "ON" and self.interlock_closed and not self.fault_bits
            return self._ack([])
        if head == "SOUR:POW:LEV:IMM:AMPL":
            try:
                watts = float(arg)
            except ValueError:
                return ["ERR-100"]
            if not 0.0 <= watts <= self.max_power_w:
                return ["ERR-102"]
            self.setpoint_w = watts
            return self._ack([])
        return ["ERR-100"]

    def _ack(self, lines: list[str]) -> list[str]:
        return lines + ["OK"] if self.handshake else lines
