"""Small pieces the laser drivers share: reply parsing, power formatting, identity checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from optgen.drivers.errors import DeviceError

__all__ = ["LaserReadback", "check_model", "check_wavelength", "format_fixed", "parse_float",
           "parse_on_off", "wavelength_in"]


@dataclass(frozen=True)
class LaserReadback:
    """What a laser reported about itself after (re)connecting: nothing here is assumed."""

    emission: bool
    setpoint_w: float
    faults: tuple[str, ...] = ()


def parse_float(device: str, command: str, reply: str) -> float:
    """A finite number from a reply, or DeviceError naming the command and the garbled reply."""
    try:
        value = float(reply)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DeviceError(device, f"garbled reply to {command!r}: {reply!r} is not a number")
    return value


def parse_on_off(device: str, command: str, reply: str, on: tuple[str, ...] = ("ON", "1"),
                 off: tuple[str, ...] = ("OFF", "0")) -> bool:
    """True/False from an on/off reply; anything else is a garbled reply."""
    word = reply.strip().upper()
    if word in on:
        return True
    if word in off:
        return False
    raise DeviceError(device, f"garbled reply to {command!r}: {reply!r}, expected one of "
                              f"{', '.join(on + off)}")


def format_fixed(value: float, ceiling: float, decimals: int = 6) -> str:
    """A value (W or A) as fixed-point text, never rounded above the ceiling."""
    step = 10.0 ** -decimals
    text = f"{value:.{decimals}f}"
    if float(text) > ceiling:
        text = f"{max(0.0, float(text) - step):.{decimals}f}"
    return text


def check_model(device: str, reported: str, expected: str | None, what: str) -> None:
    """Refuse a device whose identity does not contain the expected model text."""
    if expected and expected.casefold() not in reported.casefold():
        raise DeviceError(device, f"unexpected identity: {what} {reported!r} does not contain "
                                  f"{expected!r}. Is this the right port, and the right laser?")


def check_wavelength(device: str, reported_nm: float | None, configured_nm: float,
                     tolerance_nm: float | None, source: str) -> None:
    """Refuse a laser whose own wavelength differs from the bench file's (a wrong-laser guard)."""
    if reported_nm is None or tolerance_nm is None:
        return
    if abs(reported_nm - configured_nm) > tolerance_nm:
        raise DeviceError(device, f"the laser reports {reported_nm:g} nm ({source}) but the bench file "
                                  f"says wavelength {configured_nm:g} nm (tolerance {tolerance_nm:g} nm). "
                                  f"Is this the right laser on this port?")


def wavelength_in(text: str) -> float | None:
    """The first 'NNNnm' in a text (OBIS identity strings carry it), or None."""
    match = re.search(r"(\d{3,4}(?:\.\d+)?)\s*nm", text, flags=re.IGNORECASE)
    return float(match.group(1)) if match else None
