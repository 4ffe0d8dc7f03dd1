"""Run loop v1 on the twin: the run file, the laser on every exit path, refusals before any device."""

from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pytest

from optgen.lab.run.decoder import load_decoder_phase
from optgen.lab.run.folder import RunFolderError
from optgen.lab.run.generate import run_generation
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder


def seeds_for(cfg, random_seed=0):
    n = cfg.geometry.seed_superpixels
    return EncoderSeedSource(PlaceholderEncoder(n * n), n, random_seed)


def decoder_for(cfg):
    return load_decoder_phase("flat", cfg.geometry.decoder_px)


def test_end_to_end_run_writes_frames_metadata_contact_sheet_and_summary(small_bench, tmp_path):
    cfg = small_bench.config
    phase, decoder_id = decoder_for(cfg)
    result = run_generation(small_bench, seeds_for(cfg), phase, decoder_id, tmp_path / "run", 5)
    assert result.status == "complete" and result.frames_written == 5
    assert small_bench.world.laser_emission is False
    folder = tmp_path / "run"
    with h5py.File(folder / "run.h5", "r") as f:
        frames = f["frames"]
        assert frames.shape == (5, 256, 320) and frames.dtype == np.uint16
        assert frames.chunks == (1, 256, 320)
        assert f["images"].shape == (5, 16, 16)
        assert f["meta/written"][:].all()
        assert np.all(f["meta/exposure_s"][:] == pytest.approx(cfg.camera.exposure_s))
        assert np.all(f["meta/laser_power_w"][:] > 0)
        assert list(f["seed/index"][:]) == [0, 1, 2, 3, 4]
        assert f["seed/phase"].shape == (5, 16, 16)
        assert f.attrs["status"] == "complete"
        assert f.attrs["bench_file"] == cfg.text
        assert json.loads(f.attrs["calibrations"]) == {
            "encoding_slm.lut": "linear-nominal (no LUT calibration in the store)",
            "decoding_slm.lut": "linear-nominal (no LUT calibration in the store)",
            "alignment": "none (nominal placement)", "camera": "none (driver defaults)",
            "encoding_slm.wavefront": "none (uncorrected)", "decoding_slm.wavefront": "none (uncorrected)",
            "distances": "none (the bench file's)"}
        assert "slmsuite" in json.loads(f.attrs["software"])
        # frames differ from seed to seed and carry light well above the dark level
        assert not np.array_equal(frames[0], frames[1])
        assert frames[0].mean() > f["dark"][:].mean() + 50
        # each seed superpixel was shown with the gray level the nominal LUT gives its phase
        expected_gray = (np.rint(-f["seed/phase"][2] * 256 / (2 * np.pi)).astype(int) - 1) & 255
        np.testing.assert_array_equal(f["seed/gray"][2], expected_gray)
    sheet = cv2.imread(str(folder / "contact_sheet.png"), cv2.IMREAD_UNCHANGED)
    assert sheet is not None and sheet.ndim == 2 and sheet.shape[1] > 5 * 16
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["frames_written"] == 5
    assert summary["laser_on_time_s"] > 0
    energy = summary["energy_per_image"]
    assert energy["laser_optical_j"] == pytest.approx(summary["laser_setpoint_w"] * summary["laser_on_time_s"] / 5)
    # the sensor cannot receive more light than the laser sent
    assert 0 < energy["sensor_optical_j"] < energy["laser_optical_j"]
    assert energy["wall_plug_j"]["camera"] == pytest.approx(4.0 * energy["bench_time_per_image_s"])
    assert energy["encoder_compute_j_estimate"] == pytest.approx(2 * (256 * 256 * 2) * 1e-9)


def test_same_random_seed_gives_the_same_seeds_and_another_does_not(small_config):
    a, b, c = seeds_for(small_config, 7), seeds_for(small_config, 7), seeds_for(small_config, 8)
    np.testing.assert_array_equal(a.seed(3).phase, b.seed(3).phase)
    assert not np.array_equal(a.seed(3).phase, c.seed(3).phase)
    phase = a.seed(0).phase
    assert phase.min() >= 0 and phase.max() <= 2 * np.pi


