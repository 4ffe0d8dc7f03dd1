"""A simulated camera: renders the world's light on its own pixels with the planted sensor physics."""

from __future__ import annotations

import bisect
import dataclasses
import threading

import numpy as np

from optgen.drivers.camera import BenchCamera
from optgen.drivers.common.clock import sleep_until
from optgen.drivers.errors import CaptureTimeout
from optgen.drivers.identity import DeviceIdentity
from optgen.simulators.noise import expose
from optgen.simulators.world import RENDER_SLOTS, OpticalWorld, render_slot

__all__ = ["SimulatedCamera", "TRIGGER_MODES", "TRIGGER_OVERLAPS"]

TRIGGER_MODES = ("software", "hardware")
TRIGGER_OVERLAPS = ("off", "readout")
# the world's render-ahead thread renders the light; the camera draws its noise on this second one
FRAME_LANE = "frame"


class SimulatedCamera(BenchCamera):
    """The twin's image sensor. Exposure and readout take (virtual or wall-clock) time.

    A frame is delivered exposure + readout after its exposure starts, on the world's clock;
    the light is the world's at mid-exposure. Trigger modes:

    - ``"software"``: the exposure starts when ``capture()`` is called;
    - ``"hardware"``: acquisition runs on the trigger input (:meth:`trigger_input`), as a GenICam
      camera with TriggerMode On: the camera is armed from the moment the mode is set and again
      as soon as a frame is read out; an edge while it is armed starts an exposure
      ``trigger_delay_s`` later, and ``capture()`` returns the frame of the next such edge
      (waiting for it, or at once if it was exposed and read out already). Edges while the
      camera is busy exposing or reading out are missed; no edge within the timeout raises
      CaptureTimeout. Wire the input to an SLM's frame-shown output with :meth:`trigger_from`.
      With ``trigger_overlap = "readout"`` (GenICam's TriggerOverlap = ReadOut, a global-shutter
      sensor that exposes while it reads out the last frame) the camera is armed again as soon
      as an exposure ends; frames are still read out one after another.

    With a wall clock the camera computes its next frame ahead (``frame_ahead``; by default
    when the world renders ahead): after each SLM upload, the world's worker thread draws the
    laser power and the sensor noise on the settled light. ``capture()`` uses that frame when
    both SLMs are settled at mid-exposure and nothing it depends on changed (uploads, laser
    emission and setpoint, exposure, sensor); it is the frame the capture would have computed,
    with the same random draws if nothing else drew in between. Otherwise it computes the frame
    at capture, as with a virtual clock.

    A window of interest (slmsuite's ``set_woi``) is read out in hardware, as a GenICam camera's
    OffsetX/OffsetY/Width/Height: frames are that region only, and only its pixels are exposed
    and drawn (a calibration that looks at a few diffraction orders draws a few thousand pixels'
    noise instead of the whole sensor's).

    ``stall`` makes every capture time out, as a camera that stops delivering frames.
    """

    def __init__(self, world: OpticalWorld, *, exposure_s: float = 1e-3, name: str = "camera",
                 exposure_bounds_s=(1e-6, 10.0), trigger_mode: str = "software",
                 trigger_delay_s: float = 0.0, trigger_overlap: str = "off", frame_ahead: bool | None = None):
        self.world = world
        sensor = world.sensor
        self._exposure = float(exposure_s)
        self.stall = False
        self.frame_ahead = frame_ahead
        self.frame_ahead_hits = 0
        self.last_power_w = 0.0
        self.last_saturated = 0
        self.last_mid_exposure_t = 0.0
        self.last_trigger_s: float | None = None
        self._trigger_mode = "software"
        self._trigger_delay_s = 0.0
        self._edges: list[float] = []           # pending trigger-input edges (clock seconds, sorted)
        self._armed_s = -np.inf                 # hardware trigger: edges from this time on start a frame
        self._read_free_s = -np.inf             # when the last frame's readout ends (one readout at a time)
        if trigger_overlap not in TRIGGER_OVERLAPS:
            raise ValueError(f"{name}: trigger overlap {trigger_overlap!r}; expected one of {TRIGGER_OVERLAPS}")
        self.trigger_overlap = trigger_overlap
        self._edge_signal = threading.Condition()
        self._ahead_slot = f"frame:{name}:{id(self)}"
        self._roi: tuple[int, int, int, int] | None = None     # hardware window (x, w, y, h); None: whole sensor
        super().__init__(tuple(sensor.resolution), bitdepth=int(sensor.bitdepth),
                         pitch_um=sensor.pitch_m * 1e6, readout_s=sensor.readout_s, name=name,
                         exposure_bounds_s=exposure_bounds_s, capture_attempts=1)
        self.trigger_mode = trigger_mode
        self.trigger_delay_s = trigger_delay_s
        world.upload_listeners.append(self._after_upload)

    @property
    def identity(self) -> DeviceIdentity:
        return DeviceIdentity("optgen", "simulated camera", serial="twin", firmware="twin")

    @staticmethod
    def info(verbose: bool = True) -> list:
        return []

    def close(self) -> None:
        """Stop computing frames ahead (nothing else to release)."""
        if self._after_upload in self.world.upload_listeners:
            self.world.upload_listeners.remove(self._after_upload)
        for n in range(RENDER_SLOTS):
            self.world.ahead.discard(self._frame_slot((n, 0)))

    def describe(self) -> dict:
        return {**super().describe(), "trigger": {"mode": self.trigger_mode, "delay_s": self.trigger_delay_s,
                                                  "overlap": self.trigger_overlap}}

    @property
    def saturation_dn(self) -> int:
        """The full well or the ADC's top, whichever comes first."""
        s = self.world.sensor
        return int(min(2 ** int(s.bitdepth) - 1, np.floor(s.full_well_e * s.gain_dn_per_e + s.dark_offset_dn)))

    # --- trigger ----------------------------------------------------------------------
    @property
    def trigger_mode(self) -> str:
        return self._trigger_mode

    @trigger_mode.setter
    def trigger_mode(self, mode: str) -> None:
        if mode not in TRIGGER_MODES:
            raise ValueError(f"{self.name}: trigger mode {mode!r}; expected one of {TRIGGER_MODES}")
        if mode == "hardware" and self._trigger_mode != "hardware":
            self._armed_s = self.world.clock.now()
        self._trigger_mode = mode

    @property
    def trigger_delay_s(self) -> float:
        """Time from a trigger edge to the start of the exposure."""
        return self._trigger_delay_s

    @trigger_delay_s.setter
    def trigger_delay_s(self, delay_s: float) -> None:
        delay_s = float(delay_s)
        if not (np.isfinite(delay_s) and delay_s >= 0):
            raise ValueError(f"{self.name}: trigger delay {delay_s!r} s; expected a finite value >= 0")
        self._trigger_delay_s = delay_s

    def trigger_input(self, t_s: float) -> None:
        """An edge on the trigger input at time ``t_s`` (world clock; may lie in the future)."""
        with self._edge_signal:
            bisect.insort(self._edges, float(t_s))
            self._edge_signal.notify_all()

    def trigger_from(self, slm, delay_s: float = 0.0) -> None:
        """Wire ``slm``'s frame-shown output to the trigger input and switch to hardware trigger.

        The exposure then starts ``delay_s`` after the SLM shows a new frame (the settle time
        gives a settled pattern). Undo with ``slm.on_frame_shown.remove(camera.trigger_input)``
        and ``camera.trigger_mode = "software"``.
        """
        self.trigger_delay_s = delay_s
        if self.trigger_input not in slm.on_frame_shown:
            slm.on_frame_shown.append(self.trigger_input)
        self.trigger_mode = "hardware"

    def trigger_off(self, slm) -> None:
        """Undo :meth:`trigger_from`: back to software-triggered captures."""
        if self.trigger_input in slm.on_frame_shown:
            slm.on_frame_shown.remove(self.trigger_input)
        self.trigger_mode = "software"

    def _await_trigger(self, t_call: float, timeout_s: float) -> float:
        """The first edge since the camera was armed, if it comes by the timeout; else CaptureTimeout."""
        clock = self.world.clock
        deadline = t_call + timeout_s
        with self._edge_signal:
            while True:
                del self._edges[:bisect.bisect_left(self._edges, self._armed_s)]  # missed: camera busy
                if self._edges and self._edges[0] <= deadline:
                    return self._edges.pop(0)
                remaining = deadline - clock.now()
                if not getattr(clock, "realtime", False) or remaining <= 0:
                    break
                self._edge_signal.wait(remaining)  # another thread may upload meanwhile
        sleep_until(clock, deadline)
        raise CaptureTimeout(self.name, f"no trigger within {timeout_s:.3g} s (hardware trigger mode)")

    # --- window of interest (hardware) --------------------------------------------------
    def _set_woi_hw(self, woi) -> None:
        """A window of interest; its readout takes the sensor's readout time in proportion to its rows
        (a CMOS sensor reads its rows out one after another)."""
        x, w, y, h = (int(v) for v in woi)
        width, height = self.world.sensor.resolution
        full = (x, w, y, h) == (0, width, 0, height)
        self._roi = None if full else (x, w, y, h)
        self.readout_s = self.world.sensor.readout_s * (1.0 if full else h / float(height))

    def _get_woi_hw(self) -> tuple[int, int, int, int]:
        if self._roi is None:
            width, height = self.world.sensor.resolution
            return (0, int(width), 0, int(height))
        return self._roi

    def _window(self, picture: np.ndarray) -> np.ndarray:
        """The part of a whole-sensor picture the window of interest reads out."""
        if self._roi is None:
            return picture
        x, w, y, h = self._roi
        return picture[y:y + h, x:x + w]

    # --- exposure ---------------------------------------------------------------------
    def _get_exposure_hw(self) -> float:
        return self._exposure

    def _set_exposure_hw(self, exposure_s: float) -> None:
        changed = float(exposure_s) != self._exposure
        self._exposure = float(exposure_s)
        if changed:
            self._draw_ahead(self.world.render_key())      # a frame at the new exposure comes next

    def _get_images_hw(self, image_count: int, timeout_s: float, out=None) -> np.ndarray:
        """``image_count`` frames in succession (slmsuite's ``get_images``): while one exposes and
        reads out, the next frame's noise is drawn ahead on the same settled light."""
        out = self._get_out((int(image_count),) + tuple(self._hw_image_shape), out)
        for i in range(int(image_count)):
            out[i] = self._get_image_hw(timeout_s, draw_next=i + 1 < image_count)
        return out

    def _get_image_hw(self, timeout_s: float, draw_next: bool = False) -> np.ndarray:
        clock = self.world.clock
        if self.stall:
            clock.sleep(timeout_s)
            raise CaptureTimeout(self.name, f"no frame within {timeout_s:.3g} s")
        t_start = clock.now()
        if self.trigger_mode == "hardware":
            self.last_trigger_s = self._await_trigger(t_start, timeout_s)
            t_start = self.last_trigger_s + self.trigger_delay_s
            sleep_until(clock, t_start)
        t_mid = t_start + self._exposure / 2.0
        self.last_mid_exposure_t = t_mid
        self.last_exposure_start_s = t_start
        ahead = self._frame_computed_ahead(t_mid)
        if ahead is not None:
            power, frame, saturated = ahead
            self.world.last_delivered_power_w = power
        else:
            power = self.world.delivered_power_w()
            if power > 0:
                unit_power = self._window(self.world.unit_sensor_power(t_mid))
            else:
                unit_power, power = np.zeros(self._hw_image_shape, dtype=np.float32), 0.0
            frame, saturated = expose(unit_power, self._exposure, self.world.wavelength_m,
                                      self.world.sensor, self.world.rng, self._defects(self._roi), scale=power)
        if draw_next:
            self._draw_ahead(self.world.settled_render_key(t_mid))
        t_exposed = t_start + self._exposure
        t_end = max(t_exposed, self._read_free_s) + self.readout_s
        self._read_free_s = t_end
        overlapped = self.trigger_mode == "hardware" and self.trigger_overlap == "readout"
        self._armed_s = t_exposed if overlapped else t_end
        sleep_until(clock, t_end)
        self.last_power_w = power
        self.last_saturated = saturated
        return frame

    # --- computing the next frame ahead (wall clock) -------------------------------------
    @property
    def frame_ahead_enabled(self) -> bool:
        if self.frame_ahead is not None:
            return bool(self.frame_ahead)
        return self.world.render_ahead_enabled

    def _laser_and_sensor(self) -> tuple:
        """What a frame depends on besides the SLMs: (emission, setpoint, power noise, exposure, window,
        sensor)."""
        w = self.world
        return (w.laser_emission, w.laser_setpoint_w, w.laser.power_noise_rms, self._exposure, self._roi,
                dataclasses.replace(w.sensor))

    def _frame_slot(self, render_key) -> str:
        """The frame-ahead slot of a render key: one per render slot (see world.render_slot), so a
        run that uploads ahead of its captures finds the frames of the earlier uploads too."""
        return f"{self._ahead_slot}:{render_slot(render_key)}"

    @staticmethod
    def _frame_key(render_key, state: tuple) -> tuple:
        return (render_key, *state[:5], dataclasses.astuple(state[5]))

    def _after_upload(self, key: str) -> None:
        """World upload listener: draw the next frame ahead on the settled light."""
        self._draw_ahead(self.world.render_key())

    def _draw_ahead(self, render_key) -> None:
        """Draw a frame ahead on the light of ``render_key`` (if the world renders it ahead) with the
        laser, exposure and sensor as they are now; None: nothing to draw on."""
        if render_key is None or not self.frame_ahead_enabled:
            return
        render = self.world.ahead.get(render_slot(render_key), render_key)
        if render is None:
            return
        state = self._laser_and_sensor()  # the job works on this snapshot, filed under it
        self.world.ahead.submit(self._frame_slot(render_key), self._frame_key(render_key, state), self._frame_job, render,
                                state, lane=FRAME_LANE)

    def _frame_job(self, render, state: tuple):
        """Worker thread: (power, frame, saturated pixels) of an exposure on the settled light."""
        emission, setpoint_w, noise_rms, exposure_s, roi, sensor = state
        unit = render.result()
        if roi is not None:
            x, w, y, h = roi
            unit = unit[y:y + h, x:x + w]
        world = self.world
        power = world.draw_power_w(emission, setpoint_w, noise_rms)
        if power <= 0:
            unit, power = np.zeros(unit.shape, dtype=np.float32), 0.0
        frame, saturated = expose(unit, exposure_s, world.wavelength_m, sensor, world.rng, self._defects(roi),
                                  scale=power)
        return power, frame, saturated

    def _defects(self, roi):
        defects = self.world.sensor_defects
        return defects.window(roi) if defects is not None else None

    def _frame_computed_ahead(self, t_mid: float):
        """The frame drawn ahead for the current state if both SLMs are settled at ``t_mid``; used once."""
        if not self.frame_ahead_enabled:
            return None
        render_key = self.world.settled_render_key(t_mid)
        if render_key is None:
            return None
        future = self.world.ahead.take(self._frame_slot(render_key), self._frame_key(render_key, self._laser_and_sensor()))
        if future is None:
            return None
        result = future.result()
        self.frame_ahead_hits += 1
        return result
