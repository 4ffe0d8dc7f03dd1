"""slmsuite's Micro-Manager, pylablib, Thorlabs, webcam, Xenics, remote and simulated cameras through optgen.

Each vendor SDK is replaced at its import boundary by a fake that records what it is sent and answers
as the real SDK does (units, Python types, state rules such as "arm before triggering"); slmsuite's
vendor module is re-imported against the fake (``fake_sdk``), and the camera is opened through
optgen's :class:`SlmsuiteCamera`. The remote camera talks to slmsuite's own server, in-process, over
loopback; the simulated camera images a simulated SLM. The assertions name the exact SDK calls, so
they fail if slmsuite or optgen's wrapper sends the SDK anything else.

Two slmsuite 0.5 classes cannot open against the real SDK, and the tests say so:

* ``MMCore`` reads ``CMMCore.getBinning()``, which pymmcore does not have (binning is the camera's
  "Binning" property in Micro-Manager);
* ``Cheetah640`` calls ``XC_Getframe_size``, which xeneth64.dll does not export (it is ``XC_GetFrameSize``).

For those, one test opens against the faithful fake and checks the refusal; another gives the fake the
missing call and checks the rest of slmsuite's path (capture, exposure, close).
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import math
import os
import socket
import sys
import threading
import time
import types
from collections import namedtuple
from unittest.mock import call

import cv2
import numpy as np
import pytest
import slmsuite.hardware.cameras as slmsuite_cameras

from optgen.drivers.cameras.slmsuite_camera import SLMSUITE_CAMERAS, SlmsuiteCamera
from optgen.drivers.errors import CaptureTimeout, DeviceError

_MISSING = object()


# --- shared fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def fake_sdk(mocker):
    """``install(module, {name: fake module})``: the fake SDK modules go into sys.modules and slmsuite's
    ``slmsuite.hardware.cameras.<module>`` is dropped so that it is imported again against them. Both are
    undone after the test (``patch.dict`` restores sys.modules; the package attribute is put back here)."""
    touched = []

    def install(module: str, modules: dict) -> None:
        touched.append((module, getattr(slmsuite_cameras, module, _MISSING)))
        mocker.patch.dict(sys.modules, modules)
        sys.modules.pop(f"slmsuite.hardware.cameras.{module}", None)

    yield install
    for module, before in reversed(touched):
        if before is _MISSING:
            if hasattr(slmsuite_cameras, module):
                delattr(slmsuite_cameras, module)
        else:
            setattr(slmsuite_cameras, module, before)


@pytest.fixture
def opened(mocker):
    """Track a camera so that it is closed after the test whatever happens (close is safe twice)."""
    cameras = []

    def track(camera):
        cameras.append(camera)
        return camera

    yield track
    for camera in cameras:
        camera.close()


def sdk_module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def quantize(value: float, step: float) -> float:
    """What a sensor realises: the nearest whole number of its time steps."""
    return round(value / step) * step


def test_an_unknown_class_is_refused_naming_the_known_ones():
    with pytest.raises(DeviceError) as info:
        SlmsuiteCamera("Hasselblad", pitch_um=5.0)
    message = str(info.value)
    assert "'Hasselblad'" in message
    for name in SLMSUITE_CAMERAS:
        assert name in message


# --- Micro-Manager (pymmcore) ---------------------------------------------------------------------------
MM_STEP_MS = 0.029          # the fake camera's row time: exposures are whole rows


def make_pymmcore(log: list, *, with_binning: bool, frame: np.ndarray) -> types.ModuleType:
    """A pymmcore whose CMMCore has the real methods slmsuite uses (names from MMCore.h), answering as
    a 12-bit 512x512 camera loaded from a configuration file would."""

    class CMMCore:
        def __init__(self):
            self._exposure_ms = 10.0
            self._snapped = False
            log.append(call.CMMCore())

        def __del__(self):                       # ~CMMCore unloads the devices
            log.append(call.destroyed())

        def setDeviceAdapterSearchPaths(self, paths):
            log.append(call.setDeviceAdapterSearchPaths(paths))

        def loadSystemConfiguration(self, file_name):
            log.append(call.loadSystemConfiguration(file_name))

        def getImageWidth(self):
            log.append(call.getImageWidth())
            return frame.shape[1]

        def getImageHeight(self):
            log.append(call.getImageHeight())
            return frame.shape[0]

        def getImageBitDepth(self):
            log.append(call.getImageBitDepth())
            return 12

        def getExposure(self):
            log.append(call.getExposure())
            return self._exposure_ms

        def setExposure(self, exposure_ms):
            log.append(call.setExposure(exposure_ms))
            self._exposure_ms = quantize(float(exposure_ms), MM_STEP_MS)

        def getROI(self):
            log.append(call.getROI())
            return [0, 0, frame.shape[1], frame.shape[0]]      # a list of 4 ints, as pymmcore returns

        def setROI(self, x, y, width, height):
            log.append(call.setROI(x, y, width, height))

        def snapImage(self):
            log.append(call.snapImage())
            self._snapped = True

        def getImage(self):
            log.append(call.getImage())
            if not self._snapped:
                raise RuntimeError("Camera image buffer read failed")
            return frame.copy()

        def unloadAllDevices(self):
            log.append(call.unloadAllDevices())

        def reset(self):
            log.append(call.reset())

    if with_binning:
        class CMMCore(CMMCore):                  # noqa: F811  (the same core with what slmsuite expects)
            def getBinning(self):
                log.append(call.getBinning())
                return 1

            def setBinning(self, binning):
                log.append(call.setBinning(binning))

    return sdk_module("pymmcore", CMMCore=CMMCore)


MM_FRAME = (np.arange(512 * 512, dtype=np.uint16).reshape(512, 512) % 4096).astype(np.uint16)


def test_mmcore_cannot_open_with_the_real_pymmcore_api(fake_sdk, tmp_path):
    # slmsuite 0.5's MMCore asks the core for getBinning(); CMMCore has no such method (binning is a
    # camera property in Micro-Manager), so the class cannot open against a real pymmcore. optgen must
    # say so, naming the call, after the configuration was loaded as slmsuite loads it.
    log = []
    fake_sdk("mmcore", {"pymmcore": make_pymmcore(log, with_binning=False, frame=MM_FRAME)})
    with pytest.raises(DeviceError) as info:
        SlmsuiteCamera("MMCore", options={"config": "Andor.cfg", "path": str(tmp_path)}, pitch_um=6.5)
    assert "MMCore" in str(info.value) and "getBinning" in str(info.value)
    assert log[:7] == [
        call.CMMCore(),
        call.setDeviceAdapterSearchPaths([str(tmp_path)]),
        call.loadSystemConfiguration(os.path.join(str(tmp_path), "Andor.cfg")),
        call.getImageWidth(), call.getImageHeight(), call.getImageBitDepth(),
        call.getExposure(),
    ]


def test_mmcore_open_capture_exposure_close(fake_sdk, opened, tmp_path):
    # The fake core is given getBinning/setBinning (see the test above) to exercise the rest of the path.
    log = []
    fake_sdk("mmcore", {"pymmcore": make_pymmcore(log, with_binning=True, frame=MM_FRAME)})
    cam = opened(SlmsuiteCamera("MMCore", options={"config": "Andor", "path": str(tmp_path)}, pitch_um=6.5))

    assert cam.shape == (512, 512) and cam.bitdepth == 12 and cam.saturation_dn == 4095
    assert cam.identity.vendor == "Micro-Manager" and cam.identity.model == "Andor"
    assert log == [
        call.CMMCore(),
        call.setDeviceAdapterSearchPaths([str(tmp_path)]),
        call.loadSystemConfiguration(os.path.join(str(tmp_path), "Andor.cfg")),
        call.getImageWidth(), call.getImageHeight(), call.getImageBitDepth(),
        call.getExposure(), call.getBinning(), call.getROI(),
        call.snapImage(), call.getImage(),       # slmsuite probes the frame type at open
        call.getExposure(),                      # optgen reads the exposure back
    ]
    assert cam.exposure_s == pytest.approx(0.010)

    log.clear()
    frame = cam.capture(timeout_s=2.0)
    assert frame.dtype == np.uint16 and np.array_equal(frame, MM_FRAME)
    assert log == [call.snapImage(), call.getImage()]

    log.clear()
    realised = cam.set_exposure(0.02)
    assert log[0] == call.setExposure(20.0)                   # milliseconds
    assert log[1:] == [call.getExposure()] * 2            # slmsuite's read-back, then optgen's
    assert realised == pytest.approx(quantize(20.0, MM_STEP_MS) / 1e3) and realised != 0.02
    assert cam.exposure_s == realised

    log.clear()
    cam.close()
    gc.collect()
    # slmsuite's MMCore.close() drops its CMMCore (no unloadAllDevices/reset): the core's destructor
    # is what unloads the camera, and it must run now.
    assert log == [call.destroyed()]
    with pytest.raises(DeviceError, match="closed"):
        cam.capture(timeout_s=0.5)


# --- pylablib -------------------------------------------------------------------------------------------
# pylablib's uc480 device info (pylablib/devices/uc480/uc480.py)
TDeviceInfo = namedtuple("TDeviceInfo", ["cam_id", "model", "manufacturer", "serial_number", "usb_version", "date",
                                         "dll_version", "camera_type"])
PLL_STEP_S = 37.1e-6        # the fake sensor's line time
PLL_FRAME = (np.arange(1024 * 1280, dtype=np.uint32).reshape(1024, 1280) % 251).astype(np.uint8)


def make_pylablib(log: list):
    """pylablib's package path down to ICamera, and a uc480 camera (DCC1545M, 1280x1024, 8 bit) on it."""

    class ICamera:                                  # pylablib.devices.interface.camera.ICamera
        pass

    class UC480Camera(ICamera):
        def __init__(self):
            self._exposure_s = quantize(0.01, PLL_STEP_S)
            self.opened = True

        def get_device_info(self):
            log.append(call.get_device_info())
            return TDeviceInfo(1, "DCC1545M", "Thorlabs", "4102812345", "USB 2.0", "04.09.2019", "4.93", 1)

        def get_data_dimensions(self):
            log.append(call.get_data_dimensions())
            return (1024, 1280)                     # (rows, columns)

        def get_roi(self):
            log.append(call.get_roi())
            return (0, 1280, 0, 1024, 1, 1)         # hstart, hend, vstart, vend, hbin, vbin

        def set_roi(self, **kwargs):
            log.append(call.set_roi(**kwargs))

        def get_exposure(self):
            log.append(call.get_exposure())
            return self._exposure_s

        def set_exposure(self, exposure):
            log.append(call.set_exposure(exposure))
            self._exposure_s = quantize(exposure, PLL_STEP_S)
            return self._exposure_s

        def snap(self, timeout=5.0, return_info=False):
            log.append(call.snap(timeout=timeout))
            return PLL_FRAME.copy()

        def close(self):
            log.append(call.close())
            self.opened = False

    modules = {
        "pylablib": sdk_module("pylablib"),
        "pylablib.devices": sdk_module("pylablib.devices"),
        "pylablib.devices.interface": sdk_module("pylablib.devices.interface"),
        "pylablib.devices.interface.camera": sdk_module("pylablib.devices.interface.camera", ICamera=ICamera),
    }
    modules["pylablib"].devices = modules["pylablib.devices"]
    modules["pylablib.devices"].interface = modules["pylablib.devices.interface"]
    modules["pylablib.devices.interface"].camera = modules["pylablib.devices.interface.camera"]
    return modules, UC480Camera


