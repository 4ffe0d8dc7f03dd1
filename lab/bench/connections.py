"""Each driver's [<device>.connection] keys, read at parse time with their types and ranges, so a
bad option is refused before any device opens (optgen.lab.bench.assemble and .real hand them on)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from optgen.lab.bench.limits import MAX_TIMEOUT_S, SERIAL_BAUDRATES
from optgen.lab.bench.reader import BenchFileError
from optgen.lab.bench.reader import Section as _Section

__all__ = ["CAMERA_CONNECTION", "CONNECTION_KEYS", "LASER_CONNECTION", "SLM_CONNECTION", "read_connection"]

_Reader = Callable[[_Section, str], Any]


@dataclass(frozen=True)
class _Options:
    """The connection keys one driver takes: a reader per key, the required ones, and whether
    other keys go on to a vendor SDK (read as plain scalars)."""

    readers: Mapping[str, _Reader]
    required: tuple[str, ...] = ()
    sdk_keys: bool = False
    check: Callable[[_Section, dict], None] | None = None    # the keys together (after each is read)
    reserved: tuple[str, ...] = ()                           # SDK keys optgen sets itself


def _text(s: _Section, key: str) -> str:
    return s.string(key)


def _name(s: _Section, key: str) -> str:
    return s.string(key, nonempty=True)


def _timeout(s: _Section, key: str) -> float:
    return s.number(key, low=0.0, low_open=True, high=MAX_TIMEOUT_S)


def _baudrate(s: _Section, key: str) -> int:
    value = s.value(key)
    if not isinstance(value, int) or isinstance(value, bool) or value not in SERIAL_BAUDRATES:
        raise s.fail(key, value, "an integer among the standard baud rates " + ", ".join(map(str, SERIAL_BAUDRATES)))
    return value


def _index(high: int) -> _Reader:
    return lambda s, key: s.integer(key, low=0, high=high)


def _bounded(low: float, high: float, low_open: bool = False) -> _Reader:
    return lambda s, key: s.number(key, low=low, high=high, low_open=low_open)


def _choice(*choices: str) -> _Reader:
    return lambda s, key: s.string(key, choices=choices)


def _flag(s: _Section, key: str) -> bool:
    return s.boolean(key)


_DEVICE_INDEX = "a device index (an integer >= 0 and <= 1023)"


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1023


def _index_or_name(s: _Section, key: str) -> int | str:
    """A device index (0 to 1023) or a non-empty string (a path or URL)."""
    value = s.value(key)
    if isinstance(value, str):
        return s.string(key, nonempty=True)
    if not _is_index(value):
        raise s.fail(key, value, f"{_DEVICE_INDEX} or a non-empty string")
    return value


def _device_selector(s: _Section, key: str) -> int | dict:
    """A GenTL device: an index (0 to 1023) or a table of properties, e.g. { serial_number = "21345678" }."""
    value = s.value(key)
    if isinstance(value, dict) and value:
        props = _Section(s.source, f"{s.name}.{key}", value)
        return {k: _index_or_name(props, k) for k in sorted(value)}
    if not _is_index(value):
        raise s.fail(key, value, f"{_DEVICE_INDEX} or a non-empty table of device properties, "
                                 "e.g. { serial_number = \"21345678\" }")
    return value


_SERIAL_LASER = _Options({"port": _name, "baudrate": _baudrate, "timeout_s": _timeout, "expected_model": _text},
                         required=("port",))
def _command_table(s: _Section, key: str) -> str:
    """A laser command table, read and checked now (before any device opens): a shipped table's
    name, kept as it is, or a .toml path relative to the bench file, kept as an absolute path."""
    from pathlib import Path

    from optgen.drivers.lasers.command_table import SHIPPED_TABLES, CommandTableError, load_table

    name = s.string(key, nonempty=True)
    base = Path(s.source).parent if Path(s.source).is_file() else None
    try:
        table = load_table(name, base)
    except CommandTableError as exc:
        raise BenchFileError(f"{s.source}: [{s.name}] {key} = {name!r}: {exc}") from None
    return name if name in SHIPPED_TABLES else table.source


def _table_address(s: _Section, options: dict) -> None:
    """A serial table needs a port, a VISA table a resource (and not the other)."""
    from optgen.drivers.lasers.command_table import load_table

    transport = load_table(options["table"]).transport
    need, other = ("port", "resource") if transport == "serial" else ("resource", "port")
    if other in options:
        raise s.fail(other, options[other], f"no {other!r}: table {options['table']!r} talks over {transport}; "
                                            f"give {need!r}")
    if need not in options:
        raise BenchFileError(f"{s.source}: [{s.name}] is missing the required key '{need}' (table "
                             f"{options['table']!r} talks over {transport})")


# keys optgen itself gives a vendor SLM's SDK class (from the bench file or fixed)
_SDK_RESERVED = ("bitdepth", "gpu", "name", "pitch_um", "resolution", "timing", "vendor", "wav_um")
_VENDOR_SLM = _Options({"serial": _text, "slm_number": _index(64), "display_number": _index(64), "sdk_path": _name,
                        "lut_path": _name, "preselect": _name, "serial_number": _index_or_name}, sdk_keys=True,
                       reserved=_SDK_RESERVED)


def _slmsuite_camera_class(s: _Section, key: str) -> str:
    """One of slmsuite's camera classes whose vendor SDK is installed here (checked before any device opens)."""
    from optgen.drivers.cameras.slmsuite_camera import SLMSUITE_CAMERAS

    name = s.string(key, choices=tuple(sorted(SLMSUITE_CAMERAS)))
    spec = SLMSUITE_CAMERAS[name]
    if not spec.sdk_available():
        raise s.fail(key, name, f"a class whose SDK is installed: slmsuite's {name} needs the {spec.vendor} SDK "
                                f"(Python module {spec.sdk!r}): {spec.install}")
    return name


