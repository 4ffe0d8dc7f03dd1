"""Bench-file validation: every error names the file, the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from lab.bench_file import BenchFileError, default_bench_text, load_bench, parse_bench
from tests.conftest import edit_bench_text


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

    from lab.model import SHIPPED_MODEL

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