def test_pylablib_open_capture_exposure_close(fake_sdk, opened):
    log = []
    modules, UC480Camera = make_pylablib(log)
    fake_sdk("pylablib", modules)
    pll_cam = UC480Camera()
    cam = opened(SlmsuiteCamera("PyLabLib", options={"cam": pll_cam}, pitch_um=5.2))

    assert cam.shape == (1024, 1280) and cam.bitdepth == 8 and cam.saturation_dn == 255
    assert cam.identity.vendor == "pylablib"
    assert cam.identity.model == "DCC1545M_Thorlabs_4102812345"        # slmsuite's name: model, maker, serial
    assert log == [
        call.get_device_info(), call.get_data_dimensions(),
        call.get_exposure(), call.get_roi(), call.get_roi(),           # binning, then the window
        call.snap(timeout=1),                                          # slmsuite probes the frame type
        call.get_exposure(),                                           # optgen reads the exposure back
    ]

    log.clear()
    frame = cam.capture(timeout_s=2.0)
    assert np.array_equal(frame, PLL_FRAME)
    assert len(log) == 1 and log[0][0] == "snap"
    # the bound reaches pylablib, in s: the capture timeout plus one exposure (not two)
    assert log[0][2]["timeout"] == pytest.approx(2.0 + cam.exposure_s, abs=1e-9)

    log.clear()
    realised = cam.set_exposure(0.02)
    assert log[0] == call.set_exposure(0.02)                           # seconds
    assert log[1:] == [call.get_exposure()] * 2           # slmsuite's read-back, then optgen's
    assert realised == pytest.approx(quantize(0.02, PLL_STEP_S)) and realised != 0.02

    log.clear()
    cam.close()
    # pylablib's close (slmsuite's Camera.__del__ closes once more when the object goes: pylablib's
    # close is idempotent)
    assert log and all(c == call.close() for c in log) and not pll_cam.opened


