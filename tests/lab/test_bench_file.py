"""Bench-file validation: every error names the file, the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from optgen.lab.bench.examples import edit_bench_text
from optgen.lab.bench.parse import default_bench_text, load_bench, parse_bench
from optgen.lab.bench.reader import BenchFileError


def test_default_bench_is_the_published_geometry():
    cfg = load_bench()
    assert cfg.wavelength_nm == 520.0
    assert cfg.geometry.d1_m == pytest.approx(0.1201) and cfg.geometry.d2_m == pytest.approx(0.0964)
    assert cfg.geometry.seed_superpixels == 32 and cfg.geometry.superpixel_px == 10
    assert cfg.geometry.decoder_px == 400
    assert cfg.encoding_slm.resolution == (1920, 1080) and cfg.encoding_slm.shape == (1080, 1920)
    assert cfg.encoding_slm.pitch_um == 8.0
    assert cfg.twin.grid_shape == (800, 800)
    assert cfg.text == default_bench_text()


def test_the_embedded_bench_names_the_shipped_model_and_a_bench_without_one_runs_it():
    import tomllib

    from optgen.lab.model import SHIPPED_MODEL

    assert tomllib.loads(default_bench_text())["run"]["model"] == SHIPPED_MODEL
    without = "\n".join(line for line in default_bench_text().splitlines() if not line.startswith("model ="))
    assert "model =" not in without and parse_bench(without, "b.toml").run.model == SHIPPED_MODEL


def bad(changes, match):
    text = edit_bench_text(default_bench_text(), changes)
    with pytest.raises(BenchFileError, match=match) as info:
        parse_bench(text, "lab/bench.toml")
    assert str(info.value).startswith("lab/bench.toml: ")
    return str(info.value)


def test_unknown_driver_names_the_key_value_and_the_choices():
    msg = bad({("laser", "driver"): '"obis-9000"'}, r"\[laser\] driver = 'obis-9000': expected one of 'simulated'")
    assert "obis-9000" in msg


def test_negative_distance_is_refused():
    bad({("geometry", "d1_mm"): "-120.1"}, r"\[geometry\] d1_mm = -120.1: expected a number > 0")


def test_power_above_the_ceiling_is_refused():
    bad({("laser", "power_mw"): "5.0"}, r"\[laser\] power_mw = 5: expected at most the ceiling max_power_mw = 1")


def test_wrong_type_is_refused():
    bad({("camera", "exposure_ms"): '"fast"'}, r"\[camera\] exposure_ms = 'fast': expected a finite number > 0")
    bad({("encoding_slm", "resolution"): "[1920]"}, r"resolution = \[1920\]: expected a pair \[x, y\]")
    bad({("twin", "band_limit"): '"yes"'}, r"band_limit = 'yes': expected true or false")


def test_missing_key_is_named():
    text = default_bench_text().replace("d2_mm = 96.4", "")
    with pytest.raises(BenchFileError, match=r"\[geometry\] is missing the required key 'd2_mm'"):
        parse_bench(text, "f.toml")


def test_unknown_key_is_refused_with_the_allowed_ones():
    text = default_bench_text().replace("d2_mm = 96.4", "d2_mm = 96.4\nd3_mm = 5.0")
    with pytest.raises(BenchFileError, match=r"unknown key\(s\) 'd3_mm'; allowed: .*d1_mm"):
        parse_bench(text, "f.toml")


def test_missing_table_and_twin_requirement():
    text = default_bench_text().split("[camera]")[0]
    with pytest.raises(BenchFileError, match=r"the table \[camera\] is missing"):
        parse_bench(text, "f.toml")
    no_twin = default_bench_text().split("# ------")[0]
    with pytest.raises(BenchFileError, match=r"simulated devices need the \[twin\] table"):
        parse_bench(no_twin, "f.toml")


def test_geometry_that_does_not_fit_is_refused():
    bad({("twin", "grid_px"): "[2000, 800]"}, r"grid_px = \[2000, 800\]: expected at most the encoding_slm")
    bad({("twin", "grid_px"): "[300, 300]"}, r"expected room for the seed, decoder and output window \(400 px\)")
    bad({("geometry", "output_pixels"): "30"}, r"output_window_px = 320: expected a multiple of output_pixels = 30")
    bad({("decoding_slm", "pitch_um"): "9.2"}, r"pitch_um = 9.2: expected the encoding SLM's pitch 8")


def test_laser_at_another_wavelength_is_refused():
    bad({("laser", "wavelength_nm"): "638.0"}, r"\[laser\] wavelength_nm = 638: expected the bench wavelength 520")


def test_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(BenchFileError, match="f.toml: not valid TOML"):
        parse_bench("[bench\nname = 1", "f.toml")
    with pytest.raises(BenchFileError, match="nope.toml: bench file not found"):
        load_bench(tmp_path / "nope.toml")


def test_load_from_a_file_records_its_path_and_text(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text(default_bench_text())
    cfg = load_bench(path)
    assert cfg.source == str(path) and cfg.text == default_bench_text()


# --- refused at parse time, never a traceback: one test per behaviour ----------------------------

HUGE = "1" + "0" * 399          # a 400-digit integer


def with_connection(text: str, table: str, lines: str, driver: str | None = None) -> str:
    """``text`` with ``lines`` in [<table>.connection] (and [<table>] driver = ``driver``)."""
    if driver is not None:
        text = edit_bench_text(text, {(table, "driver"): f'"{driver}"'})
    header = f"\n[{table}.connection]\n"
    assert header in text
    return text.replace(header, header + lines.strip() + "\n", 1)


def refused(text: str, *parts: str) -> str:
    """parse_bench refuses ``text`` with a BenchFileError naming the file and every one of ``parts``."""
    with pytest.raises(BenchFileError) as info:
        parse_bench(text, "lab/bench.toml")
    msg = str(info.value)
    assert msg.startswith("lab/bench.toml: ") and "\n" not in msg
    for part in parts:
        assert part in msg, (part, msg)
    return msg


@pytest.mark.parametrize("table, key, expected", [
    ("geometry", "d1_mm", "a number > 0 and <= 10000"),
    ("laser", "power_mw", "a number >= 0 and <= 100000"),
    ("geometry", "seed_superpixels", "an integer >= 1 and <= 16384"),
    ("twin", "random_seed", "an integer >= 0 and <= 9223372036854775807"),
    ("geometry", "sensor_offset_um", "a pair [x, y] of numbers >= -100000 and <= 100000"),
])
def test_a_400_digit_integer_is_refused_as_out_of_range(table, key, expected):
    value = f"[{HUGE}, 0]" if key == "sensor_offset_um" else HUGE
    msg = refused(edit_bench_text(default_bench_text(), {(table, key): value}), f"[{table}] {key} = ", expected)
    assert len(msg) < 400   # the value is shown shortened


@pytest.mark.parametrize("value", ["[" * 10000 + "]" * 10000, "{ a = " * 5000 + "1" + " }" * 5000])
def test_deep_nesting_is_not_valid_toml(value):
    refused(edit_bench_text(default_bench_text(), {("bench", "name"): value}), "not valid TOML (nested too deeply)")


def test_any_failure_of_the_toml_parser_is_a_bench_file_error(monkeypatch):
    refused(edit_bench_text(default_bench_text(), {("bench", "wavelength_nm"): "9" * 5000}), "not valid TOML")
    import tomllib

    def out_of_memory(text):
        raise MemoryError()

    monkeypatch.setattr(tomllib, "loads", out_of_memory)
    refused(default_bench_text(), "not valid TOML (MemoryError")


def test_a_dotted_key_of_very_many_parts_is_refused_before_parsing():
    refused("x" + ".a" * 200000 + " = 1\n" + default_bench_text(), "a dotted key of 200001 parts", "at most 16")


def test_a_bench_file_over_1_mb_is_refused_unparsed(tmp_path):
    text = default_bench_text() + "#" * 1_000_000 + "\n"
    refused(text, f"{len(text.encode())} bytes", "at most 1000000 bytes")
    path = tmp_path / "big.toml"
    path.write_text(text)
    with pytest.raises(BenchFileError, match=rf"big.toml: the bench file is {path.stat().st_size} bytes: expected "
                                             r"at most 1000000 bytes"):
        load_bench(path)


def test_an_endless_file_is_refused_after_1_mb():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(BenchFileError, match=r"/dev/zero: the bench file is over 1000000 bytes"):
        load_bench("/dev/zero")


def test_a_file_that_is_not_utf8_or_a_path_with_nul_is_refused(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(default_bench_text().encode() + b"# \xe9\n")
    with pytest.raises(BenchFileError, match=r"latin1.toml: the bench file is not UTF-8 text"):
        load_bench(path)
    with pytest.raises(BenchFileError, match="cannot read the bench file"):
        load_bench("bench\0.toml")


def test_crlf_line_ends_read_as_in_text_mode(tmp_path):
    path = tmp_path / "dos.toml"
    path.write_bytes(default_bench_text().replace("\n", "\r\n").encode())
    assert load_bench(path).text == default_bench_text()


@pytest.mark.parametrize("table, key, value", [
    ("encoding_slm", "resolution", "[200000, 200000]"),
    ("decoding_slm", "resolution", "[1920, 16385]"),
    ("camera", "resolution", "[16385, 1024]"),
    ("twin", "grid_px", "[800, 20000]"),
])
def test_resolutions_are_at_most_16384_pixels_a_side(table, key, value):
    refused(edit_bench_text(default_bench_text(), {(table, key): value}), f"[{table}] {key} = ",
            "integers >= 1 and <= 16384")


@pytest.mark.parametrize("key", ["seed_superpixels", "superpixel_px", "decoder_px", "output_window_px",
                                 "output_pixels"])
def test_geometry_sizes_are_at_most_16384(key):
    refused(edit_bench_text(default_bench_text(), {("geometry", key): "16385"}), f"[geometry] {key} = 16385",
            "<= 16384")


def test_a_16384_pixel_slm_is_still_a_bench():
    text = edit_bench_text(default_bench_text(), {("encoding_slm", "resolution"): "[16384, 16384]",
                                                  ("camera", "resolution"): "[16384, 1]"})
    assert parse_bench(text, "b.toml").encoding_slm.resolution == (16384, 16384)


OBIS = 'port = "twin"\nbaudrate = 115200\ntimeout_s = 2.5\nexpected_model = "OBIS"'
SCPI = ('resource = "USB0::0x1313::0x804F::M0001::INSTR"\ntimeout_s = 1.0\nslope_w_per_a = 0.8\nthreshold_a = 0.03\n'
        'expected_model = "CLD1015"\nvisa_library = "@py"\npower_query = "MEAS:POW2?"')


def test_real_laser_connections_are_read_with_their_types():
    for driver in ("obis", "cobolt"):
        cfg = parse_bench(with_connection(default_bench_text(), "laser", OBIS, driver), "b.toml")
        assert cfg.laser.connection == {"port": "twin", "baudrate": 115200, "timeout_s": 2.5, "expected_model": "OBIS"}
    cfg = parse_bench(with_connection(default_bench_text(), "laser", SCPI, "scpi-ldc"), "b.toml")
    assert cfg.laser.connection["slope_w_per_a"] == 0.8 and cfg.laser.connection["resource"].startswith("USB0")


@pytest.mark.parametrize("driver, lines, parts", [
    ("obis", 'port = "twin"\nexpected_model = [1]', ("[laser.connection] expected_model = [1]", "a string")),
    ("cobolt", 'port = "twin"\nbaudrate = 1234', ("baudrate = 1234", "standard baud rates 1200")),
    ("obis", 'port = "twin"\nbaudrate = 115200.0', ("baudrate = 115200.0", "an integer")),
    ("obis", 'port = "twin"\ntimeout_s = 0', ("timeout_s = 0", "a number > 0 and <= 60")),
    ("obis", 'port = "twin"\ntimeout_s = 61', ("timeout_s = 61", "<= 60")),
    ("obis", 'port = ""', ("port = ''", "a non-empty string")),
    ("obis", 'baudrate = 9600', ("[laser.connection] is missing the required key 'port'",)),
    ("scpi-ldc", 'resource = "USB::1"', ("missing the required key 'slope_w_per_a'",)),
    ("scpi-ldc", 'resource = 5\nslope_w_per_a = 1.0', ("resource = 5", "a non-empty string")),
    ("scpi-ldc", 'resource = "USB::1"\nslope_w_per_a = 0', ("slope_w_per_a = 0", "> 0")),
    ("scpi-ldc", 'resource = "USB::1"\nslope_w_per_a = 1\nthreshold_a = -0.1', ("threshold_a = -0.1", ">= 0")),
    ("scpi-ldc", 'resource = "USB::1"\nslope_w_per_a = 1\npower_query = false', ("power_query = False",)),
    ("scpi-ldc", 'resource = "USB::1"\nslope_w_per_a = 1\nvisa_library = 7', ("visa_library = 7",)),
    ("scpi-ldc", 'resource = "USB::1"\nslope_w_per_a = 1\nport = "COM3"', ("unknown key(s) 'port'", "resource")),
])
def test_laser_connection_options_are_checked_at_parse_time(driver, lines, parts):
    refused(with_connection(default_bench_text(), "laser", lines, driver), *parts)


def test_the_parse_time_laser_keys_are_the_ones_open_laser_takes():
    from optgen.lab.bench.assemble import _LASER_OPTIONS
    from optgen.lab.bench.connections import CONNECTION_KEYS

    assert {d: set(k) for d, k in CONNECTION_KEYS["laser"].items() if d != "simulated"} == _LASER_OPTIONS
    assert CONNECTION_KEYS["laser"]["simulated"] == frozenset()


def test_a_genicam_camera_without_its_producer_is_refused_before_any_device_opens():
    text = with_connection(default_bench_text(), "camera", 'device = 0', "genicam")
    with pytest.raises(BenchFileError, match=r"\[camera.connection\].*'cti'"):
        parse_bench(text, "b.toml")


def test_slm_and_camera_connection_keys_match_the_drivers():
    from optgen.drivers.cameras.genicam import TRIGGER_MODES
    from optgen.drivers.cameras.opencv import _APIS
    from optgen.lab.bench.connections import CAMERA_CONNECTION, CONNECTION_KEYS
    from optgen.lab.bench.real import CAMERA_OPTIONS, SLM_OPTIONS

    assert CONNECTION_KEYS["slm"]["screen"] == SLM_OPTIONS["screen"]
    for driver, keys in CAMERA_OPTIONS.items():
        if keys is None:                   # the keys go on to slmsuite's class: optgen reads class and woi itself
            assert CONNECTION_KEYS["camera"][driver] == {"class", "woi"}
        else:
            assert CONNECTION_KEYS["camera"][driver] == keys
    for value in TRIGGER_MODES:
        text = with_connection(default_bench_text(), "camera", f'cti = "p.cti"\ntrigger = "{value}"', "genicam")
        assert parse_bench(text, "b.toml").camera.connection["trigger"] == value
    assert "api" in CAMERA_CONNECTION["opencv"].readers
    for api in _APIS:
        text = with_connection(default_bench_text(), "camera", f'api = "{api}"', "opencv")
        assert parse_bench(text, "b.toml").camera.connection["api"] == api


def test_slm_and_camera_connections_of_real_drivers_are_read_with_their_types():
    text = with_connection(default_bench_text(), "encoding_slm", 'display = 1\nallow_main = true\nserial = "P1"',
                           "screen")
    text = with_connection(text, "decoding_slm", 'slm_number = 1\nsdk_path = "C:/Blink"\nsettle_time_s = 0.01',
                           "meadowlark")
    text = with_connection(text, "camera", 'cti = "p.cti"\ndevice = { serial_number = "21345678" }\ngain = 2.0\n'
                                           'trigger = "hardware"\ntrigger_source = "Line0"\nnum_buffers = 4', "genicam")
    cfg = parse_bench(text, "b.toml")
    assert cfg.encoding_slm.connection == {"display": 1, "allow_main": True, "serial": "P1"}
    assert cfg.decoding_slm.connection == {"slm_number": 1, "sdk_path": "C:/Blink", "settle_time_s": 0.01}
    assert cfg.camera.connection["device"] == {"serial_number": "21345678"} and cfg.camera.connection["gain"] == 2.0
    text = with_connection(default_bench_text(), "camera", 'source = "rtsp://cam/1"\napi = "ffmpeg"', "opencv")
    assert parse_bench(text, "b.toml").camera.connection == {"source": "rtsp://cam/1", "api": "ffmpeg"}


@pytest.mark.parametrize("table, driver, lines, parts", [
    ("encoding_slm", "screen", 'display = "1"', ("[encoding_slm.connection] display = '1'", "an integer >= 0")),
    ("encoding_slm", "screen", "display = -1", ("display = -1",)),
    ("decoding_slm", "screen", "allow_main = 1", ("allow_main = 1", "true or false")),
    ("decoding_slm", "screen", "pitch = 8", ("unknown key(s) 'pitch'", "allowed: allow_main, display")),
    ("encoding_slm", "holoeye", "gpu = true", ("[encoding_slm.connection] gpu = True", "optgen sets it itself")),
    ("encoding_slm", "holoeye", "wav_um = 0.5", ("wav_um = 0.5", "optgen sets it itself")),
    ("encoding_slm", "santec", "extra = { a = 1 }", ("extra = {'a': 1}", "a string, true or false")),
    ("encoding_slm", "santec", "slm_number = \"one\"", ("slm_number = 'one'", "an integer")),
    ("encoding_slm", "meadowlark", '"not-a-name" = 1', ("[encoding_slm.connection] not-a-name = 1",
                                                        "an SDK option name")),
    ("camera", "genicam", 'cti = "p.cti"\ntrigger = "auto"', ("[camera.connection] trigger = 'auto'", "'off', 'software'")),
    ("camera", "genicam", "cti = \"p.cti\"\nnum_buffers = 0", ("num_buffers = 0", ">= 1 and <= 1024")),
    ("camera", "genicam", "cti = \"p.cti\"\ndevice = -2", ("device = -2", "a device index")),
    ("camera", "genicam", "cti = \"p.cti\"\ndevice = {}", ("device = {}", "a non-empty table of device properties")),
    ("camera", "genicam", "cti = \"p.cti\"\ndevice = { serial_number = [1] }", ("[camera.connection.device] serial_number",)),
    ("camera", "genicam", "cti = \"p.cti\"\ngain = nan", ("gain = nan", "a finite number")),
    ("camera", "opencv", 'api = "qt"', ("api = 'qt'", "one of 'any'")),
    ("camera", "opencv", "source = 1.5", ("source = 1.5", "a device index")),
    ("camera", "opencv", 'cti = "x"', ("unknown key(s) 'cti'", "allowed: api, source")),
])
def test_slm_and_camera_connection_options_are_checked_at_parse_time(table, driver, lines, parts):
    refused(with_connection(default_bench_text(), table, lines, driver), *parts)


def test_baudrate_fast_names_the_file_and_the_key():
    msg = refused(with_connection(default_bench_text(), "laser", 'port = "/dev/ttyACM0"\nbaudrate = "fast"', "obis"),
                  "[laser.connection] baudrate = 'fast': expected an integer among the standard baud rates")
    assert msg.startswith("lab/bench.toml: [laser.connection]")


@pytest.mark.parametrize("table", ["laser", "encoding_slm", "decoding_slm", "camera"])
def test_a_simulated_device_takes_no_connection_keys(table):
    refused(with_connection(default_bench_text(), table, 'port = "twin"'), f"[{table}.connection] has unknown key(s) "
            "'port'; allowed: none (driver 'simulated' takes no connection keys)")


def test_a_colour_laser_connection_is_checked_too():
    from optgen.lab.bench.examples import rgb_bench_text

    text = rgb_bench_text().replace("[colours.lasers.450.connection]\n", "[colours.lasers.450.connection]\nspeed = 1\n")
    refused(text, "[colours.lasers.450.connection] has unknown key(s) 'speed'")


def test_the_protocol_twin_port_takes_the_real_drivers_keys_only():
    refused(with_connection(default_bench_text(), "laser", 'port = "twin"\nresource = "x"', "obis"),
            "[laser.connection] has unknown key(s) 'resource'; allowed: baudrate, expected_model, port, timeout_s")


@pytest.mark.parametrize("table, key, value, shown", [
    ("bench", "name", r'"optgen\u0000bench"', r"'optgen\x00bench'"),
    ("bench", "name", r'"a\u001b[2Jb"', r"'a\x1b[2Jb'"),
    ("encoding_slm", "lut", '"""lin\near"""', r"'lin\near'"),
    ("run", "decoder_phase", r'"flat\u0085"', r"'flat\x85'"),
    ("run", "seed_file", r'"seeds\u2028.npy"', r"'seeds\u2028.npy'"),
])
def test_control_characters_are_refused_in_every_string(table, key, value, shown):
    refused(edit_bench_text(default_bench_text(), {(table, key): value}), f"[{table}] {key} = {shown}",
            "without control characters")


def test_control_characters_are_refused_in_connection_strings():
    refused(with_connection(default_bench_text(), "laser", r'port = "/dev/tty\u0000ACM0"', "obis"),
            r"[laser.connection] port = '/dev/tty\x00ACM0'", "without control characters")


def test_a_tab_is_allowed_in_a_string():
    assert parse_bench(edit_bench_text(default_bench_text(), {("bench", "name"): r'"a\tb"'}), "b.toml").name == "a\tb"


@pytest.mark.parametrize("table, key, value, expected", [
    ("encoding_slm", "settle_ms", "1e6", "a number >= 0 and <= 2000"),
    ("decoding_slm", "settle_ms", "-1", "a number >= 0 and <= 2000"),
    ("encoding_slm", "latency_frames", "33", "an integer >= 0 and <= 32"),
    ("decoding_slm", "refresh_hz", "10001", "a number > 0 and <= 10000"),
    ("encoding_slm", "refresh_hz", "0", "a number > 0 and <= 10000"),
    ("camera", "exposure_ms", "10000.5", "a number > 0 and <= 10000"),
    ("camera", "readout_ms", "2000.1", "a number >= 0 and <= 2000"),
    ("twin.encoding_slm", "settle_ms", "2001", "a number >= 0 and <= 2000"),
    ("twin.decoding_slm", "latency_frames", "100", "an integer >= 0 and <= 32"),
])
def test_timing_keys_have_upper_bounds(table, key, value, expected):
    refused(edit_bench_text(default_bench_text(), {(table, key): value}), f"[{table}] {key} = ", expected)


def test_the_largest_allowed_timings_still_make_a_bench():
    text = edit_bench_text(default_bench_text(), {("encoding_slm", "settle_ms"): "2000",
                                                  ("camera", "exposure_ms"): "1e4",
                                                  ("decoding_slm", "latency_frames"): "32",
                                                  ("decoding_slm", "refresh_hz"): "10000"})
    cfg = parse_bench(text, "b.toml")
    assert cfg.encoding_slm.settle_s == 2.0 and cfg.camera.exposure_s == 10.0


def test_safety_table_defaults_and_values():
    from optgen.lab.bench.config import BenchConfig, SafetyConfig

    assert load_bench().safety == SafetyConfig(watchdog_s=2.0, storage_stall_s=10.0)
    assert "[safety]" not in default_bench_text()
    cfg = parse_bench(default_bench_text() + "\n[safety]\nwatchdog_s = 0.5\nstorage_stall_s = 30\n", "b.toml")
    assert cfg.safety == SafetyConfig(0.5, 30.0)
    assert parse_bench(default_bench_text() + "\n[safety]\n", "b.toml").safety == SafetyConfig()
    fields = [f.name for f in BenchConfig.__dataclass_fields__.values()]
    assert fields.index("safety") == fields.index("colours") + 1


@pytest.mark.parametrize("lines, parts", [
    ("watchdog_s = 0.1", ("[safety] watchdog_s = 0.1", "a number >= 0.2 and <= 30")),
    ("watchdog_s = 31", ("watchdog_s = 31", "<= 30")),
    ("storage_stall_s = 0.5", ("[safety] storage_stall_s = 0.5", "a number >= 1 and <= 600")),
    ("storage_stall_s = inf", ("storage_stall_s = inf", "a finite number")),
    ('watchdog_s = "2"', ("watchdog_s = '2'",)),
    ("heartbeat_s = 1", ("[safety] has unknown key(s) 'heartbeat_s'; allowed: storage_stall_s, watchdog_s",)),
])
def test_safety_values_out_of_range_are_refused(lines, parts):
    refused(default_bench_text() + "\n[safety]\n" + lines + "\n", *parts)


def test_safety_must_be_a_table():
    refused("safety = 5\n" + default_bench_text(), "[safety] must be a table, got 5")


@pytest.mark.parametrize("table, key, value, parts", [
    ("geometry", "d2_mm", "inf", ("d2_mm = inf", "a finite number")),
    ("geometry", "sensor_rotation_deg", "-nan", ("sensor_rotation_deg = nan",)),
    ("geometry", "d1_mm", "-0.0", ("d1_mm = -0.0", "a number > 0")),
    ("geometry", "sensor_offset_um", '[1.0, "x"]', ("sensor_offset_um = [1.0, 'x']", "a pair")),
    ("encoding_slm", "resolution", "[1920.0, 1080.0]", ("resolution = [1920.0, 1080.0]", "integers")),
    ("geometry", "decoder_px", "400.0", ("decoder_px = 400.0", "an integer")),
    ("geometry", "decoder_px", "true", ("decoder_px = True", "an integer")),
    ("bench", "name", '""', ("name = ''", "a non-empty string")),
    ("encoding_slm", "lut", '"  "', ("lut = '  '", "a non-empty string")),
    ("run", "model", "{ name = \"x\" }", ("model = {'name': 'x'}", "a non-empty string")),
    ("bench", "name", "1979-05-27", ("name = datetime.date(1979, 5, 27)",)),
    ("bench", "name", '"' + "n" * 5000 + '"', ("name = 'nnn", "at most 4096 characters")),
    ("calibration", "use_camera", "[]", ("use_camera = []", "true or false")),
    ("twin.laser", "waist_mm", "1e300", ("waist_mm = 1e+300", "<= 1000")),
    ("twin.camera", "full_well_e", "1e10", ("full_well_e = 10000000000.0", "<= 1e+09")),
])
def test_wrong_types_and_odd_numbers_are_refused(table, key, value, parts):
    refused(edit_bench_text(default_bench_text(), {(table, key): value}), f"[{table}] {key} = ", *parts)


def test_negative_zero_reads_as_zero():
    cfg = parse_bench(edit_bench_text(default_bench_text(), {("geometry", "sensor_rotation_deg"): "-0.0"}), "b.toml")
    assert str(cfg.geometry.sensor_rotation_deg) == "0.0"


def test_tables_and_values_in_each_others_place_are_refused():
    refused(default_bench_text().replace("[laser.connection]\n", "[laser.connection.port]\n"),
            "[laser.connection] has unknown key(s) 'port'")
    refused("geometry = 1\n" + default_bench_text(), "not valid TOML")
    refused(default_bench_text().replace("[camera]\n", "[[camera]]\n"), "[camera] must be a table")
    refused(default_bench_text().replace("[twin.laser]\n", "[twin.laser.beam]\n"), "[twin.laser]")
    refused(default_bench_text().replace("[encoding_slm.connection]\n", "[encoding_slm]\nconnection = 3\n", 1),
            "not valid TOML")


def test_huge_and_mixed_colour_lists_are_refused():
    from optgen.lab.bench.examples import rgb_bench_text

    many = ", ".join(str(400.0 + i) for i in range(1000))
    refused(rgb_bench_text().replace("order_nm = [638.0, 520.0, 450.0]", f"order_nm = [{many}]"),
            "[colours] order_nm = ", "at most 16 numbers")
    refused(rgb_bench_text().replace("order_nm = [638.0, 520.0, 450.0]", 'order_nm = [638.0, "520", 450.0]'),
            "[colours] order_nm = [638.0, '520', 450.0]")
    refused(rgb_bench_text().replace("camera_qe = [0.55, 0.7, 0.6]", f"camera_qe = [0.5, {HUGE}, 0.6]"),
            "[colours] camera_qe = ")


def test_text_that_is_not_a_string_is_refused():
    refused(default_bench_text().encode(), "expected the bench file's text, got a bytes")


# --- what a real bench gets wrong (issue 20): keys and their bad values ----------------------------------
def _realistic_with(section: str, line: str) -> str:
    from optgen.lab.bench.examples import add_to_bench_text

    return add_to_bench_text(default_bench_text(), {section: [line]})


@pytest.mark.parametrize("section, line, expected", [
    ("twin.encoding_slm", "wavefront_waves = [" + ", ".join(["0.1"] * 37) + "]", "wavefront_waves"),
    ("twin.decoding_slm", "unmodulated_fraction = 0.6", "unmodulated_fraction"),
    ("twin.decoding_slm", "unmodulated_fraction = -0.01", "unmodulated_fraction"),
    ("twin.encoding_slm", "wavefront_radius_mm = 0", "wavefront_radius_mm"),
    ("twin", "d1_mm = -5.0", "d1_mm"),
    ("twin.laser", "centre_um = [1.0]", "centre_um"),
    ("twin.camera", "hot_pixel_fraction = 1.5", "hot_pixel_fraction"),
])
def test_a_realistic_key_out_of_range_is_named(section, line, expected):
    with pytest.raises(BenchFileError, match=expected):
        parse_bench(_realistic_with(section, line), "bench.toml")


def test_a_planted_wavefront_file_of_the_wrong_size_names_the_file_and_the_grid(tmp_path):
    import numpy as np

    from optgen.lab.bench.assemble import make_world

    (tmp_path / "w.npy").write_bytes(b"")
    np.save(tmp_path / "w.npy", np.zeros((100, 100)))
    bench = tmp_path / "bench.toml"
    bench.write_text(_realistic_with("twin.encoding_slm", 'wavefront_file = "w.npy"'))
    with pytest.raises(BenchFileError, match=r"wavefront_file = 'w.npy'.*\(100, 100\).*\(800, 800\)"):
        make_world(load_bench(bench))
    np.save(tmp_path / "w.npy", np.full((800, 800), 7, np.uint8))
    with pytest.raises(BenchFileError, match="uint8"):
        make_world(load_bench(bench))
    np.save(tmp_path / "w.npy", np.full((800, 800), 0.25))
    waves = make_world(load_bench(bench)).planted_truths().wavefront_rad["encoding_slm"]
    assert float(waves.mean()) == pytest.approx(0.5 * np.pi)


def test_a_vendor_wavefront_file_named_in_the_bench_file_is_loaded_beside_it_or_refused(tmp_path):
    import numpy as np
    from PIL import Image

    from optgen.drivers.errors import PhaseInputError
    from optgen.lab.bench.assemble import build_bench
    from optgen.lab.bench.examples import add_to_bench_text, small_bench_text

    bench = tmp_path / "bench.toml"
    bench.write_text(add_to_bench_text(small_bench_text(), {"encoding_slm": ['wavefront_correction = "panel.bmp"']}))
    Image.fromarray(np.full((256, 320), 32, np.uint8)).save(tmp_path / "panel.bmp")
    with build_bench(load_bench(bench), tmp_path / "store") as opened:
        assert opened.encoding_slm.vendor_correction_rad is not None
        assert opened.decoding_slm.vendor_correction_rad is None
    Image.fromarray(np.full((100, 100), 32, np.uint8)).save(tmp_path / "panel.bmp")
    with pytest.raises(PhaseInputError, match=r"panel.bmp: 100 x 100 pixels; expected the panel's 320 x 256"):
        build_bench(load_bench(bench), tmp_path / "store")
