"""Fuzz the bench-file reader: a generated corpus of bad bench files, each refused with a
BenchFileError that names the file (and the key at fault), never a traceback.

The corpus is made from the embedded default bench and the three-colour bench by mutation:
every key's value replaced by values that are invalid by design (wrong types, non-finite,
400-digit integers, control characters, out of the documented ranges), unknown keys added to
every table, required keys and tables removed, tables turned into values, deep nesting, a
file over 1 MB, and real drivers with bad connection options. A fixed seed makes it repeatable.
"""

from __future__ import annotations

import random
import re
import tomllib
from dataclasses import dataclass

import pytest

from optgen.lab.bench.examples import edit_bench_text, rgb_bench_text
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.bench.reader import BenchFileError
from optgen.lab.cli import main

SEED = 20260611
SOURCE = "fuzz/bench-under-test.toml"
HUGE = "1" + "0" * 399                     # a 400-digit integer
NUL = r'"bad\u0000value"'                  # TOML escapes: a NUL inside a string
DEEP_ARRAY = "[" * 10000 + "]" * 10000
DEEP_TABLE = "{ a = " * 3000 + "1" + " }" * 3000

# Values no key accepts: every number key is finite and bounded (below 1e300 and above -1e300),
# every string key refuses control characters, and no key takes a table or an empty list.
UNIVERSAL_BAD = [NUL, r'"esc\u001b[2J"', HUGE, "-" + HUGE, "nan", "inf", "-inf", "1e300", "-1e300",
                 "{ x = 1 }", "[]", "[1e300, 1e300, 1e300]", "1979-05-27T07:32:00Z"]
# Wrong types, by the type the key has in the base file.
WRONG_TYPE = {bool: ['"yes"', "1", "0.0"], str: ["42", "true", '["a"]'], int: ['"12"', "true", "[1, 2]"],
              float: ['"1.5"', "false", "[1.0]"], list: ['"x"', "5", '[1, "x"]', "[[1, 2], [3, 4]]"]}
# Values out of each key's documented range (the same key in every table that has it).
OUT_OF_RANGE = {
    "wavelength_nm": ["199.9", "2000.5", "0"], "d1_mm": ["0", "-0.0", "-120.1", "10000.5"], "d2_mm": ["0", "1e5"],
    "seed_superpixels": ["0", "16385", "-3"], "superpixel_px": ["0", "16385"], "decoder_px": ["0", "16385"],
    "output_window_px": ["0", "16385"], "output_pixels": ["0", "16385"],
    "sensor_offset_um": ["[1e6, 0.0]", "[0.0]", "[1.0, 2.0, 3.0]"], "sensor_rotation_deg": ["180.5", "-181"],
    "power_mw": ["-0.001", "1e6"], "max_power_mw": ["0", "-1", "1e6"], "wall_plug_w": ["-1", "1e5"],
    "resolution": ["[200000, 200000]", "[16385, 1080]", "[0, 1080]", "[1920, -1]"], "pitch_um": ["0", "-8", "1001"],
    "bitdepth": ["0", "17", "-8"], "refresh_hz": ["0", "-60", "10000.5", "1e6"], "latency_frames": ["-1", "33", "1000"],
    "settle_ms": ["-0.5", "2000.5", "1e6"], "exposure_ms": ["0", "-0.1", "10000.5"], "readout_ms": ["-1", "2000.5"],
    "qe": ["0", "1.01", "-0.5"], "gain_dn_per_e": ["0", "-1", "1e4"], "host_j_per_gflop": ["-1", "1e7"],
    "grid_px": ["[16385, 800]", "[800, 0]"], "random_seed": ["-1", "9223372036854775808"],
    "waist_mm": ["0", "1001"], "aperture_mm": ["-1", "1001"], "power_noise_rms": ["-0.1", "0.51"],
    "device_max_power_mw": ["0", "1e6"], "response_max_rad": ["0.49", "50.5"], "response_exponent": ["0.1", "5.5"],
    "response_wobble_rad": ["5.5", "-5.5"], "crosstalk_sigma_px": ["-0.1", "10.5"], "shift_um": ["[1e6, 0.0]"],
    "rotation_deg": ["181", "-181"], "offset_um": ["[0.0, -1e6]"], "read_noise_e": ["-1", "2e9"],
    "dark_offset_dn": ["-1", "70000"], "full_well_e": ["0.5", "2e9"],
    "name": ['""', '"   "'], "lut": ['""'], "decoder_phase": ['""'], "model": ['""'], "store": ['""', '"  "'],
    "driver": ['"nope"', '"SIMULATED"'], "seed_source": ['"nope"'], "timing": ['"nope"'], "beam": ['"nope"'],
    "trigger_overlap": ['"nope"'], "order_nm": ["[638.0, 638.5, 450.0]", "[100.0, 520.0]", "[520.0, 3000.0]"],
    "camera_qe": ["[0.5]", "[0.5, 0.7, 0.0]", "[0.5, 0.7, 1.5]"],
}
# Keys every bench file must set (no default), per table; "colours.lasers.*" stands for each colour.
REQUIRED = {
    "bench": ["wavelength_nm"],
    "geometry": ["d1_mm", "d2_mm", "seed_superpixels", "superpixel_px", "decoder_px", "output_window_px",
                 "output_pixels"],
    "laser": ["driver", "wavelength_nm", "power_mw", "max_power_mw"],
    "encoding_slm": ["driver", "resolution", "pitch_um", "bitdepth", "refresh_hz", "latency_frames", "settle_ms"],
    "decoding_slm": ["driver", "resolution", "pitch_um", "bitdepth", "refresh_hz", "latency_frames", "settle_ms"],
    "camera": ["driver", "resolution", "pitch_um", "bitdepth", "exposure_ms"],
    "twin": ["grid_px"], "twin.encoding_slm": ["response_max_rad"], "twin.decoding_slm": ["response_max_rad"],
    "twin.camera": ["pitch_um"], "colours": ["order_nm"],
    "colours.lasers.*": ["driver", "wavelength_nm", "power_mw", "max_power_mw"],
}
REQUIRED_TABLES = ["bench", "geometry", "laser", "encoding_slm", "decoding_slm", "camera", "run", "twin", "twin.laser",
                   "twin.encoding_slm", "twin.decoding_slm", "twin.camera", "colours.lasers.638", "colours.lasers.450"]