def test_pylablib_identity_serial_is_not_the_camera_object(fake_sdk, opened):
    # for PyLabLib "cam" is the open camera object: its repr is no serial
    modules, UC480Camera = make_pylablib([])
    fake_sdk("pylablib", modules)
    cam = opened(SlmsuiteCamera("PyLabLib", options={"cam": UC480Camera()}, pitch_um=5.2))
    assert "object at 0x" not in cam.identity.serial
    assert cam.identity.serial in ("", "4102812345")


# --- Thorlabs (thorlabs_tsi_sdk) ------------------------------------------------------------------------
ROI = namedtuple("ROI", ["upper_left_x_pixels", "upper_left_y_pixels", "lower_right_x_pixels",
                         "lower_right_y_pixels"])
ROIRange = namedtuple("ROIRange", ["upper_left_x_pixels_min", "upper_left_y_pixels_min",
                                   "lower_right_x_pixels_min", "lower_right_y_pixels_min",
                                   "upper_left_x_pixels_max", "upper_left_y_pixels_max",
                                   "lower_right_x_pixels_max", "lower_right_y_pixels_max"])
THOR_STEP_US = 17           # the fake CS165MU's exposure step
THOR_FRAME = (np.arange(1080 * 1440, dtype=np.uint32).reshape(1080, 1440) % 1021).astype(np.uint16)


class FakeTLCamera:
    """thorlabs_tsi_sdk's TLCamera for a CS165MU (1440x1080, 10 bit, 3.45 um): properties and methods
    by the SDK's names, the disarm-before-configure and arm-before-trigger rules, one frame per trigger."""

    WRITABLE = {"is_led_on", "frames_per_trigger_zero_for_unlimited", "operation_mode", "exposure_time_us",
                "roi", "binx", "biny"}
    ONLY_DISARMED = {"frames_per_trigger_zero_for_unlimited", "operation_mode", "roi", "binx", "biny"}

    def __init__(self, log: list):
        d = self.__dict__
        d.update(log=log, armed=False, disposed=False, pending=[], frame_count=0,
                 image_width_pixels=1440, image_height_pixels=1080, bit_depth=10,
                 sensor_pixel_width_um=3.45, sensor_pixel_height_um=3.45, binx=1, biny=1,
                 roi=ROI(0, 0, 1439, 1079), roi_range=ROIRange(0, 0, 79, 3, 1360, 1076, 1439, 1079),
                 exposure_time_us=quantize(10000, THOR_STEP_US), operation_mode=0,
                 frames_per_trigger_zero_for_unlimited=1, is_led_on=True)

    def __setattr__(self, name, value):
        if name not in self.WRITABLE:
            raise AttributeError(f"can't set attribute {name!r}")
        self.log.append(call.set(name, value))
        if name in self.ONLY_DISARMED and self.armed:
            raise RuntimeError(f"{name} can only be set while the camera is disarmed")
        if name == "exposure_time_us":
            value = int(quantize(int(value), THOR_STEP_US))
        self.__dict__[name] = value

    def arm(self, frames_to_buffer):
        self.log.append(call.arm(frames_to_buffer))
        self.__dict__["armed"] = True

    def disarm(self):
        self.log.append(call.disarm())
        self.__dict__["armed"] = False
        self.pending.clear()

    def issue_software_trigger(self):
        self.log.append(call.issue_software_trigger())
        if not self.armed:
            raise RuntimeError("tl_camera_issue_software_trigger: the camera is not armed")
        for _ in range(self.frames_per_trigger_zero_for_unlimited):
            self.__dict__["frame_count"] += 1
            self.pending.append(types.SimpleNamespace(image_buffer=THOR_FRAME.copy(), frame_count=self.frame_count,
                                                      time_stamp_relative_ns_or_null=None))

    def get_pending_frame_or_null(self):
        self.log.append(call.get_pending_frame_or_null())
        return self.pending.pop(0) if self.pending else None

    def dispose(self):
        self.log.append(call.dispose())
        self.__dict__["disposed"] = True


