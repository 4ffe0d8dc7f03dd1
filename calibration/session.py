"""A calibration session: show patterns on the two SLMs, capture frames, keep the laser safe.

Every calibration measures through this one class, so that
- each SLM is waited for (latency + settle) only when its pattern changed,
- patterns shown and frames captured are counted (the calibration time figure),
- the laser emits only inside ``with session.light():`` and is verified off on leaving it,
  whatever happens inside (the ``Bench`` also turns it off when closed),
- the exposure is chosen so the brightest pattern of a measurement stays below saturation,
  and a bench with no light or with light that saturates even at the shortest exposure
  stops with a message that says which and what to check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, TypeVar

import cv2
import numpy as np

from optgen.drivers.errors import OptgenError

__all__ = ["CalibrationError", "CalibrationSession", "SessionCounters", "peak_level"]

T = TypeVar("T")


class CalibrationError(OptgenError, RuntimeError):
    """A calibration that cannot converge; the message says which and what to check."""


class TooBright(CalibrationError):
    """The pattern shown saturates the camera, or comes within its noise of saturating, at the shortest
    exposure (:meth:`CalibrationSession.auto_exposure_dimming` then dims the laser)."""


#: At the shortest exposure, a peak above this fraction of the range is too close to saturation to
#: measure on: the next frames' noise crosses the 98 % mark (seen at 450 nm on the RGB twin: a focus at
#: 0.97 of the range, accepted, then every frame saturated).
NEAR_SATURATION = 0.85


@dataclass
class SessionCounters:
    patterns_shown: int = 0       # SLM uploads (each costs latency + settle)
    frames_captured: int = 0
    wait_s: float = 0.0           # time spent waiting for SLMs to settle (bench clock)
    retakes: int = 0              # sweep patterns shown again alone (their frames might have held the next one)
    darks_modelled: int = 0       # dark frames drawn from two measured ones instead of captured
    started_s: float = field(default_factory=time.perf_counter)

    def as_dict(self) -> dict:
        return {"patterns_shown": self.patterns_shown, "frames_captured": self.frames_captured,
                "slm_wait_s": round(self.wait_s, 6), "retakes": self.retakes, "darks_modelled": self.darks_modelled,
                "wall_time_s": round(time.perf_counter() - self.started_s, 4)}


class CalibrationSession:
    """Patterns in, frames (counts above dark, float32) out, on an open ``lab.bench.Bench``."""

    def __init__(self, bench, power_w: float | None = None, pipelined: bool = True):
        self.bench = bench
        self.pipelined = bool(pipelined)   # sweeps upload ahead of their captures (lab.pipeline)
        self.config = bench.config
        self.power_w = float(bench.config.laser.power_w if power_w is None else power_w)
        bench.laser.check_power(self.power_w)
        self.counters = SessionCounters()
        self.dark: np.ndarray | None = None          # dark frame at the current exposure (float32)
        self._dark_median: tuple | None = None       # (the dark frame, its median): auto-exposure asks often
        self._dark_exposure_s: float | None = None
        self._measured_darks: dict[float, np.ndarray] = {}   # exposure -> a whole-sensor dark frame taken
        self._lit = False
        self.progress = None                         # a calibration.progress.CalibrationProgress, told of each pattern

    # --- SLMs ---------------------------------------------------------------------------
    @property
    def slms(self) -> dict:
        return {"encoding_slm": self.bench.encoding_slm, "decoding_slm": self.bench.decoding_slm}

    def show(self, encoding: np.ndarray | None = None, decoding: np.ndarray | None = None) -> None:
        """Upload the given patterns (radians through the LUT, or uint8 gray levels as they are),
        then wait for the slowest SLM that changed. ``None`` leaves that SLM as it is."""
        waits = []
        for key, pattern in (("encoding_slm", encoding), ("decoding_slm", decoding)):
            if pattern is None:
                continue
            slm = self.slms[key]
            slm.set_phase(pattern)
            self._shown()
            waits.append(slm.timing.wait_s)
        if waits:
            self.bench.clock.sleep(max(waits))
            self.counters.wait_s += max(waits)

    def _shown(self) -> None:
        self.counters.patterns_shown += 1
        if self.progress is not None:
            self.progress.pattern()

    def sweep(self, key: str, patterns: Sequence[np.ndarray], grab: Callable[[int], np.ndarray],
              process: Callable[[int, np.ndarray], T], frames_per_pattern: int = 1) -> list[T]:
        """Show ``patterns`` one after the other on SLM ``key`` (the other SLM as it is, settled),
        take each one's frames with ``grab(i)`` (``frames_per_pattern`` camera frames, one after
        the other: the next pattern waits for all of them) and reduce them with ``process(i, frames)``.

        With ``pipelined`` the next upload is made while earlier patterns still sit out the
        SLM's latency (:mod:`lab.pipeline`): the frames are the same, the time per pattern
        drops from latency + settle + readout towards settle + exposure. A pattern whose frames
        might have caught the next one moving (a stall) is shown again alone and retaken.
        """
        from optgen.drivers.common.schedule import ShowCaptureSchedule, pipelined_frames

        slm = self.slms[key]
        clock = self.bench.clock

        def upload(i: int) -> None:
            slm.set_phase(patterns[i])
            self._shown()

        if not self.pipelined:
            results = []
            for i in range(len(patterns)):
                self.show(**{key.removesuffix("_slm"): patterns[i]})
                results.append(process(i, grab(i)))
            return results
        schedule = ShowCaptureSchedule(slm.timing, self.bench.camera.timing,
                                       frames_per_pattern=max(1, int(frames_per_pattern)))
        results, retake = pipelined_frames(clock, upload, grab, process, len(patterns), schedule)
        for i in retake:
            self.show(**{key.removesuffix("_slm"): patterns[i]})
            results[i] = process(i, grab(i))
            self.counters.retakes += 1
        return results

    def uniform(self, key: str, gray: int = 0) -> np.ndarray:
        """A uniform gray-level pattern for SLM ``key``."""
        slm = self.slms[key]
        return np.full(slm.shape, gray, dtype=slm.dtype)

    # --- light and camera ----------------------------------------------------------------
    @contextmanager
    def light(self) -> Iterator[None]:
        """Laser on at the session's power for the block; off (verified) when it ends, however."""
        laser = self.bench.laser
        try:
            laser.set_power(self.power_w)
            if not laser.set_emission(True):
                raise CalibrationError(f"{laser.name}: emission did not turn on (read-back says off); check "
                                       f"the interlock and the key switch")
            self._lit = True
            yield
        finally:
            self._lit = False
            laser.safe_off()

    def capture_dark(self, frames: int = 4) -> np.ndarray:
        """Dark frame (mean of ``frames``) at the current exposure, with the laser off."""
        if self._lit:
            raise CalibrationError("a dark frame needs the laser off; capture it outside session.light()")
        self.bench.laser.set_emission(False)
        self.dark = np.mean(self._raw_series(frames), axis=0, dtype=np.float64).astype(np.float32)
        self._dark_exposure_s = self.bench.camera.timing.exposure_s
        if self._whole_sensor():
            self._measured_darks[self._dark_exposure_s] = self.dark
        return self.dark

    def _whole_sensor(self) -> bool:
        """Whether the camera reads its whole sensor now (no window of interest)."""
        width, height = self.config.camera.resolution
        return tuple(self.bench.camera.shape) == (int(height), int(width))

    def modelled_dark(self, exposure_s: float) -> np.ndarray | None:
        """The dark frame at ``exposure_s`` from two measured at other exposures, or None.

        A dark frame is an offset plus what grows with the exposure (dark current, stray light):
        linear in it, so two frames measured at exposures at least 2x apart give any exposure
        between half the shorter and twice the longer (read noise adds no more than one frame's).
        Saves a laser off / on and the frames of a dark at each exposure an auto-exposure lands on."""
        if len(self._measured_darks) < 2:
            return None
        short, long = min(self._measured_darks), max(self._measured_darks)
        if long < 2.0 * short or not 0.5 * short <= exposure_s <= 2.0 * long:
            return None
        d_short, d_long = self._measured_darks[short], self._measured_darks[long]
        return (d_short + (d_long - d_short) * np.float32((exposure_s - short) / (long - short))).astype(np.float32)

    def dark_for_exposure(self) -> np.ndarray:
        """A dark frame at the current exposure: modelled where it can be (:meth:`modelled_dark`),
        else captured with the laser off for the moment (inside ``light()`` it comes back on)."""
        exposure = self.bench.camera.timing.exposure_s
        modelled = self.modelled_dark(exposure) if self._whole_sensor() else None
        if modelled is not None:
            self.dark, self._dark_exposure_s = modelled, exposure
            self.counters.darks_modelled += 1
            return modelled
        with self._dark_interval():
            return self.capture_dark()

    def _raw(self) -> np.ndarray:
        frame = self.bench.camera.capture()
        self.counters.frames_captured += 1
        return frame

    def _raw_series(self, frames: int) -> np.ndarray:
        """``frames`` raw frames of the scene shown, in succession (the camera's series: on the twin
        each next one is drawn while the last exposes), (frames, h, w)."""
        if frames == 1:
            return self._raw()[None]
        series = self.bench.camera.capture_series(frames)
        self.counters.frames_captured += frames
        return series

    def _check_dark(self) -> None:
        if self.dark is None or self._dark_exposure_s != self.bench.camera.timing.exposure_s:
            raise CalibrationError("no dark frame at this exposure; call capture_dark() after set_exposure()")

    def capture(self, frames: int = 1) -> np.ndarray:
        """Mean of ``frames`` frames, in counts above the dark frame (float32)."""
        self._check_dark()
        series = self._raw_series(frames)
        return (series.sum(axis=0, dtype=np.float64) / frames).astype(np.float32) - self.dark

    def capture_frames(self, frames: int) -> np.ndarray:
        """``frames`` frames in succession, each in counts above the dark frame, (frames, h, w) float32."""
        self._check_dark()
        return self._raw_series(frames).astype(np.float32) - self.dark

    @contextmanager
    def window(self, rows: slice, cols: slice) -> Iterator[tuple[int, int]]:
        """Read out only ``rows`` x ``cols`` of the sensor while the block runs (the camera's
        window of interest: a camera reads a small window out faster, and the twin draws only
        its pixels); frames and the dark frame they are compared with are that region. Yields
        the window's top-left corner (row, col) in whole-frame pixels (the camera may widen the
        window to its own steps); the whole sensor comes back when the block ends, however."""
        camera = self.bench.camera
        full_dark = self.dark
        height, width = camera.shape
        y0, y1 = max(0, rows.start), min(height, rows.stop)
        x0, x1 = max(0, cols.start), min(width, cols.stop)
        try:
            camera.set_woi((x0, x1 - x0, y0, y1 - y0))
            x, w, y, h = (int(v) for v in camera.woi)
            if not (x <= x0 and y <= y0 and x + w >= x1 and y + h >= y1):   # snapped short: whole frames
                camera.set_woi(None)
                x, y, h, w = 0, 0, height, width
            if full_dark is not None:
                self.dark = full_dark[y:y + h, x:x + w]
            yield y, x
        finally:
            camera.set_woi(None)
            if self.dark is not None and full_dark is not None:
                self.dark = full_dark

    def capture_raw(self) -> np.ndarray:
        """One frame as the camera gives it (for saturation checks)."""
        return self._raw()

    def set_exposure(self, exposure_s: float) -> float:
        camera = self.bench.camera
        camera.set_exposure(float(exposure_s))
        return camera.timing.exposure_s

    def auto_exposure(self, target_fraction: float = 0.6, min_snr_counts: float = 50.0) -> float:
        """Choose the exposure so the current (brightest) pattern peaks near ``target_fraction`` of
        saturation; then take a dark frame at it. Call inside ``light()`` with the brightest pattern
        shown. Raises CalibrationError on no light or on saturation at the shortest exposure."""
        if not self._lit:
            raise CalibrationError("auto_exposure needs the laser on (inside session.light())")
        camera = self.bench.camera
        saturation = camera.saturation_dn
        lo, hi = camera.exposure_bounds_s
        exposure = camera.timing.exposure_s
        offset = self._offset_guess()
        for _ in range(12):
            peak = peak_level(self._raw()) - offset
            top = saturation - offset
            if peak >= 0.98 * top:
                if exposure <= lo * 1.0001:
                    raise TooBright(
                        f"{camera.name}: frames saturate even at the shortest exposure ({lo * 1e3:.3g} ms); "
                        f"lower [laser] power_mw or add an ND filter")
                exposure = max(lo, exposure / 8.0)
            elif peak < min_snr_counts:
                if exposure >= hi * 0.9999:
                    raise CalibrationError(
                        f"{camera.name}: no light on the sensor (peak {peak:.1f} counts above dark at the longest "
                        f"exposure {hi:.3g} s); check the laser, the shutter and that the beam reaches the sensor")
                exposure = min(hi, exposure * (8.0 if peak < min_snr_counts / 8 else 4.0))
            else:
                if exposure <= lo * 1.0001 and peak > NEAR_SATURATION * top:
                    raise TooBright(
                        f"{camera.name}: frames reach {peak / top:.0%} of saturation at the shortest exposure "
                        f"({lo * 1e3:.3g} ms); lower [laser] power_mw or add an ND filter")
                new = float(np.clip(exposure * target_fraction * top / peak, lo, hi))
                if abs(new - exposure) < 0.05 * exposure:
                    break
                exposure = new
            exposure = self.set_exposure(exposure)
        else:
            raise CalibrationError(f"{camera.name}: could not find an exposure that avoids saturation "
                                   f"and shows light; check the beam power and the camera gain")
        self.dark_for_exposure()
        return exposure

    def auto_exposure_dimming(self, target_fraction: float = 0.6, max_dimming_steps: int = 6) -> float:
        """:meth:`auto_exposure`, lowering the laser power tenfold (up to ``max_dimming_steps``
        times) where the pattern saturates even at the shortest exposure: a focal spot concentrates
        the beam far more than a generated image does. Call inside ``light()``, and inside
        :meth:`power_kept` so the run power comes back afterwards."""
        for step in range(max_dimming_steps + 1):
            try:
                return self.auto_exposure(target_fraction=target_fraction)
            except TooBright:
                if step == max_dimming_steps:
                    raise
                self.power_w /= 10.0
                self.bench.laser.set_power(self.power_w)
                self.dark = None
        raise AssertionError("unreachable")

    @contextmanager
    def power_kept(self) -> Iterator[None]:
        """Restore the session's laser power (``power_w``) when the block ends, however."""
        power = self.power_w
        try:
            yield
        finally:
            self.power_w = power

    def _offset_guess(self) -> float:
        """The camera's dark level, from the current dark frame or a quick one with the laser off."""
        if self.dark is not None:
            if self._dark_median is None or self._dark_median[0] is not self.dark:
                self._dark_median = (self.dark, float(np.median(self.dark)))
            return self._dark_median[1]
        with self._dark_interval():
            return float(np.median(self._raw()))

    @contextmanager
    def _dark_interval(self) -> Iterator[None]:
        """Emission off for a dark capture inside ``light()``, back on after."""
        laser = self.bench.laser
        was_lit = self._lit
        laser.set_emission(False)
        self._lit = False
        try:
            yield
        finally:
            if was_lit:
                if not laser.set_emission(True):
                    raise CalibrationError(f"{laser.name}: emission did not come back on after a dark frame")
                self._lit = True


def peak_level(frame: np.ndarray) -> float:
    """The frame's brightest level that is not a lone hot pixel (the largest 3 x 3 median)."""
    frame = np.asarray(frame)
    if frame.dtype not in (np.uint8, np.uint16, np.float32):
        frame = frame.astype(np.float32)
    return float(cv2.medianBlur(frame, 3).max())
