"""The calibration store: versioned files, never overwritten, refused on load when corrupt or mismatched.

Sections follow what loading guarantees: (1) a checksum over every byte of the file but itself,
(2) the content of each record checked against what a measurement makes and what the bench is,
(3) files made for another wavelength or light path passed over and named, (4) nothing but
CalibrationFileError, naming the file, whatever the file holds.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import optgen.calibration.record as record_module
import optgen.calibration.store as store_module
from optgen.calibration.lut import response_problem
from optgen.calibration.record import FORMAT_VERSION, CalibrationFileError
from optgen.calibration.record_checks import BenchSpec, check_for_bench
from optgen.calibration.store import CalibrationStore, load_record
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.calibrations import load_bench_calibrations, store_folder
from optgen.lab.bench.parse import parse_bench
from optgen.simulators import planted_response

from ..conftest import small_bench_text
from .records import (
    PATH,
    alignment_record,
    camera_record,
    edit,
    lut_record,
    set_attr,
    set_dataset,
    write_version_1,
)

OTHER_PATH = "d1=45.000mm;d2=30.000mm"


@pytest.fixture
def config():
    return parse_bench(small_bench_text(), "small")


def default_store() -> Path:
    """Where the small bench (no bench file) keeps its calibrations: the user data folder, which
    tests/conftest.py makes a fresh one per test."""
    return store_folder(parse_bench(small_bench_text(), "small"))


@pytest.fixture
def spec(config):
    return BenchSpec.from_config(config)


def refused(path, *fragments):
    """Loading ``path`` raises CalibrationFileError naming it and saying each of ``fragments``."""
    with pytest.raises(CalibrationFileError) as info:
        load_record(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- the store --------------------------------------------------------------------------------
def test_records_round_trip_and_a_new_one_supersedes_without_overwriting(tmp_path):
    store = CalibrationStore(tmp_path / "cal")
    first = store.save(lut_record(np.linspace(0, 6.5, 256)))
    second = store.save(lut_record(np.linspace(0, 6.4, 256)))
    assert first != second and first.exists() and second.exists()
    latest = store.latest("lut", "encoding_slm", 520.0, PATH)
    assert latest.path == second
    np.testing.assert_allclose(latest.results["phase_rad"][-1], 6.4)
    assert latest.residuals == {"fit_rms": 0.01} and latest.info == {"rounds": 2}
    assert latest.device_identity == {"serial": "encoding_slm"} and latest.bench_name == "test"
    assert latest.format_version == FORMAT_VERSION and len(latest.checksum) == 64
    assert latest.id.startswith("lut:encoding_slm:520nm:lut-encoding_slm-520nm-")
    assert store.latest("lut", "encoding_slm", 638.0, PATH) is None   # another wavelength
    assert store.latest("lut", "decoding_slm", 520.0, PATH) is None


def test_a_calibration_stopped_while_it_is_written_leaves_no_file(tmp_path, monkeypatch):
    store = CalibrationStore(tmp_path)

    def stopped(path):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(store_module, "seal", stopped)
        with pytest.raises(KeyboardInterrupt):
            store.save(lut_record())
    assert list(tmp_path.iterdir()) == []
    path = store.save(lut_record())
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert path.read_bytes().startswith(b"OPTGEN CALIBRATION FILE\nformat 2\nsha256 ")


def test_every_kind_round_trips_and_a_nan_linearity_is_kept(tmp_path, spec):
    store = CalibrationStore(tmp_path)
    for record in (alignment_record(), camera_record(linearity_rms=float("nan"))):
        loaded = load_record(store.save(record))
        check_for_bench(loaded, spec)
        assert loaded.kind == record.kind and loaded.info.keys() == record.info.keys()
    assert np.isnan(loaded.residuals["linearity_rms"]) and np.isnan(loaded.info["laser_power_w"])


def test_a_mismatched_wavelength_or_device_is_refused():
    record = lut_record(np.linspace(0, 6.5, 256), wavelength_nm=638.0)
    with pytest.raises(CalibrationFileError, match="made at 638 nm; this bench runs at 520 nm"):
        record.check_key("lut", "encoding_slm", 520.0, PATH)
    with pytest.raises(CalibrationFileError, match="expected a lut calibration of decoding_slm"):
        record.check_key("lut", "decoding_slm", 638.0, PATH)


def test_the_bench_opens_with_the_newest_lut_and_records_its_id(tmp_path, config):
    store = CalibrationStore(default_store())   # the bench's default store (user data folder)
    path = store.save(lut_record(np.linspace(0.0, 6.3, 256)))
    with build_bench(config) as bench:
        ids = bench.calibration_ids()
        assert ids["encoding_slm.lut"].endswith(path.name)
        assert ids["decoding_slm.lut"].startswith("linear-nominal")
        assert bench.encoding_slm.lut is not None and bench.decoding_slm.lut is None
        assert bench.calibrations.skipped == []
        bench.calibrations.check_devices(bench)


def test_a_lut_from_another_slm_serial_is_refused_and_the_bench_closes(tmp_path, config):
    CalibrationStore(default_store()).save(lut_record(np.linspace(0, 6.3, 256), serial="SN-OTHER"))
    with pytest.raises(CalibrationFileError, match="measured on SLM serial 'SN-OTHER'"):
        build_bench(config)


@pytest.mark.parametrize("record, fragment", [
    (alignment_record(serials={"encoding_slm": "encoding_slm", "decoding_slm": "SN-2", "camera": "twin"}),
     "SLM serial 'SN-2'; [decoding_slm] is serial 'decoding_slm'"),
    (camera_record(serial="CAM-9"), "camera serial 'CAM-9'; [camera] is serial 'twin'"),
    (lut_record(device="decoding_slm", serial="SN-3"), "SLM serial 'SN-3'; [decoding_slm]"),
])
def test_an_alignment_or_camera_calibration_from_another_device_is_refused_once_it_is_open(tmp_path, config,
                                                                                          record, fragment):
    path = CalibrationStore(default_store()).save(record)
    cals = load_bench_calibrations(config)          # the serial is only known once the device is open
    with build_bench(config, tmp_path / "empty") as bench, pytest.raises(CalibrationFileError) as info:
        cals.check_devices(bench)
    assert str(path) in str(info.value) and fragment in str(info.value) and "device_identity" in str(info.value)


def test_a_corrupt_newest_file_stops_the_bench_before_any_device_opens(tmp_path, config, mocker):
    from optgen.lab.bench import assemble

    folder = default_store()
    CalibrationStore(folder).save(lut_record(np.linspace(0, 6.3, 256)))
    (folder / "lut-encoding_slm-520nm-29990101T000000000000Z.h5").write_bytes(b"garbage")
    with pytest.raises(CalibrationFileError, match="29990101"):
        load_bench_calibrations(config)
    twin = mocker.spy(assemble, "_build_twin")
    with pytest.raises(CalibrationFileError, match="29990101"):
        build_bench(config)
    assert twin.call_count == 0


# --- 1. the checksum covers every byte but itself --------------------------------------------------
@pytest.mark.parametrize("change", [
    set_attr("device_identity", '{"serial": "SN-OTHER"}'),
    set_attr("bench_text", "[bench]\nname = 'another'\n"),
    set_attr("bench_name", "another bench"),
    set_attr("format_version", 2),                       # rewritten with the same value, as another type
    set_attr("created", "2026-01-01T00:00:00.000000+00:00"),
    set_attr("optical_path", OTHER_PATH),
    set_attr("residuals", '{"fit_rms": 0.0}'),
    set_attr("info", '{"rounds": 9}'),
    set_attr("note", "an extra attribute"),
    set_dataset("result/phase_rad", np.linspace(0, 6.5, 256).astype(np.float32)),   # same values, float32
    set_dataset("result/phase_rad", np.linspace(0, 6.5, 256).reshape(16, 16)),      # same bytes, 2-D
    set_dataset("raw/ratio", np.linspace(0, 1, 8) + 1e-12),
    set_dataset("raw/extra", np.zeros(3)),
], ids=["device_identity", "bench_text", "bench_name", "format_version", "created", "optical_path",
        "residuals", "info", "extra-attribute", "dtype", "shape", "raw", "extra-dataset"])
def test_the_checksum_covers_every_field(tmp_path, change):
    path = CalibrationStore(tmp_path).save(lut_record())
    edit(path, change, reseal=False)
    refused(path, "checksum mismatch")


def test_a_format_1_file_is_refused_with_the_advice_to_recalibrate(tmp_path):
    path = tmp_path / "lut-encoding_slm-520nm-20261201T120000000000Z.h5"
    write_version_1(path, lut_record(), "2026-12-01T12:00:00.000000+00:00")
    refused(path, "format_version: 1", f"reads version {FORMAT_VERSION} only", "re-run `optgen calibrate lut`")


def test_another_format_version_is_refused_with_the_reason(tmp_path):
    store = CalibrationStore(tmp_path)
    path = store.save(lut_record())
    data = bytearray(path.read_bytes())
    data[:512] = record_module.header_bytes(7, "0" * 64)
    path.write_bytes(bytes(data))
    refused(path, "format_version: 7; this optgen reads version 2 only", "optgen calibrate lut")
    path2 = store.save(lut_record())
    edit(path2, set_attr("format_version", 3))           # resealed, but the attribute contradicts the header
    refused(path2, "format_version: 3, the header says 2")


# --- 2. the content is what a measurement makes, for this bench ------------------------------------
def _steps():
    phase = np.zeros(256)
    phase[-1] = 6.5
    return phase


@pytest.mark.parametrize("phase, fragment", [
    (np.zeros(256), "constant"),
    (np.linspace(6.5, 0, 256), "reversed"),
    (np.linspace(0, 6.5, 7), "7 values"),
    (np.linspace(0, 6.5, 255), "255 values"),
    (np.where(np.arange(256) == 9, np.nan, np.linspace(0, 6.5, 256)), "NaN or infinite"),
    (np.where(np.arange(256) == 9, np.inf, np.linspace(0, 6.5, 256)), "NaN or infinite"),
    (np.linspace(0, 1e300, 256), "at most"),
    (np.linspace(0, 0.5, 256), "spans only 0.5 rad"),
    (np.r_[np.linspace(0, 6.5, 128), np.linspace(6.0, 6.6, 128)], "falls by"),
    (_steps(), "jumps"),
], ids=["zeros", "reversed", "7-entries", "255-entries", "nan", "inf", "huge", "small-range", "not-monotone",
        "step"])
def test_an_implausible_lut_is_never_written_and_is_refused_on_load(tmp_path, phase, fragment):
    store = CalibrationStore(tmp_path)
    with pytest.raises(CalibrationFileError, match="phase_rad"):
        store.save(lut_record(phase))
    assert list(tmp_path.iterdir()) == []
    path = store.save(lut_record())
    edit(path, set_dataset("result/phase_rad", phase))  # written anyway, with a valid checksum
    refused(path, "result/phase_rad", fragment)


def test_real_responses_pass_and_the_lut_length_must_match_the_slm(tmp_path, spec):
    for args in ((8, 6.5, 1.3, 0.3), (8, 8.0, 1.5, 0.3), (10, 6.5, 2.0, 0.3), (8, 3.0, 1.0, 0.0)):
        assert response_problem(planted_response(*args)) is None
    record = load_record(CalibrationStore(tmp_path).save(lut_record(planted_response(10, 6.5, 1.3, 0.3))))
    with pytest.raises(CalibrationFileError, match=r"1024 values; expected one per gray level of \[encoding_slm\], "
                                                   r"a 8-bit SLM \(256\)"):
        check_for_bench(record, spec)


@pytest.mark.parametrize("record, change, fragment", [
    (camera_record(), set_dataset("result/saturation_dn", np.nan), "result/saturation_dn: NaN or infinite"),
    (camera_record(), set_dataset("result/saturation_dn", 0.0), "result/saturation_dn: 0; expected a saturation"),
    (camera_record(), set_dataset("result/saturation_dn", -5.0), "result/saturation_dn: -5"),
    (camera_record(), set_dataset("result/exposure_s", 0.0), "result/exposure_s: 0"),
    (camera_record(), set_dataset("result/dark_frame", np.full((256, 320), -1.0)), "result/dark_frame"),
    (camera_record(), set_dataset("result/dark_frame", np.zeros((256, 320), dtype=np.int64)), "dtype int64"),
    (camera_record(), set_dataset("result/saturation_dn", np.array([3775.0, 1.0])), "shape (2,)"),
    (camera_record(), set_dataset("result/saturation_dn"), "result/saturation_dn: missing"),
    (camera_record(), set_attr("residuals", '{"linearity_rms": Infinity}'), "residuals['linearity_rms']"),
    (alignment_record(), set_dataset("result/output_to_sensor", np.full((2, 3), np.nan)), "NaN or infinite"),
    (alignment_record(), set_dataset("result/output_to_sensor", np.zeros((2, 3))), "a singular map"),
    (alignment_record(), set_dataset("result/output_to_sensor", np.zeros((3, 3))), "shape (3, 3)"),
    (alignment_record(), set_dataset("result/decoder_rotation_deg", 30.0), "turned by at most 5 degrees"),
    (alignment_record(), set_dataset("result/decoder_rotation_deg", np.inf), "NaN or infinite"),
    (alignment_record(), set_dataset("result/sensor_pitch_ratio", 10.0), "result/sensor_pitch_ratio: 10"),
    (alignment_record(), set_dataset("raw/decoder_centres_px", np.zeros((9, 3))), "raw/decoder_centres_px"),
    (alignment_record(), set_attr("residuals", '{"sensor_residual_px": NaN, "decoder_residual_m": 0}'),
     "residuals['sensor_residual_px']"),
    (lut_record(), set_dataset("result/crosstalk_sigma_px", 40.0), "result/crosstalk_sigma_px: 40"),
    (lut_record(), set_dataset("result/extra", np.zeros(2)), "result/extra: not a result of this kind"),
    (lut_record(), set_dataset("raw/ratio", np.array([0.1, np.nan])), "raw/ratio: NaN"),
    (lut_record(), set_attr("optical_path", "anywhere"), "optical_path: 'anywhere'"),
])
def test_implausible_camera_alignment_and_lut_content_is_refused(tmp_path, record, change, fragment):
    path = CalibrationStore(tmp_path).save(record)
    edit(path, change)
    refused(path, fragment)


@pytest.mark.parametrize("record, change, fragment", [
    (camera_record(), set_dataset("result/saturation_dn", 1e9),
     "result/saturation_dn: 1e+09; expected a level within the camera's 12 bits (0..4095)"),
    (camera_record(), set_dataset("result/dark_frame", np.zeros((100, 100), np.float32)), "shape (100, 100)"),
    (alignment_record(shift_m=(1.0, 0.0)), None, "result/decoder_shift_m: [1000000.0, 0.0] um"),
    (alignment_record(), set_dataset("result/sensor_rotation_deg", 20.0), "result/sensor_rotation_deg: 20"),
    (alignment_record(), set_dataset("result/decoder_pitch_m", 12e-6), "[decoding_slm] pitch_um 8"),
    (alignment_record(), set_dataset("result/decoder_slm_centre_px", np.array([511.5, 383.5])), "centre of"),
    (alignment_record(), set_dataset("result/output_to_sensor", np.array([[1 / 4.8e-6, 0, 5000], [0, 1 / 4.8e-6, 0]])),
     "the optical axis at sensor pixel (5000, 0)"),
    (alignment_record(), set_dataset("result/output_to_sensor", np.array([[1e3, 0, 160], [0, 1e3, 128]])),
     "a scale of"),
])
def test_content_that_does_not_fit_this_bench_is_refused(tmp_path, spec, record, change, fragment):
    store = CalibrationStore(tmp_path)
    path = store.save(record)
    if change is not None:
        edit(path, change)
    loaded = load_record(path)           # fine for some bench; not for this one
    with pytest.raises(CalibrationFileError) as info:
        check_for_bench(loaded, spec)
    assert str(path) in str(info.value) and fragment in str(info.value), str(info.value)


def test_a_bad_file_is_refused_by_the_bench_loader(tmp_path, config):
    store = CalibrationStore(default_store())
    path = store.save(camera_record())
    edit(path, set_dataset("result/saturation_dn", np.nan))
    with pytest.raises(CalibrationFileError, match="saturation_dn"):
        load_bench_calibrations(config)


# --- 3. files for another wavelength or light path are passed over, and named -----------------------
def test_a_lut_for_another_wavelength_is_skipped_and_named(tmp_path, config, caplog):
    store = CalibrationStore(default_store())
    used = store.save(lut_record())
    other = store.save(lut_record(wavelength_nm=638.0))
    with caplog.at_level(logging.WARNING, logger="optgen"):
        cals = load_bench_calibrations(config)
    assert cals.luts["encoding_slm"].id.endswith(used.name)
    assert len(cals.skipped) == 1 and cals.skipped[0] == (f"{other}: made at 638 nm; this bench runs at 520 nm "
                                                        f"(not one of its colours); not used")
    assert any(str(other) in r.getMessage() and r.levelname == "WARNING" and r.name == "optgen"
               for r in caplog.records)


def test_only_the_newest_file_of_another_wavelength_is_named(tmp_path, config):
    store = CalibrationStore(default_store())
    store.save(camera_record(wavelength_nm=638.0))
    newest = store.save(camera_record(wavelength_nm=638.0))
    store.save(lut_record(wavelength_nm=450.0, device="decoding_slm"))
    cals = load_bench_calibrations(config)
    assert cals.camera is None and cals.luts["decoding_slm"].id.startswith("linear-nominal")
    assert len(cals.skipped) == 2 and any(line.startswith(f"{newest}: made at 638 nm") for line in cals.skipped)


def test_a_multi_colour_bench_names_its_other_colours_files_as_such(tmp_path, caplog):
    from optgen.lab.bench.config import colour_bench
    from optgen.lab.bench.examples import rgb_bench_text

    config = colour_bench(parse_bench(rgb_bench_text(small=True), "rgb"), 450.0)
    store = CalibrationStore(store_folder(config))     # each colour of the bench: one store
    red = store.save(lut_record(wavelength_nm=638.0))
    stray = store.save(lut_record(wavelength_nm=700.0, device="decoding_slm"))
    blue = store.save(lut_record(wavelength_nm=450.0))
    with caplog.at_level(logging.INFO, logger="optgen"):
        cals = load_bench_calibrations(config)
    assert cals.luts["encoding_slm"].id.endswith(blue.name)
    other = f"{red}: made at 638 nm; this bench runs at 450 nm (another of its colours); not used"
    stranger = f"{stray}: made at 700 nm; this bench runs at 450 nm (not one of its colours); not used"
    assert sorted(cals.skipped) == sorted([other, stranger]) and cals.other_colours == [other]
    # the bench's own other colour is expected in its store: said, not warned; a stranger is warned
    levels = {r.getMessage().removeprefix("calibration not used: "): r.levelno for r in caplog.records}
    assert levels == {other: logging.INFO, stranger: logging.WARNING}


def test_an_alignment_for_another_light_path_is_skipped_and_named(tmp_path, config):
    store = CalibrationStore(default_store())
    matching = store.save(alignment_record())
    other = store.save(alignment_record(path_key=OTHER_PATH))
    cals = load_bench_calibrations(config)
    assert cals.alignment.path == matching                       # the newest one on this path
    assert cals.skipped == [(f"{other}: made on optical path {OTHER_PATH}; this bench is {PATH}; not used "
                             f"(optgen calibrate alignment measures this path)")]
    matching.unlink()
    cals = load_bench_calibrations(config)
    assert cals.alignment is None and cals.decoder_placement() is None and len(cals.skipped) == 1
    with build_bench(config) as bench:                            # the bench carries the list for the run file
        assert bench.calibrations.skipped == cals.skipped


def test_an_odd_h5_and_a_calibration_of_an_unknown_device_are_named(tmp_path, config):
    folder = default_store()
    path = CalibrationStore(folder).save(lut_record())
    (folder / "notes.h5").write_bytes(b"x")
    (folder / "lut-third_slm-520nm-20261201T120000000000Z.h5").write_bytes(b"x")
    (folder / "readme.txt").write_text("not a calibration")
    cals = load_bench_calibrations(config)
    assert cals.luts["encoding_slm"].id.endswith(path.name)
    assert len(cals.skipped) == 2
    assert any("notes.h5: not named as a calibration file" in line for line in cals.skipped)
    assert any("device 'third_slm', which no bench has" in line for line in cals.skipped)


@pytest.mark.parametrize("change, fragment", [
    (set_attr("wavelength_nm", 638.0), "made at 638 nm; the file name says 520 nm"),
    (set_attr("device", "decoding_slm"), "kind, device: lut of decoding_slm; the file name says lut of encoding_slm"),
    (set_attr("kind", "camera"), "device: 'encoding_slm'; expected camera for a calibration of kind camera"),
    (set_attr("created", "2020-01-01T00:00:00.000000+00:00"), "the file name says"),
])
def test_a_file_whose_name_contradicts_its_content_is_refused(tmp_path, config, change, fragment):
    path = CalibrationStore(default_store()).save(lut_record())
    edit(path, change)
    with pytest.raises(CalibrationFileError) as info:
        load_bench_calibrations(config)
    assert str(path) in str(info.value) and fragment in str(info.value), str(info.value)


def test_a_renamed_file_is_refused(tmp_path):
    path = CalibrationStore(tmp_path).save(lut_record())
    renamed = path.with_name("lut-encoding_slm-520nm-29990101T000000000000Z.h5")
    path.rename(renamed)
    refused(renamed, "created:", "the file name says 29990101T000000000000Z")


# --- 4. nothing but CalibrationFileError, naming the file ----------------------------------------
NAME = "lut-encoding_slm-520nm-20261201T120000000000Z.h5"


def test_a_folder_a_fifo_an_empty_or_a_truncated_file_is_refused(tmp_path):
    (tmp_path / NAME).mkdir()
    refused(tmp_path / NAME, "a folder")
    fifo = tmp_path / NAME.replace("20261201", "20261202")
    os.mkfifo(fifo)
    refused(fifo, "not a regular file")                    # and never waits for a writer
    empty = tmp_path / NAME.replace("20261201", "20261203")
    empty.write_bytes(b"")
    refused(empty, "header")
    good = CalibrationStore(tmp_path / "s").save(lut_record())
    data = good.read_bytes()
    for cut in (100, 512, 600, len(data) // 2, len(data) - 1):
        torn = tmp_path / good.name
        torn.write_bytes(data[:cut])
        message = refused(torn)
        assert "truncated" in message or "checksum" in message


def test_an_unreadable_file_or_store_is_refused(tmp_path, config, monkeypatch):
    path = CalibrationStore(default_store()).save(lut_record())
    real_open = os.open

    def denied(p, *args, **kwargs):
        if str(p) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(p, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "open", denied)
        refused(path, "cannot be read (Permission denied)")
    with monkeypatch.context() as m:
        m.setattr(type(path), "iterdir", lambda self: (_ for _ in ()).throw(PermissionError(13, "denied")))
        with pytest.raises(CalibrationFileError, match="calibrations: cannot list the calibration store"):
            load_bench_calibrations(config)
    (tmp_path / "file-store").write_text("x")
    with pytest.raises(CalibrationFileError, match="file-store: the calibration store is not a folder"):
        load_bench_calibrations(config, tmp_path / "file-store")


def test_a_file_larger_than_the_cap_is_refused_unread(tmp_path, monkeypatch):
    path = CalibrationStore(tmp_path).save(camera_record())
    monkeypatch.setattr(record_module, "MAX_FILE_BYTES", 100_000)
    refused(path, "a calibration file is at most 100000 bytes")


@pytest.mark.parametrize("change, fragment", [
    (set_attr("info", "[" * 100_000 + "]" * 100_000), "info"),
    (set_attr("info", '{"a": ' * 50 + "1" + "}" * 50), "JSON nested"),
    (set_attr("residuals", "{not json"), "residuals: not JSON"),
    (set_attr("device_identity", "[1, 2]"), "device_identity: a JSON list; expected a JSON object"),
    (set_attr("device_identity", '{"serial": 7}'), "device_identity['serial']: a JSON int"),
    (set_attr("bench_text", b"\xff\xfe[bench]", dtype=h5py.string_dtype("utf-8")),
     "bench_text: bytes that are not UTF-8"),
    (set_attr("bench_text", np.bytes_(b"\xff\xfe")), "bench_text: bytes; expected UTF-8 text"),
    (set_attr("bench_text", "x" * (2 << 20)), "bench_text: 2097152 characters"),
    (set_attr("kind", 5), "kind: a value of type int64 (5); expected UTF-8 text"),
    (set_attr("wavelength_nm", "520"), "wavelength_nm: a value of type str (520); expected a floating-point"),
    (set_attr("wavelength_nm", np.nan), "wavelength_nm: nan"),
    (set_attr("format_version", np.array([2, 2])), "format_version: an array of shape (2,)"),
    (set_attr("created", "yesterday"), "created: 'yesterday'"),
    (lambda f: f.attrs.__delitem__("kind"), "missing attribute 'kind'"),
    (set_dataset("raw/huge", shape=(10**10,), dtype="f8", chunks=(1 << 16,), compression="gzip"),
     "raw/huge: 10000000000 values"),
    (set_dataset("result/phase_rad", np.array([b"a", b"b"])), "dtype |S1"),
    (set_dataset("result/phase_rad", np.linspace(0, 6.5, 256) + 0j), "dtype complex128"),
    (lambda f: f["result"].__setitem__("link", h5py.SoftLink("/raw/ratio")), "result/link: a link"),
    (lambda f: f["raw"].__setitem__("ext", h5py.ExternalLink("/etc/passwd", "/x")), "raw/ext: a link"),
    (lambda f: f["result"].create_group("nested"), "result/nested: a group"),
    (lambda f: f.create_group("extra"), "expected exactly the groups"),
    (lambda f: f["result/phase_rad"].attrs.__setitem__("unit", "rad"), "unexpected attributes ['unit']"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_whatever_a_resealed_file_holds_only_calibration_file_error_comes_out(tmp_path, config, change, fragment):
    path = CalibrationStore(default_store()).save(lut_record())
    edit(path, change)
    refused(path, fragment)
    with pytest.raises(CalibrationFileError, match=path.name):
        load_bench_calibrations(config)