def make_thorlabs(log: list, serials: list[str]) -> dict:
    class TLCameraSDK:
        def __init__(self):
            log.append(call.TLCameraSDK())
            self.cameras = {}

        def discover_available_cameras(self):
            log.append(call.discover_available_cameras())
            return list(serials)

        def open_camera(self, camera_id):
            log.append(call.open_camera(camera_id))
            if camera_id not in serials:
                raise RuntimeError(f"tl_camera_open_camera: no camera {camera_id}")
            self.cameras[camera_id] = FakeTLCamera(log)
            return self.cameras[camera_id]

        def dispose(self):
            log.append(call.sdk_dispose())

    tl_camera = sdk_module("thorlabs_tsi_sdk.tl_camera", TLCameraSDK=TLCameraSDK, ROI=ROI, ROIRange=ROIRange)
    return {"thorlabs_tsi_sdk": sdk_module("thorlabs_tsi_sdk", tl_camera=tl_camera),
            "thorlabs_tsi_sdk.tl_camera": tl_camera}


@pytest.mark.filterwarnings("ignore:Thorlabs camera DLL path does not exist")
def test_thorcam_open_capture_exposure_close(fake_sdk, opened, mocker):
    mocker.patch.dict(os.environ)               # slmsuite's thorlabs module prepends its DLL folder to PATH
    log = []
    fake_sdk("thorlabs", make_thorlabs(log, ["08154", "12345"]))
    cam = opened(SlmsuiteCamera("ThorCam", options={"serial": "12345"}))     # pitch from the camera

    assert cam.shape == (1080, 1440) and cam.bitdepth == 10 and cam.saturation_dn == 1023
    assert cam.pitch_um[0] == pytest.approx(3.45)
    assert cam.identity.vendor == "Thorlabs" and cam.identity.serial == "12345"
    assert log == [
        call.TLCameraSDK(), call.discover_available_cameras(), call.open_camera("12345"),
        call.set("is_led_on", False),
        call.disarm(),                                                  # setup("single")
        call.set("frames_per_trigger_zero_for_unlimited", 1),
        call.set("operation_mode", 0),                                  # software triggered
        call.arm(2),
        call.issue_software_trigger(), call.get_pending_frame_or_null(),    # slmsuite's frame-type probe
    ]
    assert cam.exposure_s == pytest.approx(quantize(10000, THOR_STEP_US) / 1e6)

    log.clear()
    frame = cam.capture(timeout_s=2.0)
    assert frame.dtype == np.uint16 and np.array_equal(frame, THOR_FRAME)
    assert log == [call.issue_software_trigger(), call.get_pending_frame_or_null()]

    log.clear()
    realised = cam.set_exposure(0.02)
    assert log == [call.set("exposure_time_us", 20000)]               # integer microseconds
    assert realised == quantize(20000, THOR_STEP_US) / 1e6 and realised != 0.02

    log.clear()
    cam.close()
    # the camera is disposed (slmsuite leaves the shared TLCameraSDK open: ThorCam.close(close_sdk=False))
    assert log and all(c == call.dispose() for c in log)
    with pytest.raises(DeviceError, match="closed"):
        cam.capture(timeout_s=0.5)


@pytest.mark.filterwarnings("ignore:Thorlabs camera DLL path does not exist")
def test_thorcam_unknown_serial_is_refused_naming_the_found_ones(fake_sdk, mocker):
    mocker.patch.dict(os.environ)
    log = []
    fake_sdk("thorlabs", make_thorlabs(log, ["08154"]))
    with pytest.raises(DeviceError, match=r"ThorCam.*'12345' not found.*08154"):
        SlmsuiteCamera("ThorCam", options={"serial": "12345"}, pitch_um=3.45)
    assert call.open_camera("12345") not in log


# --- webcam (cv2.VideoCapture) --------------------------------------------------------------------------
class FakeVideoCapture:
    """cv2.VideoCapture on a DirectShow-like backend: exposure in whole log2 seconds, BGR frames."""

    MODES = {(640, 480), (1280, 720)}

    def __init__(self, log: list):
        self.log, self.released = log, False
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0,
                      cv2.CAP_PROP_AUTO_EXPOSURE: 3.0, cv2.CAP_PROP_EXPOSURE: -5.0}

    def frame(self) -> np.ndarray:
        h, w = int(self.props[cv2.CAP_PROP_FRAME_HEIGHT]), int(self.props[cv2.CAP_PROP_FRAME_WIDTH])
        bgr = np.empty((h, w, 3), np.uint8)
        bgr[..., 0], bgr[..., 1] = 10, 20
        bgr[..., 2] = (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)   # red
        return bgr

    def isOpened(self):
        self.log.append(call.isOpened())
        return not self.released

    def getBackendName(self):
        self.log.append(call.getBackendName())
        return "DSHOW"

    def get(self, prop):
        self.log.append(call.get(prop))
        return self.props.get(prop, 0.0)

    def set(self, prop, value):
        self.log.append(call.set(prop, value))
        if prop == cv2.CAP_PROP_EXPOSURE:
            value = float(round(value))                  # DirectShow exposure: whole powers of two
        self.props[prop] = float(value)
        return True

    def read(self):
        self.log.append(call.read())
        return True, self.frame()

    def release(self):
        self.log.append(call.release())
        self.released = True


