"""The hardware-timed twin: refresh quantisation, frame-shown trigger, camera timing, rendering ahead."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from optgen.drivers.common.clock import sleep_until
from optgen.drivers.errors import CaptureTimeout
from optgen.drivers.identity import SLMTiming
from optgen.simulators import (
    DECODING,
    ENCODING,
    LaserTruth,
    OpticalWorld,
    SensorTruth,
    SimulatedCamera,
    SimulatedLaser,
    SimulatedPhaseSLM,
    SLMTruth,
    VirtualClock,
    WallClock,
    planted_response,
)

PITCH = 8e-6
GRID = (64, 96)
SLM_RES = (96, 64)  # (width, height)
RESPONSE = planted_response(8, 6.5, 1.2, 0.2)
TIMING_60 = SLMTiming(refresh_hz=60.0, latency_frames=2, settle_s=0.010)


def make_bench(clock=None, timing=TIMING_60, exposure_s=1e-4, readout_s=0.005, seed=0, render_ahead=None,
               frame_ahead=None, block_until_refresh=True, power_noise_rms=0.01, unmodulated=0.0):
    """World, encoding SLM, decoding SLM and camera on a small grid; laser on at 10 uW."""
    clock = clock if clock is not None else VirtualClock()
    truth = {"latency_s": timing.latency_s, "settle_s": timing.settle_s, "unmodulated_fraction": unmodulated}
    world = OpticalWorld(
        wavelength_m=520e-9, pitch_m=PITCH, grid_shape=GRID, d1_m=0.02, d2_m=0.02,
        encoding=SLMTruth(RESPONSE, **truth), decoding=SLMTruth(RESPONSE, **truth),
        sensor=SensorTruth(resolution=SLM_RES, pitch_m=PITCH, readout_s=readout_s, full_well_e=1e9,
                           bitdepth=16, gain_dn_per_e=0.01),
        laser=LaserTruth(aperture_m=0, power_noise_rms=power_noise_rms), clock=clock,
        rng=np.random.default_rng(seed))
    world.render_ahead = render_ahead
    slms = [SimulatedPhaseSLM(world, key, SLM_RES, timing=timing, block_until_refresh=block_until_refresh)
            for key in (ENCODING, DECODING)]
    camera = SimulatedCamera(world, exposure_s=exposure_s, frame_ahead=frame_ahead)
    world.laser_setpoint_w, world.laser_emission = 1e-5, True
    return world, slms[0], slms[1], camera


def pattern(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 2 * np.pi, (SLM_RES[1], SLM_RES[0])).astype(np.float32)


def corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64))[0, 1])


# --- refresh quantisation -------------------------------------------------------------------

def test_upload_is_latched_at_the_next_refresh_edge_and_shown_after_the_latency():
    world, slm, _, _ = make_bench()
    clock = world.clock
    sleep_until(clock, 0.9 / 60)  # (building the camera took a frame's exposure + readout)
    slm.set_phase(pattern(1))
    frame = 1 / 60
    assert slm.last_refresh_edge_s == pytest.approx(frame)
    assert clock.now() == pytest.approx(frame)  # set_phase returns at the edge (vsync-locked swap)
    assert slm.last_frame_shown_s == pytest.approx(frame + 2 * frame)
    shown = slm.last_frame_shown_s
    assert world.settled_fraction(ENCODING, shown - 1e-6) == 0.0
    assert world.settled_fraction(ENCODING, shown + 0.005) == pytest.approx(0.9)  # half the settle time
    assert world.settled_fraction(ENCODING, shown + 0.010) == pytest.approx(0.99)
    # one new pattern per frame: an upload right at the edge is latched at the following one
    slm.set_phase(pattern(2))
    assert slm.last_refresh_edge_s == pytest.approx(2 * frame) and clock.now() == pytest.approx(2 * frame)
    # an upload exactly on a later edge is latched at that edge (no frame lost to rounding)
    clock.sleep(8 * frame)
    slm.set_phase(pattern(3))
    assert slm.last_refresh_edge_s == pytest.approx(10 * frame) and clock.now() == pytest.approx(10 * frame)


def test_a_non_blocking_upload_returns_at_once_and_still_waits_for_the_edge():
    world, slm, _, _ = make_bench(block_until_refresh=False)
    sleep_until(world.clock, 0.020)
    slm.set_phase(pattern(1))
    assert world.clock.now() == pytest.approx(0.020)
    assert slm.last_refresh_edge_s == pytest.approx(2 / 60) and slm.last_frame_shown_s == pytest.approx(4 / 60)
    # a second upload within the same frame is queued behind the first, one frame later
    slm.set_phase(pattern(2))
    assert slm.last_refresh_edge_s == pytest.approx(3 / 60) and slm.last_frame_shown_s == pytest.approx(5 / 60)
    # before it is shown, the pixels follow the first upload's transition
    first = world.retardance(ENCODING, 4 / 60 + 0.010)
    assert world.retardance(ENCODING, 5 / 60 - 1e-6) == pytest.approx(first, abs=0.05)


def test_captures_show_the_old_pattern_then_a_mix_then_the_new_one():
    world, slm, _, camera = make_bench()
    old, new = pattern(1), pattern(2)
    slm.set_phase(old)
    world.clock.sleep(1.0)
    t_old = world.clock.now()
    slm.set_phase(new)
    ref_old = world.unit_sensor_power(t_old)        # before the liquid crystal moves
    ref_new = world.unit_sensor_power(t_old + 10.0)  # long settled
    assert corr(ref_old, ref_new) < 0.5

    right_after = camera.capture().astype(float)
    tau = TIMING_60.settle_s / np.log(100)
    world.clock.sleep(slm.last_frame_shown_s + tau * np.log(2) - camera.exposure_s / 2 - world.clock.now())
    halfway = camera.capture().astype(float)            # mid-exposure when the step is half done
    assert world.settled_fraction(ENCODING, camera.last_mid_exposure_t) == pytest.approx(0.5)
    slm.set_phase(old)
    world.clock.sleep(TIMING_60.wait_s)
    settled_old = camera.capture().astype(float)

    assert corr(right_after, ref_old) > 0.99 and corr(right_after, ref_new) < 0.6
    assert corr(halfway, ref_old) < 0.9 and corr(halfway, ref_new) < 0.9
    assert corr(settled_old, ref_old) > 0.99


# --- camera trigger ---------------------------------------------------------------------------

def test_frame_shown_output_triggers_the_exposure_after_the_delay():
    world, slm, _, camera = make_bench(exposure_s=0.002)
    camera.trigger_from(slm, delay_s=TIMING_60.settle_s)
    assert camera.trigger_mode == "hardware" and camera.describe()["trigger"]["delay_s"] == 0.010
    sleep_until(world.clock, 0.9 / 60)
    slm.set_phase(pattern(1))
    frame = camera.capture()
    shown = 3 / 60
    assert camera.last_trigger_s == pytest.approx(shown)
    assert camera.last_mid_exposure_t == pytest.approx(shown + 0.010 + 0.001)
    assert world.clock.now() == pytest.approx(shown + 0.010 + 0.002 + 0.005)  # + exposure + readout
    np.testing.assert_array_equal(frame.shape, (SLM_RES[1], SLM_RES[0]))
    assert world.settled_fraction(ENCODING, camera.last_mid_exposure_t) > 0.99
    # the next pattern triggers the next frame
    slm.set_phase(pattern(2))
    camera.capture()
    assert camera.last_trigger_s == pytest.approx(slm.last_frame_shown_s)


def test_missing_trigger_times_out_and_edges_while_busy_are_missed():
    world, slm, _, camera = make_bench(exposure_s=0.002, readout_s=0.030, block_until_refresh=False)
    camera.trigger_mode = "hardware"
    t0 = world.clock.now()
    with pytest.raises(CaptureTimeout, match="no trigger within"):
        camera.capture(timeout_s=0.3)
    assert world.clock.now() - t0 == pytest.approx(0.3 + 0.002)  # slmsuite adds the exposure
    with pytest.raises(ValueError, match="trigger mode"):
        camera.trigger_mode = "external"
    # an edge further away than the timeout is not waited for
    camera.trigger_from(slm)
    slm.set_phase(pattern(1))
    with pytest.raises(CaptureTimeout):
        camera.capture(timeout_s=0.01)
    assert camera.capture(timeout_s=0.1) is not None and camera.last_trigger_s == slm.last_frame_shown_s
    # two patterns one frame apart: the second edge comes while the camera is still reading out
    slm.set_phase(pattern(2))
    first = slm.last_frame_shown_s
    slm.set_phase(pattern(3))
    assert slm.last_frame_shown_s - first == pytest.approx(1 / 60)
    camera.capture()
    assert camera.last_trigger_s == first
    with pytest.raises(CaptureTimeout):
        camera.capture(timeout_s=0.2)


def test_a_camera_that_overlaps_readout_takes_a_trigger_during_the_readout_and_reads_out_in_turn():
    """TriggerOverlap = ReadOut: armed again when the exposure ends; the readouts still queue."""
    for overlap, second_taken in (("off", False), ("readout", True)):
        world, slm, _, camera = make_bench(exposure_s=0.002, readout_s=0.030, block_until_refresh=False)
        camera.trigger_overlap = overlap
        camera.trigger_from(slm, delay_s=0.0)
        slm.set_phase(pattern(1))
        first = slm.last_frame_shown_s
        slm.set_phase(pattern(2))           # shown one refresh frame later: during the first readout
        second = slm.last_frame_shown_s
        camera.capture()
        assert camera.last_trigger_s == first
        assert world.clock.now() == pytest.approx(first + 0.002 + 0.030)
        if second_taken:
            camera.capture()
            assert camera.last_trigger_s == second
            assert camera.last_exposure_start_s == pytest.approx(second)
            # its readout waits for the first one's: delivered two readouts after the first exposure
            assert world.clock.now() == pytest.approx(first + 0.002 + 2 * 0.030)
        else:
            with pytest.raises(CaptureTimeout):
                camera.capture(timeout_s=0.1)
    with pytest.raises(ValueError, match="trigger overlap"):
        SimulatedCamera(world, trigger_overlap="always")


def test_a_triggered_camera_is_armed_before_capture_is_called():
    world, slm, _, camera = make_bench(exposure_s=0.002)
    camera.trigger_from(slm, delay_s=0.010)
    slm.set_phase(pattern(1))
    world.clock.sleep(0.5)  # the frame was exposed and read out meanwhile
    t = world.clock.now()
    camera.capture()
    assert world.clock.now() == t  # delivered at once
    assert camera.last_mid_exposure_t == pytest.approx(slm.last_frame_shown_s + 0.010 + 0.001)


def test_software_trigger_takes_exposure_plus_readout():
    world, _, _, camera = make_bench(exposure_s=0.003, readout_s=0.004)
    t0 = world.clock.now()
    camera.capture()
    assert camera.last_mid_exposure_t == pytest.approx(t0 + 0.0015)
    assert world.clock.now() - t0 == pytest.approx(0.007)


# --- rendering ahead ----------------------------------------------------------------------------

def run_sequence(world, enc, dec, camera) -> list[np.ndarray]:
    """Uploads and captures that exercise settled, repeated and decoder-changed frames."""
    clock, frames = world.clock, []
    for k in range(3):
        enc.set_phase(pattern(10 + k))
        clock.sleep(TIMING_60.wait_s)
        frames.append(camera.capture())
    frames.append(camera.capture())  # again, no upload: the same light, fresh noise
    dec.set_phase(pattern(20))
    clock.sleep(TIMING_60.wait_s)
    frames.append(camera.capture())
    return frames


@pytest.mark.parametrize("frame_ahead", [True, False])
def test_rendering_ahead_gives_the_frames_rendered_at_capture(frame_ahead):
    ahead = make_bench(render_ahead=True, frame_ahead=frame_ahead)
    sync = make_bench(render_ahead=False)
    assert not sync[0].render_ahead_enabled and not sync[3].frame_ahead_enabled
    incident_calls = []
    ahead[0].ahead.drain(5.0)   # the renders of the SLMs' power-up patterns are not counted
    real_incident = ahead[0]._incident_on_decoder
    ahead[0]._incident_on_decoder = lambda *a: incident_calls.append(1) or real_incident(*a)
    frames_ahead, frames_sync = run_sequence(*ahead), run_sequence(*sync)
    assert len(incident_calls) == 3   # three SLM1 patterns; the decoder change reuses the field at SLM2
    for a, b in zip(frames_ahead, frames_sync):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(frames_sync[2], frames_sync[3])  # same light, new noise
    world, camera = ahead[0], ahead[3]
    if frame_ahead:
        assert camera.frame_ahead_hits == 4 and world.render_ahead_hits == 1  # the repeat used the render
    else:
        assert camera.frame_ahead_hits == 0 and world.render_ahead_hits == 5
    assert sync[0].render_ahead_hits == 0 and not sync[0].ahead._executors  # virtual: no thread at all


def test_a_sweep_on_slm2_behind_a_fixed_slm1_propagates_twice_a_pattern_with_unmodulated_light():
    """Both SLMs leave light unmodulated. What depends on SLM1's pattern or the beam alone (the light
    through SLM2's unmodulated part; SLM1's unmodulated light at SLM2) is kept, so each SLM2 pattern
    costs two propagations to the sensor (its modulated light, and SLM1's unmodulated light through
    it), not four, and the frames are the synchronous bench's."""
    ahead = make_bench(render_ahead=True, frame_ahead=False, unmodulated=0.05)
    sync = make_bench(render_ahead=False, unmodulated=0.05)
    for world, enc, _, _ in (ahead, sync):
        enc.set_phase(pattern(1))
        world.clock.sleep(TIMING_60.wait_s)
    world = ahead[0]
    world.ahead.drain(5.0)
    to_sensor = []
    real = world._decoder_to_output
    world._decoder_to_output = lambda field: to_sensor.append(1) or real(field)
    frames = {}
    for name, (w, _, dec, camera) in (("ahead", ahead), ("sync", sync)):
        frames[name] = []
        for k in range(4):
            dec.set_phase(pattern(30 + k))
            w.clock.sleep(TIMING_60.wait_s)
            frames[name].append(camera.capture())
    assert len(to_sensor) == 2 * 4
    assert world.render_ahead_hits == 4
    for a, b in zip(frames["ahead"], frames["sync"]):
        np.testing.assert_array_equal(a, b)


