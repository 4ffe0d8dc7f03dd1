"""slmsuite's vendor cameras (Allied Vision, Basler, FLIR, The Imaging Source, Instrumental, MindVision)
through optgen's :class:`SlmsuiteCamera`, each against a fake of its vendor SDK.

Each fake replaces the SDK where slmsuite imports it (``sys.modules``; for tisgrabber also the DLL
that ``ctypes.cdll.LoadLibrary`` would load) and answers as the real SDK does: sizes and bit depths
as the SDK's own Python types, features that read back what was written (snapped to the camera's
exposure raster, so that a read-back differs from the request), frames as the SDK hands them out
(Mono16 left-shifted on FLIR, RGB24 behind a pointer on The Imaging Source, a ctypes buffer on
MindVision). slmsuite's vendor module is imported afresh against the fake inside the same
``patch.dict`` of ``sys.modules``, so nothing leaks into other tests.

The assertions name the calls the SDK receives at open, capture, exposure and close, with their
arguments: they fail if slmsuite (or optgen's wrapper) sends the SDK something else.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from types import SimpleNamespace
from unittest.mock import MagicMock, call, sentinel

import numpy as np
import pytest
import slmsuite.hardware.cameras as slmsuite_cameras

from optgen.drivers.cameras.slmsuite_camera import SLMSUITE_CAMERAS, SlmsuiteCamera
from optgen.drivers.errors import DeviceError

CAPTURE_TIMEOUT_S = 2.0     # what the tests pass to capture(); the SDK gets it plus the exposure (see below)
NEW_EXPOSURE_S = 0.02
VENDOR_CLASSES = ("AlliedVision", "Basler", "FLIR", "ImagingSource", "Instrumental", "MindVision")


# --- helpers ---------------------------------------------------------------------------------------------
def feature(value, *, getter="GetValue", setter="SetValue", step=None, **attrs):
    """A camera feature (GenICam node) that reads back what was last written, snapped to ``step``."""
    node = MagicMock()
    state = [value]

    def write(new):
        state[0] = type(value)(round(new / step) * step) if step else new

    getattr(node, setter).side_effect = write
    getattr(node, getter).side_effect = lambda: state[0]
    node.configure_mock(**attrs)
    return node


def vendor_timeout_s(open_exposure_s: float) -> float:
    """The timeout the vendor's grab receives for ``capture(CAPTURE_TIMEOUT_S)``.

    optgen's camera (an slmsuite Camera) adds its exposure to the timeout; the wrapper takes it off
    again before the wrapped slmsuite camera's ``get_image`` adds it: the vendor waits the capture
    timeout plus one exposure (the same float operations, in that order).
    """
    return ((CAPTURE_TIMEOUT_S + open_exposure_s) - open_exposure_s) + open_exposure_s


def ramp(shape: tuple[int, int], top: int, dtype) -> np.ndarray:
    """A frame with distinct values (so that a transposed, cropped or shifted frame differs)."""
    return (np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape) % (top + 1)).astype(dtype)


def install(mocker, class_name: str, fakes: dict) -> None:
    """Put ``fakes`` into sys.modules and drop slmsuite's module, so that it is imported against them."""
    mocker.patch.dict(sys.modules, fakes)
    sys.modules.pop(f"slmsuite.hardware.cameras.{SLMSUITE_CAMERAS[class_name].module}", None)


@pytest.fixture(autouse=True)
def _restore_slmsuite_package_attributes():
    """Importing a submodule also sets it on its package; patch.dict restores sys.modules, not that."""
    names = {spec.module for spec in SLMSUITE_CAMERAS.values()}
    saved = {name: getattr(slmsuite_cameras, name) for name in names if hasattr(slmsuite_cameras, name)}
    yield
    for name in names:
        if name in saved:
            setattr(slmsuite_cameras, name, saved[name])
        elif hasattr(slmsuite_cameras, name):
            delattr(slmsuite_cameras, name)


class Rig:
    """A fake vendor SDK and what optgen must report and the SDK must receive."""

    cls: str
    vendor: str
    serial: str | None          # the identity's serial, where the class is opened by serial
    shape: tuple[int, int]
    bitdepth: int
    pitch_um: float
    open_exposure_s: float      # the exposure the SDK reports after open, converted to seconds
    readback_s: float           # what the SDK reports after the exposure is set to NEW_EXPOSURE_S
    options: dict
    frame: np.ndarray           # what capture() must return
    recorders: list

    def reset(self) -> None:
        """Forget the calls made so far (the open, with slmsuite's dtype probe), keeping the answers."""
        for recorder in self.recorders:
            recorder.reset_mock()

    def assert_opened(self) -> None:
        raise NotImplementedError

    def assert_grabbed(self, timeout_s: float) -> None:
        raise NotImplementedError

    def assert_exposure_set(self, exposure_s: float) -> None:
        raise NotImplementedError

    def assert_closed(self) -> None:
        raise NotImplementedError