# Real drivers: a valid connection table, and each key's kind (what makes a value bad).
REAL_CONNECTIONS = [
    ("laser", "obis", {"port": '"twin"'}, {"port": "name", "baudrate": "baud", "timeout_s": "timeout",
                                           "expected_model": "text"}),
    ("laser", "cobolt", {"port": '"/dev/ttyUSB0"'}, {"port": "name", "baudrate": "baud", "timeout_s": "timeout",
                                                     "expected_model": "text"}),
    ("laser", "scpi-ldc", {"resource": '"USB0::1::INSTR"', "slope_w_per_a": "0.8"},
     {"resource": "name", "slope_w_per_a": "positive", "threshold_a": "nonneg", "timeout_s": "timeout",
      "expected_model": "text", "visa_library": "name", "power_query": "name"}),
    ("encoding_slm", "screen", {}, {"display": "index", "allow_main": "bool", "vendor": "text", "model": "text",
                                    "serial": "text"}),
    ("decoding_slm", "meadowlark", {}, {"slm_number": "index", "sdk_path": "name", "serial": "text",
                                        "gpu": "reserved", "wav_um": "reserved", "timing": "reserved"}),
    ("camera", "genicam", {"cti": '"producer.cti"'},
     {"cti": "name", "device": "device", "pixel_format": "name", "gain": "nonneg", "trigger": "choice",
      "trigger_source": "name", "num_buffers": "count"}),
    ("camera", "opencv", {}, {"source": "index_or_name", "api": "choice"}),
]
_STRING_BAD = ["5", "true", "[]", "{ a = 1 }", NUL, r'"a\u001fb"', r'"a\u2028b"', HUGE]
BAD_BY_KIND = {
    "text": _STRING_BAD,
    "name": _STRING_BAD + ['""', '"   "'],
    "baud": ['"fast"', "1234", "115200.0", "-9600", HUGE, "true", "0"],
    "timeout": ["0", "-1", "60.5", "nan", "inf", '"1"', HUGE, "[1.0]"],
    "positive": ["0", "-1", "-0.0", "nan", '"0.8"', HUGE, "{ a = 1 }"],
    "nonneg": ["-0.5", "nan", "-inf", '"1"', HUGE, "1e300", "true"],
    "index": ["-1", "2.5", '"1"', "true", HUGE, "[1]"],
    "bool": ['"yes"', "1", "0", "[true]"],
    "choice": ['"nope"', "1", NUL, '""'],
    "count": ["0", "-1", "2.5", HUGE, '"4"'],
    "device": ["-1", "{}", '"cam"', "2.5", "{ serial_number = [] }", "{ serial_number = 1.5 }", HUGE, "true"],
    "index_or_name": ["-1", "2.5", '""', "true", "[]", HUGE, NUL],
    "reserved": ["1", "true", '"x"'],
}


@dataclass(frozen=True)
class Mutant:
    label: str
    text: str
    names: tuple[str, ...] = ()     # what the error must name besides the file