def test_a_render_for_older_uploads_is_never_used():
    ahead_bench, sync_bench = make_bench(render_ahead=True), make_bench(render_ahead=False)
    world, _, _, camera = ahead_bench
    release, first_started = threading.Event(), threading.Event()
    real_render = world._render_settled

    def slow_first_render(*args):
        if not first_started.is_set():
            first_started.set()
            assert release.wait(5.0)
        return real_render(*args)

    world._render_settled = slow_first_render
    frames = {}
    for name, (w, e, _, c) in (("ahead", ahead_bench), ("sync", sync_bench)):
        e.set_phase(pattern(1))
        if name == "ahead":
            assert first_started.wait(5.0)  # the render of pattern 1 is running ...
        e.set_phase(pattern(2))             # ... when pattern 2 arrives
        if name == "ahead":
            release.set()
        w.clock.sleep(TIMING_60.wait_s)
        frames[name] = c.capture()
    # the frame drawn ahead for pattern 1 ran too (frames of earlier uploads are kept for runs that
    # upload ahead), so the noise draws differ from the synchronous bench: compare the light
    _, e1, _, c1 = make_bench(render_ahead=False)
    e1.set_phase(pattern(1))
    e1.world.clock.sleep(TIMING_60.wait_s)
    frame_of_1 = c1.capture().astype(float)
    ahead, sync = frames["ahead"].astype(float), frames["sync"].astype(float)
    assert corr(ahead, sync) > 0.99
    assert np.abs(ahead - sync).mean() < 0.5 * np.abs(ahead - frame_of_1).mean()
    assert camera.frame_ahead_hits == 1