# --- Allied Vision (vmbpy) -------------------------------------------------------------------------------
class AlliedVisionRig(Rig):
    cls, vendor, serial = "AlliedVision", "Allied Vision", "50-0503343289"
    shape, bitdepth, pitch_um = (1088, 1456), 12, 3.45          # Alvium 1800 U-158m, Mono12
    open_exposure_s = 5000.0 / 1e6
    readback_s = 19999.0 / 1e6                                  # 20000 us on a 7 us raster

    def __init__(self, mocker):
        self.vmbpy = vmbpy = MagicMock(name="vmbpy")
        self.system = vmbpy.VmbSystem.get_instance.return_value
        self.other, self.cam = (self._camera("50-0503340001"), self._camera(self.serial))
        self.system.get_all_cameras.return_value = (self.other, self.cam)
        # vmbpy hands out Mono12 frames as (height, width, 1) uint16
        self.frame = ramp(self.shape, 4095, np.uint16)
        self.cam.get_frame.return_value.as_numpy_ndarray.return_value = self.frame[:, :, np.newaxis].copy()
        self.options = {"serial": self.serial}
        self.recorders = [vmbpy, self.cam, self.other]
        install(mocker, self.cls, {"vmbpy": vmbpy})

    def _camera(self, serial):
        cam = MagicMock(name=f"vmbpy.Camera({serial})")
        cam.get_serial.return_value = serial
        height, width = self.shape
        values = {"BinningHorizontal": 1, "BinningVertical": 1, "GainAuto": "Continuous", "ExposureAuto": "Continuous",
                  "ExposureMode": "Timed", "AcquisitionMode": "Continuous", "TriggerSelector": "FrameStart",
                  "TriggerMode": "On", "TriggerActivation": "RisingEdge", "TriggerSource": "Line0",
                  "SensorWidth": width, "SensorHeight": height, "Width": width, "Height": height,
                  "OffsetX": 0, "OffsetY": 0, "PixelSize": "Bpp12"}
        for name, value in values.items():
            setattr(cam, name, feature(value, getter="get", setter="set"))
        cam.ExposureTime = feature(5000.0, getter="get", setter="set", step=7.0)
        return cam

    def assert_opened(self):
        self.vmbpy.VmbSystem.get_instance.assert_called_once_with()
        self.system.__enter__.assert_called_once_with()
        self.system.get_all_cameras.assert_called_once_with()
        self.cam.__enter__.assert_called_once_with()            # the camera with that serial, not the first
        self.other.__enter__.assert_not_called()
        self.cam.ExposureAuto.set.assert_called_once_with("Off")
        self.cam.ExposureMode.set.assert_called_once_with("Timed")
        self.cam.GainAuto.set.assert_called_once_with("Off")
        self.cam.AcquisitionMode.set.assert_called_once_with("SingleFrame")
        self.cam.TriggerSource.set.assert_called_once_with("Software")
        self.cam.get_frame.assert_called_once_with(timeout_ms=1000)     # slmsuite's dtype probe

    def assert_grabbed(self, timeout_s):
        self.cam.get_frame.assert_called_once_with(timeout_ms=int(1e3 * timeout_s))
        self.cam.get_frame.return_value.as_numpy_ndarray.assert_called_once_with()

    def assert_exposure_set(self, exposure_s):
        self.cam.ExposureTime.set.assert_called_once_with(20000.0)       # microseconds, a float
        assert isinstance(self.cam.ExposureTime.set.call_args.args[0], float)

    def assert_closed(self):
        self.cam.__exit__.assert_called_once_with(None, None, None)
        self.system.__exit__.assert_not_called()    # the shared VmbSystem stays open (close_sdk=False)


