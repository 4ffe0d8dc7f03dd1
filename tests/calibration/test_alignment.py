"""Alignment measured on the twin (noise, crosstalk, uncalibrated LUTs) against the misalignment it plants."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from optgen.calibration import alignment, alignment_spots
from optgen.calibration.alignment import (
    DecoderPlacement,
    SensorRegistration,
    fit_similarity,
    measure_decoder_placement,
    measure_sensor_registration,
)
from optgen.calibration.alignment_picture import write_alignment_png
from optgen.calibration.lut import PhaseResponse, apply_response, load_response
from optgen.calibration.session import CalibrationError, CalibrationSession
from optgen.drivers.common.patterns import embed_centered
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import parse_bench
from optgen.lab.run.placement import place_decoder
from optgen.lab.run.registration import OutputRegistration
from optgen.simulators import DECODING
from tests.conftest import small_bench_text

PLANT = {("twin.camera", "offset_um"): "[23.0, -17.0]", ("twin.camera", "rotation_deg"): "0.7",
         ("twin.camera", "pitch_um"): "4.7",             # the bench file says 4.8: a pitch ratio of 0.979
         ("twin.decoding_slm", "shift_um"): "[9.0, -6.0]", ("twin.decoding_slm", "rotation_deg"): "0.1"}


def planted_output_to_sensor(world) -> np.ndarray:
    """The twin's true map output-plane metres -> sensor pixel (inverse of its sensor sampling)."""
    s = world.sensor
    a = np.deg2rad(s.rotation_deg)
    rot_inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    centre = np.array([(s.shape[1] - 1) / 2.0, (s.shape[0] - 1) / 2.0])
    return np.hstack([rot_inv / s.pitch_m, (centre - rot_inv @ np.array(s.offset_m) / s.pitch_m)[:, None]])


def window_points(config) -> np.ndarray:
    n, pitch = config.geometry.output_window_px, config.encoding_slm.pitch_um * 1e-6
    v = (np.arange(n + 1) - n / 2.0) * pitch         # the window's pixel corners and centres
    x, y = np.meshgrid(v, v)
    return np.c_[x.ravel(), y.ravel()]


def apply(affine, pts):
    return pts @ affine[:, :2].T + affine[:, 2]


@pytest.fixture(scope="module")
def measured():
    """One bench with the planted misalignment, measured once (sensor, then SLM2)."""
    config = parse_bench(small_bench_text(PLANT), "planted")
    bench = build_bench(config)
    session = CalibrationSession(bench)
    power = session.power_w
    sensor = measure_sensor_registration(session)
    after_sensor = bench.laser.emission
    placement = measure_decoder_placement(session, sensor)
    yield {"config": config, "bench": bench, "session": session, "sensor": sensor, "placement": placement,
           "laser_on_after": (after_sensor, bench.laser.emission), "power": power}
    bench.close()


def test_sensor_registration_matches_the_planted_sensor_within_0p2_px_over_the_window(measured):
    sensor, world, config = measured["sensor"], measured["bench"].world, measured["config"]
    pts = window_points(config)
    deviation = np.hypot(*(apply(sensor.output_to_sensor, pts) - apply(planted_output_to_sensor(world), pts)).T)
    assert deviation.max() < 0.2
    assert sensor.offset_m == pytest.approx((23e-6, -17e-6), abs=0.5e-6)
    assert sensor.rotation_deg == pytest.approx(0.7, abs=0.02)
    assert sensor.pitch_ratio == pytest.approx(4.7 / 4.8, abs=2e-3)
    assert not sensor.mirrored and sensor.residual_px < 0.1
    assert sensor.expected_m.shape == sensor.detected_px.shape == (9, 2)
    # the frame registration takes the measured map and then agrees with the true placement
    registration = OutputRegistration(config, output_to_sensor=sensor.output_to_sensor)
    n = config.geometry.output_window_px
    corners = np.array([[0, 0], [n - 1, 0], [0, n - 1], [n - 1, n - 1]], dtype=np.float64)
    pitch = config.encoding_slm.pitch_um * 1e-6
    true_px = apply(planted_output_to_sensor(world), (corners - (n - 1) / 2.0) * pitch)
    assert np.abs(apply(registration.window_to_sensor, corners) - true_px).max() < 0.2


