"""Calibrations belong to a bench: the store sits beside the bench file (for a bench without a file,
in the user data folder under the bench's identity), whatever folder a command runs in; runs
record the store they used and evaluate reads it back; the console says what is in force."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from optgen.lab.bench.calibrations import DATA_DIR_ENV, bench_identity, store_folder, user_data_folder
from optgen.lab.bench.parse import parse_bench
from optgen.lab.cli import main

from ..conftest import small_bench_text


def folders(tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        (tmp_path / name).mkdir()
        out.append(tmp_path / name)
    return out


def run_attrs(run: Path) -> dict:
    with h5py.File(run / "run.h5", "r") as f:
        return {key: f.attrs[key] for key in ("calibrations", "calibration_store")}


def test_a_bench_files_calibrations_sit_beside_it_whatever_folder_a_command_runs_in(tmp_path, monkeypatch, capsys):
    bench_dir, calibrate_here, run_here = folders(tmp_path, "bench", "calibrate-here", "run-here")
    bench = bench_dir / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    monkeypatch.chdir(calibrate_here)
    assert main(["calibrate", "camera", "--bench", str(bench)]) == 0
    assert len(list((bench_dir / "calibrations").glob("camera-*.h5"))) == 1
    assert not list(calibrate_here.iterdir())
    monkeypatch.chdir(run_here)
    capsys.readouterr()
    assert main(["run", "--count", "2", "--out", "run", "--bench", str(bench), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"calibrations from {bench_dir / 'calibrations'}" in err and "UNCALIBRATED" not in err
    attrs = run_attrs(run_here / "run")
    assert attrs["calibration_store"] == str((bench_dir / "calibrations").resolve())
    assert "camera-camera" in attrs["calibrations"]                 # the run is calibrated
    assert sorted(p.name for p in run_here.iterdir()) == ["run"]    # no store made in the working folder


def test_a_bench_without_a_file_keeps_its_calibrations_in_the_user_data_folder(tmp_path, monkeypatch, capsys):
    first, second = folders(tmp_path, "first", "second")
    data = tmp_path / "lab-data"
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    config = parse_bench(small_bench_text(), "small")
    expected = data / "benches" / bench_identity(config) / "calibrations"
    assert store_folder(config) == expected
    from optgen.calibration.procedure import calibrate
    from optgen.calibration.store import CalibrationStore
    from optgen.lab.bench.assemble import build_bench

    monkeypatch.chdir(first)
    with build_bench(config) as bench:
        calibrate(bench, "camera", CalibrationStore(store_folder(config)))
    monkeypatch.chdir(second)
    with build_bench(config) as bench:                               # opened from another folder
        assert bench.calibration_ids()["camera"].startswith("camera:camera")
        lines = bench.calibrations.describe()
    assert lines[0] == f"calibrations from {expected}:"
    assert any(line.split()[0] == "camera" and "old)" in line for line in lines[1:])
    assert any("none (nominal placement)" in line for line in lines[1:])
    assert not list(first.iterdir()) and not list(second.iterdir())
    other = parse_bench(small_bench_text({("laser", "power_mw"): "0.5"}), "small")
    assert bench_identity(other) != bench_identity(config)          # another bench: another store


def test_the_user_data_folder_follows_the_platform_unless_optgen_data_dir_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_data_folder() == tmp_path / "xdg" / "optgen"
    monkeypatch.setenv(DATA_DIR_ENV, "~/somewhere")
    assert user_data_folder() == Path("~/somewhere").expanduser()


def test_an_uncalibrated_run_says_uncalibrated_in_words(tmp_path, capsys):
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    assert main(["run", "--count", "1", "--out", "run", "--bench", str(bench), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"UNCALIBRATED: no calibration for this bench in {tmp_path / 'calibrations'}" in err


@pytest.fixture
def calibrated_run(tmp_path, monkeypatch):
    bench_dir, run_here = folders(tmp_path, "bench", "run-here")
    bench = bench_dir / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    assert main(["calibrate", "camera", "--bench", str(bench)]) == 0
    monkeypatch.chdir(run_here)
    assert main(["run", "--count", "3", "--out", "run", "--bench", str(bench), "--no-progress"]) == 0
    return bench, run_here / "run"


def test_evaluate_predicts_with_the_runs_own_store_from_any_folder(calibrated_run, tmp_path, monkeypatch, capsys):
    bench, run = calibrated_run
    results = []
    for here in folders(tmp_path, "elsewhere", "again"):
        monkeypatch.chdir(here)
        assert main(["evaluate", str(run)]) == 0
        results.append(json.loads((run / "summary.json").read_text())["evaluation"])
    assert results[0]["twin_agreement"] == results[1]["twin_agreement"]
    assert results[0]["twin_agreement"]["min"] > 0.99
    assert "calibrations_changed" not in results[0]
    # a newer calibration after the run: evaluate says the store no longer gives what the run used
    assert main(["calibrate", "camera", "--bench", str(bench)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    changed = json.loads((run / "summary.json").read_text())["evaluation"]["calibrations_changed"]
    assert len(changed) == 1 and changed[0].startswith("camera: run used camera:camera")
    assert "calibration changed since the run (camera: run used" in out
