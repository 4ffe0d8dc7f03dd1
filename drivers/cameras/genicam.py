"""A GenICam camera (USB3 Vision, GigE Vision, CoaXPress, ...) through harvesters and a GenTL producer.

Features use GenICam SFNC names and are used only where the node map has them:
``PixelFormat``; ``ExposureTime`` (µs; ``ExposureTimeAbs`` on older GigE cameras) with
``ExposureAuto`` turned off; ``Gain`` with ``GainAuto`` off; ``Width``/``Height``/``OffsetX``/
``OffsetY`` for a hardware window of interest (otherwise slmsuite crops in software);
``TriggerMode``/``TriggerSource``/``TriggerSoftware`` (``TriggerSelector`` = FrameStart when present).
Every wait is bounded: a camera that stops delivering frames raises ``CaptureTimeout``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ..camera import BenchCamera
from ..errors import CaptureTimeout, DeviceError
from ..identity import DeviceIdentity
from .gentl import (PIXEL_FORMATS, PixelFormat, acquire_producer, create_acquirer, match_device,
                    node, producer_path, readable, release_producer, writable)

__all__ = ["GenICamCamera", "TRIGGER_MODES"]

#: "off": free running; "software": the driver fires TriggerSoftware for each capture;
#: "external": the camera waits for ``trigger_source`` (e.g. "Line0", an SLM's sync output).
TRIGGER_MODES = ("off", "software", "external")
_MAX_DRAIN = 64


class GenICamCamera(BenchCamera):
    """A camera opened from a GenTL producer file (.cti), chosen by ``device``.

    ``device``: None (first device), an index, or harvesters DeviceInfo properties such as
    ``{"serial_number": "21345678"}``. ``pixel_format`` None keeps a supported monochrome
    current format, else picks Mono8. ``exposure_s`` on a camera without an exposure node is
    the *nominal* exposure (used for timeouts and metadata): ``exposure_controllable`` is then
    False and setting any other exposure raises DeviceError. ``resolution`` (width, height), if
    given, is written to Width/Height at open.
    """

    def __init__(self, cti: str | Path, *, pitch_um: float, device: int | dict | None = None,
                 pixel_format: str | None = None, exposure_s: float | None = None,
                 gain: float | None = None, resolution: tuple[int, int] | None = None,
                 trigger: str = "off", trigger_source: str | None = None, readout_s: float = 0.0,
                 num_buffers: int = 4, name: str = "camera", exposure_bounds_s=None, **kwargs):
        if trigger not in TRIGGER_MODES:
            raise DeviceError(name, f"trigger = {trigger!r}: expected one of {TRIGGER_MODES}")
        self._path = producer_path(cti, name)
        self._ia = None
        self._holds_producer = False
        harvester = acquire_producer(self._path, name)
        self._holds_producer = True
        try:
            index = match_device(harvester.device_info_list, device, name, self._path)
            info = harvester.device_info_list[index]
            self._ia = create_acquirer(harvester, index, name)
            self._nm = self._ia.remote_device.node_map
            self._ia.num_buffers = int(num_buffers)
            self._identity = self._read_identity(info)
            self._set_enum("AcquisitionMode", "Continuous", required=False, label=name)
            self._format = self._choose_format(pixel_format, name)
            if resolution is not None:
                self._write("Width", int(resolution[0]), name)
                self._write("Height", int(resolution[1]), name)
            self._hw_woi = all(writable(node(self._nm, n)) for n in ("Width", "Height", "OffsetX", "OffsetY"))
            self._exposure_node = next((n for n in ("ExposureTime", "ExposureTimeAbs")
                                        if readable(node(self._nm, n))), None)
            self._nominal_exposure_s = float(exposure_s or 0.0)
            if self._exposure_node:
                self._set_enum("ExposureAuto", "Off", required=False, label=name)
                if exposure_s is not None:
                    self._write(self._exposure_node, float(exposure_s) * 1e6, name)
                exposure_bounds_s = exposure_bounds_s or self._exposure_bounds()
            self._set_enum("GainAuto", "Off", required=False, label=name)
            if gain is not None:
                self._set_gain(float(gain), name)
            self.trigger = self._configure_trigger(trigger, trigger_source, name)
            if self._hw_woi:
                sensor = (self._int("WidthMax", "Width"), self._int("HeightMax", "Height"))
            else:
                sensor = (self._int("Width"), self._int("Height"))
            super().__init__(sensor, bitdepth=self._format.bitdepth, pitch_um=pitch_um,
                             readout_s=readout_s, name=name, exposure_bounds_s=exposure_bounds_s,
                             **{"capture_attempts": 1, **kwargs})
            # slmsuite decides hardware vs software WOI per class; this camera decides per device.
            self._software_woi = not self._hw_woi
            self._ia.start()
        except BaseException:
            self._release()
            raise

    # --- identity and description ------------------------------------------------------

    def _read_identity(self, info) -> DeviceIdentity:
        firmware = next((str(n.value) for n in (node(self._nm, "DeviceFirmwareVersion"),
                                                node(self._nm, "DeviceVersion")) if readable(n)),
                        str(getattr(info, "version", "") or ""))
        return DeviceIdentity(str(info.vendor or ""), str(info.model or ""),
                              serial=str(info.serial_number or ""), firmware=firmware)

    @property
    def identity(self) -> DeviceIdentity:
        return self._identity

    @property
    def node_map(self):
        """The remote device's GenICam node map, for features this driver does not wrap."""
        return self._nm

    @property
    def pixel_format(self) -> str:
        return self._format.name

    @property
    def exposure_controllable(self) -> bool:
        return self._exposure_node is not None

    @property
    def gain(self) -> float | None:
        """The ``Gain`` read back (usually dB), or None when the camera has no Gain node."""
        feature = node(self._nm, "Gain")
        return float(feature.value) if readable(feature) else None

    def set_gain(self, gain: float) -> float:
        """Write ``Gain`` and return the value read back; DeviceError when there is none."""
        return self._set_gain(float(gain), self.name)

    def describe(self) -> dict:
        return {**super().describe(), "driver": "genicam", "producer": str(self._path),
                "pixel_format": self._format.name, "trigger": self.trigger,
                "exposure_control": self._exposure_node or "none (fixed by the device)",
                "gain": self.gain, "woi": [int(v) for v in self.woi],
                "woi_mode": "hardware" if self._hw_woi else "software"}

    @staticmethod
    def info(verbose: bool = True) -> list:
        """Not available without a producer: list devices with ``GenICamCamera.devices(cti)``."""
        return []

    @staticmethod
    def devices(cti: str | Path) -> list[DeviceIdentity]:
        """Vendor, model and serial of every device a producer reports."""
        path = producer_path(cti, "genicam")
        harvester = acquire_producer(path, "genicam")
        try:
            return [DeviceIdentity(str(i.vendor), str(i.model), serial=str(i.serial_number))
                    for i in harvester.device_info_list]
        finally:
            release_producer(path)

    # --- life cycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop acquisition, release the device and the producer. Safe to call twice."""
        self._release()

    def _release(self) -> None:
        ia, self._ia = self._ia, None
        if ia is not None:
            try:
                ia.stop()
            finally:
                ia.destroy()
        if self._holds_producer:
            self._holds_producer = False
            release_producer(self._path)

    def _acquirer(self):
        if self._ia is None:
            raise DeviceError(self.name, "camera is closed")
        return self._ia

    def _stopped(self, write):
        """Run ``write()`` with acquisition stopped (sensor geometry is locked while streaming)."""
        ia = self._acquirer()
        running = ia.is_acquiring()
        if running:
            ia.stop()
        try:
            return write()
        finally:
            if running:
                ia.start()

    # --- frames -------------------------------------------------------------------------

    def flush(self, timeout_s: float = 1.0) -> int:
        """Discard frames already waiting in the stream; returns how many. Never waits for a new one."""
        ia, dropped = self._acquirer(), 0
        while dropped < _MAX_DRAIN:
            buffer = ia.try_fetch(timeout=1e-4)
            if buffer is None:
                break
            buffer.queue()
            dropped += 1
        return dropped

    def _get_image_hw(self, timeout_s: float) -> np.ndarray:
        ia = self._acquirer()
        deadline = time.monotonic() + float(timeout_s)
        if self.trigger == "off":
            self.flush()            # free running: only a frame completed after this call
        elif self.trigger == "software":
            self.flush()
            self._nm.TriggerSoftware.execute()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaptureTimeout(self.name, f"no frame within {timeout_s:.3g} s (trigger {self.trigger!r})")
            try:
                buffer = ia.try_fetch(timeout=remaining)   # harvesters waits forever on timeout=0
            except Exception as error:
                raise DeviceError(self.name, f"frame fetch failed: {error}") from error
            if buffer is not None:
                with buffer:                               # re-queued on exit: copy out first
                    return self._copy_frame(buffer)

    def _copy_frame(self, buffer) -> np.ndarray:
        components = buffer.payload.components
        if not components:
            raise DeviceError(self.name, "frame arrived without image data")
        image = components[0]
        if image.data_format != self._format.name:
            raise DeviceError(self.name, f"PixelFormat is {self._format.name} but the frame arrived as "
                                         f"{image.data_format}")
        shape = (image.height, image.width) + ((self._format.channels,) if self._format.channels > 1 else ())
        return np.array(image.data, dtype=self._format.dtype, copy=True).reshape(shape)

    def _get_dtype(self, test_data=None):
        # Known from the pixel format; slmsuite would otherwise grab a probe frame at open
        # (firing a software trigger, or waiting 1 s for an external one).
        return self._format.dtype

    # --- exposure -----------------------------------------------------------------------

    def _exposure_bounds(self) -> tuple[float, float] | None:
        feature = node(self._nm, self._exposure_node)
        try:
            return float(feature.min) * 1e-6, float(feature.max) * 1e-6
        except Exception:
            return None

    def _get_exposure_hw(self) -> float:
        if self._exposure_node is None:
            return self._nominal_exposure_s
        return float(node(self._nm, self._exposure_node).value) * 1e-6

    def _set_exposure_hw(self, exposure_s: float) -> None:
        if self._exposure_node is None:
            if math.isclose(exposure_s, self._nominal_exposure_s, rel_tol=1e-9, abs_tol=1e-12):
                return
            raise DeviceError(self.name, f"no ExposureTime node: the exposure is fixed by the device "
                                         f"(nominal {self._nominal_exposure_s:g} s); cannot set {exposure_s:g} s")
        self._write(self._exposure_node, float(exposure_s) * 1e6, self.name, restart=True)

    # --- window of interest (hardware when OffsetX/OffsetY/Width/Height are writable) ---

    def _get_woi_hw(self) -> tuple[int, int, int, int]:
        x = self._int("OffsetX") if self._hw_woi else 0
        y = self._int("OffsetY") if self._hw_woi else 0
        return (x, self._int("Width"), y, self._int("Height"))

    def _set_woi_hw(self, woi) -> None:
        x, w, y, h = (int(v) for v in woi)

        def write():
            self._write("OffsetX", 0, self.name)
            self._write("OffsetY", 0, self.name)
            self._write("Width", self._snap("Width", w), self.name)
            self._write("Height", self._snap("Height", h), self.name)
            self._write("OffsetX", self._snap("OffsetX", x), self.name)
            self._write("OffsetY", self._snap("OffsetY", y), self.name)
        self._stopped(write)

    # --- node helpers -------------------------------------------------------------------

    def _int(self, name: str, fallback: str | None = None) -> int:
        feature = node(self._nm, name)
        if not readable(feature) and fallback is not None:
            feature = node(self._nm, fallback)
        return int(feature.value)

    def _snap(self, name: str, value: int) -> int:
        """``value`` rounded down to the node's increment and clipped to its range."""
        feature = node(self._nm, name)
        low, high, step = int(feature.min), int(feature.max), max(1, int(getattr(feature, "inc", 1)))
        value = low + ((min(max(value, low), high) - low) // step) * step
        return value

    def _write(self, name: str, value, label: str, restart: bool = False):
        feature = node(self._nm, name)
        if feature is None:
            raise DeviceError(label, f"camera has no {name} node")
        if not writable(feature) and restart and self._ia is not None and self._ia.is_acquiring():
            return self._stopped(lambda: self._write(name, value, label))
        try:
            feature.value = value
            return feature.value
        except Exception as error:
            raise DeviceError(label, f"cannot set {name} = {value!r}: {error}") from error

    def _set_enum(self, name: str, value: str, *, required: bool, label: str) -> str | None:
        feature = node(self._nm, name)
        if not writable(feature) or value not in tuple(feature.symbolics):
            if required:
                choices = tuple(feature.symbolics) if feature is not None else ()
                raise DeviceError(label, f"cannot set {name} = {value!r}"
                                         + (f"; the camera offers {list(choices)}" if choices else
                                            f": the camera has no writable {name} node"))
            return None
        return self._write(name, value, label)

    def _set_gain(self, gain: float, label: str) -> float:
        if node(self._nm, "Gain") is None:
            raise DeviceError(label, "camera has no Gain node: gain cannot be set")
        return float(self._write("Gain", gain, label, restart=True))

    def _choose_format(self, requested: str | None, label: str) -> PixelFormat:
        feature = node(self._nm, "PixelFormat")
        offered = tuple(feature.symbolics) if feature is not None else ()
        current = str(feature.value) if readable(feature) else None
        if requested is None:
            mono = [f for f in offered if f in PIXEL_FORMATS and PIXEL_FORMATS[f].channels == 1]
            if current in PIXEL_FORMATS and PIXEL_FORMATS[current].channels == 1:
                requested = current
            elif "Mono8" in offered:
                requested = "Mono8"
            elif mono:
                requested = mono[0]
            elif current in PIXEL_FORMATS:
                requested = current
            else:
                raise DeviceError(label, f"no supported pixel format; the camera offers {list(offered)}, "
                                         f"optgen reads {sorted(PIXEL_FORMATS)}")
        if requested not in PIXEL_FORMATS:
            raise DeviceError(label, f"pixel format {requested!r} is not supported; optgen reads {sorted(PIXEL_FORMATS)}")
        if requested != current:
            self._set_enum("PixelFormat", requested, required=True, label=label)
        return PIXEL_FORMATS[requested]

    def _configure_trigger(self, mode: str, source: str | None, label: str) -> str:
        if mode == "off":
            self._set_enum("TriggerMode", "Off", required=False, label=label)
            return mode
        if not writable(node(self._nm, "TriggerMode")):
            raise DeviceError(label, f"trigger = {mode!r} needs a TriggerMode node, which this camera lacks; "
                                     "use trigger = 'off'")
        self._set_enum("TriggerSelector", "FrameStart", required=False, label=label)
        if mode == "software":
            if not writable(node(self._nm, "TriggerSoftware")):
                raise DeviceError(label, "trigger = 'software' needs a TriggerSoftware command, which this camera lacks")
            source = "Software"
        elif source is None:
            offered = tuple(getattr(node(self._nm, "TriggerSource"), "symbolics", ()))
            raise DeviceError(label, f"trigger = 'external' needs trigger_source; the camera offers {list(offered)}")
        self._set_enum("TriggerSource", source, required=True, label=label)
        self._set_enum("TriggerMode", "On", required=True, label=label)
        return mode