def test_decoder_placement_matches_the_planted_shift_and_rotation(measured):
    placement = measured["placement"]
    truth = measured["bench"].world._slms[DECODING].truth
    assert np.abs(np.array(placement.shift_m) - np.array(truth.shift_m)).max() < 2e-6   # 0.25 SLM pixel
    assert placement.rotation_deg == pytest.approx(truth.rotation_deg, abs=0.05)
    assert placement.residual_m < 1e-6
    assert placement.centres_px.shape == placement.detected_m.shape == (9, 2)


def test_foci_an_uncorrected_slm2_draws_together_unevenly_still_give_its_shift_and_rotation():
    """SLM2's own panel (uncorrected while it is placed) focuses a little and astigmatically: the foci
    of its lenses spread about 1 % less than their centres, unequally along two axes. The placement
    takes that stretch and still finds the rotation and the shift; the spots fit it exactly. A rigid
    fit left 9 um of residual on the second realistic twin with its distances right (2 camera px)."""
    from optgen.calibration.alignment import _placement_from_spots, rotation_matrix

    pitch, centre = 8e-6, (959.5, 539.5)
    offsets = np.array([(x, y) for y in (-96, 0, 96) for x in (-96, 0, 96)], dtype=np.float64)
    stretch = np.array([[1 - 0.0073, 0.0038], [0.0038, 1 - 0.011]])    # symmetric: focus + astigmatism
    rotation, shift = 0.3, np.array([27e-6, -21e-6])
    detected = (offsets * pitch) @ (rotation_matrix(rotation) @ stretch).T + shift
    placement = _placement_from_spots(offsets + centre, detected, pitch, centre)
    assert placement.rotation_deg == pytest.approx(rotation, abs=1e-9)
    np.testing.assert_allclose(placement.shift_m, shift, atol=1e-12)
    assert placement.residual_m < 1e-12
    assert placement.stretch == (pytest.approx(np.linalg.svd(stretch, compute_uv=False)[0]),
                                 pytest.approx(np.linalg.svd(stretch, compute_uv=False)[1]))


def test_foci_spaced_unlike_the_lens_centres_stop_the_placement_naming_the_pitch(monkeypatch):
    """A wrong SLM2 pitch in the bench file spaces the foci unlike the lens centres the placement
    thinks it showed: the affine fit would take that too, so its stretch is checked."""

    bench = build_bench(parse_bench(small_bench_text(), "small"))
    try:
        session = CalibrationSession(bench)
        sensor = measure_sensor_registration(session)
        real = alignment._placement_from_spots
        monkeypatch.setattr(alignment, "_placement_from_spots",
                            lambda c, d, pitch, *a, **k: real(c, d, pitch * 1.25, *a, **k))
        with pytest.raises(CalibrationError, match=r"spaced 0\.8.*pitch_um"):
            alignment.measure_decoder_placement(session, sensor)
        assert not bench.laser.emission
    finally:
        bench.close()


def test_the_laser_is_off_after_each_measurement_and_the_counts_are_modest(measured):
    assert measured["laser_on_after"] == (False, False)
    assert measured["session"].power_w == measured["power"]         # a lowered spot power is not kept
    counters = measured["session"].counters
    assert counters.patterns_shown <= 24 and counters.frames_captured < 120


def test_place_decoder_lands_the_decoder_where_the_model_expects_it(measured):
    bench, config = measured["bench"], measured["config"]
    world = bench.world
    truth = world._slms[DECODING].truth
    slm = bench.decoding_slm
    apply_response(slm, PhaseResponse("planted", np.arange(truth.response_rad.size, dtype=float), truth.response_rad))
    n = config.geometry.decoder_px
    rng = np.random.default_rng(3)
    smooth = cv2.GaussianBlur(rng.standard_normal((n, n)).astype(np.float32), (0, 0), 6)
    # a smooth phase without 2 pi wraps (crosstalk smears wraps however the decoder is placed)
    decoder = (np.pi + 2.7 * np.tanh(smooth / smooth.std())).astype(np.float32)
    intended = np.exp(1j * embed_centered(decoder, world.grid_shape))
    inner = np.zeros(world.grid_shape, bool)
    r0 = (world.grid_shape[0] - n) // 2 + 4
    inner[r0:r0 + n - 8, r0:r0 + n - 8] = True

    def error(pattern):
        slm.set_phase(pattern)
        shown = world.transmission(DECODING, bench.clock.now() + 10.0)     # as the beam sees SLM2
        shown = shown / np.abs(shown).max()                                # (less any unmodulated part)
        return float(np.sqrt(np.mean(np.abs(shown - intended)[inner] ** 2)))

    planted = DecoderPlacement(shift_m=truth.shift_m, rotation_deg=truth.rotation_deg, residual_m=0.0,
                               centres_px=np.zeros((0, 2)), detected_m=np.zeros((0, 2)))
    try:
        plain = error(embed_centered(decoder, slm.shape))
        pitch_m = config.decoding_slm.pitch_um * 1e-6
        with_truth = error(place_decoder(decoder, slm.shape, planted, pitch_m, interpolation="linear"))
        with_measured = error(place_decoder(decoder, slm.shape, measured["placement"], pitch_m, interpolation="linear"))
        whole_pixels = error(place_decoder(decoder, slm.shape, measured["placement"], pitch_m))
    finally:
        apply_response(slm, load_response("linear", 8))
    assert with_truth < 0.15 * plain
    assert with_measured < 0.25 * plain
    assert with_measured < whole_pixels < 0.5 * plain   # the default moves whole pixels: within half a pixel
    with pytest.raises(ValueError, match="interpolation 'cubic'"):
        place_decoder(decoder, slm.shape, planted, pitch_m, interpolation="cubic")
    np.testing.assert_array_equal(place_decoder(decoder, slm.shape, None, 8e-6), embed_centered(decoder, slm.shape))