# --- Basler (pypylon) ------------------------------------------------------------------------------------
class BaslerRig(Rig):
    cls, vendor, serial = "Basler", "Basler", "40123456"
    shape, bitdepth, pitch_um = (1200, 1920), 12, 5.86          # acA1920-40um, Mono12
    open_exposure_s = 5000.0 / 1e6
    readback_s = 19985.0 / 1e6                                  # 20000 us on a 35 us raster

    def __init__(self, mocker):
        self.pylon = pylon = MagicMock(name="pypylon.pylon")
        for constant in ("GrabStrategy_LatestImages", "GrabLoop_ProvidedByUser", "TimeoutHandling_Return",
                         "RegistrationMode_ReplaceAll", "Cleanup_Delete"):
            setattr(pylon, constant, getattr(sentinel, constant))
        self.factory = pylon.TlFactory.GetInstance.return_value
        self.devices = (self._device_info("40000001"), self._device_info(self.serial))
        self.factory.EnumerateDevices.return_value = self.devices
        self.device = self.factory.CreateDevice.return_value
        self.cam = cam = pylon.InstantCamera.return_value
        height, width = self.shape
        cam.SensorWidth.return_value = width
        cam.SensorHeight.return_value = height
        for name, value in {"Width": width, "Height": height, "OffsetX": 0, "OffsetY": 0, "BinningHorizontal": 1,
                            "BinningVertical": 1, "PixelSize": "Bpp12", "GainAuto": "Continuous",
                            "ExposureAuto": "Continuous", "ExposureMode": "Timed"}.items():
            setattr(cam, name, feature(value))
        cam.ExposureTime = feature(5000.0, step=35.0)
        cam.IsGrabbing.return_value = True
        self.grab = cam.RetrieveResult.return_value
        self.grab.GrabSucceeded.return_value = True
        self.frame = ramp(self.shape, 4095, np.uint16)
        self.grab.GetArray.return_value = self.frame.copy()
        self.options = {"serial": self.serial}
        self.recorders = [pylon]
        pypylon = MagicMock(name="pypylon")
        pypylon.pylon = pylon
        install(mocker, self.cls, {"pypylon": pypylon, "pypylon.pylon": pylon})

    @staticmethod
    def _device_info(serial):
        info = MagicMock(name=f"CDeviceInfo({serial})")
        info.GetSerialNumber.return_value = serial
        return info

    def assert_opened(self):
        pylon = self.pylon
        pylon.TlFactory.GetInstance.assert_called_once_with()
        self.factory.EnumerateDevices.assert_called_once_with()
        self.factory.CreateDevice.assert_called_once_with(self.devices[1])   # the device with that serial
        pylon.InstantCamera.assert_called_once_with()
        self.cam.Attach.assert_called_once_with(self.device)
        self.cam.Open.assert_called_once_with()
        calls = self.cam.method_calls
        assert calls.index(call.Attach(self.device)) < calls.index(call.Open())
        self.cam.ExposureAuto.SetValue.assert_called_once_with("Off")
        self.cam.GainAuto.SetValue.assert_called_once_with("Off")
        self.cam.RegisterConfiguration.assert_called_once_with(
            pylon.SoftwareTriggerConfiguration.return_value, sentinel.RegistrationMode_ReplaceAll,
            sentinel.Cleanup_Delete)
        self.cam.RetrieveResult.assert_called_once_with(1000, sentinel.TimeoutHandling_Return)   # dtype probe

    def assert_grabbed(self, timeout_s):
        self.cam.StartGrabbing.assert_called_once_with(sentinel.GrabStrategy_LatestImages,
                                                       sentinel.GrabLoop_ProvidedByUser)
        self.cam.ExecuteSoftwareTrigger.assert_called_once_with()
        self.cam.RetrieveResult.assert_called_once_with(int(timeout_s * 1000), sentinel.TimeoutHandling_Return)
        self.grab.GrabSucceeded.assert_called_once_with()
        self.grab.GetArray.assert_called_once_with()
        self.cam.StopGrabbing.assert_called_once_with()
        names = [c[0] for c in self.cam.method_calls]
        assert names.index("StartGrabbing") < names.index("ExecuteSoftwareTrigger") < names.index("RetrieveResult") \
            < names.index("StopGrabbing")

    def assert_exposure_set(self, exposure_s):
        self.cam.ExposureTime.SetValue.assert_called_once_with(20000.0)  # microseconds, a float
        assert isinstance(self.cam.ExposureTime.SetValue.call_args.args[0], float)

    def assert_closed(self):
        self.cam.StopGrabbing.assert_called_once_with()
        self.cam.Close.assert_called_once_with()


