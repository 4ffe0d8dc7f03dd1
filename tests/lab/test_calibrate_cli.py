"""`optgen calibrate` end to end on the small twin: calibrate all, run with the calibrations,
check drift, and fail safely (previous calibration kept, laser off) where it cannot converge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optgen.calibration.store import CalibrationStore, load_record
from optgen.lab.bench.parse import parse_bench
from optgen.lab.cli import main
from optgen.lab.evaluate.prediction import run_agreement

from ..conftest import small_bench_text

# a worse-aligned bench than the default twin: SLM2 6 px off, the sensor 8 camera pixels off
MISALIGNED = {
    ("twin.decoding_slm", "shift_um"): "[24.0, -16.0]",
    ("twin.decoding_slm", "rotation_deg"): "0.3",
    ("twin.camera", "offset_um"): "[40.0, -25.0]",
    ("twin.camera", "rotation_deg"): "0.5",
}


def write_bench(folder, extra=None):
    path = folder / "bench.toml"
    path.write_text(small_bench_text({**MISALIGNED, **(extra or {})}), encoding="utf-8")
    return path


def mean_agreement(run_folder, bench_path, sigma=(0.0, 0.0)) -> float:
    config = parse_bench(bench_path.read_text(encoding="utf-8"), str(bench_path))
    return float(np.mean(run_agreement(run_folder, config, sigma)))


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A bench file, a run before calibration, `calibrate all` (report as JSON), a run after."""
    folder = tmp_path_factory.mktemp("calibrate-cli")
    bench = write_bench(folder)
    assert main(["run", "--count", "4", "--out", str(folder / "before"), "--bench", str(bench),
                 "--no-progress"]) == 0
    assert main(["calibrate", "all", "--bench", str(bench), "--json", str(folder / "report.json")]) == 0
    assert main(["run", "--count", "4", "--out", str(folder / "after"), "--bench", str(bench),
                 "--no-progress"]) == 0
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return folder, bench, report


def test_calibrate_all_meets_every_figure_against_the_planted_truth(calibrated):
    _, _, report = calibrated
    truth = report["twin_truth"]
    assert truth["encoding_slm_response_error_rad_rms"] < 0.03
    assert truth["decoding_slm_response_error_rad_rms"] < 0.03
    assert max(abs(v) for v in truth["decoder_shift_error_px"]) < 0.25
    assert abs(truth["decoder_rotation_error_deg"]) < 0.05
    assert truth["sensor_registration_error_px"] < 0.2
    counters = report["counters"]
    assert counters["patterns_shown"] > 100 and counters["frames_captured"] >= counters["patterns_shown"] // 2


def test_the_store_holds_one_file_and_one_picture_per_calibration(calibrated):
    folder, _, _ = calibrated
    store = CalibrationStore(folder / "calibrations")
    kinds = sorted(load_record(p).kind for p in store.records())
    assert kinds == ["alignment", "camera", "distances", "lut", "lut", "wavefront", "wavefront"]
    for path in (folder / "calibrations").glob("*.h5"):
        assert path.with_suffix(".png").is_file()


def test_runs_after_calibration_agree_with_the_prediction_better_than_before(calibrated):
    folder, bench, report = calibrated
    sigma = tuple(report["figures"][f"{k}_crosstalk_sigma_px"] for k in ("encoding_slm", "decoding_slm"))
    before = mean_agreement(folder / "before", bench)
    after = mean_agreement(folder / "after", bench, sigma)
    assert after >= 0.95
    assert after > before + 0.02, (before, after)


def test_the_run_file_names_the_calibrations_it_used(calibrated):
    import h5py

    folder, _, _ = calibrated
    store = CalibrationStore(folder / "calibrations")
    ids = {load_record(p).id for p in store.records()}
    with h5py.File(folder / "after" / "run.h5", "r") as f:
        used = json.loads(f.attrs["calibrations"])
        ages = json.loads(f.attrs["calibration_ages_h"])
    assert set(used.values()) <= ids and len(set(used.values()) & ids) == 7
    assert set(ages) == set(used) and all(0 <= age < 1 for age in ages.values())    # made minutes ago
    log = (folder / "after" / "run.log").read_text(encoding="utf-8")
    assert "in force: " in log and log.count(" h old)") == 7
    with h5py.File(folder / "before" / "run.h5", "r") as f:
        assert "no LUT calibration" in f.attrs["calibrations"]


