"""The public API: optgen.load_bench, open_bench, open_run, load_model; Bench and Run."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import optgen
from optgen.lab.bench.examples import small_bench_text


@pytest.fixture
def bench_file(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text(small_bench_text())
    return path


def test_generate_writes_a_run_folder_that_open_run_reads_back(bench_file, tmp_path):
    with optgen.open_bench(bench_file) as bench:
        run = bench.generate(4, seed=3, out=tmp_path / "run")
    again = optgen.open_run(tmp_path / "run")
    assert run.images.shape == again.images.shape == (4, 16, 16) and again.images.dtype == np.float32
    np.testing.assert_array_equal(run.images, again.images)
    assert list(again.indices) == [0, 1, 2, 3] and again.seeds.shape == (4, 16, 16)
    assert again.status["status"] == "complete" and again.summary["laser_verified_off"] is True
    assert again.metadata["bench_file"] == bench.config.text and "encoding_slm.lut" in again.calibrations
    assert again.frame(2).shape == (256, 320) and again.frame(2).dtype == np.uint16
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"run.h5", "run.log", "summary.json", "contact_sheet.png"}


def test_generate_without_a_folder_gives_the_same_seeds_and_keeps_no_frames(bench_file, tmp_path):
    with optgen.open_bench(bench_file) as bench:
        on_disk = bench.generate(3, seed=5, out=tmp_path / "run")
        in_memory = bench.generate(3, seed=5)
        other = bench.generate(3, seed=6)
    np.testing.assert_array_equal(in_memory.seeds, on_disk.seeds)
    assert not np.array_equal(other.seeds, on_disk.seeds)
    assert in_memory.folder is None and len(in_memory) == 3
    with pytest.raises(optgen.OptgenError, match="raw frames are kept only in a run folder"):
        in_memory.frame(0)


def test_generate_is_reproducible_however_often_the_laser_is_read(bench_file, tmp_path, mocker):
    """The storage worker reads the laser's measured power on its own thread while the camera draws
    its noise; the twin's power monitor draws from a generator of its own, so neither when nor how
    often the laser is read changes the frames (the power noise is on)."""
    frames, powers = [], []
    for k, reads in enumerate((1, 1, 3)):
        with optgen.open_bench(bench_file) as bench:
            assert bench.config.twin.power_noise_rms > 0
            laser = bench.devices.laser
            read_once = laser._get_measured_power_hw
            mocker.patch.object(laser, "_get_measured_power_hw", side_effect=lambda: [read_once() for _ in range(reads)][-1])
            bench.generate(6, seed=7, out=tmp_path / f"run{k}")
        run = optgen.open_run(tmp_path / f"run{k}")
        frames.append(np.stack([run.frame(i) for i in range(6)]))
        with h5py.File(tmp_path / f"run{k}" / "run.h5", "r") as f:
            powers.append(f["meta/laser_power_w"][:])
    assert np.array_equal(frames[0], frames[1]) and np.array_equal(frames[0], frames[2])
    # the monitor's noise is there (what the frames must not depend on): each frame records a reading near the
    # setpoint, and the readings differ. How many frames one reading covers depends on how far the storage
    # worker lags behind the captures (one query per batch), so the runs' powers are not compared frame by frame.
    assert all(np.isfinite(p).all() and np.allclose(p, np.median(p), rtol=0.05) for p in powers)
    assert len({round(float(x), 12) for p in powers for x in p}) > 1


def test_bad_arguments_and_a_closed_bench_are_refused_with_the_reason(bench_file, tmp_path):
    bench = optgen.open_bench(bench_file)
    try:
        for kwargs, match in (({"count": 0}, "count = 0: expected a whole number >= 1"),
                              ({"count": 2, "seed": -1}, "seed = -1"),
                              ({"count": 2, "sync": "fast"}, "sync = 'fast'"),
                              ({"count": 10**6}, "the disk cannot take the run")):
            with pytest.raises(optgen.OptgenError, match=match):
                bench.generate(**kwargs)
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("x")
        with pytest.raises(optgen.RunFolderError, match="already holds files"):
            bench.generate(2, out=tmp_path / "full")
        with pytest.raises(optgen.OptgenError, match="expected a 2-D phase"):
            bench.show(encoding=np.zeros(5))
    finally:
        bench.close()
    assert bench.closed
    for call in (lambda: bench.generate(1), lambda: bench.capture(), lambda: bench.calibrate("camera"),
                 lambda: bench.show(encoding=np.zeros((4, 4)))):
        with pytest.raises(optgen.BenchClosedError, match="the bench is closed"):
            call()


def test_open_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(optgen.RunFileError, match="not a run folder"):
        optgen.open_run(tmp_path)
    (tmp_path / "run.h5").write_bytes(b"not hdf5")
    with pytest.raises(optgen.RunFileError, match="not a readable HDF5 run file"):
        optgen.open_run(tmp_path)


def test_bad_files_raise_the_one_error_family_before_any_device_opens(tmp_path, mocker):
    built = mocker.patch("optgen.lab.bench.assemble.build_bench")
    (tmp_path / "bad.toml").write_text("[bench]\nname = 1\n")
    with pytest.raises(optgen.BenchFileError, match=r"bad.toml.*\[bench\] name = 1"):
        optgen.open_bench(tmp_path / "bad.toml")
    (tmp_path / "bad.npz").write_bytes(b"PK not a model")
    with pytest.raises(optgen.ModelFileError, match="bad.npz"):
        optgen.load_model(tmp_path / "bad.npz")
    text = small_bench_text({("run", "seed_source"): '"model"', ("run", "model"): '"bad.npz"'})
    (tmp_path / "uses_bad_model.toml").write_text(text)
    with pytest.raises(optgen.ModelFileError):
        optgen.open_bench(tmp_path / "uses_bad_model.toml")
    assert not built.called
    assert issubclass(optgen.BenchFileError, optgen.OptgenError) and issubclass(optgen.ModelFileError,
                                                                                optgen.OptgenError)


def test_calibrate_then_generate_uses_the_new_calibrations(bench_file, tmp_path):
    with optgen.open_bench(bench_file, calibrations=tmp_path / "cal") as bench:
        before = bench.generate(2, out=tmp_path / "before").calibrations
        report = bench.calibrate("lut", rounds=1)
        after = bench.generate(2, out=tmp_path / "after").calibrations
    assert set(report.files) == {"encoding_slm.lut", "decoding_slm.lut"}
    assert before["encoding_slm.lut"].startswith("linear-nominal")
    assert after["encoding_slm.lut"].endswith(report.files["encoding_slm.lut"].name)


def test_show_and_capture_single_shots_with_the_laser_on_only_while_capturing(bench_file):
    with optgen.open_bench(bench_file) as bench:
        dark = bench.capture(light=False)
        bench.show(encoding=np.zeros((96, 96)), decoding=np.zeros(bench.devices.decoding_slm.shape))
        lit = bench.capture()
        assert bench.devices.laser.emission is False
    assert lit.shape == dark.shape and float(lit.mean()) > float(dark.mean()) + 1.0


def test_a_stopped_run_is_resumed_through_the_api(bench_file, tmp_path):
    from optgen.drivers.stop import StopControl
    from optgen.lab.run.generate import run_generation
    from optgen.lab.run.sources import run_sources

    with optgen.open_bench(bench_file) as bench:
        seeds, decoder, decoder_id = run_sources(bench.config, bench_file.parent, 0)
        stop = StopControl()
        stop.request("test stop")
        run_generation(bench.devices, seeds, decoder, decoder_id, tmp_path / "run", 5, stop=stop,
                       run_args={"seed": 0})
        assert optgen.open_run(tmp_path / "run").status["status"] == "stopped"
        run = bench.resume(tmp_path / "run")
    assert run.status["status"] == "complete" and len(run) == 5