def key_lines(text: str) -> list[tuple[str, str, object]]:
    """(table, key, value) for every ``key = value`` line of a bench text (as edit_bench_text sees them)."""
    data, table, found = tomllib.loads(text), "", []
    for line in text.splitlines():
        header = re.match(r"^\[([^\]]+)\]\s*$", line)
        if header:
            table = header.group(1)
        match = re.match(r"^([A-Za-z_0-9]+)\s*=", line)
        if match:
            where = data
            for part in table.split("."):
                where = where[part]
            found.append((table, match.group(1), where[match.group(1)]))
    return found


def headers(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\[([^\]]+)\]\s*$", text, re.MULTILINE)]


def without_table(text: str, table: str) -> str:
    """``text`` without the [table] header and its own key lines (sub-tables stay)."""
    out, skipping = [], False
    for line in text.splitlines():
        header = re.match(r"^\[([^\]]+)\]\s*$", line)
        if header:
            skipping = header.group(1) == table
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def without_key(text: str, table: str, key: str) -> str:
    """``text`` without the ``key = ...`` line of [table]."""
    out, current = [], ""
    for line in text.splitlines():
        header = re.match(r"^\[([^\]]+)\]\s*$", line)
        if header:
            current = header.group(1)
        if not (current == table and re.match(rf"^{key}\s*=", line)):
            out.append(line)
    return "\n".join(out) + "\n"


def with_line_after_header(text: str, table: str, line: str) -> str:
    header = f"\n[{table}]\n"
    assert header in text, table
    return text.replace(header, header + line + "\n", 1)


def required_keys(table: str) -> list[str]:
    return REQUIRED.get("colours.lasers.*" if table.startswith("colours.lasers.") and table.count(".") == 2
                        else table, [])


def value_mutants(base: str, tag: str, rng: random.Random) -> list[Mutant]:
    """Every key's value replaced by values invalid by design."""
    out = []
    for table, key, value in key_lines(base):
        bad = UNIVERSAL_BAD + WRONG_TYPE[type(value)] + OUT_OF_RANGE.get(key, [])
        for text in bad:
            out.append(Mutant(f"{tag} [{table}] {key} = {text[:30]}", edit_bench_text(base, {(table, key): text}),
                              (f"[{table}]", key)))
        if isinstance(value, str):   # a random string with one control character at a random place
            chars = [rng.choice("abcxyz019 ._-/") for _ in range(rng.randint(1, 40))]
            chars.insert(rng.randint(0, len(chars)), rng.choice(["\\u0000", "\\u0007", "\\n", "\\r", "\\u007f",
                                                                  "\\u0085", "\\u2029"]))
            out.append(Mutant(f"{tag} [{table}] {key} random control", edit_bench_text(
                base, {(table, key): '"' + "".join(chars) + '"'}), (f"[{table}]", key)))
    return out


def structure_mutants(base: str, tag: str, rng: random.Random) -> list[Mutant]:
    """Unknown keys in every table, required keys and tables removed, tables as values, deep nesting."""
    out = [Mutant(f"{tag} unknown top-level key", "zz_fuzz = 1\n" + base, ("zz_fuzz",))]
    for table in headers(base):
        for line in ("zz_fuzz = 1", 'zz_fuzz = "x"', "zz_fuzz = { a = 1 }"):
            out.append(Mutant(f"{tag} [{table}] + {line}", with_line_after_header(base, table, line),
                              (f"[{table}]", "zz_fuzz")))
    present = {(t, k) for t, k, _ in key_lines(base)}
    for table, key in sorted(present):
        if key in required_keys(table):
            out.append(Mutant(f"{tag} [{table}] without {key}", without_key(base, table, key),
                              (f"[{table}]", f"'{key}'")))
    for table in REQUIRED_TABLES:
        if f"\n[{table}]\n" in base:
            out.append(Mutant(f"{tag} without [{table}]", without_table(base, table), (table,)))
    for table in ("bench", "geometry", "run", "calibration", "encoding_slm"):
        text = without_table(base, table)
        if table == "encoding_slm":
            text = without_table(text, "encoding_slm.connection")
        out.append(Mutant(f"{tag} {table} = 5", f"{table} = 5\n" + text, (f"[{table}]",)))
    for table, key, _ in rng.sample(key_lines(base), 6):
        for deep in (DEEP_ARRAY, DEEP_TABLE):
            out.append(Mutant(f"{tag} [{table}] {key} nested deeply", edit_bench_text(base, {(table, key): deep}),
                              ("nested too deeply",)))
    table, key, _ = rng.choice(key_lines(base))
    out.append(Mutant(f"{tag} duplicate [{table}] {key}", with_line_after_header(base, table, f"{key} = 1"),
                      ("not valid TOML",)))
    out.append(Mutant(f"{tag} over 1 MB", base + ("#" * 99 + "\n") * 10_001, ("at most 1000000 bytes",)))
    out.append(Mutant(f"{tag} dotted key of 5000 parts", "a" + ".a" * 4999 + " = 1\n" + base, ("5000 parts",)))
    out.append(Mutant(f"{tag} dotted geometry key", "geometry.d1_mm = 5\n" + base, ("not valid TOML",)))
    return out