def test_alignment_png_is_written_with_and_without_a_placement(measured, tmp_path):
    write_alignment_png(tmp_path / "alignment.png", measured["sensor"], measured["placement"])
    image = cv2.imread(str(tmp_path / "alignment.png"))
    assert image is not None and image.shape[0] >= 256 and image.shape[1] > 640 and image.max() > 0
    frame = np.zeros((256, 320), np.float32)
    write_alignment_png(tmp_path / "sensor_only.png", measured["sensor"], None, frame=frame)
    assert cv2.imread(str(tmp_path / "sensor_only.png")) is not None


def test_no_light_stops_with_a_message_and_the_laser_off():
    bench = build_bench(parse_bench(small_bench_text(), "dark"))
    try:
        session = CalibrationSession(bench, power_w=0.0)
        with pytest.raises(CalibrationError, match="no light"):
            measure_sensor_registration(session)
        assert not bench.laser.emission
    finally:
        bench.close()


def test_a_beam_that_does_not_focus_is_not_taken_for_a_spot(monkeypatch):
    bench = build_bench(parse_bench(small_bench_text(), "flat"))
    try:
        monkeypatch.setattr(alignment, "lens_phase", lambda shape, *args, **kwargs: np.zeros(shape, np.float32))
        with pytest.raises(CalibrationError, match="no focal spot found"):
            measure_sensor_registration(CalibrationSession(bench))
        assert not bench.laser.emission
    finally:
        bench.close()


def test_saturation_lowers_the_spot_power_or_stops_with_a_message(monkeypatch):
    bench = build_bench(parse_bench(small_bench_text(), "bright"))
    try:
        session = CalibrationSession(bench, power_w=1e-3)      # 10,000x the run power: spots saturate at 1 us
        sensor = measure_sensor_registration(session, grid=2)
        assert sensor.residual_px < 0.1 and session.power_w == 1e-3
        monkeypatch.setattr(alignment_spots, "_POWER_STEPS", 0)
        with pytest.raises(CalibrationError, match="saturate"):
            measure_sensor_registration(session, grid=2)
        assert not bench.laser.emission
    finally:
        bench.close()



def test_a_focus_near_saturation_at_the_shortest_exposure_dims_the_laser(mocker):
    """A spot at 93 % of the range at the shortest exposure cannot be brought to the target: the laser is
    dimmed and the exposure found again (it was accepted, and the next frames' noise saturated them: the
    wavefront step at 450 nm on the RGB twin)."""
    bench = build_bench(parse_bench(small_bench_text(), "near"))
    try:
        camera, offset = bench.camera, 100.0
        lo, top = camera.exposure_bounds_s[0], float(camera.saturation_dn) - offset
        session = CalibrationSession(bench, power_w=1e-6)
        gain = 0.93 * top / (lo * 1e-6)                   # counts per second and watt on the spot

        def raw() -> np.ndarray:
            frame = np.full((32, 32), offset, np.float32)
            if bench.laser.emission:
                frame[10:13, 10:13] += min(top, gain * camera.timing.exposure_s * session.power_w)
            return frame

        mocker.patch.object(session, "_raw", side_effect=raw)
        with session.light():
            session.set_exposure(lo)
            exposure = session.auto_exposure_dimming()
        assert session.power_w == pytest.approx(1e-7)
        assert 0.5 < gain * exposure * session.power_w / top < 0.7
        assert not bench.laser.emission
    finally:
        bench.close()