def test_webcam_open_capture_exposure_close(mocker, opened):
    log = []
    capture = FakeVideoCapture(log)
    video_capture = mocker.patch("cv2.VideoCapture", return_value=capture)
    webcam = importlib.import_module("slmsuite.hardware.cameras.webcam")
    sleeps = []
    mocker.patch.object(webcam, "time", types.SimpleNamespace(sleep=sleeps.append))   # its 0.5 s settles
    cam = opened(SlmsuiteCamera("Webcam", options={"identifier": 0, "resolution": (1280, 720)}, pitch_um=3.0))

    video_capture.assert_called_once_with(0, cv2.CAP_ANY)
    assert cam.shape == (720, 1280) and cam.bitdepth == 8 and cam.saturation_dn == 255
    assert cam.identity.vendor == "webcam (OpenCV)" and "0" in (cam.identity.model, cam.identity.serial)
    assert log == [
        call.isOpened(),
        call.set(cv2.CAP_PROP_FRAME_WIDTH, 1280), call.set(cv2.CAP_PROP_FRAME_HEIGHT, 720),
        call.get(cv2.CAP_PROP_FRAME_WIDTH), call.get(cv2.CAP_PROP_FRAME_HEIGHT),
        call.get(cv2.CAP_PROP_EXPOSURE),
        call.read(),                                                   # slmsuite's frame-type probe
        call.getBackendName(),
        call.set(cv2.CAP_PROP_AUTO_EXPOSURE, 3), call.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1),   # manual
        call.get(cv2.CAP_PROP_EXPOSURE), call.set(cv2.CAP_PROP_EXPOSURE, -5.0), call.get(cv2.CAP_PROP_EXPOSURE),
        call.get(cv2.CAP_PROP_EXPOSURE),                               # optgen reads the exposure back
    ]
    assert sleeps and all(s <= 0.5 for s in sleeps)

    log.clear()
    frame = cam.capture(timeout_s=2.0)
    assert log == [call.read()]
    assert frame.dtype == np.uint8 and np.array_equal(frame, capture.frame()[..., 2])   # BGR -> RGB, channel 0

    log.clear()
    realised = cam.set_exposure(0.02)
    assert log[0] == call.set(cv2.CAP_PROP_EXPOSURE, math.log2(0.02))   # log2 seconds
    assert log[1:] == [call.get(cv2.CAP_PROP_EXPOSURE)] * 2
    assert realised == 2.0 ** -6                                        # the backend's step, read back

    log.clear()
    cam.close()
    assert log == [call.release()]


# --- Xenics Cheetah640 (xeneth64.dll through ctypes) ----------------------------------------------------
XENETH_EXPORTS = {
    "XCD_EnumerateDevices", "XC_OpenCamera", "XC_CloseCamera", "XC_IsInitialised", "XC_GetWidth", "XC_GetHeight",
    "XC_GetFrameSize", "XC_GetFrame", "XC_StartCapture", "XC_StopCapture", "XC_IsCapturing", "XC_GetFrameCount",
    "XC_GetPropertyValueL", "XC_GetPropertyValueF", "XC_GetPropertyValueE", "XC_GetPropertyValue",
    "XC_SetPropertyValueL", "XC_SetPropertyValueF", "XC_SetPropertyValueE", "XC_SetPropertyValue",
    "XC_GetFrameFooterLength", "XC_LoadSettings", "XC_SaveSettings", "XC_FLT_Queue", "XC_RemImageFilter",
}
XC_HANDLE = 7
XC_STEP_US = 3.0            # the fake sensor's integration step
REF, BUFFER = "<byref>", "<buffer>"
XC_FRAME = (np.arange(512 * 640, dtype=np.uint32).reshape(512, 640) % 4096).astype(np.uint16)
XC_FRAME[0, :2] = (0xABC, 0x123)    # the frame tag the camera writes in the first two pixels


def _plain(arg):
    if isinstance(arg, ctypes._SimpleCData):
        return arg.value
    if type(arg).__name__ == "CArgObject":
        return REF
    if isinstance(arg, ctypes.Array):
        return (BUFFER, ctypes.sizeof(arg))
    return arg


