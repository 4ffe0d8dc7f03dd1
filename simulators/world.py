"""The physics twin's world model: one light path shared by the simulated laser, SLMs and camera.

    laser (beam profile, power noise)
      -> encoding SLM  (gray -> planted phase response, crosstalk, latency + settle)
      -> angular spectrum over d1
      -> decoding SLM  (same physics, planted shift and rotation in the beam: its pixels'
                        transmissions mixed bilinearly onto the grid)
      -> angular spectrum over d2
      -> sensor irradiance, sampled on the sensor's own pixels (pitch, offset, rotation)

The simulation grid is sampled at the SLM pitch and may be smaller than the SLM (the
published model uses 800 x 800 pixels, 6.4 mm): the beam, seed and decoder sit well inside
it, and the band-limited propagator removes light that would leave it. SLM patterns are
cropped about the SLM centre to the grid.

Timing of an SLM (as on a real one): an upload is latched at the SLM's next refresh edge
(frames at t = phase + k / refresh_hz, one new pattern per frame), the liquid crystal starts
moving the planted latency later (the "frame shown" time) and relaxes exponentially, reaching
99 % after the planted settle time. A frame exposed meanwhile sees a mix of old and new.

With a wall clock the world renders ahead (:class:`~simulators.ahead.AheadWorker`): each upload
starts computing the settled light for 1 W on a background thread, and :meth:`sensor_power` uses
it when both SLMs are settled at the requested time and no upload came since. The state of the
SLMs is guarded by a lock, so uploads and captures may come from different threads.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import cv2
import numpy as np

from optgen.drivers.common.clock import Clock
from optgen.drivers.common.patterns import grid_coordinates
from optgen.drivers.common.roles import DECODING, ENCODING
from optgen.simulators.ahead import AheadWorker
from optgen.simulators.optics import field_in_beam, gaussian_blur, phase_to_field, propagate
from optgen.simulators.truth import LaserTruth, PlantedTruths, SensorDefects, SensorTruth, SLMTruth

__all__ = ["OpticalWorld", "ENCODING", "DECODING"]


# A transition is treated as done once the SLM is settled in its own sense (SLMTiming, SLMTruth:
# 99 % of the step, settle_s after the liquid crystal started moving): the frame a capture sees
# after latency + settle is then exactly the new pattern, whether computed at capture or ahead.
# Frames exposed earlier see the exact mix.
_SETTLED = 0.99 - 1e-9  # (the slack absorbs rounding exactly at settle_s)


READBACK_STREAM = 0x6C61736572   # "laser": the spawn key of the read-back generator


def side_stream(rng: np.random.Generator) -> np.random.Generator:
    """A generator of its own beside ``rng``: derived from ``rng``'s seed (reproducible when it is)
    without drawing from it or spawning a child of it (so ``rng``'s own draws and children are
    those they were without it); a fresh one where ``rng`` has no seed sequence."""
    seq = getattr(rng.bit_generator, "seed_seq", None)
    if not isinstance(seq, np.random.SeedSequence):
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, READBACK_STREAM)))


@dataclass(frozen=True)
class _Transition:
    """The liquid crystal relaxing from ``start`` towards ``target`` (upload number ``upload``)
    from ``t_move`` on."""

    t_move: float
    start: np.ndarray
    target: np.ndarray
    upload: int


POINTING_STEP_RAD = 0.01   # the most the pointing drift turns the beam's phase across the grid in one step
MOVES_KEPT = 16   # transitions an SLM remembers: every upload still in its latency, and some past


@dataclass
class _SLMState:
    truth: SLMTruth
    slm_shape: tuple[int, int]
    refresh_hz: float = 0.0               # 0: an upload is latched at once (no refresh quantisation)
    refresh_phase_s: float = 0.0          # frames at t = refresh_phase_s + k / refresh_hz
    target: np.ndarray | None = None      # settled retardance of the last upload (grid, radians)
    # the transitions in time order: an SLM fed one upload per refresh frame holds several
    # uploads in its latency at once, and a frame shows whichever has started moving
    moves: deque = dataclass_field(default_factory=lambda: deque(maxlen=MOVES_KEPT))
    t_upload: float = -np.inf             # when the last upload arrived
    t_edge: float = -np.inf               # the refresh edge that latched it
    k_edge: int | None = None             # that edge's frame number
    t_move: float = -np.inf               # when the liquid crystal started moving towards it
    t_shown: float = -np.inf              # when it was shown (t_move; the upload time for the first one)
    uploads: int = 0
    cached_key: tuple | None = None
    cached_field: np.ndarray | None = None
    unmodulated: np.ndarray | None = None  # sqrt(u) exp(i * the panel's phase error), beam frame; None if u = 0


RENDER_SLOTS = 4   # uploads whose renders are kept: a run that uploads ahead still captures earlier ones


def render_slot(key: tuple[int, int]) -> str:
    """The render-ahead slot of a render key (the last RENDER_SLOTS uploads keep theirs)."""
    return f"render:{sum(key) % RENDER_SLOTS}"


class OpticalWorld:
    """The twin's single source of truth about light; devices write into it and render from it."""

    def __init__(self, *, wavelength_m: float, pitch_m: float, grid_shape: tuple[int, int],
                 d1_m: float, d2_m: float, encoding: SLMTruth, decoding: SLMTruth,
                 sensor: SensorTruth, laser: LaserTruth, clock: Clock,
                 rng: np.random.Generator | None = None, band_limit: bool = True):
        self.wavelength_m = float(wavelength_m)
        self.pitch_m = float(pitch_m)
        self.grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
        self.d1_m, self.d2_m = float(d1_m), float(d2_m)
        self.sensor = sensor
        self.laser = laser
        self.clock = clock
        # drift counts from the twin's start: a wall clock reads the host's time since boot, and a
        # drift counted from there grew with the machine's uptime (11 % of SLM1's response after 11 h)
        self.started_s = float(clock.now())
        self.rng = rng if rng is not None else np.random.default_rng()
        self.readback_rng = side_stream(self.rng)
        self.band_limit = band_limit
        self._slms = {ENCODING: _SLMState(encoding, self.grid_shape),
                      DECODING: _SLMState(decoding, self.grid_shape)}
        for state in self._slms.values():
            u = state.truth.unmodulated_fraction
            if u > 0:
                state.unmodulated = self._in_beam(state.truth, phase_to_field(self._panel_error(state.truth),
                                                                              np.float32(np.sqrt(u))))
        self.beam_amplitude = self._beam_amplitude_per_sqrt_watt()
        self._beam_cache: tuple[float, np.ndarray] | None = None
        self._sensor_map = self._sensor_to_grid_affine()
        self.sensor_defects = SensorDefects.draw(sensor, self.rng)
        # laser state (the simulated laser driver writes these)
        self.laser_setpoint_w = 0.0
        self.laser_emission = False
        self.laser_faults: list[str] = []
        self.last_delivered_power_w = 0.0
        # timing and rendering ahead
        self._lock = threading.RLock()
        self.render_ahead: bool | None = None   # None: render ahead with a real-time (wall) clock
        self.ahead = AheadWorker()
        self.upload_listeners: list = []        # called as fn(key) after each upload (the camera's frame-ahead)
        self.render_ahead_hits = 0              # settled renders taken from the background thread
        self._ahead_decoder: tuple | None = None  # worker thread only: (decoding uploads, transmission)
        self._ahead_incident: tuple | None = None  # worker thread only: (encoding uploads, field at SLM2 for 1 W, beam,
                                                    #   its picture through SLM2's unmodulated part)
        self._unmodulated_cache: dict = {}      # (thread, decoder state, beam) -> SLM1's unmodulated light at the output

    # --- laser ----------------------------------------------------------------------
    def _beam_amplitude_per_sqrt_watt(self) -> np.ndarray:
        """Field amplitude (sqrt(W/m^2)) for 1 W of beam power; |E|^2 integrates to <= 1 W. The
        aperture sits on the axis; the beam's own centre may be off it (``LaserTruth.centre_m``)."""
        y, x = grid_coordinates(self.grid_shape, self.pitch_m)
        half = self.laser.aperture_m / 2.0
        bx, by = (float(v) for v in self.laser.centre_m)
        inside = np.ones(self.grid_shape, dtype=bool)
        if self.laser.aperture_m > 0:
            inside = (np.abs(x) <= half) & (np.abs(y) <= half)
        if self.laser.beam == "flat-top":
            if not inside.any():
                raise ValueError("flat-top beam: the aperture holds no grid pixel")
            irradiance = inside / (inside.sum() * self.pitch_m**2)
        elif self.laser.beam == "gaussian":
            w = self.laser.waist_m
            irradiance = 2.0 / (np.pi * w**2) * np.exp(-2.0 * ((x - bx)**2 + (y - by)**2) / w**2) * inside
        else:
            raise ValueError(f"beam {self.laser.beam!r}: expected 'flat-top' or 'gaussian'")
        return np.sqrt(irradiance).astype(np.float32)

    def beam_field(self, t: float) -> np.ndarray:
        """The beam on SLM1 for 1 W at time ``t``: its amplitude, and the phase of its tilt (the
        planted angle plus the pointing drift since the twin started); real where the beam arrives on axis."""
        tilt = np.asarray(self.laser.tilt_rad, dtype=float)
        drift = np.asarray(self.laser.pointing_drift_rad_per_h, dtype=float)
        if not (tilt.any() or drift.any()):
            return self.beam_amplitude
        t_key = 0.0
        if drift.any():
            step = self.pointing_step_s()
            t_key = round((float(t) - self.started_s) / step) * step
        cached = self._beam_cache
        if cached is not None and cached[0] == t_key:
            return cached[1]
        ax, ay = tilt + drift * (t_key / 3600.0)
        y, x = grid_coordinates(self.grid_shape, self.pitch_m)
        k = 2.0 * np.pi / self.wavelength_m
        field = phase_to_field((k * (np.sin(ax) * x + np.sin(ay) * y)).astype(np.float32), self.beam_amplitude)
        self._beam_cache = (t_key, field)
        return field

    def pointing_step_s(self) -> float:
        """The pointing drift moves in steps of this many seconds (at least 1 s): each step turns the
        tilt's phase across the grid by at most POINTING_STEP_RAD, far below anything a frame shows,
        and the light that depends on the beam alone (SLM1's unmodulated part) is recomputed once a
        step, not once a second (the realistic twin's 20 urad/h: a step of about 20 s)."""
        rate = float(np.hypot(*self.laser.pointing_drift_rad_per_h)) / 3600.0
        width = max(self.grid_shape) * self.pitch_m
        turn_per_s = 2.0 * np.pi / self.wavelength_m * width * rate
        return max(1.0, POINTING_STEP_RAD / turn_per_s) if turn_per_s > 0 else 1.0

    def delivered_power_w(self) -> float:
        """Beam power for one exposure: setpoint with the planted frame-to-frame noise."""
        self.last_delivered_power_w = self.draw_power_w(self.laser_emission, self.laser_setpoint_w,
                                                        self.laser.power_noise_rms)
        return self.last_delivered_power_w

    def measured_power_w(self) -> float:
        """What the laser's power monitor reads now: the setpoint with the planted noise, drawn from a
        generator of its own (:attr:`readback_rng`), so reading the laser, from any thread and as
        often as a caller likes, never changes the frames the camera draws from :attr:`rng`."""
        return self.draw_power_w(self.laser_emission, self.laser_setpoint_w, self.laser.power_noise_rms,
                                 self.readback_rng)

    def draw_power_w(self, emission: bool, setpoint_w: float, noise_rms: float,
                     rng: np.random.Generator | None = None) -> float:
        """Beam power for one exposure of a laser in the given state (draws the power noise from
        ``rng``, default the world's)."""
        if not emission:
            return 0.0
        noise = noise_rms * (self.rng if rng is None else rng).standard_normal() if noise_rms else 0.0
        return max(0.0, setpoint_w * (1.0 + noise))

    # --- SLMs -----------------------------------------------------------------------
    def attach_slm(self, key: str, slm_shape: tuple[int, int], refresh_hz: float = 0.0,
                   refresh_phase_s: float = 0.0) -> None:
        """Declare the pixel shape and refresh rate of the SLM that writes into ``key``.

        ``refresh_hz`` = 0 latches every upload at once (no refresh quantisation).
        """
        if slm_shape[0] < self.grid_shape[0] or slm_shape[1] < self.grid_shape[1]:
            raise ValueError(f"{key}: SLM shape {slm_shape} is smaller than the simulation grid "
                             f"{self.grid_shape}; make the grid smaller")
        if not (np.isfinite(refresh_hz) and refresh_hz >= 0):
            raise ValueError(f"{key}: refresh rate {refresh_hz!r} Hz; expected >= 0")
        state = self._slms[key]
        state.slm_shape = tuple(slm_shape)
        state.refresh_hz = float(refresh_hz)
        state.refresh_phase_s = float(refresh_phase_s)

    def next_refresh_edge(self, key: str, t: float) -> tuple[float, int | None]:
        """(time, frame number) of the refresh edge that latches an upload arriving at ``t``.

        The first edge at or after ``t`` (a nanosecond of slack absorbs rounding), and at
        least one frame after the edge that latched the previous upload.
        """
        state = self._slms[key]
        if state.refresh_hz <= 0:
            return max(t, state.t_edge), None
        k = math.ceil((t - state.refresh_phase_s) * state.refresh_hz - 1e-6)
        if state.k_edge is not None:
            k = max(k, state.k_edge + 1)
        return state.refresh_phase_s + k / state.refresh_hz, k

    def upload(self, key: str, display: np.ndarray) -> float:
        """An SLM was sent new gray levels now; returns the refresh edge that latches them.

        The liquid crystal starts moving the planted latency after that edge
        (:meth:`frame_shown_s`) and then settles.
        """
        target = self._settled_retardance(self._slms[key], display)
        with self._lock:
            state = self._slms[key]
            now = self.clock.now()
            if state.target is None:
                # the first pattern is the SLM's state at power-up: there at once, nothing moves
                t_edge, k_edge, t_move, state.t_shown = now, None, -np.inf, now
                start = target
            else:
                t_edge, k_edge = self.next_refresh_edge(key, now)
                t_move = state.t_shown = t_edge + state.truth.latency_s
                start = self._retardance_at(state, t_move)   # where the earlier uploads will have got to
            state.moves.append(_Transition(t_move, start, target, state.uploads + 1))
            state.target = target
            state.t_upload, state.t_edge, state.k_edge, state.t_move = now, t_edge, k_edge, t_move
            state.uploads += 1
            if self.render_ahead_enabled:
                self._submit_render()
            listeners = list(self.upload_listeners)
        for listener in listeners:
            listener(key)
        return t_edge

    def frame_shown_s(self, key: str) -> float:
        """When the last upload of ``key`` is shown: its refresh edge plus the planted latency."""
        return self._slms[key].t_shown

    @property
    def render_ahead_enabled(self) -> bool:
        """Whether uploads start rendering ahead (``render_ahead``, or by default with a wall clock)."""
        if self.render_ahead is not None:
            return bool(self.render_ahead)
        return bool(getattr(self.clock, "realtime", False))

    def _settled_retardance(self, state: _SLMState, display: np.ndarray) -> np.ndarray:
        """Phase (radians, <= 0) the pixels reach once settled, on the simulation grid in the SLM's
        own pixel frame (where the beam sees them: :meth:`_slm_field`)."""
        truth = state.truth
        rows, cols = self.grid_shape
        r0 = (display.shape[0] - rows) // 2
        c0 = (display.shape[1] - cols) // 2
        crop = display[r0:r0 + rows, c0:c0 + cols]
        lut = (-truth.response_rad).astype(np.float32)
        if truth.response_drift_per_h:       # the liquid crystal warms up: the response scales
            lut *= np.float32(1.0 + truth.response_drift_per_h * (self.clock.now() - self.started_s) / 3600.0)
        # OpenCV's table look-up and blur: the same numbers as lut[crop] and scipy's gaussian_filter
        # (mode "nearest", truncated at 4 sigma; a test checks), several times faster on an 800 x 800 grid
        phase = cv2.LUT(crop, lut) if crop.dtype == np.uint8 and lut.size == 256 else lut[crop]
        if truth.crosstalk_sigma_px > 0:
            phase = gaussian_blur(phase, truth.crosstalk_sigma_px)
        if truth.wavefront_rad is not None:
            phase = phase + self._panel_error(truth)
        return phase

    def _panel_error(self, truth: SLMTruth) -> np.ndarray:
        """The panel's own phase error on the grid, in its pixel frame (zeros for a flat one)."""
        if truth.wavefront_rad is None:
            return np.zeros(self.grid_shape, dtype=np.float32)
        error = np.asarray(truth.wavefront_rad, dtype=np.float32)
        if error.shape != self.grid_shape:
            raise ValueError(f"a panel wavefront of shape {error.shape}; the simulation grid is {self.grid_shape}")
        return error

    def _in_beam(self, truth: SLMTruth, field: np.ndarray) -> np.ndarray:
        """A transmission in the SLM's pixel frame as the beam sees it (shifted and turned for SLM2:
        the bilinear mix of its pixels' transmissions, :func:`simulators.optics.field_in_beam`)."""
        return field_in_beam(field, self.grid_shape, truth.shift_m, truth.rotation_deg, self.pitch_m)

    def _slm_field(self, state: _SLMState, phase: np.ndarray) -> np.ndarray:
        """The SLM's modulated transmission for a retardance (its pixel frame) as the beam sees it:
        sqrt(1 - u) exp(i phase), placed. The unmodulated part (``_SLMState.unmodulated``) leaves
        incoherently with it (decision 0012)."""
        field = self._in_beam(state.truth, phase_to_field(phase))
        u = state.truth.unmodulated_fraction
        if u > 0:
            field *= np.float32(np.sqrt(1.0 - u))
        return field

    @staticmethod
    def _fraction(truth: SLMTruth, elapsed: float) -> float:
        """How far a transition has gone ``elapsed`` seconds after it started moving."""
        if elapsed < 0:
            return 0.0
        if truth.settle_s <= 0:
            return 1.0
        tau = truth.settle_s / np.log(100.0)
        return float(1.0 - np.exp(-elapsed / tau))

    def settled_fraction(self, key: str, t: float) -> float:
        """How far the last transition of ``key`` has gone at time ``t`` (0 to 1).

        0 until the frame is shown (refresh edge + latency), then 1 - exp(-elapsed / tau) with
        99 % reached after the settle time.
        """
        state = self._slms[key]
        return self._fraction(state.truth, t - state.t_move)

    def settled(self, t: float) -> bool:
        """Whether both SLMs are settled at time ``t`` (99 % of their last step: treated as done)."""
        with self._lock:
            return all(self.settled_fraction(key, t) >= _SETTLED for key in self._slms)

    def settled_render_key(self, t: float) -> tuple[int, int] | None:
        """The upload counters of the patterns both SLMs hold settled at ``t``, else None.

        Each SLM counts as holding the upload whose transition last started to move by ``t``
        (a run that uploads ahead of its captures takes frames of earlier uploads).
        """
        with self._lock:
            key = []
            for name in (ENCODING, DECODING):
                state = self._slms[name]
                moving = self._moving_at(state, t)
                if moving is None or self._fraction(state.truth, t - moving.t_move) < _SETTLED:
                    return None
                key.append(moving.upload)
            return tuple(key)

    @staticmethod
    def _moving_at(state: _SLMState, t: float) -> _Transition | None:
        """The transition the pixels follow at ``t``: the last one that has started moving."""
        for moving in reversed(state.moves):
            if moving.t_move <= t:
                return moving
        return None

    def _retardance_at(self, state: _SLMState, t: float) -> np.ndarray:
        """The phase the pixels hold at ``t`` (call under the lock)."""
        moving = self._moving_at(state, t)
        if moving is None:                  # before every remembered move: where the first one starts
            return state.moves[0].start
        f = self._fraction(state.truth, t - moving.t_move)
        if f >= _SETTLED:
            return moving.target
        return moving.start + np.float32(f) * (moving.target - moving.start)

    def retardance(self, key: str, t: float) -> np.ndarray:
        """The phase the pixels of ``key`` hold at time ``t`` (a mix while settling), on the grid in
        the SLM's own pixel frame (:meth:`transmission` is the light's view of them, placed).

        The pixels follow the last transition that has started moving by ``t`` (uploads
        still in the SLM's latency have not).
        """
        with self._lock:
            state = self._slms[key]
            if state.target is None:
                return np.zeros(self.grid_shape, dtype=np.float32)
            return self._retardance_at(state, t)

    def transmission(self, key: str, t: float) -> np.ndarray:
        """The transmission of ``key`` at time ``t`` as the beam sees it (exp(i * phase), placed;
        times sqrt(1 - u) where part of the light is unmodulated), cached while the SLM rests."""
        with self._lock:
            state = self._slms[key]
            f = self.settled_fraction(key, t)
            cache_key = (state.uploads, "settled") if f >= _SETTLED else None
            if cache_key is not None and cache_key == state.cached_key:
                return state.cached_field
            field = self._slm_field(state, self.retardance(key, t))
            if cache_key is not None:
                state.cached_key, state.cached_field = cache_key, field
            return field

    # --- light ----------------------------------------------------------------------
    def output_irradiance(self, t: float, power_w: float) -> np.ndarray:
        """Irradiance (W/m^2) in the sensor plane on the simulation grid, float32."""
        if power_w <= 0:
            return np.zeros(self.grid_shape, dtype=np.float32)
        with self._lock:
            encoding, decoding = self.transmission(ENCODING, t), self.transmission(DECODING, t)
            state = self._slms[DECODING]
            decoder_key = ("now", state.cached_key) if state.cached_key is not None \
                and state.cached_field is decoding else None
        return self._light_path(encoding, decoding, power_w, self.beam_field(t), decoder_key)

    def _light_path(self, encoding: np.ndarray, decoding: np.ndarray, power_w: float,
                    beam: np.ndarray | None = None, decoder_key: object = None) -> np.ndarray:
        """Beam -> SLM1 transmission -> d1 -> SLM2 transmission -> d2 -> irradiance (float32).

        Light an SLM leaves unmodulated adds as its own picture (incoherently): through SLM2's
        unmodulated part, and from SLM1's (which depends only on SLM2's pattern and the beam:
        kept per ``decoder_key`` while both rest)."""
        field = self._incident_on_decoder(encoding, power_w, beam)
        irradiance = self._decoder_to_output(field * decoding)
        unmodulated = self._slms[DECODING].unmodulated
        if unmodulated is not None:
            irradiance += self._decoder_to_output(field * unmodulated)
        if self._slms[ENCODING].unmodulated is not None:
            irradiance += np.float32(power_w) * self._from_unmodulated_encoder(decoding, beam, decoder_key)
        return irradiance

    def _from_unmodulated_encoder(self, decoding: np.ndarray, beam: np.ndarray | None,
                                  decoder_key: object) -> np.ndarray:
        """Irradiance (1 W beam) of the light SLM1 leaves unmodulated, through SLM2 (both of its parts)."""
        beam = self.beam_amplitude if beam is None else beam
        key = (threading.get_ident(), decoder_key, id(beam))
        cached = self._unmodulated_cache.get(key)
        if decoder_key is not None and cached is not None and cached[0] is beam:
            return cached[1]
        field, through_unmodulated = self._unmodulated_encoder_at_decoder(beam)
        irradiance = self._decoder_to_output(field * decoding)
        if through_unmodulated is not None:
            irradiance += through_unmodulated
        if decoder_key is not None:
            if len(self._unmodulated_cache) > 8:
                self._unmodulated_cache.clear()
            self._unmodulated_cache[key] = (beam, irradiance)
        return irradiance

    def _unmodulated_encoder_at_decoder(self, beam: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """What of SLM1's unmodulated light depends on the beam alone (1 W): its field at SLM2, and its
        irradiance through SLM2's unmodulated part (None where SLM2 modulates all). Kept per thread
        while the beam is the same: a sweep on SLM2 then propagates it once, not twice a pattern."""
        key = (threading.get_ident(), "beam only", id(beam))
        cached = self._unmodulated_cache.get(key)
        if cached is not None and cached[0] is beam:
            return cached[1]
        field = self._incident_on_decoder(self._slms[ENCODING].unmodulated, 1.0, beam)
        unmodulated = self._slms[DECODING].unmodulated
        parts = (field, None if unmodulated is None else self._decoder_to_output(field * unmodulated))
        if len(self._unmodulated_cache) > 8:
            self._unmodulated_cache.clear()
        self._unmodulated_cache[key] = (beam, parts)
        return parts

    def _incident_on_decoder(self, encoding: np.ndarray, power_w: float,
                             beam: np.ndarray | None = None) -> np.ndarray:
        """The field arriving at SLM2: beam -> SLM1 transmission -> d1."""
        beam = self.beam_amplitude if beam is None else beam
        field = encoding * (beam * np.float32(np.sqrt(power_w)))
        return propagate(field, self.wavelength_m, self.d1_m, self.pitch_m, self.band_limit, overwrite=True)

    def _decoder_to_output(self, field: np.ndarray) -> np.ndarray:
        """The field leaving SLM2 (the caller's temporary: transformed in place) -> d2 -> irradiance (float32)."""
        field = propagate(field, self.wavelength_m, self.d2_m, self.pitch_m, self.band_limit, overwrite=True)
        return (field.real**2 + field.imag**2).astype(np.float32, copy=False)

    def _sensor_to_grid_affine(self) -> np.ndarray:
        """2x3 map from sensor pixel (x, y) to simulation-grid pixel coordinates."""
        s = self.sensor
        rows, cols = self.grid_shape
        h, w = s.shape
        a = np.deg2rad(s.rotation_deg)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        lin = rot * (s.pitch_m / self.pitch_m)
        centre_sensor = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        centre_grid = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
        offset = np.array(s.offset_m) / self.pitch_m
        return np.hstack([lin, (centre_grid + offset - lin @ centre_sensor)[:, None]])

    def _sample_on_sensor(self, irradiance: np.ndarray) -> np.ndarray:
        """Power (W) on each sensor pixel from the irradiance on the grid."""
        h, w = self.sensor.shape
        sampled = cv2.warpAffine(irradiance, self._sensor_map, (w, h),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        sampled *= np.float32(self.sensor.pitch_m**2)
        return sampled

    def unit_sensor_power(self, t: float) -> np.ndarray:
        """Optical power (W) on each sensor pixel at time ``t`` for 1 W of beam power.

        Taken from the render ahead when there is one for the current uploads and both SLMs
        are settled at ``t``; the array may be shared: do not modify it.
        """
        ahead = self._rendered_ahead(t)
        if ahead is not None:
            return ahead
        return self._sample_on_sensor(self.output_irradiance(t, 1.0))

    def sensor_power(self, t: float, power_w: float) -> np.ndarray:
        """Optical power (W) falling on each sensor pixel, float32 (height, width).

        Light is linear in the beam power: the 1 W picture scaled by ``power_w``.
        """
        if power_w <= 0:
            return np.zeros(self.sensor.shape, dtype=np.float32)
        return self.unit_sensor_power(t) * np.float32(power_w)

    # --- rendering ahead (wall clock) --------------------------------------------------
    def render_key(self) -> tuple[int, int]:
        """What a settled render depends on that can change: the upload counters of both SLMs."""
        with self._lock:
            return (self._slms[ENCODING].uploads, self._slms[DECODING].uploads)

    def _submit_render(self) -> None:
        """Start rendering the settled light of the current uploads (called under the lock)."""
        encoding, decoding = self._slms[ENCODING], self._slms[DECODING]
        if encoding.target is None or decoding.target is None:
            return
        key = self.render_key()
        self.ahead.submit(render_slot(key), key, self._render_settled, encoding.target,
                          decoding.target, decoding.uploads, encoding.uploads)

    def _render_settled(self, encoding_target: np.ndarray, decoding_target: np.ndarray,
                        decoding_uploads: int, encoding_uploads: int | None = None) -> np.ndarray:
        """Worker thread: the 1 W sensor picture once both SLMs hold these patterns.

        The same operations as the synchronous path on settled SLMs, so the same numbers. The
        decoder's transmission and the field arriving at SLM2 are kept while their SLM holds
        its pattern (a sweep on SLM2 behind a fixed SLM1 then costs one propagation a pattern).
        """
        cached = self._ahead_decoder  # the decoder rarely changes: keep its transmission
        if cached is None or cached[0] != decoding_uploads:
            cached = (decoding_uploads, self._slm_field(self._slms[DECODING], decoding_target))
            self._ahead_decoder = cached
        incident = self._ahead_incident
        beam = self.beam_field(self.clock.now())
        if encoding_uploads is None or incident is None or incident[0] != encoding_uploads \
                or incident[2] is not beam:
            field = self._incident_on_decoder(self._slm_field(self._slms[ENCODING], encoding_target), 1.0, beam)
            unmodulated = self._slms[DECODING].unmodulated     # its picture depends on this field alone
            incident = (encoding_uploads, field, beam,
                        None if unmodulated is None else self._decoder_to_output(field * unmodulated))
            self._ahead_incident = incident
        irradiance = self._decoder_to_output(incident[1] * cached[1])
        if incident[3] is not None:
            irradiance += incident[3]
        if self._slms[ENCODING].unmodulated is not None:
            irradiance += self._from_unmodulated_encoder(cached[1], beam, ("ahead", decoding_uploads))
        return self._sample_on_sensor(irradiance)

    def _rendered_ahead(self, t: float) -> np.ndarray | None:
        """The render ahead for the current uploads if both SLMs are settled at ``t``, else None.

        Waits for the render if it is still running; an exception raised in the worker is
        raised here.
        """
        key = self.settled_render_key(t)
        future = self.ahead.get(render_slot(key), key) if key is not None else None
        if future is None:
            return None
        unit = future.result()
        with self._lock:
            self.render_ahead_hits += 1
        return unit

    def planted_truths(self) -> PlantedTruths:
        """The truths this twin planted, as calibrations report them."""
        rows, cols = self.grid_shape
        sensor_to_grid = np.vstack([self._sensor_map, [0.0, 0.0, 1.0]])
        metres_to_grid = np.array([[1 / self.pitch_m, 0, (cols - 1) / 2.0],
                                   [0, 1 / self.pitch_m, (rows - 1) / 2.0], [0, 0, 1.0]])
        slms = {role: self._slms[role].truth for role in (ENCODING, DECODING)}
        defects = self.sensor_defects
        return PlantedTruths(
            response_rad={role: np.asarray(t.response_rad) for role, t in slms.items()},
            crosstalk_sigma_px={role: float(t.crosstalk_sigma_px) for role, t in slms.items()},
            decoder_shift_m=tuple(float(v) for v in slms[DECODING].shift_m),
            decoder_rotation_deg=float(slms[DECODING].rotation_deg),
            output_to_sensor=(np.linalg.inv(sensor_to_grid) @ metres_to_grid)[:2],
            wavefront_rad={role: self._panel_error(t) for role, t in slms.items()},
            unmodulated_fraction={role: float(t.unmodulated_fraction) for role, t in slms.items()},
            d1_m=self.d1_m, d2_m=self.d2_m,
            beam={"profile": self.laser.beam, "waist_m": self.laser.waist_m, "centre_m": tuple(self.laser.centre_m),
                  "tilt_rad": tuple(self.laser.tilt_rad), "aperture_m": float(self.laser.aperture_m)},
            hot_pixels=defects.hot_pixels if defects is not None else None)

    def follow_laser(self, emission: bool | None = None, setpoint_w: float | None = None) -> None:
        """Take the laser's state as a driver read it back (a laser outside the twin: a protocol
        twin in another process)."""
        if emission is not None:
            self.laser_emission = bool(emission)
        if setpoint_w is not None:
            self.laser_setpoint_w = float(setpoint_w)

    def close(self) -> None:
        """Stop the render-ahead thread (a later upload starts it again)."""
        self.ahead.close()