@pytest.mark.parametrize("frame_ahead", [False, True])
def test_a_render_from_before_rendering_ahead_was_switched_off_is_not_used(frame_ahead):
    ahead_bench = make_bench(render_ahead=True, frame_ahead=frame_ahead)
    sync_bench = make_bench(render_ahead=False)
    frames = []
    for world, enc, _, camera in (ahead_bench, sync_bench):
        enc.set_phase(pattern(1))
        world.clock.sleep(TIMING_60.wait_s)
        render_ahead = world.render_ahead
        world.render_ahead = False
        enc.set_phase(pattern(2))  # no render started for this one
        world.render_ahead = render_ahead
        world.clock.sleep(TIMING_60.wait_s)
        frames.append(camera.capture())
    if frame_ahead:  # pattern 1's frame drew its noise ahead: the same light, other noise
        assert corr(frames[0], frames[1]) > 0.99
    else:
        np.testing.assert_array_equal(frames[0], frames[1])
    assert ahead_bench[0].render_ahead_hits == 0 and ahead_bench[3].frame_ahead_hits == 0


def test_a_capture_before_settling_does_not_use_the_settled_render():
    ahead_bench = make_bench(render_ahead=True, frame_ahead=False)
    sync_bench = make_bench(render_ahead=False)
    frames = []
    for world, enc, _, camera in (ahead_bench, sync_bench):
        enc.set_phase(pattern(1))
        world.clock.sleep(TIMING_60.wait_s)
        enc.set_phase(pattern(2))
        world.clock.sleep(TIMING_60.latency_s + 0.002)  # moving, not settled
        frames.append(camera.capture())
    np.testing.assert_array_equal(frames[0], frames[1])
    assert ahead_bench[0].render_ahead_hits == 0


