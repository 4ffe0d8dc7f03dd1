"""The OpenCV camera driver against a mocked ``cv2.VideoCapture`` (no webcam here).

The fake keeps OpenCV's behaviour that matters: property get/set returning False for what the
backend does not support, fixed capture modes, BGR frames, a ``read()`` that can block.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from optgen.drivers.cameras.opencv import OpenCVCamera
from optgen.drivers.errors import CaptureTimeout, DeviceError

MODES = {(640, 480), (1280, 720)}


class FakeCapture:
    def __init__(self, backend: str = "V4L2", opened: bool = True, exposure: bool = True):
        self.backend, self.opened, self.released = backend, opened, False
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0,
                      cv2.CAP_PROP_AUTO_EXPOSURE: 3.0, cv2.CAP_PROP_EXPOSURE: 0.0}
        self.supported = set(self.props) - (set() if exposure else {cv2.CAP_PROP_EXPOSURE})
        self.frame = np.zeros((480, 640, 3), np.uint8)
        self.gate: threading.Event | None = None      # set: read() blocks until the gate opens
        self.ok = True
        self.reads = 0

    def isOpened(self):
        return self.opened

    def getBackendName(self):
        return self.backend

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def set(self, prop, value):
        if prop not in self.supported:
            return False
        if prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
            wanted = dict(self.props)
            wanted[prop] = float(value)
            size = (int(wanted[cv2.CAP_PROP_FRAME_WIDTH]), int(wanted[cv2.CAP_PROP_FRAME_HEIGHT]))
            if size not in MODES and prop == cv2.CAP_PROP_FRAME_HEIGHT:
                return False
        self.props[prop] = float(value)
        return True

    def read(self):
        if self.gate is not None:
            self.gate.wait()
        self.reads += 1
        h, w = int(self.props[cv2.CAP_PROP_FRAME_HEIGHT]), int(self.props[cv2.CAP_PROP_FRAME_WIDTH])
        return (self.ok, np.resize(self.frame, (h, w, self.frame.shape[2])) if self.ok else None)

    def release(self):
        self.released = True


@pytest.fixture
def fake(mocker):
    capture = FakeCapture()
    mocker.patch("cv2.VideoCapture", return_value=capture)
    return capture


def open_camera(**kwargs) -> OpenCVCamera:
    return OpenCVCamera(**{"source": 0, "pitch_um": 3.0, **kwargs})


def test_opens_the_source_with_the_chosen_backend(fake):
    cam = open_camera(api="v4l2")
    cv2.VideoCapture.assert_called_once_with(0, cv2.CAP_V4L2)
    assert cam.shape == (480, 640) and cam.dtype == np.uint8 and cam.bitdepth == 8
    assert "V4L2" in cam.identity.model and cam.identity.serial == "0"


def test_unknown_api_and_unopened_source_are_clear_errors(fake):
    with pytest.raises(DeviceError, match="api = 'qt'"):
        open_camera(api="qt")
    fake.opened = False
    with pytest.raises(DeviceError, match="cannot open video source 0"):
        open_camera()


def test_frames_are_converted_to_gray(fake):
    fake.frame = np.zeros((480, 640, 3), np.uint8)
    fake.frame[..., 2] = 255                                  # pure red in BGR order
    cam = open_camera()
    frame = cam.capture(timeout_s=1.0)
    assert frame.shape == (480, 640) and frame.dtype == np.uint8
    assert np.all(frame == 76)                                # 0.299 * 255
    fake.frame = np.full((480, 640, 4), (0, 255, 0, 255), np.uint8)   # BGRA green
    assert np.all(cam.capture(timeout_s=1.0) == 150)          # 0.587 * 255
    fake.frame = np.full((480, 640, 1), 42, np.uint8)
    assert np.all(cam.capture(timeout_s=1.0) == 42)


def test_a_series_is_that_many_frames_read_one_after_another(fake):
    cam = open_camera()
    fake.frame = np.full((480, 640, 1), 17, np.uint8)
    reads = fake.reads
    series = cam.capture_series(3, timeout_s=1.0)
    assert series.shape == (3, 480, 640) and series.dtype == np.uint8 and np.all(series == 17)
    assert fake.reads - reads == 3
    with pytest.raises(ValueError, match="at least 1"):
        cam.capture_series(0)


def test_sixteen_bit_frames_are_refused(fake):
    fake.frame = np.zeros((480, 640, 1), np.uint16)
    cam = open_camera()
    with pytest.raises(DeviceError, match="8-bit video only"):
        cam.capture(timeout_s=1.0)


def test_resolution_is_requested_and_checked(fake):
    cam = open_camera(resolution=(1280, 720))
    assert cam.shape == (720, 1280)
    assert cam.capture(timeout_s=1.0).shape == (720, 1280)
    with pytest.raises(DeviceError, match=r"asked for 1000x700 pixels, the camera gives 1000x720"):
        open_camera(resolution=(1000, 700))


def test_v4l2_exposure_in_units_of_100_us(fake):
    cam = open_camera(exposure_s=0.01)
    assert fake.props[cv2.CAP_PROP_AUTO_EXPOSURE] == 1.0      # manual
    assert fake.props[cv2.CAP_PROP_EXPOSURE] == pytest.approx(100.0)
    assert cam.exposure_controllable and cam.exposure_s == pytest.approx(0.01)
    assert cam.set_exposure(0.002) == pytest.approx(0.002)
    assert fake.props[cv2.CAP_PROP_EXPOSURE] == pytest.approx(20.0)


def test_directshow_exposure_in_log2_seconds(mocker):
    capture = FakeCapture(backend="DSHOW")
    mocker.patch("cv2.VideoCapture", return_value=capture)
    cam = open_camera(api="dshow", exposure_s=1 / 32)
    assert capture.props[cv2.CAP_PROP_EXPOSURE] == pytest.approx(-5.0)
    assert capture.props[cv2.CAP_PROP_AUTO_EXPOSURE] == 0.25
    assert cam.get_exposure() == pytest.approx(1 / 32)


@pytest.mark.parametrize("backend, exposure", [("GSTREAMER", True), ("V4L2", False)])
def test_no_exposure_control_keeps_the_nominal_value(mocker, backend, exposure):
    mocker.patch("cv2.VideoCapture", return_value=FakeCapture(backend=backend, exposure=exposure))
    cam = open_camera(exposure_s=0.005)
    assert not cam.exposure_controllable
    assert cam.exposure_s == 0.005 and cam.describe()["exposure_control"] == "none (nominal)"
    assert cam.set_exposure(0.005) == 0.005
    with pytest.raises(DeviceError, match="no exposure control"):
        cam.set_exposure(0.01)


def test_a_blocked_read_raises_capture_timeout_and_recovers(fake):
    cam = open_camera()
    fake.gate = threading.Event()
    with pytest.raises(CaptureTimeout, match="no frame within 0.2 s"):
        cam.capture(timeout_s=0.2)
    with pytest.raises(CaptureTimeout, match="previous read is still blocked"):
        cam.capture(timeout_s=0.1)
    fake.gate.set()                                           # the camera comes back
    assert cam.capture(timeout_s=1.0).shape == (480, 640)
    assert fake.reads == 2                                     # the stale frame was dropped, one new read


def test_no_frame_is_an_error(fake):
    cam = open_camera()
    fake.ok = False
    with pytest.raises(DeviceError, match="returned no frame"):
        cam.capture(timeout_s=1.0)


def test_close_releases_and_is_idempotent(fake):
    cam = open_camera()
    cam.close()
    cam.close()
    assert fake.released
    with pytest.raises(DeviceError, match="closed"):
        cam.capture(timeout_s=0.5)


def test_describe_snapshot(fake):
    snap = open_camera().describe()
    assert snap["driver"] == "opencv" and snap["backend"] == "V4L2" and snap["resolution"] == [640, 480]
