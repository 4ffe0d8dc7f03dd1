"""A laser from a command table in a bench file: the table is read and checked when the bench file
is, a bad one refused before any device opens; a shipped table runs on its protocol twin."""

from __future__ import annotations

from importlib.resources import files

import pytest

from optgen.lab.bench.examples import add_to_bench_text, edit_bench_text
from optgen.lab.bench.parse import default_bench_text, load_bench, parse_bench
from optgen.lab.bench.reader import BenchFileError


def table_bench(connection: list[str], base: str | None = None) -> str:
    text = edit_bench_text(base or default_bench_text(), {("laser", "driver"): '"table"'})
    return add_to_bench_text(text, {"laser.connection": connection})


def test_a_shipped_table_and_a_port_make_a_laser_config():
    cfg = parse_bench(table_bench(['table = "omicron-luxx"', 'port = "/dev/ttyUSB0"', "baudrate = 57600"]), "b.toml")
    assert cfg.laser.connection == {"table": "omicron-luxx", "port": "/dev/ttyUSB0", "baudrate": 57600}


def test_a_table_file_beside_the_bench_file_is_read_from_its_folder(tmp_path):
    (tmp_path / "lasers").mkdir()
    table = files("optgen.drivers.lasers").joinpath("tables", "toptica-ibeam-smart.toml").read_text("utf-8")
    (tmp_path / "lasers" / "ours.toml").write_text(table, encoding="utf-8")
    bench = tmp_path / "bench.toml"
    bench.write_text(table_bench(['table = "lasers/ours.toml"', 'port = "/dev/ttyUSB0"']), encoding="utf-8")
    assert load_bench(bench).laser.connection["table"] == str(tmp_path / "lasers" / "ours.toml")


def test_a_table_without_a_safe_off_query_is_refused_when_the_bench_file_is_read(tmp_path):
    table = files("optgen.drivers.lasers").joinpath("tables", "toptica-ibeam-smart.toml").read_text("utf-8")
    (tmp_path / "unsafe.toml").write_text(table.replace('query = "sta la"', ""), encoding="utf-8")
    bench = tmp_path / "bench.toml"
    bench.write_text(table_bench(['table = "unsafe.toml"', 'port = "/dev/ttyUSB0"']), encoding="utf-8")
    with pytest.raises(BenchFileError, match=r"bench.toml: \[laser.connection\] table = 'unsafe.toml': laser command "
                                             r"table .*unsafe.toml: \[emission\] query: missing \(the emission query: "
                                             r"the safe-off could not be verified\)"):
        load_bench(bench)


@pytest.mark.parametrize("connection, match", [
    (['port = "/dev/ttyUSB0"'], r"\[laser.connection\] is missing the required key 'table'"),
    (['table = "acme-9000"', 'port = "/dev/ttyUSB0"'], r"table = 'acme-9000': .*not a shipped table "
                                                        r"\(omicron-luxx, toptica-ibeam-smart\) and not a .toml file"),
    (['table = "missing.toml"', 'port = "/dev/ttyUSB0"'], r"missing.toml: no such file"),
    (['table = "omicron-luxx"'], r"is missing the required key 'port' \(table 'omicron-luxx' talks over serial\)"),
    (['table = "omicron-luxx"', 'resource = "ASRL1::INSTR"'], r"resource = 'ASRL1::INSTR': expected no 'resource': "
                                                               r"table 'omicron-luxx' talks over serial"),
    (['table = "omicron-luxx"', 'port = "/dev/ttyUSB0"', "baudrate = 12345"], r"baudrate = 12345: expected an "
                                                                                r"integer among the standard baud"),
    (['table = "omicron-luxx"', 'port = "/dev/ttyUSB0"', "slope_w_per_a = 1.0"], r"unknown key\(s\) 'slope_w_per_a'"),
])
def test_bad_table_connections_are_refused(connection, match):
    with pytest.raises(BenchFileError, match=match):
        parse_bench(table_bench(connection), "b.toml")


@pytest.mark.parametrize("table, identity", [
    ("toptica-ibeam-smart", "laser         TOPTICA Photonics iBEAM-SMART-520-S (serial iBEAM-SMART-520-S-A3-15384, "
                            "firmware iBPs-001A01-05)"),
    ("omicron-luxx", "laser         Omicron-Laserage LuxX 520-100 (serial LX-123456, firmware"),
])
def test_devices_identifies_a_table_laser_on_its_protocol_twin(tmp_path, capsys, table, identity):
    pytest.importorskip("serial")
    from optgen.lab.cli import main
    from tests.conftest import small_bench_text

    bench = tmp_path / "bench.toml"
    bench.write_text(table_bench([f'table = "{table}"', 'port = "twin"'], small_bench_text()))
    assert main(["devices", "--bench", str(bench)]) == 0
    out = capsys.readouterr().out
    assert identity in out and "emission off" in out and "faults: none" in out


def test_port_twin_needs_a_shipped_table_with_a_twin(tmp_path):
    from optgen.lab.bench.assemble import build_bench
    from tests.conftest import small_bench_text

    table = files("optgen.drivers.lasers").joinpath("tables", "omicron-luxx.toml").read_text("utf-8")
    (tmp_path / "ours.toml").write_text(table, encoding="utf-8")
    bench = tmp_path / "bench.toml"
    bench.write_text(table_bench(['table = "ours.toml"', 'port = "twin"'], small_bench_text()))
    with pytest.raises(ValueError, match=r"port = \"twin\": there is no protocol twin for table '.*ours.toml' \(twins "
                                         r"exist for omicron-luxx, toptica-ibeam-smart\)"):
        build_bench(load_bench(bench))