def test_a_capture_before_settling_does_not_use_the_frame_drawn_ahead():
    world, enc, _, camera = make_bench(render_ahead=True, frame_ahead=True)
    enc.set_phase(pattern(1))
    world.clock.sleep(TIMING_60.wait_s)
    camera.capture()
    enc.set_phase(pattern(2))
    t = world.clock.now()
    ref_old, ref_new = world.unit_sensor_power(t), world.unit_sensor_power(t + 10.0)
    early = camera.capture()  # the liquid crystal has not moved yet
    assert camera.frame_ahead_hits == 1
    assert corr(early, ref_old) > 0.99 and corr(early, ref_new) < 0.6
    world.clock.sleep(TIMING_60.wait_s)
    late = camera.capture()   # settled: the frame drawn ahead is still good
    assert camera.frame_ahead_hits == 2 and corr(late, ref_new) > 0.99


def test_a_frame_drawn_ahead_is_not_used_after_the_laser_or_exposure_changed():
    world, enc, _, camera = make_bench(render_ahead=True, frame_ahead=True)
    dark_level = world.sensor.dark_offset_dn
    enc.set_phase(pattern(1))
    world.laser_emission = False          # beam blocked after the upload
    world.clock.sleep(TIMING_60.wait_s)
    assert camera.capture().mean() == pytest.approx(dark_level, abs=1)
    enc.set_phase(pattern(2))             # drawn ahead in the dark ...
    world.laser_emission = True           # ... then the beam comes on
    world.clock.sleep(TIMING_60.wait_s)
    assert camera.capture().mean() > dark_level + 50
    assert camera.frame_ahead_hits == 0
    enc.set_phase(pattern(3))
    world.clock.sleep(TIMING_60.wait_s)
    before = camera.capture().astype(np.float64).mean() - dark_level      # drawn ahead after the upload
    assert camera.frame_ahead_hits == 1
    enc.set_phase(pattern(3))             # drawn ahead at this exposure ...
    camera.exposure_s = 2 * camera.exposure_s   # ... and again at the new one, which replaces it
    world.clock.sleep(TIMING_60.wait_s)
    doubled = camera.capture().astype(np.float64).mean() - dark_level
    assert doubled == pytest.approx(2 * before, rel=0.05)                 # not the stale frame (1x)
    assert camera.frame_ahead_hits == 2