class FakeXeneth:
    """xeneth64.dll as ctypes sees it: exported functions by name (others: AttributeError, as ctypes
    raises), ErrCode 0 for success, out-parameters written through byref, a Cheetah 640 CL on CameraLink."""

    def __init__(self, log: list, aliases: dict | None = None):
        self.log, self.aliases = log, dict(aliases or {})
        self.open_handles: set[int] = set()
        self.capturing = False
        self.props = {b"IntegrationTime": 1000.0, b"Fan": 1, b"FrameRate": 100, b"Mode": b"Preview",
                      b"WoiSX(0)": 0, b"WoiEX(0)": 639, b"WoiSY(0)": 0, b"WoiEY(0)": 511,
                      b"_API_GETFRAME_TIMEOUT": 10000}

    def __getattr__(self, name):
        target = self.aliases.get(name, name)
        if target not in XENETH_EXPORTS:
            raise AttributeError(f"function '{name}' not found")
        implementation = getattr(type(self), "_" + target, None)

        def exported(*args):
            self.log.append(getattr(call, name)(*(_plain(a) for a in args)))
            return implementation(self, *args) if implementation is not None else 0
        return exported

    def _XCD_EnumerateDevices(self, devices, count, flags):
        count._obj.value = 1
        if devices is not None:
            info = devices._obj
            info.size, info.name, info.transport = ctypes.sizeof(info), b"Cheetah 640 CL", b"CameraLink"
            info.url, info.address, info.serial, info.pid, info.state = b"cam://0", b"", 12079, 0xF040, 0
        return 0

    def _XC_OpenCamera(self, url, a, b):
        self.open_handles.add(XC_HANDLE)
        return XC_HANDLE

    def _XC_IsInitialised(self, handle):
        return int(handle in self.open_handles)

    def _XC_CloseCamera(self, handle):
        self.open_handles.discard(handle)

    def _XC_GetWidth(self, handle):
        return 640

    def _XC_GetHeight(self, handle):
        return 512

    def _XC_GetFrameSize(self, handle):
        return 640 * 512 * 2

    def _XC_StartCapture(self, handle):
        self.capturing = True
        return 0

    def _XC_StopCapture(self, handle):
        self.capturing = False
        return 0

    def _XC_IsCapturing(self, handle):
        return int(self.capturing)

    def _XC_GetFrame(self, handle, frame_type, flags, buffer, size):
        if not self.capturing:
            return 10008                                # E_NO_FRAME
        ctypes.memmove(buffer, XC_FRAME.tobytes(), min(size, XC_FRAME.nbytes))
        return 0

    def _get(self, handle, prop, ref, *rest):
        target = ref._obj                                 # the DLL converts to the out-parameter's type
        if prop in self.props:
            value, kind = self.props[prop], type(target.value)
            target.value = value if isinstance(value, kind) else kind(str(value).encode() if kind is bytes
                                                                      else value)
        return 0

    _XC_GetPropertyValueL = _XC_GetPropertyValueF = _XC_GetPropertyValueE = _get

    def _set(self, handle, prop, value, *unit):
        value = value.value if isinstance(value, ctypes._SimpleCData) else value
        if prop == b"IntegrationTime":
            value = quantize(value, XC_STEP_US)
        self.props[prop] = value
        return 0

    _XC_SetPropertyValueL = _XC_SetPropertyValueF = _XC_SetPropertyValueE = _set


class FakeWinDLL:
    def __init__(self, log: list, library: FakeXeneth):
        self.log, self.library = log, library

    def LoadLibrary(self, name):
        self.log.append(call.LoadLibrary(name))
        return self.library


def open_calls(log):
    return [c for c in log if "PropertyValue" not in c[0]]


def property_writes(log):
    return [c for c in log if c[0].startswith("XC_SetPropertyValue")]


XC_OPEN = [
    call.LoadLibrary("xeneth64.dll"),
    call.XCD_EnumerateDevices(None, REF, 0x4),                       # XEF_CAMERALINK
    call.XCD_EnumerateDevices(REF, REF, 0x01000000),                 # XEF_USECACHED
    call.XC_OpenCamera(b"cam://0", 0, 0),
    call.XC_IsInitialised(XC_HANDLE), call.XC_GetWidth(XC_HANDLE), call.XC_GetHeight(XC_HANDLE),
]


def install_xeneth(fake_sdk, mocker, aliases=None):
    log = []
    xeneth = FakeXeneth(log, aliases)
    fake_sdk("xenics", {})
    # slmsuite's xenics module does `from ctypes import *` and calls windll.LoadLibrary("xeneth64.dll")
    mocker.patch("ctypes.windll", FakeWinDLL(log, xeneth), create=True)
    return log, xeneth


def test_cheetah640_cannot_open_with_the_real_xeneth_exports(fake_sdk, mocker):
    # slmsuite 0.5 calls xeneth.XC_Getframe_size; the DLL exports XC_GetFrameSize, so the attribute
    # lookup fails (ctypes: "function ... not found") after the camera was opened. optgen must name it.
    log, xeneth = install_xeneth(fake_sdk, mocker)
    with pytest.raises(DeviceError) as info:
        SlmsuiteCamera("Cheetah640", pitch_um=20.0)
    assert "Cheetah640" in str(info.value) and "XC_Getframe_size" in str(info.value)
    assert open_calls(log)[:len(XC_OPEN)] == XC_OPEN
    del info
    gc.collect()
    # the half-built slmsuite camera closes its handle when collected (Camera.__del__ -> close())
    assert call.XC_CloseCamera(XC_HANDLE) in log and not xeneth.open_handles