def test_check_passes_on_the_bench_it_was_made_on_and_flags_a_moved_slm(calibrated, capsys):
    folder, bench, _ = calibrated
    capsys.readouterr()
    assert main(["calibrate", "check", "--bench", str(bench)]) == 0
    out = capsys.readouterr().out
    for item in ("camera new hot pixels", "d1", "d2", "encoding_slm wavefront", "decoding_slm wavefront", "ages: "):
        assert item in out, out
    moved = folder / "moved"
    moved.mkdir()
    moved_bench = write_bench(moved, {("twin.decoding_slm", "shift_um"): "[40.0, -16.0]"})
    (moved / "calibrations").symlink_to(folder / "calibrations")
    capsys.readouterr()
    assert main(["calibrate", "check", "--bench", str(moved_bench)]) == 3
    assert "decod" in capsys.readouterr().out.lower()


def test_a_calibration_without_light_stops_keeps_the_previous_one_and_the_laser_off(tmp_path, capsys, mocker):
    from optgen.lab.bench import assemble
    from optgen.lab.bench.calibrations import load_bench_calibrations
    from optgen.simulators.world import OpticalWorld

    bench = write_bench(tmp_path)
    assert main(["calibrate", "lut", "--bench", str(bench)]) == 0
    store = tmp_path / "calibrations"
    previous = sorted(store.glob("*.h5"))
    assert len(previous) == 2
    config = parse_bench(bench.read_text(encoding="utf-8"), str(bench))
    ids_before = load_bench_calibrations(config, store).ids()

    # light blocked (a closed shutter): the laser reads back on, nothing reaches the sensor
    mocker.patch.object(OpticalWorld, "delivered_power_w", return_value=0.0)
    opened = mocker.spy(assemble, "build_bench")
    capsys.readouterr()
    assert main(["calibrate", "lut", "--bench", str(bench)]) != 0
    err = capsys.readouterr().err
    assert "no light on the sensor" in err and "check the laser" in err
    assert sorted(store.glob("*.h5")) == previous                 # nothing new, nothing overwritten
    assert load_bench_calibrations(config, store).ids() == ids_before   # the previous LUTs stay in force
    twin = opened.spy_return.world
    assert twin.laser_emission is False and opened.spy_return.laser.emission is False


def test_the_calibrated_store_opens_the_bench_with_nothing_passed_over(calibrated):
    from optgen.lab.bench.calibrations import load_bench_calibrations

    _, bench, _ = calibrated
    config = parse_bench(bench.read_text(encoding="utf-8"), str(bench))
    cals = load_bench_calibrations(config)
    assert cals.skipped == [] and len(cals.lut_records) == 2
    assert cals.alignment is not None and cals.camera is not None
    assert all(len(r.checksum) == 64 for r in (*cals.lut_records.values(), cals.alignment, cals.camera))


@pytest.mark.parametrize("damage, fragment", [
    ("identity", "checksum mismatch"),
    ("version 1", "re-run `optgen calibrate camera`"),
    ("nan saturation", "result/saturation_dn: NaN or infinite values"),
])
def test_a_run_refuses_a_tampered_older_or_implausible_calibration_with_the_file_named(calibrated, tmp_path,
                                                                                      capsys, damage, fragment):
    """`optgen run` stops before any device opens with one line naming the file, never a traceback."""
    import shutil

    import h5py

    import optgen.calibration.record as record_module

    from ..calibration.records import write_version_1

    folder, bench, _ = calibrated
    store = tmp_path / "calibrations"
    shutil.copytree(folder / "calibrations", store)
    camera = max(store.glob("camera-*.h5"))
    if damage == "identity":
        with h5py.File(camera, "r+") as f:
            f.attrs["device_identity"] = json.dumps({"serial": "SN-OTHER"})
    elif damage == "version 1":
        record = load_record(camera)
        camera.unlink()
        write_version_1(camera, record, record.created)
    else:
        with h5py.File(camera, "r+") as f:
            f["result/saturation_dn"][()] = np.nan
        record_module.seal(camera)
    capsys.readouterr()
    code = main(["run", "--count", "1", "--out", str(tmp_path / "run"), "--bench", str(bench),
                 "--calibrations", str(store), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert camera.name in err and fragment in err, err
    assert not (tmp_path / "run" / "run.h5").exists()       # the run stopped before its first frame
