"""The live view's hold on an open bench: the camera runs continuously, the page's commands are
carried out between frames, and the laser is on only while the operator asks and a page watches.

Only the main thread touches a device (:meth:`LiveSession.step`); the web server's threads queue
commands (:meth:`LiveSession.submit`, answered within a bound) and read frames from slots. The
laser:

- goes on only at the operator's command, at a power already checked against the ceiling (a
  power above it is refused before any byte reaches the laser);
- is checked every :data:`LASER_CHECK_S` while on (faults, interlock, emission): anything wrong
  switches it off (verified) and the page says why;
- goes off (verified) when no page has asked for a frame for ``lease_s`` (a closed tab, a
  laptop gone to sleep), and when the session closes, whatever ends it.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from optgen.drivers import stop as stopping
from optgen.drivers.errors import CaptureTimeout, OptgenError
from optgen.lab.live.patterns import PATTERNS, LiveCommandError, make_pattern
from optgen.lab.live.picture import Overlay, overlay_from_registration
from optgen.lab.live.slots import LatestSlot

__all__ = ["LASER_CHECK_S", "LEASE_S", "LiveSession"]

log = logging.getLogger("optgen.live")

LASER_CHECK_S = 0.5        # how often the laser is asked for faults and emission while it is on
LEASE_S = 15.0             # the laser goes off when no page has looked for this long
COMMAND_WAIT_S = 10.0      # the longest a page's request waits for its command to be carried out
MAX_EXPOSURE_S = 2.0       # a longer exposure would leave the page's commands (laser off) waiting that long
SLMS = ("encoding_slm", "decoding_slm")


@dataclass
class _Command:
    name: str
    params: dict
    done: threading.Event = field(default_factory=threading.Event)
    result: dict = field(default_factory=dict)


class LiveSession:
    """Runs the camera and carries out the page's commands on an open bench (main thread only)."""

    def __init__(self, bench, sources=None, *, lease_s: float = LEASE_S, seed: int = 0) -> None:
        self.bench = bench
        dev = bench.devices
        self.config = bench.config
        self.devices = dev
        self.sources = sources
        self.lease_s = float(lease_s)
        self.frames: LatestSlot = LatestSlot()
        self.quit = threading.Event()
        self.scale = "full"
        self.message = ""            # the last thing the operator should read
        self.error = ""              # the last thing that went wrong
        self.patterns = {name: {"kind": "(as opened)"} for name in SLMS}
        self.laser_on = False
        self.power_w = float(self.config.laser.power_w)
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._last_seen = time.monotonic()
        self._next_laser_check = 0.0
        self._seeds = sources.seeds(seed) if sources is not None else None
        self.overlay = self._overlay()
        self.captured = 0
        self.timeouts = 0
        self._description = self._describe()      # read here, on the main thread: the page asks from others

    # --- what the page sees ---------------------------------------------------------------
    def _overlay(self) -> Overlay:
        from optgen.lab.run.registration import OutputRegistration

        cals = self.devices.calibrations
        measured = cals.output_to_sensor() if cals is not None else None
        registration = OutputRegistration(self.config, output_to_sensor=measured)
        source = (f"alignment {cals.alignment.id}" if measured is not None
                  else "nominal placement from the bench file (not calibrated: optgen calibrate alignment)")
        return overlay_from_registration(registration, measured is not None, source)

    @property
    def saturation_dn(self) -> float:
        cals = self.devices.calibrations
        measured = cals.saturation_dn() if cals is not None else None
        return float(measured) if measured is not None else float(self.devices.camera.saturation_dn)

    def describe(self) -> dict:
        """What the page needs once: the bench, the sensor, the overlay, the limits of each control."""
        return self._description

    def _describe(self) -> dict:
        dev = self.devices
        cam = dev.camera
        low, high = self._exposure_bounds_s()
        return {"mode": "live", "bench": self.config.name, "source": str(self.config.source),
                "sensor": {"width": int(cam.shape[1]), "height": int(cam.shape[0]), "bitdepth": int(cam.bitdepth),
                           "saturation_dn": self.saturation_dn},
                "overlay": self.overlay.as_dict(),
                "laser": {"name": dev.laser.name, "wavelength_nm": float(dev.laser.wavelength_nm),
                          "ceiling_mw": dev.laser.ceiling_w * 1e3},
                "exposure_bounds_ms": [low * 1e3, high * 1e3],
                "patterns": list(PATTERNS), "slms": list(SLMS),
                "seeds": len(self._seeds) if self._seeds is not None else 0,
                "calibrations": dev.calibrations.describe() if dev.calibrations is not None
                else ["UNCALIBRATED: no calibration store"],
                "lease_s": self.lease_s}

    def state(self, renderer=None) -> dict:
        """The state the page polls (read from the main thread's last values; no device is asked)."""
        return {"laser": {"on": self.laser_on, "power_mw": self.power_w * 1e3},
                "exposure_ms": float(self.devices.camera.exposure_s) * 1e3,
                "patterns": self.patterns, "scale": self.scale, "message": self.message,
                "error": self.error or (renderer.error if renderer is not None else ""),
                "camera_fps": round(self.frames.rate_hz(), 1),
                "shown_fps": round(renderer.shown.rate_hz(), 1) if renderer is not None else 0.0,
                "captured": self.captured, "timeouts": self.timeouts}

    def touch(self) -> None:
        """A page asked for something: the laser's lease is renewed."""
        self._last_seen = time.monotonic()

    # --- commands (any thread) -----------------------------------------------------------
    def submit(self, name: str, params: dict | None = None, timeout_s: float = COMMAND_WAIT_S) -> dict:
        """Queue a command for the main thread; its result, or an error when it was not carried out in time."""
        if self.quit.is_set():
            return {"ok": False, "error": "the live view is closing"}
        command = _Command(str(name), dict(params or {}))
        self._commands.put(command)
        if not command.done.wait(timeout_s):
            return {"ok": False, "error": f"{name}: not carried out within {timeout_s:g} s (the bench is busy)"}
        return command.result

    # --- the main thread -----------------------------------------------------------------
    def step(self) -> None:
        """Carry out waiting commands, watch the laser, take one frame and publish it."""
        stopping.check()
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                break
            self._carry_out(command)
        self._watch_laser()
        if self.quit.is_set():
            return
        camera = self.devices.camera
        try:
            frame = camera.capture()
        except CaptureTimeout as exc:
            self.timeouts += 1
            self.error = f"{camera.name}: {exc}"
            return
        self.captured += 1
        self.frames.put((frame, time.monotonic(), {"laser_on": self.laser_on,
                                                   "exposure_ms": float(camera.exposure_s) * 1e3}))

    def run(self, minutes: float | None = None) -> None:
        """Step until the page says quit, ``minutes`` pass, or a stop is requested (Ctrl-C, SIGTERM)."""
        end = time.monotonic() + minutes * 60.0 if minutes is not None else math.inf
        control = stopping.active()
        while not self.quit.is_set() and time.monotonic() < end:
            if control is not None and control.requested:
                break
            self.step()

    def close(self) -> None:
        """Laser off (verified); commands still queued are answered as not carried out."""
        self.quit.set()
        try:
            with stopping.active_shield():
                self.devices.laser.safe_off()
        finally:
            self.laser_on = False
            while True:
                try:
                    command = self._commands.get_nowait()
                except queue.Empty:
                    break
                command.result = {"ok": False, "error": "the live view closed"}
                command.done.set()

    def _carry_out(self, command: _Command) -> None:
        try:
            said = self._do(command.name, command.params)
            command.result = {"ok": True, "message": said}
            self.message, self.error = said, ""
        except OptgenError as exc:
            command.result = {"ok": False, "error": str(exc)}
            self.error = str(exc)
        except Exception as exc:        # a driver's surprise: light off first, then say it
            log.exception("live view: command %s failed", command.name)
            self._laser_off(f"{command.name} failed unexpectedly ({exc!r})")
            command.result = {"ok": False, "error": f"{command.name}: {exc!r}; the laser is off"}
        finally:
            command.done.set()

    def _do(self, name: str, params: dict) -> str:
        laser = self.devices.laser
        if name == "laser":
            on = params.get("on")
            if not isinstance(on, bool):
                raise LiveCommandError(f"laser: on = {on!r}; expected true or false")
            if not on:
                self._laser_off("")
                return f"{laser.name}: off (verified)"
            laser.set_power(self.power_w)
            if not laser.set_emission(True):
                self._laser_off("")
                raise LiveCommandError(f"{laser.name}: emission did not turn on (read-back says off); check the "
                                       f"key switch and the interlock")
            self.laser_on = True
            self._last_seen = time.monotonic()
            self._next_laser_check = time.monotonic() + LASER_CHECK_S
            return f"{laser.name}: on at {self.power_w * 1e3:.4g} mW"
        if name == "power":
            value = params.get("mw")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise LiveCommandError(f"{laser.name}: power mw = {value!r}; expected a number of milliwatts")
            watts = laser.check_power(float(value) * 1e-3)         # above the ceiling: refused, nothing sent
            if self.laser_on:
                laser.set_power(watts)
            self.power_w = watts
            return f"{laser.name}: power {watts * 1e3:.4g} mW" + ("" if self.laser_on else " (when switched on)")
        if name == "exposure":
            return self._set_exposure(params.get("ms"))
        if name == "pattern":
            return self._show_pattern(params)
        if name == "scale":
            mode = params.get("mode")
            if mode not in ("full", "auto"):
                raise LiveCommandError(f"scale: mode = {mode!r}; expected 'full' or 'auto'")
            self.scale = mode
            return f"display scale {mode}"
        if name == "quit":
            self.quit.set()
            return "closing: the laser goes off"
        raise LiveCommandError(f"command {name!r} is not known; expected laser, power, exposure, pattern, "
                               f"scale or quit")

    def _set_exposure(self, ms) -> str:
        camera = self.devices.camera
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
            raise LiveCommandError(f"{camera.name}: exposure ms = {ms!r}; expected a positive number of milliseconds")
        low, high = self._exposure_bounds_s()
        if not low <= ms * 1e-3 <= high:
            raise LiveCommandError(f"{camera.name}: exposure {ms:g} ms is outside {low * 1e3:g} .. {high * 1e3:g} ms "
                                   f"(the camera's bounds; the live view takes at most {MAX_EXPOSURE_S:g} s)")
        camera.set_exposure(ms * 1e-3)
        return f"{camera.name}: exposure {float(camera.exposure_s) * 1e3:.4g} ms (read back)"

    def _exposure_bounds_s(self) -> tuple[float, float]:
        """The exposures the live view sets: the camera's bounds, at most :data:`MAX_EXPOSURE_S`."""
        bounds = self.devices.camera.exposure_bounds_s
        low, high = (float(bounds[0]), float(bounds[1])) if bounds is not None else (0.0, math.inf)
        return low, min(high, MAX_EXPOSURE_S)

    def _show_pattern(self, params: dict) -> str:
        role = params.get("slm")
        if role not in SLMS:
            raise LiveCommandError(f"pattern: slm = {role!r}; expected one of {', '.join(SLMS)}")
        slm = getattr(self.devices, role)
        kind = params.get("kind")
        g = self.config.geometry
        seeds = self._seeds
        phase = make_pattern(str(kind), params, slm_name=slm.name, shape=tuple(slm.shape),
                             pitch_m=float(slm.pitch_um[0]) * 1e-6, wavelength_m=self.config.wavelength_m,
                             superpixel_px=g.superpixel_px,
                             seed_phase=(lambda k: seeds.seed(k).phase) if seeds is not None else None,
                             seed_count=len(seeds) if seeds is not None else 0,
                             decoder=(lambda: self._decoder_for(slm)) if self.sources is not None else None)
        self.bench.show(**{"encoding" if role == "encoding_slm" else "decoding": phase})
        shown = {k: v for k, v in params.items() if k not in ("slm",)}
        self.patterns[role] = shown
        return f"{slm.name}: showing {kind}" + "".join(f", {k} {v}" for k, v in shown.items() if k != "kind")

    def _decoder_for(self, slm) -> np.ndarray:
        """The decoder phase as a run shows it on SLM2 (placed by the alignment), centred elsewhere."""
        from optgen.lab.run.placement import place_decoder

        phase = self.sources.decoder_phase
        if slm is not self.devices.decoding_slm:
            return phase
        cals = self.devices.calibrations
        return place_decoder(phase, tuple(slm.shape), cals.decoder_placement() if cals is not None else None,
                             float(slm.pitch_um[0]) * 1e-6)

    def _watch_laser(self) -> None:
        if not self.laser_on:
            return
        now = time.monotonic()
        if now - self._last_seen > self.lease_s:
            self._laser_off(f"no page has looked at the live view for {self.lease_s:g} s")
            return
        if now < self._next_laser_check:
            return
        self._next_laser_check = now + LASER_CHECK_S
        laser = self.devices.laser
        try:
            faults, emission = laser.faults(), laser.emission
        except OptgenError as exc:
            self._laser_off(f"it could not be read ({exc})")
            return
        if faults:
            self._laser_off(f"it reported {', '.join(faults)}")
        elif not emission:
            self._laser_off("its emission went off by itself (interlock, key switch, controller)")

    def _laser_off(self, why: str) -> None:
        """Laser off, verified; ``why`` (if any) is what the page says."""
        laser = self.devices.laser
        self.laser_on = False
        with stopping.active_shield():
            laser.safe_off()
        if why:
            self.error = f"{laser.name}: switched off: {why}"
            log.warning("live view: %s", self.error)
