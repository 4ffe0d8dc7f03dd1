"""A laser described by a command table: a TOML file that says which bytes do what.

A table names the link (serial or VISA, baud rate, terminators, how a reply ends, which lines
are errors, prompts or echoes, the commands sent first at every connect), the identity queries,
emission on/off and its query, the power setpoint with its unit and resolution and its
read-back, the measured power, the device maximum, and the fault and interlock queries. Every
query names the regular expression that finds its value in the reply (a group called
``value``) and how the value reads: a number in a unit, a fraction of full scale in hex, a
word from a list, or a bit of a hexadecimal status word.

Loading a table checks all of it (a table without an emission-off command or an emission
query is refused: nothing could verify the laser off), so a bad table is refused before any
device opens. The format is described in docs/laser-command-tables.md; optgen ships the tables
in ``tables/`` (:data:`SHIPPED_TABLES`).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from optgen.drivers.errors import OptgenError

__all__ = ["CommandTable", "CommandTableError", "Reading", "SHIPPED_TABLES", "TableCommand", "load_table",
           "shipped_table_names"]

TABLE_FORMAT = "optgen-laser-table-1"
POWER_UNITS = {"W": 1.0, "mW": 1e-3, "uW": 1e-6, "nW": 1e-9}
WAVELENGTH_UNITS = {"nm": 1.0}
READING_FORMATS = ("number", "hex-fraction", "words", "hex-bit", "hex-bits", "text")
MAX_REPLY_LINES = 64


class CommandTableError(OptgenError, ValueError):
    """A command table that cannot drive a laser safely: names the table, the key and what was expected."""

    def __init__(self, source: str, key: str, message: str):
        self.source = source
        self.key = key
        super().__init__(f"laser command table {source}: [{key}] {message}" if key else
                         f"laser command table {source}: {message}")


def _shipped_dir():
    return files(__package__).joinpath("tables")


def shipped_table_names() -> list[str]:
    """The tables optgen ships (``table = "<name>"`` in a bench file)."""
    return sorted(p.name[:-5] for p in _shipped_dir().iterdir() if p.name.endswith(".toml"))


SHIPPED_TABLES = tuple(shipped_table_names())


@dataclass(frozen=True)
class TableCommand:
    """A command to send and, where the device answers a command with a line of its own, the
    pattern that line must match (else the command counts as refused)."""

    send: str
    reply: re.Pattern | None = None


@dataclass(frozen=True)
class Reading:
    """A query and how its value is found in the reply and read.

    ``format``: ``number`` (times ``scale``), ``hex-fraction`` (of ``full_scale``), ``words``
    (``true_values`` / ``false_values``), ``hex-bit`` (bit ``bit`` set is true), ``hex-bits``
    (every set bit is a fault named in ``bits``) or ``text``.
    """

    key: str
    query: str
    pattern: re.Pattern
    format: str = "text"
    scale: float = 1.0
    full_scale: int = 0
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()
    bit: int = 0
    bits: dict[int, str] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)   # a 'unit' group in the reply picks one of these
    fault_when: str = ""          # a words/hex-bit fault check: "true" or "false" is the fault
    name: str = ""                # the fault's words


@dataclass(frozen=True)
class CommandTable:
    """A parsed, checked command table (see the module docstring)."""

    source: str
    family: str
    vendor: str
    transport: str                       # "serial" or "visa"
    baudrate: int
    flow_control: str                    # serial handshake: none, rtscts, dsrdtr or xonxoff
    write_terminator: str
    read_terminator: str                 # a reply line ends in this ("\n"; "\r" for CR-only devices)
    encoding: str
    ack: re.Pattern | None               # a reply ends with a line matching this; None: one line per query
    command_lines: int                   # without ack: the lines a command is answered with (0 or 1)
    error: re.Pattern | None             # a line that is the device's refusal
    ignore: tuple[re.Pattern, ...]       # prompts, echoes: lines dropped from every reply
    setup: tuple[TableCommand, ...]      # sent first at every connect, to make the dialogue line based
    prepare: tuple[TableCommand, ...]    # sent once the identity is accepted (modes, power-up)
    model: Reading
    expected_model: str
    serial: Reading | None
    firmware: Reading | None
    wavelength: Reading | None
    emission_on: TableCommand
    emission_off: TableCommand
    emission: Reading
    power_set: TableCommand              # send holds "{value}"
    power_unit: str                      # a POWER_UNITS key, or "hex-fraction"
    power_decimals: int
    power_digits: int                    # hex-fraction: digits of the value sent
    power_full_scale: int
    setpoint: Reading
    measured: Reading | None
    maximum: Reading | None
    maximum_w: float                     # a fixed device maximum when there is no query (inf: none)
    faults: tuple[Reading, ...]          # interlocks too: each check says which value is the fault
    clear_faults: TableCommand | None
    notes: str = ""

    @property
    def name(self) -> str:
        return Path(self.source).stem

    def power_text(self, watts: float, ceiling_w: float, device_max_w: float) -> str:
        """The setpoint as the device wants it, never rounded above ``ceiling_w``."""
        if self.power_unit == "hex-fraction":
            top = self.power_full_scale
            count = int(math.floor(watts / device_max_w * top + 1e-9))
            count = max(0, min(top, count))
            while count > 0 and count / top * device_max_w > ceiling_w:
                count -= 1
            return f"{count:0{self.power_digits}X}"
        scale = POWER_UNITS[self.power_unit]
        value = watts / scale
        step = 10.0 ** -self.power_decimals
        text = f"{value:.{self.power_decimals}f}"
        if float(text) * scale > ceiling_w:
            text = f"{max(0.0, float(text) - step):.{self.power_decimals}f}"
        return text

    def power_resolution_w(self, device_max_w: float) -> float:
        if self.power_unit == "hex-fraction":
            return device_max_w / self.power_full_scale
        return POWER_UNITS[self.power_unit] * 10.0 ** -self.power_decimals


# --- loading ----------------------------------------------------------------------------
def load_table(table: str | Path, base_dir: str | Path | None = None) -> CommandTable:
    """A shipped table by name (``"toptica-ibeam-smart"``) or a TOML file (relative paths from
    ``base_dir``), read and checked; :class:`CommandTableError` names what is wrong."""
    text, source = _table_text(str(table), base_dir)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CommandTableError(source, "", f"is not valid TOML: {exc}") from None
    return parse_table(data, source)


def _table_text(table: str, base_dir: str | Path | None) -> tuple[str, str]:
    if not table.strip():
        raise CommandTableError("''", "", "no table named: expected a shipped table "
                                          f"({', '.join(SHIPPED_TABLES)}) or a path to a .toml file")
    if table in SHIPPED_TABLES:
        resource = _shipped_dir().joinpath(f"{table}.toml")
        return resource.read_text(encoding="utf-8"), f"{table} (shipped)"
    path = Path(table).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.suffix != ".toml":
        raise CommandTableError(str(path), "", f"not a shipped table ({', '.join(SHIPPED_TABLES)}) and not a "
                                               f".toml file")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise CommandTableError(str(path), "", "no such file (a relative path is read from the bench file's "
                                               "folder)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandTableError(str(path), "", f"cannot be read: {exc}") from None


class _Part:
    """One table of the TOML with checked getters; unknown keys are refused at :meth:`done`."""

    def __init__(self, source: str, key: str, data: Any):
        if not isinstance(data, dict):
            raise CommandTableError(source, key, f"expected a table, got {data!r}")
        self.source, self.key, self.data, self.used = source, key, data, set()

    def fail(self, key: str, message: str) -> CommandTableError:
        return CommandTableError(self.source, self.key, f"{key}: {message}" if key else message)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "missing")
            return default
        return self.data[key]

    def text(self, key: str, default: Any = ..., nonempty: bool = True) -> str:
        value = self.get(key, default)
        if value is None:
            return value
        if not isinstance(value, str) or (nonempty and not value.strip()):
            raise self.fail(key, f"{value!r}: expected {'a non-empty ' if nonempty else 'a '}string")
        if not value.isascii():
            raise self.fail(key, f"{value!r}: expected ASCII text (what goes on the wire)")
        return value

    def integer(self, key: str, default: Any = ..., low: int = 0, high: int = 2**31) -> int:
        value = self.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(key, f"{value!r}: expected an integer from {low} to {high}")
        return value

    def number(self, key: str, default: Any = ...) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise self.fail(key, f"{value!r}: expected a finite number > 0")
        return float(value)

    def pattern(self, key: str, default: Any = ..., value_group: bool = False) -> re.Pattern | None:
        text = self.text(key, default)
        if text is None:
            return None
        try:
            compiled = re.compile(text)
        except re.error as exc:
            raise self.fail(key, f"{text!r} is not a regular expression: {exc}") from None
        if value_group and "value" not in compiled.groupindex:
            raise self.fail(key, f"{text!r}: expected a group named 'value', like '(?P<value>[0-9.]+)'")
        return compiled

    def words(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, default)
        if not isinstance(value, list) or not value or not all(isinstance(w, str) and w.strip() for w in value):
            raise self.fail(key, f"{value!r}: expected a non-empty list of words")
        return tuple(w.strip().upper() for w in value)

    def sub(self, key: str, required: bool = True) -> _Part | None:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self.fail(key, "missing table")
            return None
        return _Part(self.source, f"{self.key}.{key}" if self.key else key, self.data[key])

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail("", f"unknown key(s) {unknown}; allowed: {sorted(self.used)}")


def _command(part: _Part, key: str, required: bool = True) -> TableCommand | None:
    value = part.data.get(key)
    if value is None and not required:
        part.used.add(key)
        return None
    if isinstance(value, dict):
        sub = part.sub(key)
        command = TableCommand(sub.text("send"), sub.pattern("reply", None))
        sub.done()
        return command
    return TableCommand(part.text(key))


def _commands(part: _Part, key: str) -> tuple[TableCommand, ...]:
    """A list of commands (each a string or a { send, reply } table)."""
    value = part.get(key, [])
    if not isinstance(value, list):
        raise part.fail(key, f"{value!r}: expected a list of commands")
    return tuple(_command(_Part(part.source, part.key, {f"{key}[{i}]": c}), f"{key}[{i}]")
                 for i, c in enumerate(value))


def _reading(part: _Part, key: str, *, formats: tuple[str, ...], required: bool = True,
             units: dict[str, float] | None = None, fault_check: bool = False) -> Reading | None:
    sub = part.sub(key, required)
    if sub is None:
        return None
    reading = _reading_of(sub, formats=formats, units=units, fault_check=fault_check)
    sub.done()
    return reading


def _reading_of(sub: _Part, *, formats: tuple[str, ...], units: dict[str, float] | None,
                fault_check: bool) -> Reading:
    query = sub.text("query")
    pattern = sub.pattern("reply", r"^(?P<value>.*)$", value_group=True)
    fmt = sub.text("format", formats[0])
    if fmt not in formats:
        raise sub.fail("format", f"{fmt!r}: expected one of {', '.join(formats)}")
    options: dict[str, Any] = {}
    if fmt == "number" and units is not None:
        unit = sub.text("unit")
        if unit not in units:
            raise sub.fail("unit", f"{unit!r}: expected one of {', '.join(units)}")
        options["scale"] = units[unit]
        options["units"] = dict(units)
    elif fmt == "hex-fraction":
        options["full_scale"] = sub.integer("full_scale", low=1, high=2**32)
    elif fmt == "words":
        options["true_values"] = sub.words("true_values")
        options["false_values"] = sub.words("false_values")
        both = set(options["true_values"]) & set(options["false_values"])
        if both:
            raise sub.fail("false_values", f"{sorted(both)} also in true_values")
    elif fmt == "hex-bit":
        options["bit"] = sub.integer("bit", low=0, high=63)
    elif fmt == "hex-bits":
        bits = sub.get("bits", {})
        if not isinstance(bits, dict) or not all(k.isdigit() and isinstance(v, str) for k, v in bits.items()):
            raise sub.fail("bits", f"{bits!r}: expected a table of bit number = \"what it means\"")
        options["bits"] = {int(k): v for k, v in bits.items()}
    if fault_check:
        options["name"] = sub.text("name", query)
        if fmt in ("words", "hex-bit"):
            when = sub.text("fault_when")
            if when not in ("true", "false"):
                raise sub.fail("fault_when", f"{when!r}: expected \"true\" or \"false\" (which value is the fault)")
            options["fault_when"] = when
    return Reading(key=sub.key, query=query, pattern=pattern, format=fmt, **options)


_LIGHT = ("words", "hex-bit")
_POWER = ("number", "hex-fraction")


def parse_table(data: dict, source: str) -> CommandTable:
    """Check a table's content (the TOML already read) and build the :class:`CommandTable`."""
    top = _Part(source, "", data)
    fmt = top.text("format")
    if fmt != TABLE_FORMAT:
        raise top.fail("format", f"{fmt!r}: expected {TABLE_FORMAT!r}")
    family = top.text("family")
    vendor = top.text("vendor")
    notes = top.text("notes", "", nonempty=False)

    link = top.sub("link")
    transport = link.text("transport")
    if transport not in ("serial", "visa"):
        raise link.fail("transport", f"{transport!r}: expected \"serial\" or \"visa\"")
    baudrate = link.integer("baudrate", 9600, low=300, high=4_000_000)
    flow_control = link.text("flow_control", "none")
    if flow_control not in ("none", "rtscts", "dsrdtr", "xonxoff"):
        raise link.fail("flow_control", f"{flow_control!r}: expected none, rtscts, dsrdtr or xonxoff")
    terminator = link.text("write_terminator", nonempty=False)
    if terminator not in ("\r", "\n", "\r\n"):
        raise link.fail("write_terminator", f"{terminator!r}: expected \"\\r\", \"\\n\" or \"\\r\\n\"")
    read_terminator = link.text("read_terminator", "\n", nonempty=False)
    if read_terminator not in ("\r", "\n"):
        raise link.fail("read_terminator", f"{read_terminator!r}: expected \"\\n\" (LF or CR LF) or \"\\r\" (CR only)")
    encoding = link.text("encoding", "ascii")
    if encoding not in ("ascii", "latin-1", "utf-8"):
        raise link.fail("encoding", f"{encoding!r}: expected ascii, latin-1 or utf-8")
    ack = link.pattern("ack", None)
    command_lines = link.integer("command_reply_lines", 1, low=0, high=1)
    error = link.pattern("error", None)
    ignore_list = link.get("ignore", [])
    if not isinstance(ignore_list, list):
        raise link.fail("ignore", f"{ignore_list!r}: expected a list of regular expressions")
    ignore = []
    for i, text in enumerate(ignore_list):
        holder = _Part(source, "link", {f"ignore[{i}]": text})
        ignore.append(holder.pattern(f"ignore[{i}]"))
    setup = _commands(link, "setup")
    link.done()
    prepare = _commands(top, "prepare")

    ident = top.sub("identity")
    model = _reading_of(ident, formats=("text",), units=None, fault_check=False)
    expected_model = ident.text("expect", "", nonempty=False)
    ident.done()
    serial = _reading(top, "serial", formats=("text",), required=False)
    firmware = _reading(top, "firmware", formats=("text",), required=False)
    wavelength = _reading(top, "wavelength", formats=("number",), required=False, units=WAVELENGTH_UNITS)

    emission = top.sub("emission", required=False)
    if emission is None:
        raise top.fail("emission", "missing: a table must say how emission goes on and off and how to ask "
                                   "for it (the safe-off is verified by that query)")
    for key in ("on", "off", "query"):
        if key not in emission.data:
            what = {"off": "the emission-off command: nothing could turn this laser off",
                    "query": "the emission query: the safe-off could not be verified",
                    "on": "the emission-on command"}[key]
            raise emission.fail(key, f"missing ({what})")
    on = _command(emission, "on")
    off = _command(emission, "off")
    state = _reading_of(emission, formats=_LIGHT, units=None, fault_check=False)
    emission.done()

    power = top.sub("power")
    power_set = _command(power, "set")
    if "{value}" not in power_set.send:
        raise power.fail("set", f"{power_set.send!r}: expected a '{{value}}' placeholder for the setpoint")
    unit = power.text("unit")
    if unit not in (*POWER_UNITS, "hex-fraction"):
        raise power.fail("unit", f"{unit!r}: expected one of {', '.join(POWER_UNITS)} or hex-fraction")
    decimals = power.integer("decimals", 3, low=0, high=9)
    digits = power.integer("digits", 3, low=1, high=8)
    full_scale = power.integer("full_scale", 16 ** digits - 1, low=1, high=2**32) if unit == "hex-fraction" else 0
    power.done()
    setpoint = _reading(top, "setpoint", formats=_POWER, units=POWER_UNITS)
    measured = _reading(top, "measured", formats=_POWER, units=POWER_UNITS, required=False)
    maximum = _reading(top, "maximum", formats=("number",), units=POWER_UNITS, required=False)
    maximum_mw = top.get("maximum_mw", None)
    if maximum_mw is not None:
        maximum_mw = _Part(source, "", {"maximum_mw": maximum_mw}).number("maximum_mw")
    needs_max = unit == "hex-fraction" or setpoint.format == "hex-fraction" or (
        measured is not None and measured.format == "hex-fraction")
    if needs_max and maximum is None and maximum_mw is None:
        raise top.fail("maximum", "missing: a hex-fraction power is a fraction of the device maximum, so the table "
                                  "needs a [maximum] query or maximum_mw")

    fault_list = top.get("faults", [])
    if not isinstance(fault_list, list):
        raise top.fail("faults", f"{fault_list!r}: expected an array of tables ([[faults]])")
    faults = []
    for i, entry in enumerate(fault_list):
        sub = _Part(source, f"faults[{i}]", entry)
        faults.append(_reading_of(sub, formats=("hex-bits", "words", "hex-bit"), units=None, fault_check=True))
        sub.done()
    clear = _command(top, "clear_faults", required=False)
    top.done()
    return CommandTable(
        source=source, family=family, vendor=vendor, transport=transport, baudrate=baudrate, flow_control=flow_control,
        write_terminator=terminator, read_terminator=read_terminator, encoding=encoding, ack=ack,
        command_lines=command_lines, error=error, ignore=tuple(ignore), setup=setup, prepare=prepare,
        model=model, expected_model=expected_model, serial=serial, firmware=firmware, wavelength=wavelength,
        emission_on=on, emission_off=off, emission=state, power_set=power_set, power_unit=unit,
        power_decimals=decimals, power_digits=digits, power_full_scale=full_scale, setpoint=setpoint,
        measured=measured, maximum=maximum, maximum_w=maximum_mw * 1e-3 if maximum_mw else math.inf,
        faults=tuple(faults), clear_faults=clear, notes=notes)