def test_spots_are_swept_pipelined_and_a_saturating_one_sends_them_one_by_one(mocker):
    """The spot patterns go out as one pipelined sweep; a spot that saturates (brighter than the
    first, which set the exposure) has them measured again one at a time, re-exposing on it. A lone
    saturated pixel is a hot pixel, not a spot: it sends nothing round again."""
    bench = build_bench(parse_bench(small_bench_text(PLANT), "sweep"))
    try:
        session = CalibrationSession(bench)
        one_by_one = mocker.spy(alignment_spots, "measure_spots_one_by_one")
        sweeps = mocker.spy(session, "sweep")
        clean = measure_sensor_registration(session)
        assert sweeps.call_count == 1 and one_by_one.call_count == 0
        real_capture, calls = session.capture_frames, {"n": 0}

        def saturates_once(frames=1, size=3):
            taken = real_capture(frames)
            calls["n"] += 1
            if calls["n"] == 3:                       # the third spot of the sweep: a bright one
                taken = taken.copy()
                taken[0, 0:size, 0:size] = float(bench.camera.saturation_dn)
            return taken

        mocker.patch.object(session, "capture_frames", side_effect=lambda frames=1: saturates_once(frames, size=1))
        measure_sensor_registration(session)
        assert one_by_one.call_count == 0                  # one hot pixel
        calls["n"] = 0
        mocker.patch.object(session, "capture_frames", side_effect=saturates_once)
        again = measure_sensor_registration(session)
        assert one_by_one.call_count == 1
        pts = window_points(bench.config)                  # the same registration, to a tenth of a pixel
        assert np.abs(apply(again.output_to_sensor, pts) - apply(clean.output_to_sensor, pts)).max() < 0.1
        assert not bench.laser.emission
    finally:
        bench.close()


def test_similarity_fit_recovers_a_mirrored_sensor_and_round_trips():
    rng = np.random.default_rng(0)
    src = rng.uniform(-1e-3, 1e-3, (9, 2))
    a = np.deg2rad(1.3)
    mirror = np.array([[np.cos(a), np.sin(a)], [np.sin(a), -np.cos(a)]]) / 5e-6   # det < 0
    dst = src @ mirror.T + np.array([600.0, 500.0])
    m, mirrored = fit_similarity(src, dst)
    assert mirrored and np.allclose(m[:, :2], mirror) and np.allclose(m[:, 2], [600.0, 500.0])
    proper = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) / 5e-6
    m, mirrored = fit_similarity(src, src @ proper.T + 3.0)
    assert not mirrored and np.allclose(m[:, :2], proper)
    reg = alignment._sensor_from_spots(src, src @ proper.T + 3.0, 5e-6, (1024, 1280))
    assert isinstance(reg, SensorRegistration)
    assert np.allclose(reg.to_output(reg.to_sensor(src)), src, atol=1e-12)
    assert SensorRegistration.from_dict(reg.as_dict()).offset_m == pytest.approx(reg.offset_m)


def test_spots_that_would_fall_off_the_sensor_are_refused_before_the_laser_goes_on(measured):
    session = measured["session"]
    shown = session.counters.patterns_shown
    with pytest.raises(CalibrationError, match="off the 320x256 sensor"):
        measure_sensor_registration(session, span_fraction=3.0)
    with pytest.raises(CalibrationError, match="off the 320x256 sensor"):
        measure_decoder_placement(session, measured["sensor"], span_fraction=3.0)
    assert session.counters.patterns_shown == shown and not measured["bench"].laser.emission


def test_a_hot_pixel_brighter_than_the_focus_is_not_taken_for_it():
    from optgen.calibration.alignment_spots import find_spot

    y, x = np.mgrid[0:80, 0:100]
    frame = (500.0 * np.exp(-((x - 40.3) ** 2 + (y - 30.6) ** 2) / (2 * 3.0**2))).astype(np.float32)
    frame[10, 70] = 3000.0                                 # one stuck-bright pixel
    spot = find_spot(frame, 4.0, "hot pixel")
    assert spot.x == pytest.approx(40.3, abs=0.05) and spot.y == pytest.approx(30.6, abs=0.05)
