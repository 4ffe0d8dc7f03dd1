"""Every camera slmsuite drives, with optgen's camera contract.

``driver = "slmsuite"`` names one of slmsuite's camera classes (:data:`SLMSUITE_CAMERAS`: Allied
Vision, Basler, FLIR, The Imaging Source, Instrumental, MindVision, Micro-Manager, pylablib,
Thorlabs, webcams, Xenics, slmsuite's remote and simulated cameras) and the keyword arguments it
takes. :class:`SlmsuiteCamera` opens it and wraps it so that the optgen contract holds whatever the
vendor class does: every capture waits a finite time (the vendor call runs on a thread; a call that
never returns is a :class:`CaptureTimeout`, and waited for before the next one), the exposure set
is the one read back, the saturation level is the class's bit depth, the window of interest is
the bench file's (hardware where the class has it, else slmsuite crops), and the identity names
the class and the serial or device it was opened with. A class whose vendor SDK is missing is
refused naming the SDK and how to install it; slmsuite classes have no common trigger interface,
so these cameras run free (``--sync pipelined`` or ``wait``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from optgen.drivers.camera import BenchCamera
from optgen.drivers.cameras._bounded import BoundedReads
from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import DeviceIdentity

__all__ = ["SLMSUITE_CAMERAS", "SlmsuiteCamera", "SlmsuiteCameraClass", "slmsuite_camera_class"]


@dataclass(frozen=True)
class SlmsuiteCameraClass:
    """One slmsuite camera class: its module, the vendor, the SDK module it imports and how to get it."""

    module: str
    vendor: str
    sdk: str                 # the Python module slmsuite imports ("" : none beyond optgen's own)
    install: str

    def sdk_available(self) -> bool:
        if not self.sdk:
            return True
        if self.sdk in sys.modules:          # None there blocks the import (as a test's stand-in for "absent")
            return sys.modules[self.sdk] is not None
        try:
            return importlib.util.find_spec(self.sdk) is not None
        except (ImportError, ValueError):
            return False


# slmsuite 0.5's camera classes (slmsuite.hardware.cameras.<module>.<class>)
SLMSUITE_CAMERAS: dict[str, SlmsuiteCameraClass] = {
    "AlliedVision": SlmsuiteCameraClass("alliedvision", "Allied Vision", "vmbpy",
                                        "pip install vmbpy (with Allied Vision's Vimba X installed)"),
    "Basler": SlmsuiteCameraClass("basler", "Basler", "pypylon", "pip install pypylon"),
    "FLIR": SlmsuiteCameraClass("flir", "Teledyne FLIR", "PySpin",
                                "install the Spinnaker SDK and its Python wheel (spinnaker_python) from Teledyne FLIR"),
    "ImagingSource": SlmsuiteCameraClass("imagingsource", "The Imaging Source", "tisgrabber",
                                         "install IC Imaging Control and put tisgrabber.py and its DLL on the path"),
    "Instrumental": SlmsuiteCameraClass("instrumental", "Instrumental", "instrumental",
                                        "pip install instrumental-lib (and the camera's own driver)"),
    "MindVision": SlmsuiteCameraClass("mindvision", "MindVision", "mvsdk",
                                      "install the MindVision SDK and put its mvsdk.py on the path"),
    "MMCore": SlmsuiteCameraClass("mmcore", "Micro-Manager", "pymmcore",
                                  "pip install pymmcore (matching the installed Micro-Manager)"),
    "PyLabLib": SlmsuiteCameraClass("pylablib", "pylablib", "pylablib", "pip install pylablib"),
    "ThorCam": SlmsuiteCameraClass("thorlabs", "Thorlabs", "thorlabs_tsi_sdk",
                                   "install ThorCam and the thorlabs_tsi_sdk wheel it ships"),
    "Webcam": SlmsuiteCameraClass("webcam", "webcam (OpenCV)", "cv2", "pip install opencv-python"),
    "Cheetah640": SlmsuiteCameraClass("xenics", "Xenics", "", "install the Xenics Xeneth SDK (its DLL)"),
    "RemoteCamera": SlmsuiteCameraClass("remote", "slmsuite remote", "", "run slmsuite's server next to the camera"),
    "SimulatedCamera": SlmsuiteCameraClass("simulated", "slmsuite simulated", "", "built into slmsuite"),
}


def slmsuite_camera_class(name: str, device: str = "camera") -> type:
    """slmsuite's camera class ``name``; DeviceError naming the known ones or the missing SDK."""
    spec = SLMSUITE_CAMERAS.get(name)
    if spec is None:
        raise DeviceError(device, f"slmsuite has no camera class {name!r}; its classes are "
                                  f"{', '.join(sorted(SLMSUITE_CAMERAS))}")
    if not spec.sdk_available():
        raise DeviceError(device, f"slmsuite's {name} camera needs the {spec.vendor} SDK (Python module "
                                  f"{spec.sdk!r}), which is not installed: {spec.install}")
    module = importlib.import_module(f"slmsuite.hardware.cameras.{spec.module}")
    return getattr(module, name)


