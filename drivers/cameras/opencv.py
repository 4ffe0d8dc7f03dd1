"""A webcam or video stream through OpenCV's ``VideoCapture``, as a gray 8-bit camera.

OpenCV's ``read()`` can block for as long as the backend likes (V4L2 waits 10 s, a network
stream longer), so each read runs on a daemon thread and the caller waits at most
``timeout_s``. A read still stuck from a timed-out capture is waited for (within the next
timeout) and its stale frame dropped before a new read starts.

Exposure: ``CAP_PROP_EXPOSURE`` has backend-specific units. optgen converts for V4L2 (units of
100 µs) and for DirectShow / Media Foundation (log2 seconds); on other backends, or when the
backend refuses, the exposure is the nominal one given at open (``exposure_controllable`` False).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from optgen.drivers.camera import BenchCamera
from optgen.drivers.cameras._bounded import BoundedReads
from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import DeviceIdentity

__all__ = ["OpenCVCamera"]

# backend name (VideoCapture.getBackendName) -> (seconds -> property, property -> seconds, manual AE value)
_EXPOSURE_UNITS = {
    "V4L2": (lambda s: s * 1e4, lambda v: v * 1e-4, 1.0),
    "DSHOW": (math.log2, lambda v: 2.0 ** v, 0.25),
    "MSMF": (math.log2, lambda v: 2.0 ** v, 0.25),
}
_APIS = {"any": "CAP_ANY", "v4l2": "CAP_V4L2", "dshow": "CAP_DSHOW", "msmf": "CAP_MSMF",
         "avfoundation": "CAP_AVFOUNDATION", "gstreamer": "CAP_GSTREAMER", "ffmpeg": "CAP_FFMPEG"}


class OpenCVCamera(BenchCamera):
    """A camera index (``source=0``) or stream URL opened with OpenCV; frames converted to gray uint8.

    ``api``: "any", "v4l2", "dshow", "msmf", "avfoundation", "gstreamer" or "ffmpeg".
    ``resolution`` (width, height), if given, is requested and must be what the camera reports.
    """

    def __init__(self, source: int | str = 0, *, pitch_um: float, api: str = "any",
                 resolution: tuple[int, int] | None = None, exposure_s: float | None = None,
                 readout_s: float = 0.0, name: str = "camera", exposure_bounds_s=None, **kwargs):
        import cv2

        self._cv2 = cv2
        if api not in _APIS:
            raise DeviceError(name, f"api = {api!r}: expected one of {sorted(_APIS)}")
        self._source = source
        self._reads = BoundedReads(name, "opencv-read", no_frame="no frame",
                                   blocked="the previous read is still blocked")
        self._cap = cv2.VideoCapture(source, getattr(cv2, _APIS[api]))
        try:
            if not self._cap.isOpened():
                raise DeviceError(name, f"cannot open video source {source!r} with OpenCV backend {api!r}")
            self.backend = str(self._cap.getBackendName())
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)   # fewer stale frames, where the backend allows
            if resolution is not None:
                self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(resolution[0]))
                self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(resolution[1]))
            size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            if resolution is not None and size != tuple(int(v) for v in resolution):
                raise DeviceError(name, f"asked for {resolution[0]}x{resolution[1]} pixels, the camera gives "
                                        f"{size[0]}x{size[1]}")
            self._units = _EXPOSURE_UNITS.get(self.backend)
            self._nominal_exposure_s = float(exposure_s or 0.0)
            if exposure_s is not None and self._units is not None:
                self._cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, self._units[2])
                if not self._cap.set(cv2.CAP_PROP_EXPOSURE, self._units[0](float(exposure_s))):
                    self._units = None       # the backend refused: exposure is not ours to set
            super().__init__(size, bitdepth=8, pitch_um=pitch_um, readout_s=readout_s, name=name,
                             exposure_bounds_s=exposure_bounds_s, **{"capture_attempts": 1, **kwargs})
        except BaseException:
            self._cap.release()
            raise

    @property
    def identity(self) -> DeviceIdentity:
        model = f"OpenCV {self.backend} camera"
        sysfs = Path(f"/sys/class/video4linux/video{self._source}/name")
        if isinstance(self._source, int) and sysfs.is_file():
            model = sysfs.read_text().strip() or model
        return DeviceIdentity("unknown", model, serial=str(self._source))

    @property
    def exposure_controllable(self) -> bool:
        return self._units is not None

    def describe(self) -> dict:
        return {**super().describe(), "driver": "opencv", "source": str(self._source), "backend": self.backend,
                "exposure_control": "CAP_PROP_EXPOSURE" if self._units else "none (nominal)"}

    @staticmethod
    def info(verbose: bool = True) -> list:
        """OpenCV cannot list cameras."""
        return []

    def close(self) -> None:
        """Release the capture device. Safe to call twice."""
        cap, self._cap = self._cap, None
        self._reads.settle()                 # never release under a read in progress
        if cap is not None:
            cap.release()

    # --- frames -------------------------------------------------------------------------

    def _get_dtype(self, test_data=None):
        return np.dtype(np.uint8)          # frames are converted to gray uint8

    def _get_image_hw(self, timeout_s: float) -> np.ndarray:
        if self._cap is None:
            raise DeviceError(self.name, "camera is closed")
        read = self._reads.read(self._cap.read, timeout_s)
        if read.error is not None:
            raise DeviceError(self.name, f"read failed: {read.error}") from read.error
        ok, frame = read.result
        if not ok or frame is None:
            raise DeviceError(self.name, "the camera returned no frame (unplugged, or the stream ended)")
        return self._gray(np.asarray(frame))

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        if frame.dtype != np.uint8:
            raise DeviceError(self.name, f"frame dtype {frame.dtype}: this driver reads 8-bit video only")
        if frame.ndim == 3 and frame.shape[2] == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        elif frame.ndim == 3 and frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
        elif frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if frame.ndim != 2:
            raise DeviceError(self.name, f"unexpected frame shape {frame.shape}")
        return np.ascontiguousarray(frame)

    # --- exposure -----------------------------------------------------------------------

    def _get_exposure_hw(self) -> float:
        if self._units is None:
            return self._nominal_exposure_s
        return float(self._units[1](float(self._cap.get(self._cv2.CAP_PROP_EXPOSURE))))

    def _set_exposure_hw(self, exposure_s: float) -> None:
        if self._units is None:
            if math.isclose(exposure_s, self._nominal_exposure_s, rel_tol=1e-9, abs_tol=1e-12):
                return
            raise DeviceError(self.name, f"OpenCV backend {self.backend} gives no exposure control "
                                         f"(nominal {self._nominal_exposure_s:g} s); cannot set {exposure_s:g} s")
        self._cap.set(self._cv2.CAP_PROP_AUTO_EXPOSURE, self._units[2])
        if not self._cap.set(self._cv2.CAP_PROP_EXPOSURE, self._units[0](float(exposure_s))):
            raise DeviceError(self.name, f"OpenCV backend {self.backend} refused exposure {exposure_s:g} s")