def test_laser_is_off_and_frames_kept_when_capture_raises(small_bench, tmp_path, mocker):
    cfg = small_bench.config
    phase, decoder_id = decoder_for(cfg)
    real = small_bench.camera._get_image_hw
    calls = {"n": 0}

    def failing(timeout_s):
        calls["n"] += 1
        if calls["n"] == 4:  # dark frame + 2 frames, then the camera breaks
            raise RuntimeError("camera cable pulled")
        return real(timeout_s)

    mocker.patch.object(small_bench.camera, "_get_image_hw", side_effect=failing)
    with pytest.raises(RuntimeError, match="camera cable pulled"):
        run_generation(small_bench, seeds_for(cfg), phase, decoder_id, tmp_path / "run", 6)
    assert small_bench.world.laser_emission is False
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        assert f.attrs["status"] == "failed"
        assert "camera cable pulled" in f.attrs["stop_reason"]
        assert list(f["meta/written"][:]) == [True, True, False, False, False, False]
        assert f["frames"][1].max() > 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["frames_written"] == 2


def test_ctrl_c_stops_the_run_with_the_laser_off(small_bench, tmp_path, mocker):
    cfg = small_bench.config
    phase, decoder_id = decoder_for(cfg)
    calls = {"n": 0}

    def progress(done, total):
        calls["n"] += 1
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_generation(small_bench, seeds_for(cfg), phase, decoder_id, tmp_path / "run", 10, progress)
    assert small_bench.world.laser_emission is False
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        assert f.attrs["status"] == "stopped" and f.attrs["stop_reason"] == "interrupted (Ctrl-C)"
        written = f["meta/written"][:]
        # frames captured before the interrupt are stored too (one may have been in the queue)
        assert 3 <= int(written.sum()) <= 5 and written[:int(written.sum())].all()


def test_an_existing_run_folder_is_never_overwritten_and_no_device_is_touched(small_bench, tmp_path):
    cfg = small_bench.config
    phase, decoder_id = decoder_for(cfg)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.h5").write_bytes(b"precious")
    uploads = small_bench.world._slms["encoding_slm"].uploads
    with pytest.raises(RunFolderError, match="already holds files"):
        run_generation(small_bench, seeds_for(cfg), phase, decoder_id, folder, 3)
    assert (folder / "run.h5").read_bytes() == b"precious"
    assert small_bench.world._slms["encoding_slm"].uploads == uploads
    assert small_bench.world.laser_setpoint_w == 0.0


@pytest.mark.parametrize("count", [0, -3, 2.5, True])
def test_a_count_that_is_not_a_positive_whole_number_is_refused(small_bench, tmp_path, count):
    cfg = small_bench.config
    phase, decoder_id = decoder_for(cfg)
    with pytest.raises(ValueError, match="expected a positive whole number"):
        run_generation(small_bench, seeds_for(cfg), phase, decoder_id, tmp_path / "run", count)
    assert not (tmp_path / "run").exists()


def test_the_decoder_phase_is_uploaded_once(small_bench, tmp_path):
    cfg = small_bench.config
    phase = np.linspace(0, 2 * np.pi, cfg.geometry.decoder_px**2, dtype=np.float32).reshape(
        cfg.geometry.decoder_px, cfg.geometry.decoder_px)
    before = small_bench.world._slms["decoding_slm"].uploads
    run_generation(small_bench, seeds_for(cfg), phase, "ramp", tmp_path / "run", 4)
    assert small_bench.world._slms["decoding_slm"].uploads == before + 1


def test_a_laser_that_cannot_be_verified_off_fails_the_run_loudly(small_bench, tmp_path):
    from optgen.drivers.errors import LaserSafetyError

    cfg = small_bench.config
    phase, decoder_id = decoder_for(cfg)

    def stick(done, total):
        small_bench.laser.stuck_on = True

    with pytest.raises(LaserSafetyError, match="could not be verified off"):
        run_generation(small_bench, seeds_for(cfg), phase, decoder_id, tmp_path / "run", 2, stick)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["laser_verified_off"] is False
    small_bench.laser.stuck_on = False


def test_saturated_pixels_are_counted_at_the_full_well(small_bench, tmp_path):
    cfg = small_bench.config
    phase, decoder_id = decoder_for(cfg)
    small_bench.config = cfg.__class__(**{**cfg.__dict__, "laser": cfg.laser.__class__(
        **{**cfg.laser.__dict__, "power_w": 2e-5})})  # 200x the test bench's power
    run_generation(small_bench, seeds_for(cfg), phase, decoder_id, tmp_path / "run", 2)
    saturation = small_bench.camera.saturation_dn
    assert saturation == int(10500 * 0.35 + 100)  # the full well comes before the 12-bit ADC's top
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        for frame, count in zip(f["frames"][:], f["meta/saturated_pixels"][:]):
            assert count == np.count_nonzero(frame >= saturation) > 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["frames_with_saturation"] == 2


