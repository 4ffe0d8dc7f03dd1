"""The calibration store: versioned files, never overwritten, refused on load when corrupt or mismatched."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from calibration.store import CalibrationFileError, CalibrationRecord, CalibrationStore, load_record
from lab.bench import build_bench
from lab.bench_file import parse_bench
from lab.calibrations import load_bench_calibrations
from simulators import ENCODING

from ..conftest import small_bench_text


def lut_record(phase: np.ndarray, wavelength_nm: float = 520.0, device: str = "encoding_slm",
               serial: str = ENCODING) -> CalibrationRecord:
    return CalibrationRecord(kind="lut", device=device, wavelength_nm=wavelength_nm, optical_path="any",
                             results={"phase_rad": phase}, raw={"ratio": np.linspace(0, 1, 8)},
                             residuals={"fit_rms": 0.01}, info={"rounds": 2}, bench_name="test",
                             bench_text="[bench]", device_identity={"serial": serial})


def test_records_round_trip_and_a_new_one_supersedes_without_overwriting(tmp_path):
    store = CalibrationStore(tmp_path / "cal")
    first = store.save(lut_record(np.linspace(0, 6.5, 256)))
    second = store.save(lut_record(np.linspace(0, 6.4, 256)))
    assert first != second and first.exists() and second.exists()
    latest = store.latest("lut", "encoding_slm", 520.0, "any")
    assert latest.path == second
    np.testing.assert_allclose(latest.results["phase_rad"][-1], 6.4)
    assert latest.residuals == {"fit_rms": 0.01} and latest.info == {"rounds": 2}
    assert latest.id.startswith("lut:encoding_slm:520nm:lut-encoding_slm-520nm-")
    assert store.latest("lut", "encoding_slm", 638.0, "any") is None   # another wavelength
    assert store.latest("lut", "decoding_slm", 520.0, "any") is None


def test_corrupt_edited_or_foreign_version_files_are_refused_with_the_reason(tmp_path):
    store = CalibrationStore(tmp_path)
    path = store.save(lut_record(np.linspace(0, 6.5, 256)))
    with h5py.File(path, "r+") as f:
        f["result/phase_rad"][5] = 99.0
    with pytest.raises(CalibrationFileError, match="checksum mismatch"):
        load_record(path)
    path2 = store.save(lut_record(np.linspace(0, 6.5, 256)))
    with h5py.File(path2, "r+") as f:
        f.attrs["format_version"] = 7
    with pytest.raises(CalibrationFileError, match="format version 7; this optgen reads version 1"):
        load_record(path2)
    torn = tmp_path / "lut-encoding_slm-520nm-20260101T000000000000Z.h5"
    torn.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(CalibrationFileError, match="not a readable calibration file"):
        load_record(torn)


def test_a_mismatched_wavelength_or_device_is_refused():
    record = lut_record(np.linspace(0, 6.5, 256), wavelength_nm=638.0)
    with pytest.raises(CalibrationFileError, match="made at 638 nm; this bench runs at 520 nm"):
        record.check_key("lut", "encoding_slm", 520.0, "any")
    with pytest.raises(CalibrationFileError, match="expected a lut calibration of decoding_slm"):
        record.check_key("lut", "decoding_slm", 638.0, "any")


def test_the_bench_opens_with_the_newest_lut_and_records_its_id(tmp_path):
    cfg = parse_bench(small_bench_text(), "small")
    store = CalibrationStore(tmp_path / "calibrations")   # the working folder's default store
    path = store.save(lut_record(np.linspace(0.0, 6.3, 256)))
    with build_bench(cfg) as bench:
        ids = bench.calibration_ids()
        assert ids["encoding_slm.lut"].endswith(path.name)
        assert ids["decoding_slm.lut"].startswith("linear-nominal")
        assert bench.encoding_slm.lut is not None and bench.decoding_slm.lut is None


def test_a_lut_from_another_slm_serial_is_refused_and_the_bench_closes(tmp_path):
    cfg = parse_bench(small_bench_text(), "small")
    CalibrationStore(tmp_path / "calibrations").save(lut_record(np.linspace(0, 6.3, 256), serial="SN-OTHER"))
    with pytest.raises(CalibrationFileError, match="measured on SLM serial 'SN-OTHER'"):
        build_bench(cfg)


def test_a_corrupt_newest_file_stops_the_bench_before_any_device_opens(tmp_path):
    cfg = parse_bench(small_bench_text(), "small")
    folder = tmp_path / "calibrations"
    CalibrationStore(folder).save(lut_record(np.linspace(0, 6.3, 256)))
    (folder / "lut-encoding_slm-520nm-29990101T000000000000Z.h5").write_bytes(b"garbage")
    with pytest.raises(CalibrationFileError, match="29990101"):
        load_bench_calibrations(cfg)
