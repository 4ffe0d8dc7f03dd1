"""A strict reader for one table of a TOML file: typed getters whose errors name the file,
the ``[table] key = value`` and what is allowed, and a check that no unknown key is left."""

from __future__ import annotations

import math
from typing import Any

from drivers.errors import OptgenError

__all__ = ["BenchFileError", "Section"]


class BenchFileError(OptgenError, ValueError):
    """A bench file that cannot describe a bench."""


_MISSING = object()


class Section:
    """Reads one table of the bench file, remembering which keys were used."""

    def __init__(self, source: str, name: str, table: Any):
        self.source, self.name = source, name
        if not isinstance(table, dict):
            raise BenchFileError(f"{source}: [{name}] must be a table, got {table!r}")
        self.table = table
        self.used: set[str] = set()

    def _fail(self, key: str, value: Any, expected: str) -> BenchFileError:
        return BenchFileError(f"{self.source}: [{self.name}] {key} = {value!r}: expected {expected}")

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key in self.table:
            return self.table[key]
        if default is _MISSING:
            raise BenchFileError(f"{self.source}: [{self.name}] is missing the required key '{key}'")
        return default

    def number(self, key: str, default: Any = _MISSING, *, low: float | None = None,
               high: float | None = None, low_open: bool = False) -> float:
        value = self._get(key, default)
        bounds = _bounds_text(low, high, low_open)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._fail(key, value, f"a finite number{bounds}")
        if low is not None and (value < low or (low_open and value == low)):
            raise self._fail(key, value, f"a number{bounds}")
        if high is not None and value > high:
            raise self._fail(key, value, f"a number{bounds}")
        return float(value)

    def integer(self, key: str, default: Any = _MISSING, *, low: int | None = None,
                high: int | None = None) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, value, f"an integer{_bounds_text(low, high, False)}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self._fail(key, value, f"an integer{_bounds_text(low, high, False)}")
        return value

    def string(self, key: str, default: Any = _MISSING, *, choices: tuple[str, ...] | None = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self._fail(key, value, "a string")
        if choices is not None and value not in choices:
            raise self._fail(key, value, "one of " + ", ".join(repr(c) for c in choices))
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, value, "true or false")
        return value

    def pair(self, key: str, default: Any = _MISSING, *, integer: bool = False,
             positive: bool = False) -> tuple:
        value = self._get(key, default)
        kind = "integers" if integer else "numbers"
        what = f"a pair [x, y] of {'positive ' if positive else ''}{kind}"
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise self._fail(key, value, what)
        for v in value:
            ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok_type or not math.isfinite(v) or (positive and v <= 0):
                raise self._fail(key, value, what)
        return tuple(int(v) for v in value) if integer else tuple(float(v) for v in value)

    def numbers(self, key: str, default: Any = _MISSING, *, low: float | None = None,
                high: float | None = None) -> tuple[float, ...]:
        """A non-empty list of finite numbers within the bounds."""
        value = self._get(key, default)
        what = f"a non-empty list of numbers{_bounds_text(low, high, False)}"
        if not isinstance(value, (list, tuple)) or not value:
            raise self._fail(key, value, what)
        for v in value:
            if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    or (low is not None and v < low) or (high is not None and v > high)):
                raise self._fail(key, value, what)
        return tuple(float(v) for v in value)

    def table_of(self, key: str) -> dict:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise self._fail(key, value, "a table")
        return dict(value)

    def sub(self, key: str, required: bool = True) -> "Section | None":
        self.used.add(key)
        if key not in self.table:
            if required:
                raise BenchFileError(f"{self.source}: the table [{self.name + '.' if self.name else ''}{key}] is missing")
            return None
        return Section(self.source, f"{self.name}.{key}" if self.name else key, self.table[key])

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            where = f"[{self.name}]" if self.name else "the top level"
            raise BenchFileError(
                f"{self.source}: {where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(self.used))}")


def _bounds_text(low, high, low_open) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return (" " + " and ".join(parts)) if parts else ""