# --- Teledyne FLIR (PySpin) ------------------------------------------------------------------------------
class FLIRRig(Rig):
    cls, vendor, serial = "FLIR", "Teledyne FLIR", "20123456"
    shape, bitdepth, pitch_um = (1536, 2048), 12, 3.45          # Blackfly S BFS-U3-32S4M, 12-bit ADC
    open_exposure_s = 6.0 / 1e6                                 # slmsuite sets the minimum at open
    readback_s = 20001.0 / 1e6                                  # 20000 us on a 3 us raster

    def __init__(self, mocker):
        self.spin = spin = MagicMock(name="PySpin")
        spin.SpinnakerException = type("SpinnakerException", (Exception,), {})
        for constant in ("RW", "GainAuto_Off", "ExposureAuto_Off", "ExposureMode_Timed", "BlackLevelSelector_All",
                         "PixelFormat_Mono16", "PixelFormat_Mono8", "AdcBitDepth_Bit12", "AdcBitDepth_Bit10",
                         "AdcBitDepth_Bit8", "TriggerMode_On", "TriggerMode_Off", "TriggerSource_Software",
                         "TriggerSource_Line0", "TriggerSelector_FrameStart"):
            setattr(spin, constant, getattr(sentinel, constant))
        spin.CStringPtr.side_effect = lambda node: node
        spin.CIntegerPtr.side_effect = lambda node: node
        spin.IsReadable.return_value = True
        spin.IsWritable.return_value = True
        self.system = spin.System.GetInstance.return_value
        self.camera_list = self.system.GetCameras.return_value
        self.other, self.cam = self._camera("20000001"), self._camera(self.serial)
        cams = (self.other, self.cam)
        self.camera_list.GetSize.return_value = len(cams)
        self.camera_list.GetByIndex.side_effect = lambda i: cams[i]
        self.camera_list.GetBySerial.side_effect = {c.serial: c for c in cams}.__getitem__
        # Mono16 carries the 12-bit ADC value in the upper bits; slmsuite shifts it back
        self.frame = ramp(self.shape, 4095, np.uint16)
        self.image = self.cam.GetNextImage.return_value
        self.image.IsIncomplete.return_value = False
        self.image.GetNDArray.return_value = (self.frame << 4).astype(np.uint16)
        self.options = {"serial": self.serial}
        self.recorders = [spin, self.cam, self.other]
        install(mocker, self.cls, {"PySpin": spin})

    def _camera(self, serial):
        cam = MagicMock(name=f"PySpin.Camera({serial})")
        cam.serial = serial
        cam.GetTLDeviceNodeMap.return_value.GetNode.side_effect = {
            "DeviceSerialNumber": MagicMock(**{"GetValue.return_value": serial})}.__getitem__
        cam.GetNodeMap.return_value.GetNode.side_effect = {
            "BinningHorizontal": feature(1), "BinningVertical": feature(1)}.__getitem__
        cam.IsStreaming.return_value = False
        rw = {"GetAccessMode.return_value": sentinel.RW}
        height, width = self.shape
        values = {"GainAuto": sentinel.GainAuto_Continuous, "Gain": 6.0, "ExposureAuto": sentinel.ExposureAuto_Continuous,
                  "ExposureMode": sentinel.ExposureMode_Timed, "BlackLevelSelector": sentinel.BlackLevelSelector_All,
                  "BlackLevel": 1.2, "GammaEnable": True, "PixelFormat": sentinel.PixelFormat_Mono8,
                  "AdcBitDepth": sentinel.AdcBitDepth_Bit10, "TriggerMode": sentinel.TriggerMode_Off,
                  "TriggerSource": sentinel.TriggerSource_Line0, "TriggerSelector": sentinel.TriggerSelector_FrameStart,
                  "AcquisitionFrameRateEnable": True, "AcquisitionFrameRate": 30.0, "WidthMax": width,
                  "HeightMax": height, "Width": width, "Height": height, "OffsetX": 0, "OffsetY": 0}
        for name, value in values.items():
            setattr(cam, name, feature(value, **rw))
        cam.ExposureTime = feature(15000.0, step=3.0, **rw, **{"GetMin.return_value": 6.0,
                                                               "GetMax.return_value": 30000000.0})
        return cam

    def assert_opened(self):
        cam = self.cam
        self.spin.System.GetInstance.assert_called_once_with()
        self.system.GetCameras.assert_called_once_with()
        self.camera_list.GetBySerial.assert_called_once_with(self.serial)
        cam.Init.assert_called_once_with()
        self.other.Init.assert_not_called()
        cam.GainAuto.SetValue.assert_called_once_with(sentinel.GainAuto_Off)
        cam.ExposureAuto.SetValue.assert_called_once_with(sentinel.ExposureAuto_Off)
        cam.PixelFormat.SetValue.assert_called_once_with(sentinel.PixelFormat_Mono16)
        cam.AdcBitDepth.SetValue.assert_called_once_with(sentinel.AdcBitDepth_Bit12)
        cam.ExposureTime.SetValue.assert_called_once_with(6.0)           # the minimum, in microseconds
        cam.TriggerMode.SetValue.assert_called_once_with(sentinel.TriggerMode_On)
        cam.TriggerSource.SetValue.assert_called_once_with(sentinel.TriggerSource_Software)
        cam.AcquisitionFrameRateEnable.SetValue.assert_called_once_with(False)
        cam.BeginAcquisition.assert_called_once_with()
        names = [c[0] for c in cam.method_calls]
        assert names.index("Init") < names.index("BeginAcquisition")
        cam.GetNextImage.assert_called_once_with(1000)                  # slmsuite's dtype probe

    def assert_grabbed(self, timeout_s):
        self.cam.TriggerSoftware.Execute.assert_called_once_with()
        self.cam.GetNextImage.assert_called_once_with(int(timeout_s * 1e3))
        self.image.GetNDArray.assert_called_once_with()
        self.image.Release.assert_called_once_with()
        names = [c[0] for c in self.cam.method_calls]
        assert names.index("TriggerSoftware.Execute") < names.index("GetNextImage")

    def assert_exposure_set(self, exposure_s):
        self.cam.ExposureTime.SetValue.assert_called_once_with(20000.0)  # microseconds, a float
        assert isinstance(self.cam.ExposureTime.SetValue.call_args.args[0], float)

    def assert_closed(self):
        self.cam.EndAcquisition.assert_called_once_with()
        self.cam.DeInit.assert_called_once_with()
        self.camera_list.Clear.assert_called_once_with()
        self.system.ReleaseInstance.assert_not_called()     # the System singleton is slmsuite's to release