@pytest.mark.parametrize("bad, match", [(np.zeros((5, 5), np.float32), "shape"),
                                        (np.full((128, 128), np.nan, np.float32), "NaN")])
def test_a_bad_decoder_phase_is_refused_before_the_run_starts(small_bench, tmp_path, bad, match):
    cfg = small_bench.config
    with pytest.raises(ValueError, match=f"decoder phase: .*{match}"):
        run_generation(small_bench, seeds_for(cfg), bad, "bad", tmp_path / "run", 2)
    assert not (tmp_path / "run").exists()
    assert small_bench.world.laser_setpoint_w == 0.0


@pytest.mark.parametrize("driver", ["obis", "cobolt", "table:toptica-ibeam-smart", "table:omicron-luxx"])
def test_a_run_through_a_real_laser_driver_on_its_protocol_twin_makes_images(driver, tmp_path):
    pytest.importorskip("serial")
    from optgen.lab.bench.assemble import build_bench
    from optgen.lab.bench.parse import parse_bench
    from tests.conftest import small_bench_text

    # real lasers set power in coarse steps (Cobolt reports 0.1 mW): use 0.5 mW and a 1 us exposure
    driver, _, table = driver.partition(":")
    text = small_bench_text({("laser", "driver"): f'"{driver}"', ("laser", "power_mw"): "0.5",
                             ("camera", "exposure_ms"): "0.001"}).replace(
        "[laser.connection]", '[laser.connection]\nport = "twin"' + (f'\ntable = "{table}"' if table else ""))
    cfg = parse_bench(text, "protocol-twin bench")
    with build_bench(cfg) as bench:
        assert bench.laser.identity.vendor.lower().startswith(("coherent", "cobolt", "toptica", "omicron"))
        phase, decoder_id = decoder_for(cfg)
        result = run_generation(bench, seeds_for(cfg), phase, decoder_id, tmp_path / "run", 3)
        assert result.status == "complete"
        assert bench.world.laser_emission is False  # the twin saw the driver turn emission off
        with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
            assert f["frames"][0].mean() > f["dark"][:].mean() + 50  # light came through the protocol path


def test_a_laser_that_does_not_take_the_requested_power_stops_the_run(small_bench, tmp_path, mocker):
    from optgen.drivers.errors import DeviceError

    cfg = small_bench.config
    phase, decoder_id = decoder_for(cfg)
    mocker.patch.object(small_bench.laser, "_get_power_setpoint_hw", return_value=cfg.laser.power_w / 2)
    with pytest.raises(DeviceError, match="the laser reports"):
        run_generation(small_bench, seeds_for(cfg), phase, decoder_id, tmp_path / "run", 2)
    assert small_bench.world.laser_emission is False
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        assert f.attrs["status"] == "failed" and not f["meta/written"][:].any()


def test_a_calibrated_camera_corrects_every_frame_pixel_by_pixel(tmp_path):
    from optgen.calibration.procedure import calibrate
    from optgen.calibration.store import CalibrationStore
    from optgen.lab.bench.assemble import build_bench
    from optgen.lab.bench.examples import add_to_bench_text
    from optgen.lab.bench.parse import parse_bench
    from tests.conftest import small_bench_text

    text = add_to_bench_text(small_bench_text(), {"twin.camera": [
        "hot_pixel_fraction = 0.01", "hot_pixel_e_per_s = 3.0e7", "dsnu_dn_rms = 2.0"]})
    cfg = parse_bench(text, "hot-pixel bench")
    store = tmp_path / "calibrations"
    images = {}
    for name in ("raw", "corrected"):
        if name == "corrected":
            with build_bench(cfg, store) as bench:
                calibrate(bench, "camera", CalibrationStore(store))
        with build_bench(cfg, store) as bench:
            result = run_generation(bench, seeds_for(cfg), *decoder_for(cfg), tmp_path / name, 3)
            assert result.status == "complete"
        with h5py.File(tmp_path / name / "run.h5", "r") as f:
            images[name] = f["images"][:]
    log = (tmp_path / "corrected" / "run.log").read_text()
    assert "frames corrected pixel by pixel: the calibrated dark frame" in log
    assert "frames corrected pixel by pixel" not in (tmp_path / "raw" / "run.log").read_text()
    # 1 % of the pixels hold ~1,000 counts of dark current (3,000 e at 0.35 DN/e): uncorrected, they
    # lift the images by ~10 counts on average (the run subtracts only the dark level)
    excess = images["raw"] - images["corrected"]
    assert excess.mean() > 5.0
    assert np.all(images["corrected"].mean(axis=(1, 2)) > 0)
