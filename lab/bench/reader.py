"""A strict reader for one table of a TOML file: typed getters whose errors name the file,
the ``[table] key = value`` and what is allowed, and a check that no unknown key is left.

Every getter checks the type and the range before it converts anything (a 400-digit integer
is refused as out of range, never turned into a float), and every string it returns is free
of control characters. Values in messages are shown with ``repr``, shortened when long.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from optgen.drivers.errors import OptgenError

__all__ = ["BenchFileError", "Section", "show"]

# The widest integer any key takes when it names no bounds of its own (TOML's 64-bit range).
INT_LIMIT = 2 ** 63 - 1
# The longest string any key takes (a path, a port, a name).
TEXT_LIMIT = 4096
# The longest shown value and the most unknown keys named in a message.
_SHOW_CHARS = 120
_SHOW_KEYS = 10
# Unicode categories refused in strings: control characters (tab excepted), surrogates, line breaks.
_REFUSED_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")


class BenchFileError(OptgenError, ValueError):
    """A bench file that cannot describe a bench."""


_MISSING = object()


def show(value: Any) -> str:
    """``repr(value)`` for a message: never fails, and at most about 120 characters."""
    try:
        text = repr(value)
    except (RecursionError, ValueError, MemoryError):
        return f"<a {type(value).__name__} too large to show>"
    if len(text) > _SHOW_CHARS:
        text = f"{text[:_SHOW_CHARS - 20]}... ({len(text)} characters)"
    return text


def _control_character(text: str) -> str | None:
    """The first character of ``text`` a bench file may not hold in a string, or None."""
    return next((c for c in text if c != "\t" and unicodedata.category(c) in _REFUSED_CATEGORIES), None)


def _key_text(key: str) -> str:
    """A key as written in TOML: bare when it can be, else quoted (so odd characters show escaped)."""
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else show(key)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_bounds(value: int | float, low, high, low_open: bool) -> bool:
    """Exact comparison (an int is never converted to a float here, so it cannot overflow)."""
    if low is not None and (value < low or (low_open and value == low)):
        return False
    return high is None or value <= high


class Section:
    """Reads one table of the bench file, remembering which keys were used."""

    def __init__(self, source: str, name: str, table: Any):
        self.source, self.name = source, name
        if not isinstance(table, dict):
            raise BenchFileError(f"{source}: [{name}] must be a table, got {show(table)}")
        self.table = table
        self.used: set[str] = set()

    def fail(self, key: str, value: Any, expected: str) -> BenchFileError:
        """The error for ``[table] key = value`` that should have been ``expected``."""
        return BenchFileError(f"{self.source}: [{self.name}] {_key_text(key)} = {show(value)}: expected {expected}")

    def has(self, key: str) -> bool:
        """Whether the table sets ``key`` (which counts as allowed from now on)."""
        self.used.add(key)
        return key in self.table

    def value(self, key: str, default: Any = _MISSING) -> Any:
        """The raw value of ``key``, or ``default``; a missing key without a default is an error."""
        self.used.add(key)
        if key in self.table:
            return self.table[key]
        if default is _MISSING:
            raise BenchFileError(f"{self.source}: [{self.name}] is missing the required key '{key}'")
        return default

    def number(self, key: str, default: Any = _MISSING, *, low: float | None = None,
               high: float | None = None, low_open: bool = False) -> float:
        """A finite number within the bounds, as a float (-0.0 read as 0.0)."""
        value = self.value(key, default)
        bounds = _bounds_text(low, high, low_open)
        if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
            raise self.fail(key, value, f"a finite number{bounds}")
        if not _in_bounds(value, low, high, low_open):
            raise self.fail(key, value, f"a number{bounds}")
        if isinstance(value, int) and abs(value) > INT_LIMIT:
            raise self.fail(key, value, f"a number{bounds} of at most {INT_LIMIT} in size")
        return float(value) + 0.0

    def integer(self, key: str, default: Any = _MISSING, *, low: int | None = None,
                high: int | None = None) -> int:
        """An integer within the bounds (and within 64 bits when no upper bound is named)."""
        value = self.value(key, default)
        high = INT_LIMIT if high is None else high
        low = -INT_LIMIT - 1 if low is None else low
        what = f"an integer{_bounds_text(low, high, False)}"
        if not isinstance(value, int) or isinstance(value, bool) or not _in_bounds(value, low, high, False):
            raise self.fail(key, value, what)
        return value

    def string(self, key: str, default: Any = _MISSING, *, choices: tuple[str, ...] | None = None,
               nonempty: bool = False) -> str:
        """A string without control characters, at most 4096 long; one of ``choices`` if given."""
        value = self.value(key, default)
        if choices is not None:
            if not isinstance(value, str) or value not in choices:
                raise self.fail(key, value, "one of " + ", ".join(repr(c) for c in choices))
            return value
        what = "a non-empty string" if nonempty else "a string"
        if not isinstance(value, str) or (nonempty and not value.strip()):
            raise self.fail(key, value, what)
        if len(value) > TEXT_LIMIT:
            raise self.fail(key, value, f"{what} of at most {TEXT_LIMIT} characters")
        bad = _control_character(value)
        if bad is not None:
            raise self.fail(key, value, f"{what} without control characters (found {bad!r})")
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self.value(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, value, "true or false")
        return value

    def scalar(self, key: str) -> str | bool | int | float:
        """A string, true/false or a finite number (an option handed on to a device's SDK)."""
        value = self.value(key)
        if isinstance(value, str):
            return self.string(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and abs(value) <= INT_LIMIT:
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value + 0.0
        raise self.fail(key, value, f"a string, true or false, or a finite number of at most {INT_LIMIT} in size")

    def pair(self, key: str, default: Any = _MISSING, *, integer: bool = False, positive: bool = False,
             low: float | None = None, high: float | None = None) -> tuple:
        """A pair [x, y] of numbers (or integers) within the bounds; ``positive`` means > 0."""
        value = self.value(key, default)
        kind = "integers" if integer else "numbers"
        bounds = _bounds_text(0 if positive and low is None else low, high, positive and low is None)
        what = f"a pair [x, y] of {kind}{bounds}"
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise self.fail(key, value, what)
        for v in value:
            ok_type = isinstance(v, int) if integer else _is_number(v)
            if (not ok_type or isinstance(v, bool) or (isinstance(v, float) and not math.isfinite(v))
                    or (positive and v <= 0) or not _in_bounds(v, low, high, False)
                    or abs(v) > INT_LIMIT):
                raise self.fail(key, value, what)
        return tuple(int(v) for v in value) if integer else tuple(float(v) + 0.0 for v in value)

    def numbers(self, key: str, default: Any = _MISSING, *, low: float | None = None,
                high: float | None = None, max_len: int = 64, allow_empty: bool = False) -> tuple[float, ...]:
        """A list of at most ``max_len`` finite numbers within the bounds (non-empty unless ``allow_empty``)."""
        value = self.value(key, default)
        what = (f"a {'' if allow_empty else 'non-empty '}list of at most {max_len} "
                f"numbers{_bounds_text(low, high, False)}")
        if not isinstance(value, (list, tuple)) or (not value and not allow_empty) or len(value) > max_len:
            raise self.fail(key, value, what)
        for v in value:
            if (not _is_number(v) or (isinstance(v, float) and not math.isfinite(v))
                    or not _in_bounds(v, low, high, False) or abs(v) > INT_LIMIT):
                raise self.fail(key, value, what)
        return tuple(float(v) + 0.0 for v in value)

    def sub(self, key: str, required: bool = True) -> "Section | None":
        self.used.add(key)
        if key not in self.table:
            if required:
                where = f"{self.name}.{_key_text(key)}" if self.name else _key_text(key)
                raise BenchFileError(f"{self.source}: the table [{where}] is missing")
            return None
        name = _key_text(key)
        return Section(self.source, f"{self.name}.{name}" if self.name else name, self.table[key])

    def done(self, note: str = "") -> None:
        """Refuse keys no getter asked for, naming them and the allowed ones (and ``note``)."""
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            where = f"[{self.name}]" if self.name else "the top level"
            named = ", ".join(show(k) for k in unknown[:_SHOW_KEYS])
            if len(unknown) > _SHOW_KEYS:
                named += f" and {len(unknown) - _SHOW_KEYS} more"
            allowed = ", ".join(sorted(self.used)) or "none"
            raise BenchFileError(f"{self.source}: {where} has unknown key(s) {named}; allowed: {allowed}"
                                 + (f" ({note})" if note else ""))


def _number_text(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _bounds_text(low, high, low_open) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {_number_text(low)}")
    if high is not None:
        parts.append(f"<= {_number_text(high)}")
    return (" " + " and ".join(parts)) if parts else ""
