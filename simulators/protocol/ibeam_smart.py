"""A TOPTICA iBeam smart diode laser answering its serial protocol on a pseudo-terminal.

The protocol as this twin implements it (115200 8N1 on the real laser; a pty has no baud rate):

- Commands are words separated by blanks, case-insensitive, ending in CR, LF or CR LF. Every
  keyword may be abbreviated to a unique prefix of at least two letters (``sh``/``show``,
  ``sta``/``status``, ``la``/``laser``, ``ch``/``channel``, ``pow``/``power``, ``en``/``enable``,
  ``di``/``disable``, ``prom``/``prompt``, ``ver``/``version``, ``sat``/``satellite``,
  ``mic``/``micro``); ``id`` is written out.
- A reply is: the command echoed (only while ``echo on``), CR LF (so with echo off every reply
  starts with one empty line), the answer lines each ending in CR LF, then ``[OK]`` CR LF; while
  ``prompt on`` the reply ends in the prompt ``CMD> `` (no newline) instead of ``[OK]`` CR LF. The
  echo follows the state before the command (``echo off`` is still echoed), the ending the state
  after it (``prompt off`` already ends in ``[OK]``). An empty command (a bare CR LF) is a ping:
  ``\\r\\n[OK]\\r\\n``.
- Errors are one line ``%SYS-<L>-<nnn>, <text>`` before the usual ending. The codes and texts are
  this twin's choices (no source gives them): ``%SYS-W-002, Unknown command``, ``%SYS-W-003,
  Invalid parameter``, ``%SYS-W-004, No such channel``, ``%SYS-W-010, Value out of range``
  (power above the maximum or negative; the level is left unchanged), ``%SYS-E-020, Laser cannot
  be switched on: interlock open`` / ``...: clip check failed``, and ``%SYS-W-030, Command not
  executed`` for an injected ``error``.
- ``talk quiet|usual|gabby``: ``quiet`` leaves out the answer of ``show serial`` and ``id`` (the
  one thing the sources say of it); ``gabby`` answers as ``usual``.
- Power-up state (not documented; the sheet's reading of what every driver undoes): echo on,
  prompt on, talk usual, laser off, every channel level 0, channel 1 (bias) enabled, channel 2
  disabled (``channel2_enabled=True`` changes that; the sheet only says a laser whose saved
  settings enable it switches it on with ``la on``), clip check PASS.

Output: the laser emits while ``la on`` holds and at least one channel is enabled; the power is the
sum of the enabled channels' levels (channel 1 is the bias, channel 2 the operating level; more
channels with ``channels=3..5``), capped at ``max_power_w``. ``setpoint_w`` is that sum whether the
laser is on or not, so it is what the physics world sees when it is. ``di 0`` / ``en 0`` act on
every channel. Not modelled: external trigger (``en ext``), FINE, ``sh cur``/``sh temp``, uptime,
``save data``, service mode. Opening the interlock or a failing clip check (``set_clip_fail``)
switches the laser off; ``la on`` is refused until it is cleared; ``power_cycle`` clears the clip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optgen.simulators.protocol._pty import PtySerialTwin, garble

if TYPE_CHECKING:
    from optgen.simulators.world import OpticalWorld

__all__ = ["IBeamSmartTwin"]

PROMPT = "CMD> "
UNKNOWN = "%SYS-W-002, Unknown command"
INVALID = "%SYS-W-003, Invalid parameter"
NO_CHANNEL = "%SYS-W-004, No such channel"
OUT_OF_RANGE = "%SYS-W-010, Value out of range"
REFUSED = "%SYS-W-030, Command not executed"

FIRST_WORDS = ("echo", "prompt", "talk", "id", "serial", "version", "show", "laser", "status", "enable",
               "disable", "channel")
SHOW_WORDS = ("serial", "power", "level", "satellite")
STATUS_WORDS = ("laser", "channel", "clip")


def keyword(word: str, choices: tuple[str, ...]) -> str | None:
    """The keyword ``word`` abbreviates (a unique prefix of two letters or more), else None."""
    word = word.lower()
    if word in choices:
        return word
    if len(word) < 2:
        return None
    matches = [choice for choice in choices if choice.startswith(word)]
    return matches[0] if len(matches) == 1 else None


class IBeamSmartTwin(PtySerialTwin):
    """An iBeam smart: echo, prompt, talk level, laser on/off, channel levels and enables, clip check."""

    answers_empty_commands = True

    def __init__(self, world: OpticalWorld | None = None, *, max_power_w: float = 0.1, wavelength_nm: float = 520.0,
                 serial: str | None = None, firmware: str = "iBPs-001A01-05", channels: int = 2,
                 channel2_enabled: bool = False):
        if not 2 <= channels <= 5:
            raise ValueError(f"channels={channels}: an iBeam smart has 2 to 5 channels")
        self.wavelength_nm = float(wavelength_nm)
        self.model = f"iBEAM-SMART-{int(round(wavelength_nm))}-S"
        self.serial = serial if serial is not None else f"{self.model}-A3-15384"
        self.firmware = firmware
        self.channels = int(channels)
        self.channel2_enabled_at_power_up = bool(channel2_enabled)
        self.clip_fail = False
        self._power_up_state()
        super().__init__(world, max_power_w=max_power_w)
        self._update_output()

    # --- state ---------------------------------------------------------------------------
    def _power_up_state(self) -> None:
        self.echo = True
        self.prompt = True
        self.talk = "usual"
        self.laser_on = False
        self.levels_w = {n: 0.0 for n in range(1, self.channels + 1)}
        self.enabled = {n: n == 1 or (n == 2 and self.channel2_enabled_at_power_up)
                        for n in range(1, self.channels + 1)}
        self._echoing = self.echo

    def _update_output(self) -> None:
        """Emission and setpoint as the physics world should see them."""
        total = sum(level for n, level in self.levels_w.items() if self.enabled[n])
        self.setpoint_w = min(total, self.max_power_w)
        self.emission = self.laser_on and any(self.enabled.values())

    # --- test controls -------------------------------------------------------------------
    def set_clip_fail(self, fail: bool) -> None:
        """Make ``sta clip`` answer FAIL (and switch the laser off), or PASS again."""
        with self._lock:
            self.clip_fail = bool(fail)
            if fail:
                self.laser_on = False
            self._update_output()
            self._mirror()

    def set_interlock(self, closed: bool) -> None:
        with self._lock:
            if not closed:
                self.laser_on = False
            super().set_interlock(closed)
            self._update_output()
            self._mirror()

    def power_cycle(self) -> None:
        with self._lock:
            self.clip_fail = False
            self._power_up_state()
            super().power_cycle()
            self._update_output()
            self._mirror()

    def active_faults(self) -> list[str]:
        return super().active_faults() + (["clip check FAIL"] if self.clip_fail else [])

    # --- protocol ------------------------------------------------------------------------
    def error_reply(self, command: str) -> str:
        self._echoing = self.echo
        return REFUSED

    def encode_reply(self, command: str, replies: list[str], fault: str | None = None) -> bytes:
        head, tail = "", "[OK]"
        if fault == "garbled":
            head, tail = garble(head), garble(tail)
        text = (command if self._echoing else "") + head + "\r\n"
        text += "".join(line + "\r\n" for line in replies)
        text += PROMPT if self.prompt else tail + "\r\n"
        return text.encode("ascii", errors="replace")

    def handle(self, command: str) -> list[str]:
        self._echoing = self.echo
        words = command.split()
        if not words:
            return []
        first = keyword(words[0], FIRST_WORDS)
        args = words[1:]
        if first is None:
            return [UNKNOWN]
        if first in ("echo", "prompt"):
            if len(args) != 1 or args[0].lower() not in ("on", "off"):
                return [INVALID]
            setattr(self, first, args[0].lower() == "on")
            return []
        if first == "talk":
            if len(args) != 1 or args[0].lower() not in ("quiet", "usual", "gabby"):
                return [INVALID]
            self.talk = args[0].lower()
            return []
        if first in ("id", "serial", "version") and args:
            return [INVALID]
        if first == "id":
            return [] if self.talk == "quiet" else [self.model]
        if first == "serial":
            return self._serial()
        if first == "version":
            return [self.firmware]
        if first == "show":
            return self._show(args)
        if first == "laser":
            return self._laser(args)
        if first == "status":
            return self._status(args)
        if first in ("enable", "disable"):
            return self._enable(args, first == "enable")
        return self._set_level(args)

    def _serial(self) -> list[str]:
        return [] if self.talk == "quiet" else [f"SN: {self.serial}"]

    def _show(self, args: list[str]) -> list[str]:
        what = keyword(args[0], SHOW_WORDS) if args else None
        if what == "serial" and len(args) == 1:
            return self._serial()
        if what == "power" and len(args) == 1:
            microwatts = int(round(self.measured_power_w() * 1e6))
            return [f"PIC  = {microwatts:06d} uW  "]
        if what == "level" and len(args) == 2 and keyword(args[1], ("power",)):
            return [f"CH{n}, PWR: {level * 1e3:.3f} mW" for n, level in self.levels_w.items()]
        if what == "satellite" and len(args) == 1:
            return [f"  Type: {self.model}",
                    f"  Pmax: {int(round(self.max_power_w * 1e3))} mW",
                    *(f"  CH{n} setp: {level * 1e3:.3f} mW" for n, level in self.levels_w.items())]
        return [UNKNOWN if what is None else INVALID]

    def _laser(self, args: list[str]) -> list[str]:
        if len(args) != 1 or args[0].lower() not in ("on", "off"):
            return [INVALID]
        if args[0].lower() == "off":
            self.laser_on = False
        elif not self.interlock_closed:
            return ["%SYS-E-020, Laser cannot be switched on: interlock open"]
        elif self.clip_fail:
            return ["%SYS-E-020, Laser cannot be switched on: clip check failed"]
        else:
            self.laser_on = True
        self._update_output()
        return []

    def _status(self, args: list[str]) -> list[str]:
        what = keyword(args[0], STATUS_WORDS) if args else None
        if what == "laser" and len(args) == 1:
            return ["ON" if self.laser_on else "OFF"]
        if what == "clip" and len(args) == 1:
            return ["FAIL" if self.clip_fail else "PASS"]
        if what == "channel" and len(args) == 2:
            channel = self._channel(args[1])
            if isinstance(channel, str):
                return [channel]
            return ["ON" if self.enabled[channel] else "OFF"]
        return [UNKNOWN if what is None else INVALID]

    def _channel(self, text: str) -> int | str:
        """The channel number, or the error line."""
        try:
            channel = int(text)
        except ValueError:
            return INVALID
        return channel if channel in self.levels_w else NO_CHANNEL

    def _enable(self, args: list[str], on: bool) -> list[str]:
        if len(args) != 1:
            return [INVALID]
        if args[0] == "0":
            targets = list(self.enabled)
        else:
            channel = self._channel(args[0])
            if isinstance(channel, str):
                return [channel]
            targets = [channel]
        for channel in targets:
            self.enabled[channel] = on
        self._update_output()
        return []

    def _set_level(self, args: list[str]) -> list[str]:
        """``ch N pow X`` (mW) or ``ch N pow X mic`` (µW)."""
        if len(args) not in (3, 4) or keyword(args[1], ("power",)) is None:
            return [INVALID]
        if len(args) == 4 and keyword(args[3], ("micro",)) is None:
            return [INVALID]
        channel = self._channel(args[0])
        if isinstance(channel, str):
            return [channel]
        try:
            value = float(args[2])
        except ValueError:
            return [INVALID]
        watts = value * (1e-6 if len(args) == 4 else 1e-3)
        if not 0.0 <= watts <= self.max_power_w * (1 + 1e-9):
            return [OUT_OF_RANGE]
        self.levels_w[channel] = min(watts, self.max_power_w)
        self._update_output()
        return []