class SlmsuiteCamera(BenchCamera):
    """An slmsuite camera (``camera_class`` by name with its ``options``, or an open ``camera``).

    ``pitch_um`` is the bench file's (the class's own when it reports one and the bench file gives
    none); ``resolution`` (width, height), if given, must be the frame the camera delivers after the
    window of interest ``woi = (x, width, y, height)``; ``exposure_s`` is set and read back.
    """

    def __init__(self, camera_class: str | None = None, *, camera: Any = None, options: dict | None = None,
                 pitch_um: float | None = None, exposure_s: float | None = None, readout_s: float = 0.0,
                 resolution: tuple[int, int] | None = None, woi: tuple[int, int, int, int] | None = None,
                 name: str = "camera", exposure_bounds_s=None, **kwargs):
        self._options = dict(options or {})
        if camera is None:
            if camera_class is None:
                raise DeviceError(name, "no slmsuite camera class named (class = \"Basler\", ...)")
            cls = slmsuite_camera_class(camera_class, name)
            try:
                camera = cls(**self._options)
            except Exception as exc:
                raise DeviceError(name, f"slmsuite's {camera_class} camera did not open with {self._options!r}: "
                                        f"{type(exc).__name__}: {exc}") from exc
        self.camera_class = camera_class or type(camera).__name__
        self._cam = camera
        who = f"slmsuite's {self.camera_class}"
        self._reads = BoundedReads(name, "slmsuite-capture", no_frame=f"no frame from {who}",
                                   blocked=f"{who} is still blocked in the previous capture")
        try:
            self._cam.capture_attempts = 1           # optgen retries itself, within its own bounds
            if woi is not None:
                self._cam.set_woi(tuple(int(v) for v in woi))
            height, width = (int(v) for v in self._cam.shape)
            if resolution is not None and (width, height) != tuple(int(v) for v in resolution):
                raise DeviceError(name, f"the bench file says {resolution[0]}x{resolution[1]} pixels, slmsuite's "
                                        f"{self.camera_class} delivers {width}x{height}"
                                        + (f" with woi {tuple(woi)}" if woi is not None else ""))
            pitch = pitch_um if pitch_um is not None else _own_pitch(self._cam)
            if pitch is None:
                raise DeviceError(name, f"slmsuite's {self.camera_class} does not report its pixel pitch: give "
                                        f"pitch_um in the bench file's [camera] table")
            if exposure_s is not None:
                self._cam.set_exposure(float(exposure_s))
            super().__init__((width, height), bitdepth=int(self._cam.bitdepth), pitch_um=float(pitch),
                             readout_s=readout_s, name=name, exposure_bounds_s=exposure_bounds_s,
                             **{"capture_attempts": 1, **kwargs})
        except BaseException:
            self._close_inner()
            raise

    # --- identity ---------------------------------------------------------------------
    @property
    def identity(self) -> DeviceIdentity:
        spec = SLMSUITE_CAMERAS.get(self.camera_class)
        vendor = spec.vendor if spec is not None else "slmsuite"
        serial = next((found for k in ("serial", "serial_number", "identifier", "cam", "device", "source", "host")
                       if (found := _serial_in(self._options.get(k)))), "")
        if not serial:
            serial = str(getattr(self._cam, "serial", "") or "")
        model = str(getattr(self._cam, "name", "") or "")
        if not model or model in (self.camera_class, serial) or (serial and serial in model):
            model = f"camera through slmsuite's {self.camera_class}"     # the classes name a camera by its serial
        return DeviceIdentity(vendor, model, serial)

    @property
    def exposure_controllable(self) -> bool:
        return True

    def describe(self) -> dict:
        return {**super().describe(), "driver": "slmsuite", "class": self.camera_class,
                "options": {k: v if isinstance(v, (str, int, float, bool)) else repr(v)
                            for k, v in self._options.items()}}

    @staticmethod
    def info(verbose: bool = True) -> list:
        """Use the slmsuite class's own ``info()`` to list its cameras."""
        return []

    # --- frames -------------------------------------------------------------------------
    def _get_dtype(self, test_data=None):
        return np.dtype(np.uint8 if int(self._cam.bitdepth) <= 8 else np.uint16)

    def _get_image_hw(self, timeout_s: float) -> np.ndarray:
        if self._cam is None:
            raise DeviceError(self.name, "camera is closed")
        cam = self._cam
        # slmsuite adds the exposure to the timeout it is given, and so did optgen's own get_image
        inner_timeout_s = max(timeout_s - float(cam.exposure_s), 0.01)
        call = self._reads.read(lambda: cam.get_image(timeout_s=inner_timeout_s, transform=False), timeout_s,
                                wait_s=timeout_s + 0.5)            # slmsuite's own wait ends first
        if call.error is not None:
            raise DeviceError(self.name, f"slmsuite's {self.camera_class} capture failed: "
                                         f"{type(call.error).__name__}: {call.error}") from call.error
        frame = np.asarray(call.result)
        if frame.shape != tuple(self.shape):
            raise DeviceError(self.name, f"slmsuite's {self.camera_class} delivered a frame of {frame.shape}, "
                                         f"expected {tuple(self.shape)}")
        return frame.astype(self._get_dtype(), copy=False) if frame.dtype.kind in "ui" else frame

    # --- exposure -----------------------------------------------------------------------
    def _get_exposure_hw(self) -> float:
        return float(self._cam.get_exposure())

    def _set_exposure_hw(self, exposure_s: float) -> None:
        self._cam.set_exposure(float(exposure_s))

    # --- life cycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the slmsuite camera (after a capture in progress ends, within a second). Safe twice."""
        if hasattr(self, "_reads"):
            self._reads.settle()
        self._close_inner()

    def _close_inner(self) -> None:
        cam, self._cam = getattr(self, "_cam", None), None
        if cam is not None:
            try:
                cam.close()
            except Exception:  # a vendor close that fails must not hide the real error
                pass


def _serial_in(value: Any) -> str:
    """The serial an option names: the option itself (text or a number), or the serial of what it
    is (an instrumental ParamSet carries one); "" for anything else (an open camera object)."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (str, int)):
        return str(value)
    params = getattr(value, "params", None)
    for source in (params, value):
        try:
            found = source["serial"] if source is not None else None
        except (KeyError, TypeError, IndexError):
            found = None
        if isinstance(found, (str, int)) and not isinstance(found, bool):
            return str(found)
    return ""


def _own_pitch(camera: Any) -> float | None:
    pitch = getattr(camera, "pitch_um", None)
    if pitch is None:
        return None
    values = np.atleast_1d(np.asarray(pitch, dtype=float))
    return float(values[0]) if values.size and np.isfinite(values[0]) and values[0] > 0 else None