# --- The Imaging Source (tisgrabber) ---------------------------------------------------------------------
class ImagingSourceRig(Rig):
    cls, vendor, serial = "ImagingSource", "The Imaging Source", "DMK 37BUX287 15910406"
    shape, bitdepth, pitch_um = (540, 720), 8, 6.9              # Y800 delivered as RGB24: 24 bpp / 3
    open_exposure_s = ctypes.c_float(0.01).value                # seconds, a C float
    readback_s = ctypes.c_float(0.02).value

    def __init__(self, mocker):
        self.tis = tis = MagicMock(name="tisgrabber")
        tis.T.side_effect = lambda text: text.encode("utf-8")
        tis.D.side_effect = lambda data: data.decode("utf-8", "ignore")
        self.dll = dll = MagicMock(name="tisgrabber_x64.dll")
        self.load = mocker.patch.object(ctypes.cdll, "LoadLibrary", return_value=dll)
        self.handle = sentinel.HGRABBER
        dll.IC_CreateGrabber.return_value = self.handle
        for function in ("IC_InitLibrary", "IC_OpenDevByUniqueName", "IC_PrepareLive", "IC_SetVideoFormat",
                         "IC_SetPropertySwitch", "IC_StartLive", "IC_SnapImage", "IC_StopLive", "IC_ReleaseGrabber"):
            getattr(dll, function).return_value = 1               # IC_SUCCESS
        height, width = self.shape
        self.exposure = [ctypes.c_float(0.01).value]

        def describe(handle, w, h, bpp, color_format):
            w.value, h.value, bpp.value, color_format.value = width, height, 24, 1
            return 1

        def property_value(handle, item, element, out):
            out.value = 0                                           # partial scan offsets
            return 1

        def map_strings(handle, item, element, buffer, size):
            buffer.value = b"1"                                     # binning factor
            return 1

        def get_absolute(handle, item, element, out):
            out.value = self.exposure[0]
            return 1

        def set_absolute(handle, item, element, value):
            self.exposure[0] = value.value
            return 1

        dll.IC_GetImageDescription.side_effect = describe
        dll.IC_GetPropertyValue.side_effect = property_value
        dll.IC_GetPropertyMapStrings.side_effect = map_strings
        dll.IC_GetPropertyAbsoluteValue.side_effect = get_absolute
        dll.IC_SetPropertyAbsoluteValue.side_effect = set_absolute
        # the frame behind IC_GetImagePtr: RGB24, the first channel is the picture
        self.frame = ramp(self.shape, 255, np.uint8)
        self.rgb = np.stack([self.frame, 255 - self.frame, np.full(self.shape, 7, np.uint8)], axis=-1)
        self.rgb = np.ascontiguousarray(self.rgb)
        dll.IC_GetImagePtr.return_value = self.rgb.ctypes.data
        self.options = {"serial": self.serial}
        self.recorders = [tis, dll, self.load]
        install(mocker, self.cls, {"tisgrabber": tis})

    def assert_opened(self):
        dll, handle = self.dll, self.handle
        self.load.assert_called_once_with("./tisgrabber_x64.dll")
        self.tis.declareFunctions.assert_called_once_with(dll)
        dll.IC_InitLibrary.assert_called_once_with(0)
        dll.IC_CreateGrabber.assert_called_once_with()
        dll.IC_OpenDevByUniqueName.assert_called_once_with(handle, self.serial.encode("utf-8"))
        # slmsuite passes no iShow argument (tisgrabber.h: IC_PrepareLive(HGRABBER, int iShow))
        dll.IC_PrepareLive.assert_called_once_with(handle)
        dll.IC_SetVideoFormat.assert_not_called()                       # no vid_format given
        args = dll.IC_GetImageDescription.call_args_list[0].args
        assert args[0] is handle
        assert [type(a) for a in args[1:]] == [ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_int]
        dll.IC_SnapImage.assert_called_once_with(handle, 1000)         # slmsuite's dtype probe

    def assert_grabbed(self, timeout_s):
        dll, handle = self.dll, self.handle
        dll.IC_StartLive.assert_called_once_with(handle, 0)
        dll.IC_SnapImage.assert_called_once_with(handle, int(1000 * timeout_s))
        dll.IC_GetImagePtr.assert_called_once_with(handle)
        dll.IC_StopLive.assert_called_once_with(handle)
        names = [c[0] for c in dll.method_calls]
        assert names == ["IC_StartLive", "IC_SnapImage", "IC_GetImagePtr", "IC_StopLive"]

    def assert_exposure_set(self, exposure_s):
        dll, handle = self.dll, self.handle
        dll.IC_SetPropertySwitch.assert_called_once_with(handle, b"Exposure", b"Auto", 0)
        args = dll.IC_SetPropertyAbsoluteValue.call_args.args
        dll.IC_SetPropertyAbsoluteValue.assert_called_once()
        assert args[:3] == (handle, b"Exposure", b"Value")
        assert isinstance(args[3], ctypes.c_float) and args[3].value == ctypes.c_float(0.02).value   # seconds
        assert [c[0] for c in dll.method_calls].index("IC_SetPropertySwitch") \
            < [c[0] for c in dll.method_calls].index("IC_SetPropertyAbsoluteValue")

    def assert_closed(self):
        self.dll.IC_ReleaseGrabber.assert_called_once_with(self.handle)


