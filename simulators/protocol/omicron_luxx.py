"""An Omicron LuxX / LuxX+ diode laser answering its serial ("?XXX") protocol on a pseudo-terminal.

The protocol as this twin implements it (500000 8N1 over the laser's USB serial port on the real
laser; a pty has no baud rate):

- A command is ``?`` + a case-sensitive 3-letter mnemonic + an optional argument, ending in CR.
  There is no echo and no prompt. A reply is ``!`` + the mnemonic + a payload + CR (no LF), in
  Latin-1; fields are separated by ``§`` (the single byte 0xA7). Set and action commands answer
  ``!<mn>>`` on success and ``!<mn>x`` on failure; a known mnemonic with a malformed argument (also
  an argument given to a query) answers ``!<mn>x``; an unknown mnemonic (or a line not starting with
  ``?``) answers ``!UK``, as does an injected ``error``. With ``nul_before_replies=True`` every
  reply starts with one NUL byte (0x00), as real lasers send after opening the port or a reset.
- Queries: ``?GFw`` → ``!GFw<model>§<device id>§<firmware>``; ``?GSN`` → ``!GSN<serial>``;
  ``?GSI`` → ``!GSI<nm>§<mW>`` (integers; the spec power is ``max_power_w``); ``?GMP`` → ``!GMP<mW>``
  (integer); ``?GWH`` → ``!GWH<hours>``; ``?GAS`` / ``?GFB`` / ``?GLF`` / ``?GOM`` → 4 upper-case hex
  digits; ``?GLP`` → 3 upper-case hex digits; ``?MDP`` → the measured diode power in mW (``%.1f``).
- ``?GAS`` bits: 0 error (a pending or latched failure), 1 laser on (``?LOn`` accepted and not yet
  switched off; set also in standby), 2 preheating (always 0: light comes at once), 6 laser-enable
  pin, 7 key switch, 9 system powered.
- ``?GFB`` (pending) / ``?GLF`` (latched) failure bits: opening the interlock sets bit 9 of both,
  switches the laser off and latches an error. While latched, GFB also carries bit 0 ("error
  latched, only a reset clears it"); after the interlock closes GFB reads 0001 and GLF 0200 until
  ``?RsC`` (reply ``!RsC>``). ``?RsC`` switches the laser off and clears the latched failures when
  the interlock is closed (with it open they stay). The delayed ``$RsC>`` of the real laser is not sent.
- ``?GOM`` / ``?SOM<hex>`` (1 to 4 hex digits, either case) read and write the operating mode. Bits
  used: 3 bias level release and 4 operating level release (light needs both), 13 USB ad-hoc mode,
  14 auto-start, 15 auto power-up. While bit 13 is set, every ``?LOn`` and ``?SLP`` reply is preceded
  by one unsolicited line ``$MDP<mW>`` (the measured power after the command), nothing else.
- ``?POn`` / ``?POf`` switch system power (``?POf`` also switches the laser off). ``?LOn`` answers
  ``!LOnx`` while the laser cannot emit (interlock open, key switch off, enable pin low, not powered,
  failure latched), else ``!LOn>``; ``?LOf`` → ``!LOf>``. ``?SLP<hex>`` takes 1 to 3 hex digits
  (000-FFF, either case), else ``!SLPx``; the level is kept over a power cycle (it is stored in
  non-volatile memory on the real laser).

Emission (``self.emission``) holds while ``?LOn`` is active, the system is powered, GOM bits 3 and 4
are set and nothing is wrong; ``setpoint_w`` = GLP / 4095 × ``max_power_w``.

Power-up state (``power_cycle`` restores it): GOM = ``operating_mode`` (default 0x2118: ad-hoc mode,
APC, bias and operating level released; no auto-start, no auto power-up), laser off, not powered
(``?POn`` needed) unless GOM bit 15 is set (then also on if bit 14 is set and nothing is wrong), key
switch on, enable pin high, no latched failure.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from optgen.simulators.protocol._pty import PtySerialTwin

if TYPE_CHECKING:
    from optgen.simulators.world import OpticalWorld

__all__ = ["LuxxTwin"]

SEP = "\u00a7"  # '§', one byte (0xA7) in Latin-1
UNKNOWN = "!UK"

GAS_ERROR, GAS_LASER_ON, GAS_ENABLE_PIN, GAS_KEY, GAS_POWERED = 1 << 0, 1 << 1, 1 << 6, 1 << 7, 1 << 9
FAIL_LATCHED, FAIL_INTERLOCK = 1 << 0, 1 << 9
MODE_BIAS, MODE_OPERATING, MODE_ADHOC, MODE_AUTOSTART, MODE_AUTOPOWER = 1 << 3, 1 << 4, 1 << 13, 1 << 14, 1 << 15
DEFAULT_MODE = MODE_ADHOC | (1 << 8) | MODE_OPERATING | MODE_BIAS  # 0x2118

_HEX = re.compile(r"[0-9A-Fa-f]+")


def parse_hex(text: str, digits: int) -> int | None:
    """The value of 1 to ``digits`` hex digits (either case), else None."""
    return int(text, 16) if _HEX.fullmatch(text) and len(text) <= digits else None


class LuxxTwin(PtySerialTwin):
    """A LuxX: identity, system power, laser on/off, 12-bit level, operating mode, failures, ad-hoc lines."""

    def __init__(self, world: OpticalWorld | None = None, *, max_power_w: float = 0.1, wavelength_nm: float = 520.0,
                 serial: str = "LX-123456", model: str = "LuxX 520-100", device_id: int = 4, firmware: str = "2.51",
                 hours: int = 1234, operating_mode: int = DEFAULT_MODE, nul_before_replies: bool = False):
        self.wavelength_nm = float(wavelength_nm)
        self.serial = serial
        self.model = model
        self.device_id = int(device_id)
        self.firmware = firmware
        self.hours = int(hours)
        self.default_mode = int(operating_mode) & 0xFFFF
        self.nul_before_replies = bool(nul_before_replies)
        self.level = 0  # GLP, 0..0xFFF, kept over a power cycle
        self.key_switch = True
        self.enable_pin = True
        self.latched = 0  # GLF
        self._power_up_state()
        super().__init__(world, max_power_w=max_power_w)
        self._update_output()

    # --- state ---------------------------------------------------------------------------
    def _power_up_state(self) -> None:
        self.mode = self.default_mode
        self.powered = bool(self.mode & MODE_AUTOPOWER)
        self.laser_on = bool(self.powered and self.mode & MODE_AUTOSTART)  # dropped if it cannot emit

    def pending(self) -> int:
        """GFB: the failures present now."""
        return (FAIL_INTERLOCK if not self.interlock_closed else 0) | (FAIL_LATCHED if self.latched else 0)

    def status_word(self) -> int:
        """GAS."""
        return ((GAS_ERROR if self.pending() else 0) | (GAS_LASER_ON if self.laser_on else 0)
                | (GAS_ENABLE_PIN if self.enable_pin else 0) | (GAS_KEY if self.key_switch else 0)
                | (GAS_POWERED if self.powered else 0))

    def _can_emit(self) -> bool:
        return (self.interlock_closed and self.key_switch and self.enable_pin and self.powered
                and not self.latched)

    def _update_output(self) -> None:
        """Emission and setpoint as the physics world should see them."""
        released = self.mode & (MODE_BIAS | MODE_OPERATING) == MODE_BIAS | MODE_OPERATING
        if not self._can_emit():
            self.laser_on = False
        self.emission = self.laser_on and bool(released)
        self.setpoint_w = self.level / 0xFFF * self.max_power_w

    # --- test controls -------------------------------------------------------------------
    def set_interlock(self, closed: bool) -> None:
        with self._lock:
            if not closed:
                self.latched |= FAIL_INTERLOCK
            super().set_interlock(closed)
            self._update_output()
            self._mirror()

    def set_key_switch(self, on: bool) -> None:
        """Turn the key switch (GAS bit 7); off switches the laser off."""
        with self._lock:
            self.key_switch = bool(on)
            self._update_output()
            self._mirror()

    def set_enable_pin(self, high: bool) -> None:
        """Drive the laser-enable input (GAS bit 6); low switches the laser off."""
        with self._lock:
            self.enable_pin = bool(high)
            self._update_output()
            self._mirror()

    def power_cycle(self) -> None:
        with self._lock:
            self.latched = FAIL_INTERLOCK if not self.interlock_closed else 0
            self._power_up_state()
            super().power_cycle()
            self._update_output()
            self._mirror()

    def active_faults(self) -> list[str]:
        faults = super().active_faults()
        return faults + ([f"latched failure GLF {self.latched:04X}"] if self.latched else [])

    # --- protocol ------------------------------------------------------------------------
    def error_reply(self, command: str) -> str:
        return UNKNOWN

    def encode_reply(self, command: str, replies: list[str], fault: str | None = None) -> bytes:
        if not replies:
            return b""
        data = b"".join(line.encode("latin-1", errors="replace") + b"\r" for line in replies)
        return b"\x00" + data if self.nul_before_replies else data

    def _measured_mw(self) -> str:
        self._mirror()  # the world sees this command's effect before it is measured
        return f"{self.measured_power_w() * 1e3:.1f}"

    def handle(self, command: str) -> list[str]:
        if not command.startswith("?") or len(command) < 4:
            return [UNKNOWN]
        mnemonic, arg = command[1:4], command[4:]
        queries = {
            "GFw": lambda: f"{self.model}{SEP}{self.device_id}{SEP}{self.firmware}",
            "GSN": lambda: self.serial,
            "GSI": lambda: f"{int(round(self.wavelength_nm))}{SEP}{int(round(self.max_power_w * 1e3))}",
            "GMP": lambda: f"{int(round(self.max_power_w * 1e3))}",
            "GWH": lambda: f"{self.hours}",
            "GAS": lambda: f"{self.status_word():04X}",
            "GFB": lambda: f"{self.pending():04X}",
            "GLF": lambda: f"{self.latched:04X}",
            "GOM": lambda: f"{self.mode:04X}",
            "GLP": lambda: f"{self.level:03X}",
            "MDP": self._measured_mw,
        }
        if mnemonic in queries:
            return [f"!{mnemonic}" + (queries[mnemonic]() if not arg else "x")]
        actions = {"LOn": self._laser_on, "LOf": self._laser_off, "POn": self._power_on, "POf": self._power_off,
                   "RsC": self._reset}
        if mnemonic in actions:
            ok = not arg and actions[mnemonic]()
        elif mnemonic == "SLP":
            ok = self._set_level(arg)
        elif mnemonic == "SOM":
            ok = self._set_mode(arg)
        else:
            return [UNKNOWN]
        self._update_output()
        reply = f"!{mnemonic}{'>' if ok else 'x'}"
        if mnemonic in ("LOn", "SLP") and self.mode & MODE_ADHOC:
            return [f"$MDP{self._measured_mw()}", reply]
        return [reply]

    def _laser_on(self) -> bool:
        if not self._can_emit():
            return False
        self.laser_on = True
        return True

    def _laser_off(self) -> bool:
        self.laser_on = False
        return True

    def _power_on(self) -> bool:
        self.powered = True
        return True

    def _power_off(self) -> bool:
        self.powered = False
        self.laser_on = False
        return True

    def _reset(self) -> bool:
        self.laser_on = False
        self.latched = 0 if self.interlock_closed else FAIL_INTERLOCK
        return True

    def _set_level(self, arg: str) -> bool:
        value = parse_hex(arg, 3)
        if value is None:
            return False
        self.level = value
        return True

    def _set_mode(self, arg: str) -> bool:
        value = parse_hex(arg, 4)
        if value is None:
            return False
        self.mode = value
        return True