def _woi(s: _Section, key: str) -> tuple[int, int, int, int]:
    """A window of interest [x, width, y, height] in sensor pixels."""
    value = s.value(key)
    what = "a window of interest [x, width, y, height]: integers, x and y >= 0, width and height > 0"
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1_000_000 for v in value)
            or value[1] <= 0 or value[3] <= 0):
        raise s.fail(key, value, what)
    return tuple(value)

LASER_CONNECTION: dict[str, _Options] = {
    "simulated": _Options({}),
    "obis": _SERIAL_LASER,        # port = "twin": the protocol twin, same keys
    "cobolt": _SERIAL_LASER,
    "scpi-ldc": _Options({"resource": _name, "timeout_s": _timeout, "slope_w_per_a": _bounded(0.0, 100.0, True),
                          "threshold_a": _bounded(0.0, 100.0), "expected_model": _text, "visa_library": _name,
                          "power_query": _name}, required=("resource", "slope_w_per_a")),
    # any laser a command table describes; port = "twin" starts the protocol twin of a shipped table
    "table": _Options({"table": _command_table, "port": _name, "resource": _name, "baudrate": _baudrate,
                       "timeout_s": _timeout, "visa_library": _name}, required=("table",), check=_table_address),
}
SLM_CONNECTION: dict[str, _Options] = {
    "simulated": _Options({}),
    "screen": _Options({"display": _index(63), "allow_main": _flag, "vendor": _text, "model": _text,
                        "serial": _text}),
    **{vendor: _VENDOR_SLM for vendor in ("meadowlark", "holoeye", "santec", "hamamatsu")},
}
CAMERA_CONNECTION: dict[str, _Options] = {
    "simulated": _Options({}),
    "genicam": _Options({"cti": _name, "device": _device_selector, "pixel_format": _name,
                         "gain": _bounded(0.0, 1000.0), "trigger": _choice("off", "software", "hardware"),
                         "trigger_source": _name, "num_buffers": lambda s, key: s.integer(key, low=1, high=1024)},
                        required=("cti",)),
    "opencv": _Options({"source": _index_or_name,
                        "api": _choice("any", "v4l2", "dshow", "msmf", "avfoundation", "gstreamer", "ffmpeg")}),
    # any slmsuite camera class; its other keys go to the class (serial = "...", config = "...", ...)
    "slmsuite": _Options({"class": _slmsuite_camera_class, "woi": _woi}, required=("class",), sdk_keys=True,
                         reserved=("name", "pitch_um", "exposure_s")),
}
# The keys each driver takes (a vendor SLM's SDK takes others too).
CONNECTION_KEYS: dict[str, dict[str, frozenset[str]]] = {
    kind: {driver: frozenset(options.readers) for driver, options in table.items()}
    for kind, table in (("laser", LASER_CONNECTION), ("slm", SLM_CONNECTION), ("camera", CAMERA_CONNECTION))
}


def read_connection(s: _Section, driver: str, drivers: Mapping[str, _Options]) -> dict:
    """The [<table>.connection] options of ``driver``, each checked for its type and range."""
    table = s.sub("connection", required=False) or _Section(s.source, f"{s.name}.connection", {})
    spec = drivers[driver]
    options = {key: read(table, key) for key, read in spec.readers.items()
               if table.has(key) or key in spec.required}
    if spec.sdk_keys:
        options.update((key, _sdk_option(table, key, spec.reserved)) for key in sorted(set(table.table) - set(options)))
    table.done(f"driver {driver!r} takes no connection keys" if not spec.readers else f"driver {driver!r}")
    if spec.check is not None:
        spec.check(table, options)
    return options


def _sdk_option(s: _Section, key: str, reserved: tuple[str, ...]) -> str | bool | int | float:
    """An option for a vendor SDK class: a keyword name optgen does not set itself, a scalar value."""
    if key in reserved:
        known = ", ".join(sorted(s.used))
        raise s.fail(key, s.table[key], f"no {key!r} here: optgen sets it itself (allowed: {known} and the "
                                        f"SDK's own options)")
    if not key.isidentifier() or not key.isascii():
        raise s.fail(key, s.table[key], "an SDK option name (letters, digits and '_')")
    return s.scalar(key)