# --- Instrumental (instrumental-lib) ---------------------------------------------------------------------
_SECONDS_PER = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


class FakeQuantity:
    """The little of a pint Quantity that slmsuite uses (instrumental's exposure is one)."""

    def __init__(self, magnitude: float, units: str):
        self.magnitude, self.units = magnitude, units

    def to(self, units: str) -> FakeQuantity:
        return FakeQuantity(self.magnitude * _SECONDS_PER[self.units] / _SECONDS_PER[units], units)

    def __repr__(self) -> str:
        return f"<Quantity({self.magnitude}, '{self.units}')>"


class FakeUnit:
    def __init__(self, name: str):
        self.name = name

    def __rmul__(self, magnitude):
        return FakeQuantity(magnitude, self.name)


class FakeParamSet:
    """instrumental.drivers.ParamSet: how an instrument is found again (its driver and serial)."""

    def __init__(self, cls_name: str, **params):
        self.cls_name, self.params = cls_name, params

    def __repr__(self) -> str:
        return f"<ParamSet[{self.cls_name}] " + " ".join(f"{k}={v!r}" for k, v in self.params.items()) + ">"


class FakeInstrumentalCamera:
    """instrumental.drivers.cameras.Camera (a real class: slmsuite checks isinstance)."""


class FakeUC480(FakeInstrumentalCamera):
    """A Thorlabs DCC1545M through instrumental's UC480 driver: exposure kept in ms on a 0.03 ms raster."""

    def __init__(self, frame):
        self.model, self.serial = b"DCC1545M", b"4102842163"
        self.height, self.width = frame.shape
        self.grab_image = MagicMock(name="grab_image", return_value=frame.copy())
        self.close = MagicMock(name="close")
        self.exposure_set = MagicMock(name="exposure setter")
        self._exposure_ms = 10.0

    @property
    def exposure(self):
        return FakeQuantity(self._exposure_ms, "ms")

    @exposure.setter
    def exposure(self, quantity):
        self.exposure_set(quantity)
        self._exposure_ms = round(quantity.to("ms").magnitude / 0.03) * 0.03


class InstrumentalRig(Rig):
    cls, vendor, serial = "Instrumental", "Instrumental", None
    shape, bitdepth, pitch_um = (1024, 1280), 8, 5.2
    open_exposure_s = 10.0 * 1e-3
    readback_s = round(20.0 / 0.03) * 0.03 * 1e-3               # 20.01 ms

    def __init__(self, mocker):
        self.frame = ramp(self.shape, 255, np.uint8)
        self.camera = FakeUC480(self.frame)
        self.params = FakeParamSet("UC480_Camera", serial="4102842163")
        self.instrumental = inst = MagicMock(name="instrumental")
        cameras = inst.drivers.cameras
        cameras.Camera = FakeInstrumentalCamera
        inst.drivers.ParamSet = FakeParamSet
        inst.instrument.return_value = self.camera
        inst.u = SimpleNamespace(s=FakeUnit("s"), ms=FakeUnit("ms"))
        self.options = {"cam": self.params}
        self.recorders = [inst, self.camera.grab_image, self.camera.close, self.camera.exposure_set]
        install(mocker, self.cls, {"instrumental": inst, "instrumental.drivers": inst.drivers,
                                   "instrumental.drivers.cameras": cameras})

    def assert_opened(self):
        self.instrumental.instrument.assert_called_once_with(self.params, reopen_policy="reuse")
        self.instrumental.list_instruments.assert_not_called()
        self.camera.grab_image.assert_called_once_with(timeout="1s", copy=True)     # slmsuite's dtype probe

    def assert_grabbed(self, timeout_s):
        self.camera.grab_image.assert_called_once_with(timeout=f"{timeout_s}s", copy=True)

    def assert_exposure_set(self, exposure_s):
        self.camera.exposure_set.assert_called_once()
        quantity = self.camera.exposure_set.call_args.args[0]
        assert (quantity.magnitude, quantity.units) == (exposure_s, "s")    # a pint quantity in seconds

    def assert_closed(self):
        self.camera.close.assert_called_once_with()


