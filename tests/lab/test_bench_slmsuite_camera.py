"""A camera through slmsuite in a bench file: the class and its SDK are checked when the bench file is
read; the bench's window of interest, exposure and size reach the camera it opens."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from optgen.lab.bench.examples import add_to_bench_text, edit_bench_text
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.bench.reader import BenchFileError


def camera_bench(connection: list[str], changes: dict | None = None) -> str:
    text = edit_bench_text(default_bench_text(), {("camera", "driver"): '"slmsuite"', **(changes or {})})
    return add_to_bench_text(text, {"camera.connection": connection})


def test_a_class_and_its_options_make_a_camera_config():
    cfg = parse_bench(camera_bench(['class = "Webcam"', "cam = 1", "woi = [0, 640, 0, 480]"]), "b.toml")
    assert cfg.camera.connection == {"class": "Webcam", "cam": 1, "woi": (0, 640, 0, 480)}


@pytest.mark.parametrize("connection, match", [
    (['class = "Hasselblad"'], r"\[camera.connection\] class = 'Hasselblad': expected one of 'AlliedVision', 'Basler'"),
    ([], r"\[camera.connection\] is missing the required key 'class'"),
    (['class = "Basler"'], r"class = 'Basler': expected a class whose SDK is installed: slmsuite's Basler needs the "
                           r"Basler SDK \(Python module 'pypylon'\): pip install pypylon"),
    (['class = "ThorCam"'], r"needs the Thorlabs SDK \(Python module 'thorlabs_tsi_sdk'\): install ThorCam"),
    (['class = "Webcam"', "woi = [0, 0, 0, 480]"], r"woi = \[0, 0, 0, 480\]: expected a window of interest"),
    (['class = "Webcam"', "woi = [0, 640]"], r"woi = \[0, 640\]: expected a window of interest"),
    (['class = "Webcam"', "pitch_um = 3.45"], r"pitch_um = 3.45: expected no 'pitch_um' here: optgen sets it itself"),
    (['class = "Webcam"', "cam = [1, 2]"], r"cam = \[1, 2\]"),
])
def test_bad_slmsuite_camera_tables_are_refused(connection, match, monkeypatch):
    import sys

    for sdk in ("pypylon", "thorlabs_tsi_sdk"):          # absent here; make sure a test machine agrees
        monkeypatch.setitem(sys.modules, sdk, None)
    with pytest.raises(BenchFileError, match=match):
        parse_bench(camera_bench(connection), "b.toml")


def test_the_bench_opens_the_class_with_its_options_window_and_exposure(monkeypatch):
    """The bench file's class, options, woi, exposure, pitch and size reach the camera: slmsuite's
    simulated camera (behind slmsuite's simulated SLM) stands in for the vendor class."""
    from slmsuite.hardware.cameras.simulated import SimulatedCamera
    from slmsuite.hardware.slms.simulated import SimulatedSLM

    from optgen.drivers.cameras import slmsuite_camera
    from optgen.lab.bench.real import open_camera

    made = []

    def simulated_class(name, device="camera"):
        def make(**options):
            made.append((name, options))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                slm = SimulatedSLM((256, 192), pitch_um=(8, 8))
            return SimulatedCamera(slm, resolution=(256, 192), bitdepth=12, pitch_um=(5.5, 5.5))
        return make

    monkeypatch.setattr(slmsuite_camera, "slmsuite_camera_class", simulated_class)
    cfg = parse_bench(camera_bench(['class = "Webcam"', "cam = 1", "woi = [16, 128, 8, 96]"],
                                   {("camera", "resolution"): "[128, 96]", ("camera", "exposure_ms"): "2.0"}), "b.toml")
    camera = open_camera(cfg)
    try:
        assert made == [("Webcam", {"cam": 1})]
        assert camera.shape == (96, 128) and camera.bitdepth == 12 and camera.saturation_dn == 4095
        assert camera.exposure_s == pytest.approx(0.002)
        assert camera.pitch_um[0] == pytest.approx(4.8)                 # the bench file's, not the class's
        frame = camera.capture()
        assert frame.shape == (96, 128) and frame.dtype == np.uint16
        assert camera.describe()["class"] == "Webcam" and camera.identity.serial == "1"
    finally:
        camera.close()


def test_a_size_that_disagrees_with_the_camera_is_refused(monkeypatch):
    from slmsuite.hardware.cameras.simulated import SimulatedCamera
    from slmsuite.hardware.slms.simulated import SimulatedSLM

    from optgen.drivers.cameras import slmsuite_camera
    from optgen.drivers.errors import DeviceError
    from optgen.lab.bench.real import open_camera

    def simulated_class(name, device="camera"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            slm = SimulatedSLM((256, 192), pitch_um=(8, 8))
        return lambda **options: SimulatedCamera(slm, resolution=(256, 192), bitdepth=12)

    monkeypatch.setattr(slmsuite_camera, "slmsuite_camera_class", simulated_class)
    cfg = parse_bench(camera_bench(['class = "Webcam"']), "b.toml")     # the bench file says 1280 x 1024
    with pytest.raises(DeviceError, match=r"the bench file says 1280x1024 pixels, slmsuite's Webcam delivers 256x192"):
        open_camera(cfg)