def connection_mutants(base: str, tag: str) -> list[Mutant]:
    """Real drivers, each connection key given values its kind refuses, and unknown keys."""
    out = []
    for table, driver, valid, kinds in REAL_CONNECTIONS:
        for key, kind in kinds.items():
            for text in BAD_BY_KIND[kind]:
                lines = {**valid, key: text}
                out.append(Mutant(f"{tag} [{table}.connection] {driver} {key} = {text[:30]}",
                                  connection_text(base, table, driver, lines), (f"[{table}.connection", key)))
        if driver != "meadowlark":    # a vendor SDK takes other scalar options
            out.append(Mutant(f"{tag} [{table}.connection] {driver} + unknown",
                              connection_text(base, table, driver, {**valid, "zz_fuzz": "1"}),
                              (f"[{table}.connection]", "zz_fuzz")))
    return out


def connection_text(base: str, table: str, driver: str, lines: dict[str, str]) -> str:
    text = edit_bench_text(base, {(table, "driver"): f'"{driver}"'})
    body = "\n".join(f"{k} = {v}" for k, v in lines.items())
    return with_line_after_header(text, f"{table}.connection", body)


def corpus() -> list[Mutant]:
    rng = random.Random(SEED)
    mutants = []
    for tag, base in (("default", default_bench_text()), ("rgb", rgb_bench_text())):
        mutants += value_mutants(base, tag, rng) + structure_mutants(base, tag, rng)
    mutants += connection_mutants(default_bench_text(), "default")
    unique = {}
    for mutant in mutants:
        unique.setdefault(mutant.text, mutant)
    return list(unique.values())


CORPUS = corpus()


def test_the_bases_and_the_valid_connections_are_benches():
    parse_bench(default_bench_text(), SOURCE)
    parse_bench(rgb_bench_text(), SOURCE)
    for table, driver, valid, _ in REAL_CONNECTIONS:
        parse_bench(connection_text(default_bench_text(), table, driver, valid), SOURCE)


def outcome(mutant: Mutant) -> str | None:
    """None when parse_bench refuses the mutant as it should, else what went wrong."""
    try:
        parse_bench(mutant.text, SOURCE)
    except BenchFileError as exc:
        msg = str(exc)
        missing = [name for name in (SOURCE, *mutant.names) if name not in msg]
        if missing or "\n" in msg:
            return f"{mutant.label}: message {msg[:300]!r} lacks {missing} or has a line break"
        return None
    except BaseException as exc:   # noqa: BLE001 - the point of the test
        return f"{mutant.label}: TRACEBACK {type(exc).__name__}: {str(exc)[:200]}"
    return f"{mutant.label}: ACCEPTED"


def test_every_bad_bench_file_is_refused_with_a_bench_file_error_naming_file_and_key():
    assert len(CORPUS) >= 200
    failures = [f for f in map(outcome, CORPUS) if f is not None]
    tracebacks = [f for f in failures if "TRACEBACK" in f]
    accepted = [f for f in failures if f.endswith("ACCEPTED")]
    assert (len(tracebacks), len(accepted)) == (0, 0), "\n".join(tracebacks + accepted)
    assert failures == [], "\n".join(failures[:40])


def test_the_corpus_is_the_same_every_time():
    again = corpus()
    assert [m.text for m in again] == [m.text for m in CORPUS]


def test_a_sample_through_the_cli_says_one_line_and_exits_2(tmp_path, capsys):
    sample = random.Random(SEED).sample(CORPUS, 20)
    tracebacks = accepted = 0
    for i, mutant in enumerate(sample):
        path = tmp_path / f"bad-{i}.toml"
        path.write_text(mutant.text, encoding="utf-8")
        code = main(["config", "--check", str(path)])
        captured = capsys.readouterr()
        tracebacks += "Traceback" in captured.err
        accepted += code == 0
        lines = captured.err.splitlines()
        assert code == 2, (mutant.label, captured.err[:300])
        assert len(lines) == 1 and lines[0].startswith("optgen config: error:"), (mutant.label, captured.err[:300])
        assert str(path) in lines[0] and captured.out == ""
    assert (tracebacks, accepted) == (0, 0)


@pytest.mark.parametrize("kind", sorted(BAD_BY_KIND))
def test_every_kind_of_bad_connection_value_is_in_the_corpus(kind):
    used = {k for _, _, _, kinds in REAL_CONNECTIONS for k in kinds.values()}
    assert kind in used
