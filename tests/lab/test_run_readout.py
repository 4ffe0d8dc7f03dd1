"""``[run] readout = "window"``: runs read out only the sensor under the output window; the images
are the full-frame run's, the frames a window of the sensor, the camera whole again afterwards."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from optgen.calibration.camera_pixels import PixelCorrection
from optgen.drivers.errors import CaptureTimeout, DeviceError
from optgen.drivers.stop import StopControl
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import parse_bench
from optgen.lab.bench.reader import BenchFileError
from optgen.lab.live.apps import RunBrowser
from optgen.lab.run.decoder import load_decoder_phase
from optgen.lab.run.folder import RunFolderError
from optgen.lab.run.generate import run_generation
from optgen.lab.run.readout import readout_window
from optgen.lab.run.registration import OutputRegistration
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder
from optgen.lab.runfile.reader import read_run_attrs
from tests.conftest import small_bench_text

WINDOW = {("run", "readout"): '"window"'}


def run(bench, out, count, **kwargs):
    n = bench.config.geometry.seed_superpixels
    phase, decoder_id = load_decoder_phase("flat", bench.config.geometry.decoder_px)
    return run_generation(bench, EncoderSeedSource(PlaceholderEncoder(n * n), n, 0), phase, decoder_id, out, count,
                          **kwargs)


def test_the_bench_file_takes_full_or_window_and_names_the_key_otherwise():
    assert parse_bench(small_bench_text(), "default").run.readout == "full"
    assert parse_bench(small_bench_text(WINDOW), "window").run.readout == "window"
    with pytest.raises(BenchFileError, match=r"readout.*(full|window)"):
        parse_bench(small_bench_text({("run", "readout"): '"roi"'}), "bad")


def test_a_window_of_the_frame_registers_to_the_same_image_and_correction():
    cfg = parse_bench(small_bench_text({("twin.camera", "offset_um"): "[23.0, -17.0]"}), "reg")
    full = OutputRegistration(cfg, dark_level_dn=100.0)
    rows, cols = full.sensor_shape
    rng = np.random.default_rng(3)
    frame = rng.uniform(90, 4000, (rows, cols)).astype(np.float32)
    box = full.sensor_box()
    x, w, y, h = box
    assert 0 < w * h < rows * cols
    windowed = OutputRegistration(cfg, dark_level_dn=100.0)
    windowed.read_from(box)
    crop = frame[y:y + h, x:x + w]
    np.testing.assert_allclose(windowed.image(crop), full.image(frame), rtol=1e-6, atol=1e-3)
    # the pixel correction of the window is the whole sensor's, cut to it
    dark = rng.normal(100, 2, (rows, cols)).astype(np.float32)
    hot = rng.random((rows, cols)) < 0.001
    gain = rng.normal(1, 0.01, (rows, cols)).astype(np.float32)
    full.use_correction(PixelCorrection(dark, hot, gain))
    windowed.use_correction(PixelCorrection(dark, hot, gain).crop(slice(y, y + h), slice(x, x + w)))
    np.testing.assert_allclose(windowed.image(crop), full.image(frame), rtol=1e-6, atol=1e-3)
    with pytest.raises(RuntimeError, match="give the window first"):
        windowed.read_from(box)


def test_a_windowed_run_stores_the_window_and_the_full_runs_images(tmp_path):
    images = {}
    for name, extra in (("full", {}), ("window", WINDOW)):
        with build_bench(parse_bench(small_bench_text(extra), name)) as bench:
            result = run(bench, tmp_path / name, 5)
            assert result.status == "complete" and bench.world.laser_emission is False
            assert tuple(bench.camera.woi) == (0, bench.camera.sensor_shape[1], 0, bench.camera.sensor_shape[0])
            sensor = tuple(bench.camera.sensor_shape)
        with h5py.File(tmp_path / name / "run.h5", "r") as f:
            images[name] = f["images"][...].astype(np.float64)
            frames, dark = f["frames"].shape[1:], f["dark"].shape
        window = read_run_attrs(tmp_path / name / "run.h5")["readout_window"]
        if name == "full":
            assert frames == dark == sensor and window == "full"
        else:
            x, w, y, h = window
            assert frames == dark == (h, w) and w * h < 0.5 * sensor[0] * sensor[1]
            assert 0 <= x and x + w <= sensor[1] and 0 <= y and y + h <= sensor[0]
    assert "reading out the window" in (tmp_path / "window" / "run.log").read_text()
    # the run browser draws the output window where it lies in the stored frames
    overlays = {}
    for name in ("full", "window"):
        browser = RunBrowser(tmp_path / name)
        overlays[name] = np.array(browser.overlay.window)
        browser.close()
    np.testing.assert_allclose(overlays["window"], overlays["full"] - np.array([x, y]), atol=1e-6)
    for a, b in zip(images["full"], images["window"]):       # the same light; only the noise draws differ
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
        assert b.mean() == pytest.approx(a.mean(), rel=0.05)  # the laser's 1 % power noise, drawn apart
    assert images["window"].mean() == pytest.approx(images["full"].mean(), rel=0.02)


def test_the_camera_is_whole_again_and_the_laser_off_when_a_windowed_run_fails(tmp_path, mocker):
    with build_bench(parse_bench(small_bench_text(WINDOW), "fails")) as bench:
        real = bench.camera.capture
        calls = {"n": 0}

        def capture(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > 3:
                raise CaptureTimeout(bench.camera.name, "no frame (planted)")
            return real(*args, **kwargs)

        mocker.patch.object(bench.camera, "capture", side_effect=capture)
        with pytest.raises(Exception):
            run(bench, tmp_path / "run", 6, max_retries=0)
        assert bench.world.laser_emission is False
        assert tuple(bench.camera.woi) == (0, bench.camera.sensor_shape[1], 0, bench.camera.sensor_shape[0])


def test_a_stopped_windowed_run_resumes_through_the_same_window(tmp_path):
    stop = StopControl()

    def progress(done, total):
        if done == 2:
            stop.request("stopped by the test")

    with build_bench(parse_bench(small_bench_text(WINDOW), "resume")) as bench:
        first = run(bench, tmp_path / "run", 8, progress=progress, stop=stop)
        assert first.status == "stopped"
        again = run(bench, tmp_path / "run", 8, resume=True)
        assert again.status == "complete"
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        assert f["meta/written"][:].all()
        assert f["dark"].shape == f["dark_1"].shape == f["frames"].shape[1:]
        assert (f["frames"][...].reshape(8, -1).max(axis=1) > 0).all()


class SnappingCamera:
    """A camera whose window of interest snaps to steps of 64 pixels, starting on them."""

    name = "snapping camera"

    def __init__(self, shrink: bool = False):
        self.woi, self.shrink, self.calls = (0, 1280, 0, 1024), shrink, []

    def set_woi(self, woi=None):
        self.calls.append(woi)
        if woi is None:
            self.woi = (0, 1280, 0, 1024)
        else:
            x, w, y, h = woi
            step = 64
            x0, y0 = x // step * step, y // step * step
            w1 = (w // step if self.shrink else -(-(x + w - x0) // step)) * step
            h1 = (h // step if self.shrink else -(-(y + h - y0) // step)) * step
            self.woi = (x0, w1, y0, h1)
        return self.woi


def test_the_window_takes_the_cameras_steps_refuses_a_short_one_and_always_restores():
    cfg = parse_bench(small_bench_text(), "snap")
    registration = OutputRegistration(cfg)
    asked = registration.sensor_box()
    camera = SnappingCamera()
    with readout_window(camera, registration, "window") as got:
        assert got[0] % 64 == 0 and got[2] % 64 == 0
        assert got[0] <= asked[0] and got[0] + got[1] >= asked[0] + asked[1]
        assert registration.frame_origin == (got[0], got[2])
    assert camera.calls[-1] is None and camera.woi == (0, 1280, 0, 1024)

    short = SnappingCamera(shrink=True)
    with pytest.raises(DeviceError, match="does not hold the output window"):
        with readout_window(short, OutputRegistration(cfg), "window"):
            pass
    assert short.calls[-1] is None
    with pytest.raises(RunFolderError, match="resume with the same camera settings"):
        with readout_window(SnappingCamera(), OutputRegistration(cfg), "window", recorded=[1, 100, 1, 100]):
            pass
    untouched = SnappingCamera()
    with readout_window(untouched, OutputRegistration(cfg), "full") as got:
        assert got is None
    assert untouched.calls == []