# --- MindVision (mvsdk) ----------------------------------------------------------------------------------
class MindVisionRig(Rig):
    cls, vendor, serial = "MindVision", "MindVision", "047041220053"
    shape, bitdepth, pitch_um = (1024, 1280), 8, 4.8            # MV-SUA134GM, mono
    open_exposure_s = 29986.0 / 1e6                             # slmsuite sets 30 ms; 29 us raster
    readback_s = 20010.0 / 1e6

    def __init__(self, mocker):
        self.mv = mv = MagicMock(name="mvsdk")
        mv.c_ubyte = ctypes.c_ubyte
        mv.CameraException = type("CameraException", (Exception,), {"error_code": -1, "message": ""})
        mv.CAMERA_MEDIA_TYPE_MONO8 = sentinel.CAMERA_MEDIA_TYPE_MONO8
        mv.CAMERA_MEDIA_TYPE_BGR8 = sentinel.CAMERA_MEDIA_TYPE_BGR8
        self.devices = [self._device_info("047041220001"), self._device_info(self.serial)]
        mv.CameraEnumerateDevice.return_value = self.devices
        self.handle = 1
        mv.CameraInit.return_value = self.handle
        height, width = self.shape
        mv.CameraGetCapability.return_value = SimpleNamespace(
            sIspCapacity=SimpleNamespace(bMonoSensor=1),
            sResolutionRange=SimpleNamespace(iWidthMax=width, iHeightMax=height))
        mv.CameraGetImageResolution.return_value = SimpleNamespace(
            iIndex=0, iHOffsetFOV=0, iVOffsetFOV=0, iWidthFOV=width, iHeightFOV=height, iWidth=width, iHeight=height,
            uBinSumMode=0, uBinAverageMode=0)
        self.exposure_us = [100000.0]

        def set_exposure(handle, us):
            self.exposure_us[0] = round(us / 29.0) * 29.0

        mv.CameraSetExposureTime.side_effect = set_exposure
        mv.CameraGetExposureTime.side_effect = lambda handle: self.exposure_us[0]
        self.buffers = []

        def align_malloc(size, align):
            self.buffers.append((ctypes.c_ubyte * size)())
            return ctypes.addressof(self.buffers[-1])

        mv.CameraAlignMalloc.side_effect = align_malloc
        self.frame = ramp(self.shape, 255, np.uint8)
        self.raw = 0x7F00_1000                                      # the SDK's raw buffer address (never read)
        self.head = SimpleNamespace(uBytes=width * height, iWidth=width, iHeight=height)
        mv.CameraGetImageBuffer.return_value = (self.raw, self.head)

        def image_process(handle, raw, out, head):                 # the ISP writes MONO8 into the buffer
            ctypes.memmove(out, self.frame.ctypes.data, self.frame.nbytes)

        mv.CameraImageProcess.side_effect = image_process
        self.options = {"serial": self.serial}
        self.recorders = [mv]
        install(mocker, self.cls, {"mvsdk": mv})

    @staticmethod
    def _device_info(serial):
        info = MagicMock(name=f"tSdkCameraDevInfo({serial})")
        info.GetSn.return_value = serial
        return info

    @property
    def buffer(self):
        return ctypes.addressof(self.buffers[0])

    def assert_opened(self):
        mv, handle = self.mv, self.handle
        mv._Init.assert_called_once_with()
        mv.CameraEnumerateDevice.assert_called_once_with()
        mv.CameraInit.assert_called_once_with(self.devices[1], -1, -1)    # the device with that serial
        mv.CameraGetCapability.assert_called_once_with(handle)
        mv.CameraSetIspOutFormat.assert_called_once_with(handle, sentinel.CAMERA_MEDIA_TYPE_MONO8)
        mv.CameraSetTriggerMode.assert_called_once_with(handle, 1)
        mv.CameraSetAeState.assert_called_once_with(handle, 0)
        mv.CameraSetExposureTime.assert_called_once_with(handle, 30 * 1000)
        mv.CameraPlay.assert_called_once_with(handle)
        mv.CameraAlignMalloc.assert_called_once_with(1280 * 1024, 16)
        mv.CameraGetImageBuffer.assert_called_once_with(handle, 1000)     # slmsuite's dtype probe

    def assert_grabbed(self, timeout_s):
        mv, handle = self.mv, self.handle
        mv.CameraSoftTrigger.assert_called_once_with(handle)
        mv.CameraGetImageBuffer.assert_called_once_with(handle, int(timeout_s * 1000))
        mv.CameraImageProcess.assert_called_once_with(handle, self.raw, self.buffer, self.head)
        mv.CameraReleaseImageBuffer.assert_called_once_with(handle, self.raw)
        assert [c[0] for c in mv.method_calls] == ["CameraSoftTrigger", "CameraGetImageBuffer", "CameraImageProcess",
                                                   "CameraReleaseImageBuffer"]

    def assert_exposure_set(self, exposure_s):
        self.mv.CameraSetExposureTime.assert_called_once_with(self.handle, 20000.0)   # microseconds

    def assert_closed(self):
        self.mv.CameraAlignFree.assert_called_once_with(self.buffer)
        self.mv.CameraUnInit.assert_called_once_with(self.handle)


