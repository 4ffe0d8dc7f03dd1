"""A GenICam camera (USB3 Vision, GigE Vision, CoaXPress, ...) through harvesters and a GenTL producer.

Features use GenICam SFNC names and are used only where the node map has them:
``PixelFormat``; ``ExposureTime`` (µs; ``ExposureTimeAbs`` on older GigE cameras) with
``ExposureAuto`` off; ``Gain`` with ``GainAuto`` off; ``Width``/``Height``/``OffsetX``/``OffsetY``
for a hardware window of interest (otherwise slmsuite crops in software);
``TriggerMode``/``TriggerSource``/``TriggerSoftware`` (``TriggerSelector`` = FrameStart when present);
for SLM-triggered runs ``TriggerDelay`` (µs; ``TriggerDelayAbs`` on older GigE cameras) and
``TriggerOverlap`` (ReadOut where offered).
Every wait is bounded: a camera that stops delivering frames raises ``CaptureTimeout``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from optgen.drivers.camera import BenchCamera
from optgen.drivers.cameras.gentl import (
    Features,
    acquire_producer,
    create_acquirer,
    match_device,
    producer_path,
    release_producer,
)
from optgen.drivers.errors import CaptureTimeout, DeviceError
from optgen.drivers.identity import DeviceIdentity

__all__ = ["GenICamCamera", "TRIGGER_MODES"]

#: "off": free running; "software": the driver fires TriggerSoftware for each capture;
#: "hardware": the camera waits for ``trigger_source`` (e.g. "Line0", an SLM's sync output).
TRIGGER_MODES = ("off", "software", "hardware")
_MAX_DRAIN = 64
_DELAY_NODES = ("TriggerDelay", "TriggerDelayAbs")
_OVERLAPPING = ("ReadOut", "PreviousFrame")     # TriggerOverlap entries that take a trigger during readout
_DELAY_TOLERANCE_S = 1e-6


class GenICamCamera(BenchCamera):
    """A camera opened from a GenTL producer file (.cti), chosen by ``device``.

    ``device``: None (the first device), an index, or harvesters DeviceInfo properties such as
    ``{"serial_number": "21345678"}``. ``pixel_format`` None keeps the current format if it is a
    supported monochrome one, else picks Mono8. ``resolution`` (width, height), if given, is
    written to Width/Height at open. ``exposure_s`` on a camera without an exposure node is the
    *nominal* exposure (for timeouts and metadata): ``exposure_controllable`` is then False and
    setting any other exposure raises DeviceError. ``num_buffers`` None keeps harvesters' default.
    """

    def __init__(self, cti: str | Path, *, pitch_um: float, device: int | dict | None = None,
                 pixel_format: str | None = None, exposure_s: float | None = None,
                 gain: float | None = None, resolution: tuple[int, int] | None = None,
                 trigger: str = "off", trigger_source: str | None = None, readout_s: float = 0.0,
                 num_buffers: int | None = None, name: str = "camera", exposure_bounds_s=None,
                 **kwargs):
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
            self._nodes = nodes = Features(self._ia.remote_device.node_map, name)
            if num_buffers is not None:
                if num_buffers < self._ia.min_num_buffers:
                    raise DeviceError(name, f"num_buffers = {num_buffers}: this producer needs at least "
                                            f"{self._ia.min_num_buffers}")
                self._ia.num_buffers = int(num_buffers)
            firmware = next((nodes.get(n) for n in ("DeviceFirmwareVersion", "DeviceVersion")
                             if nodes.readable(n)), getattr(info, "version", ""))
            self._identity = DeviceIdentity(str(info.vendor or ""), str(info.model or ""),
                                            serial=str(info.serial_number or ""), firmware=str(firmware or ""))
            nodes.set_enum("AcquisitionMode", "Continuous", required=False)
            self._format = nodes.choose_format(pixel_format)
            if resolution is not None:
                nodes.set("Width", int(resolution[0]))
                nodes.set("Height", int(resolution[1]))
            self._hw_woi = all(nodes.writable(n) for n in ("Width", "Height", "OffsetX", "OffsetY"))
            self._exposure_node = next((n for n in ("ExposureTime", "ExposureTimeAbs") if nodes.readable(n)), None)
            self._nominal_exposure_s = float(exposure_s or 0.0)
            if self._exposure_node:
                nodes.set_enum("ExposureAuto", "Off", required=False)
                if exposure_s is not None:
                    nodes.set(self._exposure_node, float(exposure_s) * 1e6)
                if exposure_bounds_s is None and nodes.bounds(self._exposure_node):
                    exposure_bounds_s = tuple(v * 1e-6 for v in nodes.bounds(self._exposure_node))
            nodes.set_enum("GainAuto", "Off", required=False)
            if gain is not None:
                self.set_gain(gain)
            self.trigger = self._configure_trigger(trigger, trigger_source)
            self._delay_before_us: float | None = None     # TriggerDelay to put back at trigger_off
            sensor = ((nodes.get("WidthMax", "Width"), nodes.get("HeightMax", "Height")) if self._hw_woi
                      else (nodes.get("Width"), nodes.get("Height")))
            super().__init__(tuple(int(v) for v in sensor), bitdepth=self._format.bitdepth,
                             pitch_um=pitch_um, readout_s=readout_s, name=name,
                             exposure_bounds_s=exposure_bounds_s, **{"capture_attempts": 1, **kwargs})
            # slmsuite decides hardware vs software WOI per class; this camera decides per device.
            self._software_woi = not self._hw_woi
            self._ia.start()
        except BaseException:
            self._release()
            raise

    # --- identity and settings ----------------------------------------------------------

    @property
    def identity(self) -> DeviceIdentity:
        return self._identity

    @property
    def node_map(self):
        """The remote device's GenICam node map, for features this driver does not wrap."""
        return self._nodes.node_map

    @property
    def pixel_format(self) -> str:
        return self._format.name

    @property
    def exposure_controllable(self) -> bool:
        return self._exposure_node is not None

    @property
    def gain(self) -> float | None:
        """``Gain`` read back (usually dB), or None when the camera has no Gain node."""
        return float(self._nodes.get("Gain")) if self._nodes.readable("Gain") else None

    def set_gain(self, gain: float) -> float:
        """Write ``Gain`` and return the value read back; DeviceError when the camera has none."""
        if not self._nodes.has("Gain"):
            raise DeviceError(self._nodes.device, "camera has no Gain node: gain cannot be set")
        return float(self._write_live("Gain", float(gain)))

    def describe(self) -> dict:
        return {**super().describe(), "driver": "genicam", "producer": str(self._path),
                "pixel_format": self._format.name, "trigger": self.trigger,
                "exposure_control": self._exposure_node or "none (fixed by the device)",
                "gain": self.gain, "woi": [int(v) for v in self.woi],
                "woi_mode": "hardware" if self._hw_woi else "software"}

    @staticmethod
    def info(verbose: bool = True) -> list:
        """Needs a producer: list devices with ``GenICamCamera.devices(cti)``."""
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
        try:
            if ia is not None:
                try:
                    ia.stop()
                finally:
                    ia.destroy()
        finally:
            if self._holds_producer:
                self._holds_producer = False
                release_producer(self._path)

    def _acquirer(self):
        if self._ia is None:
            raise DeviceError(self._nodes.device, "camera is closed")
        return self._ia

    def _stopped(self, write):
        """Run ``write()`` with acquisition stopped (geometry is locked while streaming)."""
        ia = self._acquirer()
        running = ia.is_acquiring()
        if running:
            ia.stop()
        try:
            return write()
        finally:
            if running:
                ia.start()

    def _write_live(self, name: str, value):
        """Write a node, stopping acquisition around it if the camera locks it while streaming."""
        if self._nodes.writable(name) or self._ia is None or not self._ia.is_acquiring():
            return self._nodes.set(name, value)
        return self._stopped(lambda: self._nodes.set(name, value))

    # --- frames -------------------------------------------------------------------------

    def flush(self, timeout_s: float = 1.0) -> int:
        """Discard frames already waiting in the stream; returns how many. Never waits for new ones."""
        ia, dropped = self._acquirer(), 0
        while dropped < _MAX_DRAIN:
            buffer = ia.try_fetch(timeout=1e-4)
            if buffer is None:
                break
            buffer.queue()
            dropped += 1
        return dropped

    def _get_image_hw(self, timeout_s: float) -> np.ndarray:
        """The next frame. Free run and software trigger drop frames already queued; hardware
        trigger keeps them (the pulse may come before this call): ``flush()`` before arming."""
        ia = self._acquirer()
        deadline = time.monotonic() + float(timeout_s)
        if self.trigger != "hardware":
            self.flush()   # a frame completed after this call (free run) or for this trigger
        if self.trigger == "software":
            self.node_map.TriggerSoftware.execute()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaptureTimeout(self.name, f"no frame within {timeout_s:.3g} s (trigger {self.trigger!r})")
            try:
                buffer = ia.try_fetch(timeout=remaining)   # never 0: harvesters would wait forever
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
        # Known from the pixel format. slmsuite would otherwise grab a probe frame at open,
        # firing a software trigger or waiting a second for an external one.
        return self._format.dtype

    # --- exposure -----------------------------------------------------------------------

    def _get_exposure_hw(self) -> float:
        if self._exposure_node is None:
            return self._nominal_exposure_s
        return float(self._nodes.get(self._exposure_node)) * 1e-6

    def _set_exposure_hw(self, exposure_s: float) -> None:
        if self._exposure_node is None:
            if math.isclose(exposure_s, self._nominal_exposure_s, rel_tol=1e-9, abs_tol=1e-12):
                return
            raise DeviceError(self.name, f"no ExposureTime node: the exposure is fixed by the device "
                                         f"(nominal {self._nominal_exposure_s:g} s); cannot set {exposure_s:g} s")
        self._write_live(self._exposure_node, float(exposure_s) * 1e6)

    # --- window of interest: hardware when OffsetX/OffsetY/Width/Height are writable ----

    def _get_woi_hw(self) -> tuple[int, int, int, int]:
        get = self._nodes.get
        if not self._hw_woi:
            return (0, int(get("Width")), 0, int(get("Height")))
        return (int(get("OffsetX")), int(get("Width")), int(get("OffsetY")), int(get("Height")))

    def _set_woi_hw(self, woi) -> None:
        x, w, y, h = (int(v) for v in woi)
        nodes = self._nodes

        def write():
            nodes.set("OffsetX", nodes.snap("OffsetX", 0))
            nodes.set("OffsetY", nodes.snap("OffsetY", 0))
            nodes.set("Width", nodes.snap("Width", w))
            nodes.set("Height", nodes.snap("Height", h))
            nodes.set("OffsetX", nodes.snap("OffsetX", x))
            nodes.set("OffsetY", nodes.snap("OffsetY", y))
        self._stopped(write)

    # --- trigger ------------------------------------------------------------------------

    def _configure_trigger(self, mode: str, source: str | None) -> str:
        nodes = self._nodes
        if mode == "off":
            nodes.set_enum("TriggerMode", "Off", required=False)
            return mode
        if not nodes.writable("TriggerMode"):
            raise DeviceError(nodes.device, f"trigger = {mode!r} needs a TriggerMode node, which this "
                                            "camera lacks; use trigger = 'off'")
        nodes.set_enum("TriggerSelector", "FrameStart", required=False)
        if mode == "software":
            if not nodes.writable("TriggerSoftware"):
                raise DeviceError(nodes.device, "trigger = 'software' needs a TriggerSoftware command, "
                                                "which this camera lacks")
            source = "Software"
        elif source is None:
            raise DeviceError(nodes.device, "trigger = 'hardware' needs trigger_source; the camera offers "
                                            f"{list(nodes.choices('TriggerSource'))}")
        nodes.set_enum("TriggerSource", source)
        nodes.set_enum("TriggerMode", "On")
        return mode

    # --- SLM-triggered runs (lab.triggered_loop) ----------------------------------------

    @property
    def trigger_overlap(self) -> str:
        """"readout" when the camera takes the next trigger while it reads out (TriggerOverlap
        ReadOut or PreviousFrame), else "off": the loop paces the SLM to what the camera takes."""
        nodes = self._nodes
        if not nodes.readable("TriggerOverlap"):
            return "off"
        return "readout" if str(nodes.get("TriggerOverlap")) in _OVERLAPPING else "off"

    def check_trigger_from(self, slm, delay_s: float) -> None:
        """Raise DeviceError, before any light, if :meth:`trigger_from` could not arm this camera."""
        if self.trigger != "hardware":
            raise DeviceError(self.name, f"a hardware-triggered run needs trigger = 'hardware' and trigger_source = "
                                         f"the input line wired to {slm.name}'s frame-shown (sync) output; this "
                                         f"camera is set to trigger = {self.trigger!r}")
        if self._delay_node() is None and delay_s > _DELAY_TOLERANCE_S:
            raise DeviceError(self.name, f"no TriggerDelay node: the camera cannot wait {slm.name}'s "
                                         f"{delay_s * 1e3:.3g} ms settle after its frame-shown edge, so frames "
                                         "would catch the liquid crystal moving; delay the sync output on the SLM "
                                         "side (and set its settle to 0) or use sync 'pipelined'")

    def trigger_from(self, slm, delay_s: float = 0.0) -> None:
        """Arm the camera for a run triggered by ``slm``'s frame-shown output: each exposure starts
        ``delay_s`` (the SLM's settle) after an edge on ``trigger_source``, which must be wired to it.

        Writes TriggerDelay (read back and checked), selects TriggerOverlap ReadOut where offered,
        and drops frames already queued. The wiring itself cannot be read from the camera: a
        trigger that never comes shows as a CaptureTimeout.
        """
        self.check_trigger_from(slm, delay_s)
        nodes, node = self._nodes, self._delay_node()
        if node is not None:
            wanted_us = float(delay_s) * 1e6
            before = float(nodes.get(node))
            got = float(self._write_live(node, wanted_us))
            self._delay_before_us = before
            if abs(got - wanted_us) > _DELAY_TOLERANCE_S * 1e6:
                self.trigger_off(slm)
                raise DeviceError(self.name, f"{node} = {wanted_us:.1f} µs ({slm.name}'s settle) read back as "
                                             f"{got:.1f} µs; the camera's range is {nodes.bounds(node)} µs")
        if nodes.writable("TriggerOverlap") and "ReadOut" in nodes.choices("TriggerOverlap"):
            self._write_live("TriggerOverlap", "ReadOut")
        self.flush()

    def trigger_off(self, slm) -> None:
        """Undo :meth:`trigger_from`: the TriggerDelay it found is written back. Safe to call twice."""
        before, self._delay_before_us = self._delay_before_us, None
        node = self._delay_node()
        if before is not None and node is not None and self._ia is not None:
            self._write_live(node, before)

    def _delay_node(self) -> str | None:
        return next((n for n in _DELAY_NODES if self._nodes.writable(n)), None)
