"""The twin's SLM physics: planted response, quantization, crosstalk, settling, misalignment."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.drivers.errors import PhaseInputError
from optgen.drivers.identity import SLMTiming
from optgen.simulators import (
    DECODING,
    ENCODING,
    LaserTruth,
    OpticalWorld,
    SensorTruth,
    SimulatedPhaseSLM,
    SLMTruth,
    VirtualClock,
    planted_response,
)

PITCH = 8e-6
GRID = (64, 96)


def make_world(encoding: SLMTruth | None = None, decoding: SLMTruth | None = None, clock=None) -> OpticalWorld:
    response = planted_response(8, 6.5, 1.3, 0.3)
    return OpticalWorld(
        wavelength_m=520e-9, pitch_m=PITCH, grid_shape=GRID, d1_m=0.01, d2_m=0.01,
        encoding=encoding or SLMTruth(response), decoding=decoding or SLMTruth(response),
        sensor=SensorTruth(resolution=(96, 64), pitch_m=PITCH), laser=LaserTruth(aperture_m=0),
        clock=clock or VirtualClock(), rng=np.random.default_rng(0))


def make_slm(world, key=ENCODING, resolution=(96, 64), timing=SLMTiming(60.0, 0, 0.0)):
    return SimulatedPhaseSLM(world, key, resolution, timing=timing, bitdepth=8, pitch_um=8.0, wav_um=0.52)


def wrap(phase):
    return np.angle(np.exp(1j * phase))


def test_planted_response_is_nonlinear_and_reaches_about_two_pi():
    phi = planted_response(8, 6.55, 1.35, 0.35)
    assert phi.shape == (256,)
    assert np.all(np.diff(phi) > 0)
    assert phi[-1] == pytest.approx(6.55)
    linear = np.linspace(phi[0], phi[-1], 256)
    assert np.max(np.abs(phi - linear)) > 0.3  # visibly not a straight line
    with pytest.raises(ValueError, match="increase"):
        planted_response(8, 1.0, 1.0, 5.0)


def test_linear_lut_shows_the_planted_response_of_each_gray_level():
    world = make_world()
    slm = make_slm(world)
    rng = np.random.default_rng(3)
    phase = rng.uniform(0, 2 * np.pi, slm.shape).astype(np.float32)
    display = slm.set_phase(phase)
    truth = world._slms[ENCODING].truth.response_rad
    np.testing.assert_allclose(world.retardance(ENCODING, world.clock.now()), -truth[display], atol=1e-6)
    # the nominal LUT quantizes to 256 levels of 2 pi / 256 (slmsuite's convention: gray 255 = phase 0)
    expected_display = (np.rint(-phase * 256 / (2 * np.pi)).astype(int) - 1) & 255
    np.testing.assert_array_equal(display, expected_display)


def test_lut_from_the_planted_response_realizes_the_requested_phase_within_quantization():
    world = make_world()
    slm = make_slm(world)
    truth = world._slms[ENCODING].truth.response_rad
    slm.set_gamma(truth / (2 * np.pi))
    phase = np.random.default_rng(4).uniform(0, 2 * np.pi, slm.shape).astype(np.float32)
    slm.set_phase(phase)
    realized = world.retardance(ENCODING, world.clock.now())
    error = wrap(realized - phase)
    step = np.max(np.diff(truth))
    assert np.max(np.abs(error)) <= step / 2 + 1e-5
    # the same phases through the nominal LUT are off by far more than that
    slm.set_gamma(None)
    slm.set_phase(phase)
    nominal_error = wrap(world.retardance(ENCODING, world.clock.now()) - phase)
    assert np.sqrt(np.mean(nominal_error**2)) > 5 * np.sqrt(np.mean(error**2))


def test_crosstalk_smooths_a_phase_step_between_pixels():
    response = planted_response(8, 6.5, 1.0)
    world = make_world(encoding=SLMTruth(response, crosstalk_sigma_px=1.0))
    slm = make_slm(world)
    gray = np.zeros(slm.shape, dtype=np.uint8)
    gray[:, 48:] = 200
    slm.set_phase(gray)
    row = world.retardance(ENCODING, world.clock.now())[32]
    lo, hi = -response[0], -response[200]
    assert row[10] == pytest.approx(lo, abs=1e-4) and row[80] == pytest.approx(hi, abs=1e-4)
    assert hi < row[47] < lo and hi < row[48] < lo  # the step is blurred over neighbours
    assert row[47] - row[48] < 0.6 * (lo - hi)


def test_liquid_crystal_follows_latency_then_settles_exponentially():
    clock = VirtualClock()
    response = planted_response(8, 6.5, 1.0)
    truth = SLMTruth(response, latency_s=2 / 60, settle_s=0.010)
    world = make_world(encoding=truth, clock=clock)
    slm = make_slm(world)
    a = np.zeros(slm.shape, dtype=np.uint8)
    b = np.full(slm.shape, 128, dtype=np.uint8)
    slm.set_phase(a)
    clock.sleep(1.0)
    slm.set_phase(b)
    old, new = -response[0], -response[128]
    clock.sleep(truth.latency_s * 0.9)
    assert world.retardance(ENCODING, clock.now())[0, 0] == pytest.approx(old)  # not moving yet
    clock.sleep(truth.latency_s * 0.1 + truth.settle_s / 2)
    frac = 1 - np.exp(-(truth.settle_s / 2) / (truth.settle_s / np.log(100)))  # 0.9
    assert world.retardance(ENCODING, clock.now())[0, 0] == pytest.approx(old + frac * (new - old), rel=1e-4)
    clock.sleep(truth.settle_s)
    assert world.retardance(ENCODING, clock.now())[0, 0] == pytest.approx(new, rel=1e-3)


def test_decoding_slm_shift_and_rotation_move_its_pattern_in_the_beam():
    response = planted_response(8, 6.5, 1.0)
    gray = np.zeros((64, 96), dtype=np.uint8)
    gray[20:30, 40:50] = 255
    shifted = make_world(decoding=SLMTruth(response, shift_m=(3 * PITCH, -2 * PITCH)))
    slm = make_slm(shifted, key=DECODING)
    slm.set_phase(gray)
    step = abs(np.exp(-1j * response[255]) - np.exp(-1j * response[0]))

    def marked_in_beam(world):                  # where the beam sees the bar's pixels
        seen = world.transmission(DECODING, 0.0)
        return np.argwhere(np.abs(seen - seen[0, 0]) > 0.5 * step)

    marked = marked_in_beam(shifted)
    assert marked[:, 0].min() == 18 and marked[:, 0].max() == 27  # rows moved by -2 (y)
    assert marked[:, 1].min() == 43 and marked[:, 1].max() == 52  # columns moved by +3 (x)
    assert np.argwhere(shifted.retardance(DECODING, 0.0) < -response[128]).min(axis=0).tolist() == [20, 40]  # its own frame

    rotated = make_world(decoding=SLMTruth(response, rotation_deg=90.0))
    slm = make_slm(rotated, key=DECODING)
    bar = np.zeros((64, 96), dtype=np.uint8)
    bar[31:33, 20:76] = 255  # a horizontal bar through the centre ...
    slm.set_phase(bar)
    marked = marked_in_beam(rotated)
    assert np.ptp(marked[:, 0]) > 40 and np.ptp(marked[:, 1]) < 4  # ... becomes vertical


@pytest.mark.parametrize("bad, match", [
    (np.full((64, 96), np.nan, dtype=np.float32), "NaN"),
    (np.full((64, 96), np.inf), "NaN or infinite"),
    (np.zeros((64, 95), dtype=np.float32), "shape"),
    (np.zeros((96, 64), dtype=np.float32), "shape"),
    (np.zeros((64, 96), dtype=np.int32), "uint8"),
    (np.zeros((64, 96), dtype=np.complex64), "dtype"),
    ([[0.0] * 96] * 64, "numpy array"),
])
def test_bad_phase_input_is_refused_before_reaching_the_device(bad, match):
    world = make_world()
    slm = make_slm(world)
    uploads = world._slms[ENCODING].uploads
    with pytest.raises(PhaseInputError, match=match) as info:
        slm.set_phase(bad)
    assert "encoding_slm" in str(info.value)
    assert world._slms[ENCODING].uploads == uploads


def test_gray_levels_out_of_the_bitdepth_are_refused():
    world = make_world()
    slm = SimulatedPhaseSLM(world, ENCODING, (96, 64), timing=SLMTiming(60.0, 0, 0.0), bitdepth=6)
    with pytest.raises(PhaseInputError, match="exceeds 63"):
        slm.set_phase(np.full((64, 96), 64, dtype=np.uint8))


def test_grid_larger_than_the_slm_is_refused():
    world = make_world()
    with pytest.raises(ValueError, match="smaller than the simulation grid"):
        make_slm(world, resolution=(90, 64))