def test_cheetah640_open_capture_exposure_close(fake_sdk, mocker, opened):
    # The fake DLL also answers slmsuite's misspelt XC_Getframe_size (see the test above).
    log, xeneth = install_xeneth(fake_sdk, mocker, aliases={"XC_Getframe_size": "XC_GetFrameSize"})
    cam = opened(SlmsuiteCamera("Cheetah640"))                         # slmsuite's 20 um default pitch

    assert cam.shape == (512, 640) and cam.bitdepth == 12 and cam.saturation_dn == 4095
    assert cam.pitch_um[0] == 20.0
    assert cam.identity.vendor == "Xenics" and cam.identity.model == "Cheetah 640 CL"
    assert open_calls(log) == XC_OPEN + [
        call.XC_Getframe_size(XC_HANDLE),
        call.XC_StartCapture(XC_HANDLE), call.XC_IsCapturing(XC_HANDLE),       # setup("free")
    ]
    assert property_writes(log) == [
        call.XC_SetPropertyValueL(XC_HANDLE, b"_API_GETFRAME_TIMEOUT", 1000, ""),   # frame-type probe
        call.XC_SetPropertyValueE(XC_HANDLE, b"Mode", b"Preview"),                   # circular buffer
        call.XC_SetPropertyValueL(XC_HANDLE, b"FrameCount", 4000, ""),
        call.XC_SetPropertyValueL(XC_HANDLE, b"_API_FPC_BFRNUM", 64, ""),
        call.XC_SetPropertyValueE(XC_HANDLE, b"FrameMarker", b"Enabled"),
        call.XC_SetPropertyValueL(XC_HANDLE, b"Fan", 0, ""),                         # no high fan speed
        call.XC_SetPropertyValueL(XC_HANDLE, b"ReadoutFlipX", 1, ""),
        call.XC_SetPropertyValueL(XC_HANDLE, b"ReadoutFlipY", 1, ""),
        call.XC_SetPropertyValueE(XC_HANDLE, b"TriggerOutEnable", b"On"),
        call.XC_SetPropertyValueE(XC_HANDLE, b"TriggerOutMode", b"Active high"),
        call.XC_SetPropertyValueF(XC_HANDLE, b"TriggerOutDelay", 0.0, ""),
        call.XC_SetPropertyValueE(XC_HANDLE, b"TriggerOutSource", b"Integration period"),
        call.XC_SetPropertyValueF(XC_HANDLE, b"TriggerOutWidth", 10.0, ""),
        call.XC_SetPropertyValueL(XC_HANDLE, b"FrameRate", 0, ""),
        call.XC_SetPropertyValueL(XC_HANDLE, b"NrOfFrames", 1, ""),
        call.XC_SetPropertyValueE(XC_HANDLE, b"TriggerMode", b"Free running"),
        call.XC_SetPropertyValueF(XC_HANDLE, b"TriggerInputDelay", 0.0, ""),
        call.XC_SetPropertyValueE(XC_HANDLE, b"TriggerSource", b"Trigger in"),
        call.XC_SetPropertyValueL(XC_HANDLE, b"TriggerSkip", 0, ""),
        call.XC_SetPropertyValueF(XC_HANDLE, b"IntegrationTime", 7000.0, ""),        # 7 ms, in us
    ]
    assert cam.exposure_s == pytest.approx(quantize(7000.0, XC_STEP_US) / 1e6)

    log.clear()
    frame = cam.capture(timeout_s=2.0)
    expected = XC_FRAME.copy()
    expected[0, :2] = 0                                               # slmsuite blanks the frame tag
    assert frame.dtype == np.uint16 and np.array_equal(frame, expected)
    assert open_calls(log) == [call.XC_GetFrame(XC_HANDLE, 0, 1, (BUFFER, 640 * 512 * 2), 640 * 512 * 2)]
    (timeout,) = property_writes(log)                                 # the bound, in ms, before the grab
    assert timeout[0] == "XC_SetPropertyValueL" and timeout[1][1] == b"_API_GETFRAME_TIMEOUT"
    assert abs(timeout[1][2] - 1e3 * (2.0 + cam.exposure_s)) <= 1     # the capture timeout plus one exposure, ms

    log.clear()
    realised = cam.set_exposure(0.02)
    assert property_writes(log) == [call.XC_SetPropertyValueF(XC_HANDLE, b"IntegrationTime", 20000.0, "")]
    assert realised == pytest.approx(quantize(20000.0, XC_STEP_US) / 1e6) and realised != 0.02

    log.clear()
    cam.close()
    gc.collect()
    assert log[:2] == [call.XC_IsInitialised(XC_HANDLE), call.XC_CloseCamera(XC_HANDLE)]
    assert log.count(call.XC_CloseCamera(XC_HANDLE)) == 1 and not xeneth.open_handles


# --- slmsuite's simulated camera and SLM ----------------------------------------------------------------
SLM_SIZE = (256, 192)


@pytest.fixture
def simulated_slm():
    from slmsuite.hardware.slms.simulated import SimulatedSLM

    slm = SimulatedSLM(SLM_SIZE, pitch_um=(8, 8), name="sim_slm")
    phase = np.random.default_rng(7).uniform(0, 2 * np.pi, size=(SLM_SIZE[1], SLM_SIZE[0]))
    slm.set_phase(phase, settle=False)                                # a speckle over the whole frame
    yield slm
    slm.close()


def simulated_camera(slm, **kwargs):
    from slmsuite.hardware.cameras.simulated import SimulatedCamera

    return SimulatedCamera(slm, **{"gain": 2e6, "pitch_um": (4, 4), **kwargs})


def test_simulated_open_capture_exposure_close(simulated_slm, opened, mocker):
    cam = opened(SlmsuiteCamera("SimulatedCamera", options={"slm": simulated_slm, "gain": 2e6,
                                                            "pitch_um": (4, 4)}, exposure_s=0.01))
    sim = cam._cam
    assert cam.shape == (192, 256) and cam.bitdepth == 8 and cam.saturation_dn == 255
    assert cam.pitch_um[0] == 4.0                                     # the class's own pitch
    assert cam.identity.vendor == "slmsuite simulated"
    assert sim.exposure_s == 0.01

    frame = cam.capture(timeout_s=5.0)
    assert frame.dtype == np.uint8 and np.array_equal(frame, sim._get_image_hw())   # the SLM's far field
    assert 0 < frame.mean() < 255

    assert cam.set_exposure(0.02) == 0.02 and sim.exposure_s == 0.02
    brighter = cam.capture(timeout_s=5.0)
    assert brighter.sum() > frame.sum()

    close = mocker.spy(sim, "close")
    cam.close()
    close.assert_called_once_with()
    with pytest.raises(DeviceError, match="closed"):
        cam.capture(timeout_s=0.5)


