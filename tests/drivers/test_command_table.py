"""Laser command tables: the shipped ones load; a bad table is refused naming the table, the key and
what was expected (and a table that could not verify the laser off is refused outright)."""

from __future__ import annotations

import copy
import math
import tomllib
from importlib.resources import files

import pytest

from optgen.drivers.lasers.command_table import (
    SHIPPED_TABLES,
    CommandTableError,
    load_table,
    parse_table,
)


def shipped(name: str) -> dict:
    return tomllib.loads(files("optgen.drivers.lasers").joinpath("tables", f"{name}.toml").read_text("utf-8"))


def test_the_shipped_tables_load():
    assert set(SHIPPED_TABLES) >= {"toptica-ibeam-smart", "omicron-luxx"}
    ibeam, luxx = load_table("toptica-ibeam-smart"), load_table("omicron-luxx")
    assert (ibeam.transport, ibeam.baudrate, ibeam.write_terminator, ibeam.read_terminator) == ("serial", 115200,
                                                                                                "\r\n", "\n")
    assert (luxx.baudrate, luxx.write_terminator, luxx.read_terminator, luxx.encoding) == (500000, "\r", "\r", "latin-1")
    assert ibeam.emission_off.send == "la off" and luxx.emission_off.send == "?LOf"
    assert math.isinf(ibeam.maximum_w) and luxx.power_unit == "hex-fraction"


@pytest.mark.parametrize("watts, ceiling, text", [
    (0.0, 0.05, "000"), (0.05, 0.05, "7FF"), (0.1, 0.1, "FFF"), (0.024, 0.05, "3D6"), (1e-5, 0.05, "000"),
])
def test_hex_fraction_setpoints_floor_and_stay_under_the_ceiling(watts, ceiling, text):
    luxx = load_table("omicron-luxx")
    assert luxx.power_text(watts, ceiling, 0.1) == text
    assert int(text, 16) / 4095 * 0.1 <= ceiling + 1e-15


@pytest.mark.parametrize("watts, ceiling, text", [(0.0125, 0.05, "12.500"), (0.0099996, 0.0099996, "9.999"),
                                                  (0.0, 0.05, "0.000")])
def test_decimal_setpoints_are_rounded_but_never_above_the_ceiling(watts, ceiling, text):
    assert load_table("toptica-ibeam-smart").power_text(watts, ceiling, math.inf) == text


def _without(data: dict, *path: str) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return data


def _with(data: dict, value, *path: str) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


BASE = shipped("toptica-ibeam-smart")
LUXX = shipped("omicron-luxx")