RIGS = {rig.cls: rig for rig in (AlliedVisionRig, BaslerRig, FLIRRig, ImagingSourceRig, InstrumentalRig,
                                 MindVisionRig)}


@pytest.fixture(params=VENDOR_CLASSES)
def rig(request, mocker) -> Rig:
    return RIGS[request.param](mocker)


def open_camera(rig: Rig) -> SlmsuiteCamera:
    return SlmsuiteCamera(rig.cls, options=rig.options, pitch_um=rig.pitch_um)


# --- the tests -------------------------------------------------------------------------------------------
def test_opens_with_the_sdk_geometry_bit_depth_and_identity(rig):
    cam = open_camera(rig)
    try:
        assert cam.shape == rig.shape
        assert cam.bitdepth == rig.bitdepth
        assert cam.saturation_dn == 2 ** rig.bitdepth - 1
        assert tuple(cam.pitch_um) == (rig.pitch_um, rig.pitch_um)
        assert cam.identity.vendor == rig.vendor
        if rig.serial is not None:
            assert cam.identity.serial == rig.serial
        else:
            # Instrumental is opened by an instrumental ParamSet, not a serial: the driver reports the
            # serial the ParamSet carries
            assert cam.identity.serial == "4102842163"
        assert cam.exposure_s == pytest.approx(rig.open_exposure_s, rel=1e-12)
        rig.assert_opened()
    finally:
        cam.close()


def test_capture_returns_the_sdk_frame(rig):
    cam = open_camera(rig)
    try:
        rig.reset()
        frame = cam.capture(timeout_s=CAPTURE_TIMEOUT_S)
        assert frame.dtype == rig.frame.dtype
        assert frame.shape == rig.shape
        np.testing.assert_array_equal(frame, rig.frame)
        rig.assert_grabbed(vendor_timeout_s(rig.open_exposure_s))
    finally:
        cam.close()


def test_set_exposure_reaches_the_sdk_in_its_unit_and_returns_the_read_back(rig):
    cam = open_camera(rig)
    try:
        rig.reset()
        got = cam.set_exposure(NEW_EXPOSURE_S)
        rig.assert_exposure_set(NEW_EXPOSURE_S)
        assert got == pytest.approx(rig.readback_s, rel=1e-12)
        assert got != NEW_EXPOSURE_S                     # the camera's raster: the read-back, not the request
        assert cam.exposure_s == got
    finally:
        cam.close()


def test_close_reaches_the_sdk(rig):
    cam = open_camera(rig)
    # hold slmsuite's camera: once dropped, its __del__ closes it once more (a second vendor close)
    inner = cam._cam
    rig.reset()
    cam.close()
    rig.assert_closed()
    with pytest.raises(DeviceError, match="closed"):
        cam.capture(timeout_s=0.1)
    cam.close()                                          # safe twice: nothing more reaches the SDK
    rig.assert_closed()
    del inner


# --- a missing SDK ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("class_name", VENDOR_CLASSES)
def test_a_missing_sdk_is_refused_naming_it_and_how_to_install_it(mocker, class_name):
    spec = SLMSUITE_CAMERAS[class_name]
    find_spec = importlib.util.find_spec
    mocker.patch.object(importlib.util, "find_spec",
                        side_effect=lambda name, *args: None if name == spec.sdk else find_spec(name, *args))
    mocker.patch.dict(sys.modules)
    for name in [n for n in sys.modules if n == spec.sdk or n.startswith(spec.sdk + ".")]:
        del sys.modules[name]
    with pytest.raises(DeviceError) as raised:
        SlmsuiteCamera(class_name, options={"serial": "1"}, pitch_um=5.0)
    assert repr(spec.sdk) in str(raised.value)
    assert spec.install in str(raised.value)
    assert spec.vendor in str(raised.value)


def test_an_sdk_blocked_in_sys_modules_is_refused_naming_it_and_how_to_install_it(mocker):
    """A None entry in sys.modules makes the import fail (find_spec returns None): refused before slmsuite's
    module is imported, with the install hint (not slmsuite's own ImportError from inside the class)."""
    spec = SLMSUITE_CAMERAS["Basler"]
    install(mocker, "Basler", {"pypylon": None, "pypylon.pylon": None})     # `import pypylon` fails
    assert importlib.util.find_spec("pypylon") is None
    with pytest.raises(DeviceError) as raised:
        SlmsuiteCamera("Basler", options={"serial": "40123456"}, pitch_um=5.86)
    assert "'pypylon'" in str(raised.value)
    assert spec.install == "pip install pypylon" and spec.install in str(raised.value)
    assert "slmsuite.hardware.cameras.basler" not in sys.modules
