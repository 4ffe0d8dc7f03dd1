"""Cameras: slmsuite's ``Camera`` with optgen's identity, timing and finite timeouts."""

from __future__ import annotations

import time
from abc import abstractmethod

import numpy as np

from optgen.drivers._slmsuite import SlmsuiteCamera
from optgen.drivers.identity import CameraTiming, DeviceIdentity
from optgen.drivers.io_log import camera_debug, log_capture, log_capture_failed

__all__ = ["BenchCamera"]


class BenchCamera(SlmsuiteCamera):
    """Base class of optgen's camera drivers.

    ``capture()`` always waits a finite time: by default one second plus twice the
    frame time (exposure + readout).
    """

    def __init__(self, resolution: tuple[int, int], *, bitdepth: int, pitch_um: float,
                 readout_s: float, name: str = "camera", exposure_bounds_s=None, **kwargs):
        self.readout_s = float(readout_s)
        # when the last frame's exposure began, on the bench clock, where the camera reports it
        # (frame timestamps); None where only the time of the capture call is known
        self.last_exposure_start_s: float | None = None
        super().__init__(resolution, bitdepth=bitdepth, pitch_um=(pitch_um, pitch_um), name=name,
                         exposure_bounds_s=exposure_bounds_s, **kwargs)

    @property
    @abstractmethod
    def identity(self) -> DeviceIdentity:
        """Vendor, model, serial and firmware."""

    @property
    def timing(self) -> CameraTiming:
        return CameraTiming(exposure_s=float(self.exposure_s), readout_s=self.readout_s)

    @property
    def saturation_dn(self) -> int:
        """Counts at and above which a pixel is saturated (the ADC's top unless a driver knows better)."""
        return 2 ** int(self.bitdepth) - 1

    def default_timeout_s(self) -> float:
        return 1.0 + 2.0 * self.timing.frame_s

    def capture(self, timeout_s: float | None = None) -> np.ndarray:
        """One frame (raw counts, untransformed dtype), or CaptureTimeout after ``timeout_s``.
        Each capture is logged at DEBUG (:mod:`optgen.drivers.io_log`), a timeout with its bound."""
        timeout_s = self.default_timeout_s() if timeout_s is None else timeout_s
        return self._logged(lambda: self.get_image(timeout_s=timeout_s), timeout_s, 1)[0]

    def capture_series(self, count: int, timeout_s: float | None = None) -> np.ndarray:
        """``count`` frames of the same scene in succession, (count, height, width) raw counts, through
        slmsuite's ``get_images`` (a driver with a multi-frame acquisition takes them as one; others
        one after another). ``timeout_s`` bounds each frame, as in :meth:`capture`."""
        count = int(count)
        if count < 1:
            raise ValueError(f"{self.name}: a series of {count} frames; expected at least 1")
        timeout_s = self.default_timeout_s() if timeout_s is None else timeout_s
        return self._logged(lambda: self.get_images(count, timeout_s=timeout_s), timeout_s, count)

    def _logged(self, grab, timeout_s: float, count: int) -> np.ndarray:
        """``grab()``'s frames ((count, h, w); one frame is given as a stack of one), each logged at
        DEBUG with its share of the time, a failure with the bound it had."""
        if not camera_debug():
            frames = grab()
            return frames[None] if count == 1 else frames
        t0 = time.perf_counter()
        try:
            frames = grab()
        except Exception as exc:
            log_capture_failed(self.name, float(self.exposure_s), timeout_s, exc, time.perf_counter() - t0)
            raise
        frames = frames[None] if count == 1 else frames
        for frame in frames:
            log_capture(self.name, float(self.exposure_s), frame, (time.perf_counter() - t0) / count)
        return frames

    def describe(self) -> dict:
        """Settings snapshot for run metadata."""
        return {
            "name": self.name,
            "identity": self.identity.as_dict(),
            "resolution": [int(self.shape[1]), int(self.shape[0])],
            "bitdepth": int(self.bitdepth),
            "saturation_dn": int(self.saturation_dn),
            "pitch_um": float(self.pitch_um[0]) if self.pitch_um is not None else None,
            "timing": self.timing.as_dict(),
        }