def test_simulated_window_of_interest(simulated_slm, opened):
    sim = simulated_camera(simulated_slm)
    woi = (16, 64, 8, 48)
    cam = opened(SlmsuiteCamera(camera=sim, woi=woi, resolution=(64, 48), pitch_um=4.0, exposure_s=0.01))
    assert cam.shape == (48, 64) and sim.woi == woi
    frame = cam.capture(timeout_s=5.0)
    assert frame.shape == (48, 64)
    assert np.array_equal(frame, sim._get_image_hw()[8:56, 16:80])


def test_simulated_resolution_that_disagrees_with_the_window_is_refused(simulated_slm):
    sim = simulated_camera(simulated_slm)
    with pytest.raises(DeviceError) as info:
        SlmsuiteCamera(camera=sim, woi=(16, 64, 8, 48), resolution=(256, 192), pitch_um=4.0)
    message = str(info.value)
    assert "256x192" in message and "64x48" in message


@pytest.fixture
def gate():
    """Holds a capture until the test (or, at the latest, its teardown) opens it."""
    event = threading.Event()
    yield event
    event.set()


def test_simulated_capture_that_never_returns_is_a_capture_timeout(simulated_slm, opened, gate, monkeypatch):
    sim = simulated_camera(simulated_slm)
    entered = []
    get_image = sim.get_image

    def blocked_get_image(*args, **kwargs):
        entered.append(True)
        gate.wait(60)                    # "forever" for this test; bounded so that nothing can hang
        return get_image(*args, **kwargs)

    monkeypatch.setattr(sim, "get_image", blocked_get_image)
    cam = opened(SlmsuiteCamera(camera=sim, pitch_um=4.0, exposure_s=0.001))
    with pytest.raises(CaptureTimeout, match="no frame from slmsuite's SimulatedCamera"):
        cam.capture(timeout_s=0.2)
    with pytest.raises(CaptureTimeout, match="still blocked in the previous capture"):
        cam.capture(timeout_s=0.1)
    assert len(entered) == 1             # the second capture did not start another vendor call
    gate.set()
    frame = cam.capture(timeout_s=5.0)
    assert frame.shape == (192, 256) and np.array_equal(frame, sim._get_image_hw())
    assert len(entered) == 2


# --- slmsuite's remote camera, against slmsuite's own server --------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def remote_server(simulated_slm):
    """slmsuite's Server in a thread, serving a SimulatedCamera; answers loopback clients only (the
    server binds every interface itself). Records each request it handles."""
    from slmsuite.hardware.remote import Server

    server_cam = simulated_camera(simulated_slm, name="remote_camera")
    server = Server([server_cam], port=_free_port(), timeout=0.1, recv_timeout=2.0, allowlist=["127.0.0.1"])
    requests = []
    handle = server._handle

    def recording_handle(message, client_addr=None):
        requests.append((message.get("command"), dict(message.get("kwargs") or {})))
        return handle(message, client_addr)

    server._handle = recording_handle
    thread = threading.Thread(target=server.listen, daemon=True, name="slmsuite-server")
    thread.start()
    deadline = time.monotonic() + 5.0
    while not server._listening and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server._listening, "slmsuite's server did not start listening"
    yield types.SimpleNamespace(port=server.port, camera=server_cam, requests=requests)
    server.stop()
    thread.join(timeout=5.0)
    assert not thread.is_alive(), "slmsuite's server did not stop"


def test_remote_camera_open_capture_exposure_close(remote_server, opened, mocker):
    server = remote_server
    cam = opened(SlmsuiteCamera("RemoteCamera", options={"name": "remote_camera", "host": "127.0.0.1",
                                                         "port": server.port, "timeout": 5.0},
                                pitch_um=4.0, exposure_s=0.01))
    assert cam.shape == (192, 256) and cam.bitdepth == 8 and cam.saturation_dn == 255
    assert cam.identity.vendor == "slmsuite remote" and cam.identity.model == "remote_camera"
    commands = [command for command, _ in server.requests]
    assert commands[:2] == ["ping", "pickle"] and server.requests[1][1] == {"attributes": False, "metadata": True}
    assert commands[2:] == ["_get_exposure_hw", "_get_image_hw",            # slmsuite's open and probe
                            "_set_exposure_hw", "_get_exposure_hw",         # optgen's exposure_s=0.01
                            "_get_exposure_hw"]                             # optgen's read-back
    assert server.requests[4][1] == {"exposure_s": 0.01} and server.camera.exposure_s == 0.01

    server.requests.clear()
    frame = cam.capture(timeout_s=2.0)
    assert frame.dtype == np.uint8 and np.array_equal(frame, server.camera._get_image_hw())
    assert [command for command, _ in server.requests] == ["_get_image_hw"]
    assert server.requests[0][1]["timeout_s"] == pytest.approx(2.0 + 0.01, abs=1e-9)   # plus one exposure

    server.requests.clear()
    realised = cam.set_exposure(0.02)
    assert server.requests[0] == ("_set_exposure_hw", {"exposure_s": 0.02})
    assert {command for command, _ in server.requests[1:]} == {"_get_exposure_hw"}
    assert realised == server.camera.exposure_s == 0.02

    server.requests.clear()
    close = mocker.spy(cam._cam, "close")
    cam.close()
    # RemoteCamera.close() sends nothing: the server owns its camera, which stays open for others
    close.assert_called_once_with()
    assert server.requests == []
    assert server.camera.get_image(transform=False).shape == (192, 256)