def test_a_series_of_frames_draws_each_next_one_ahead_while_the_last_exposes():
    world, enc, _, camera = make_bench(render_ahead=True, frame_ahead=True)
    enc.set_phase(pattern(4))
    world.clock.sleep(TIMING_60.wait_s)
    single = camera.capture().astype(np.float64)                  # drawn ahead after the upload
    enc.set_phase(pattern(4))
    world.clock.sleep(TIMING_60.wait_s)
    series = camera.capture_series(3)
    assert series.shape == (3, *single.shape) and series.dtype == np.uint16
    assert camera.frame_ahead_hits == 4                           # the upload's, then one drawn per frame
    assert all(corr(frame, single) > 0.9 for frame in series)     # the same light ...
    assert not np.array_equal(series[0], series[1]) and not np.array_equal(series[1], series[2])   # ... new noise


def test_a_window_of_interest_reads_out_its_part_of_the_light_and_a_whole_frame_drawn_ahead_is_not_used():
    world, slm, _, camera = make_bench(render_ahead=True, frame_ahead=True, power_noise_rms=0.0)
    slm.set_phase(pattern(1))
    world.clock.sleep(TIMING_60.wait_s)
    whole = camera.capture().astype(np.float64)
    assert camera.frame_ahead_hits == 1
    slm.set_phase(pattern(2))
    slm.set_phase(pattern(1))               # the same light again, its frame drawn ahead for the whole sensor
    world.clock.sleep(TIMING_60.wait_s)
    world.ahead.drain(5.0)
    camera.set_woi((10, 50, 8, 30))          # (x, width, y, height)
    part = camera.capture().astype(np.float64)
    assert part.shape == (30, 50) and camera.frame_ahead_hits == 1   # drawn for another window: not used
    assert corr(part, whole[8:38, 10:60]) > 0.99
    camera.set_woi(None)
    assert camera.capture().shape == (SLM_RES[1], SLM_RES[0])