@pytest.mark.parametrize("data, match", [
    (_without(BASE, "emission", "off"), r"\[emission\] off: missing \(the emission-off command: nothing could turn"),
    (_without(BASE, "emission", "query"), r"\[emission\] query: missing \(the emission query: the safe-off could not"),
    (_without(BASE, "emission", "on"), r"\[emission\] on: missing"),
    (_without(BASE, "emission"), r"emission: missing: a table must say how emission goes on and off"),
    (_without(BASE, "power"), r"power: missing table"),
    (_without(BASE, "setpoint"), r"setpoint: missing table"),
    (_without(BASE, "identity"), r"identity: missing table"),
    (_without(BASE, "link", "transport"), r"\[link\] transport: missing"),
    (_with(BASE, "optgen-laser-table-9", "format"), r"format: 'optgen-laser-table-9': expected 'optgen-laser-table-1'"),
    (_with(BASE, "usb", "link", "transport"), r"\[link\] transport: 'usb': expected \"serial\" or \"visa\""),
    (_with(BASE, ";", "link", "write_terminator"), r"write_terminator: ';': expected"),
    (_with(BASE, 123, "link", "baudrate"), r"baudrate: 123: expected an integer from 300"),
    (_with(BASE, "(unclosed", "link", "ack"), r"\[link\] ack: '\(unclosed' is not a regular expression"),
    (_with(BASE, "(unclosed", "link", "ignore"), r"ignore: '\(unclosed': expected a list"),
    (_with(BASE, ["ok", "(bad"], "link", "ignore"), r"ignore\[1\]: '\(bad' is not a regular expression"),
    (_with(BASE, "CH2 (.*) mW", "setpoint", "reply"), r"\[setpoint\] reply: 'CH2 \(\.\*\) mW': expected a group named "
                                                      r"'value'"),
    (_with(BASE, "ch 2 pow", "power", "set"), r"\[power\] set: 'ch 2 pow': expected a '\{value\}' placeholder"),
    (_with(BASE, "kW", "power", "unit"), r"\[power\] unit: 'kW': expected one of W, mW, uW, nW or hex-fraction"),
    (_with(BASE, "furlong", "wavelength", "unit"), r"\[wavelength\] unit: 'furlong': expected one of nm"),
    (_with(BASE, "maybe", "emission", "format"), r"\[emission\] format: 'maybe': expected one of words, hex-bit"),
    (_with(BASE, ["ON"], "emission", "false_values"), r"false_values: \['ON'\] also in true_values"),
    (_with(BASE, [], "emission", "true_values"), r"true_values: \[\]: expected a non-empty list of words"),
    (_with(BASE, "sometimes", "faults", 0, "fault_when"), r"\[faults\[0\]\] fault_when: 'sometimes': expected"),
    (_with(BASE, 3, "emission", "on"), r"\[emission\] on: 3: expected a non-empty string"),
    (_with(BASE, "la on \u00b5", "emission", "on"), r"expected ASCII text"),
    (_with(BASE, {"send": "la on", "answer": "x"}, "emission", "on"), r"\[emission.on\] unknown key\(s\) \['answer'\]"),
    (_with(BASE, 1, "colour"), r"unknown key\(s\) \['colour'\]"),
    (_with(LUXX, 0, "link", "baudrate"), r"baudrate: 0"),
    (_without(LUXX, "maximum"), r"maximum: missing: a hex-fraction power is a fraction of the device maximum"),
    (_with(LUXX, {"1": 2}, "faults", 0, "bits"), r"\[faults\[0\]\] bits: .*expected a table of bit number"),
    (_with(LUXX, 99, "emission", "bit"), r"\[emission\] bit: 99: expected an integer from 0 to 63"),
    (_with(LUXX, "\r\n", "link", "read_terminator"), r"read_terminator: '\\r\\n': expected"),
    (_with(LUXX, "rts", "link", "flow_control"), r"flow_control: 'rts': expected none, rtscts, dsrdtr or xonxoff"),
])
def test_a_bad_table_is_refused_naming_the_key(data, match):
    with pytest.raises(CommandTableError, match=match) as info:
        parse_table(data, "lab/my-laser.toml")
    assert str(info.value).startswith("laser command table lab/my-laser.toml: ")


def test_a_table_file_is_read_relative_to_the_bench_folder(tmp_path):
    (tmp_path / "lasers").mkdir()
    (tmp_path / "lasers" / "mine.toml").write_text(
        files("optgen.drivers.lasers").joinpath("tables", "omicron-luxx.toml").read_text("utf-8"), encoding="utf-8")
    table = load_table("lasers/mine.toml", tmp_path)
    assert table.family == "Omicron LuxX" and table.source == str(tmp_path / "lasers" / "mine.toml")


@pytest.mark.parametrize("name, content, match", [
    ("missing.toml", None, r"missing.toml: no such file \(a relative path is read from the bench file's folder\)"),
    ("laser.txt", "x", r"not a shipped table \(omicron-luxx, toptica-ibeam-smart\) and not a .toml file"),
    ("broken.toml", "format = ", r"broken.toml: is not valid TOML"),
    ("latin.toml", b"\xff\xfe", r"latin.toml: cannot be read"),
])
def test_table_files_that_cannot_be_read(tmp_path, name, content, match):
    if isinstance(content, str):
        (tmp_path / name).write_text(content, encoding="utf-8")
    elif content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(CommandTableError, match=match):
        load_table(name, tmp_path)


def test_no_table_named():
    with pytest.raises(CommandTableError, match="no table named: expected a shipped table"):
        load_table("  ")