def test_a_window_of_interest_reads_out_in_the_time_of_its_rows():
    full = 0.012                                                  # 12 ms for the whole sensor
    world, slm, _, camera = make_bench(readout_s=full)
    camera.set_woi((10, 50, 8, SLM_RES[1] // 4))
    assert camera.timing.readout_s == pytest.approx(full / 4)
    t0 = world.clock.now()
    camera.capture()
    assert world.clock.now() - t0 == pytest.approx(camera.exposure_s + full / 4)
    camera.set_woi(None)
    assert camera.timing.readout_s == pytest.approx(full)
    t0 = world.clock.now()
    camera.capture()
    assert world.clock.now() - t0 == pytest.approx(camera.exposure_s + full)


def test_a_frame_drawn_ahead_uses_the_laser_state_it_is_filed_under():
    world, enc, _, camera = make_bench(render_ahead=True, frame_ahead=True)
    release = threading.Event()
    real_render = world._render_settled

    def gated_render(*args):
        assert release.wait(5.0)
        return real_render(*args)

    world._render_settled = gated_render
    enc.set_phase(pattern(1))            # filed under "laser on"; the worker waits ...
    world.laser_emission = False         # ... while the beam is blocked for a moment
    release.set()
    world.ahead.drain(5.0)              # the frame is drawn, with the beam blocked at the time
    world.laser_emission = True
    world.clock.sleep(TIMING_60.wait_s)
    assert camera.capture().mean() > world.sensor.dark_offset_dn + 50
    assert camera.frame_ahead_hits == 1


@pytest.mark.parametrize("frame_ahead", [True, False])
def test_an_error_in_the_render_thread_is_raised_at_capture(frame_ahead):
    world, enc, _, camera = make_bench(render_ahead=True, frame_ahead=frame_ahead)

    def broken(*args):
        raise RuntimeError("render failed")

    world._render_settled = broken
    enc.set_phase(pattern(1))
    world.clock.sleep(TIMING_60.wait_s)
    with pytest.raises(RuntimeError, match="render failed"):
        camera.capture()


# --- wall clock ---------------------------------------------------------------------------------

FAST = SLMTiming(refresh_hz=200.0, latency_frames=1, settle_s=0.002)


def test_wall_clock_loop_takes_each_frame_after_its_pattern_settled_from_the_frames_drawn_ahead():
    """Order and content on the wall clock; the rate it reaches is benchmarks/twin_timing.py's figure."""
    world, enc, _, camera = make_bench(clock=WallClock(), timing=FAST, exposure_s=0.001, readout_s=0.004)
    assert world.render_ahead_enabled and camera.frame_ahead_enabled
    patterns = [pattern(k) for k in range(4)]
    for k in range(16):
        enc.set_phase(patterns[k % 4])
        shown = enc.last_frame_shown_s
        world.clock.sleep(FAST.wait_s)
        camera.capture()
        assert camera.last_exposure_start_s >= shown + FAST.settle_s   # never before the pattern settled
        assert world.settled_render_key(camera.last_mid_exposure_t) is not None
    assert camera.frame_ahead_hits >= 10
    world.close()


def test_wall_clock_hardware_trigger_waits_for_an_upload_from_another_thread():
    world, enc, _, camera = make_bench(clock=WallClock(), timing=FAST, exposure_s=0.001, readout_s=0.004)
    camera.trigger_from(enc, delay_s=FAST.settle_s)
    result = {}

    def capture():
        try:
            result["frame"] = camera.capture(timeout_s=2.0)
        except CaptureTimeout as exc:
            result["error"] = exc
        result["t"] = world.clock.now()

    thread = threading.Thread(target=capture)
    thread.start()
    time.sleep(0.03)
    assert thread.is_alive()  # armed, waiting for the trigger
    enc.set_phase(pattern(1))
    thread.join(5.0)
    assert "error" not in result
    shown = enc.last_frame_shown_s
    assert camera.last_trigger_s == shown
    assert result["t"] >= shown + FAST.settle_s + 0.005     # settle, exposure and readout passed, in order
    t0 = world.clock.now()
    with pytest.raises(CaptureTimeout, match=r"no trigger within 0\.05\d* s"):
        camera.capture(timeout_s=0.05)
    assert world.clock.now() - t0 >= 0.05                   # it waited its timeout before giving up
    world.close()


def test_an_slm_fed_every_refresh_frame_shows_each_upload_in_turn():
    """Uploads one per refresh frame with a 2-frame latency: three are in the SLM's latency at
    once, and at each moment the pixels hold the one whose turn it is (not a later one)."""
    world, encoding, _, _ = make_bench(timing=TIMING_60)
    clock = world.clock
    encoding.set_phase(pattern(0))
    clock.sleep(0.2)
    moves, targets = [], []
    for k in range(1, 6):                       # set_phase returns at the edge that latched it
        encoding.set_phase(pattern(k))
        moves.append(world.frame_shown_s(ENCODING))
        targets.append(world._slms[ENCODING].target)
    frame = TIMING_60.frame_s
    assert np.allclose(np.diff(moves), frame)   # one upload per refresh frame
    first_upload = world._slms[ENCODING].uploads - 4
    for k, (t_move, target) in enumerate(zip(moves[:-1], targets)):
        t = t_move + TIMING_60.settle_s + 0.1e-3    # settled, before the next one moves
        assert t < moves[k + 1]
        np.testing.assert_array_equal(world.retardance(ENCODING, t), target)
        assert world.settled_render_key(t)[0] == first_upload + k
    assert world.settled_render_key(moves[0] + 1e-3) is None   # still moving


# --- the laser's read-back beside the camera's draws -------------------------------------------------

def _frames_with_laser_reads(reads_per_frame: int, frames: int = 3) -> tuple[np.ndarray, list[float]]:
    world, slm, _, camera = make_bench(seed=5, power_noise_rms=0.05)
    laser = SimulatedLaser(world, wavelength_nm=520.0, max_power_w=1e-3)
    readings, out = [], []
    for i in range(frames):
        slm.set_phase(pattern(i))
        world.clock.sleep(TIMING_60.wait_s)
        out.append(camera.capture())
        readings += [laser.measured_power() for _ in range(reads_per_frame)]
    return np.stack(out), readings


def test_reading_the_lasers_power_never_changes_the_frames_the_camera_draws():
    """The power monitor draws its noise from a generator of its own: a run whose storage thread
    reads the laser (any number of times, at any moment) gets the frames of a run that never does."""
    never, _ = _frames_with_laser_reads(0)
    often, readings = _frames_with_laser_reads(4)
    assert np.array_equal(never, often)
    assert len(set(readings)) == len(readings) and all(abs(r / 1e-5 - 1) < 0.3 for r in readings)
    again, readings_again = _frames_with_laser_reads(4)
    assert np.array_equal(again, often) and readings_again == readings     # reproducible from the seed
