"""In-situ phase-response calibration of both SLMs (calibration.response), on the small twin.

The twin plants a nonlinear gray -> phase response per SLM, crosstalk (Gaussian blur of the phase,
sigma 0.6 px), SLM2 shifted and rotated in the beam, an unknown sensor placement, 1 % laser power
noise per frame and shot + read noise; the calibration has to find the responses through all of it.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from optgen.calibration.response import ResponseMeasurement, measure_response
from optgen.calibration.response_fit import grating_ratio_model
from optgen.calibration.response_picture import write_response_png
from optgen.calibration.session import CalibrationError, CalibrationSession
from optgen.calibration.two_slms import calibrate_luts
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import parse_bench

from ..conftest import small_bench_text

KEYS = ("encoding_slm", "decoding_slm")
PLANTED_SIGMA = 0.6


def planted(bench, key: str) -> np.ndarray:
    truth = bench.world._slms[key].truth.response_rad
    return truth - truth[0]


def rms_error_0_2pi(measured: np.ndarray, truth: np.ndarray) -> float:
    use = truth <= 2 * np.pi
    return float(np.sqrt(np.mean((measured[use] - truth[use]) ** 2)))


def laser_is_off(bench) -> bool:
    return not bench.world.laser_emission and not bench.laser.emission


def open_small(extra=None):
    return build_bench(parse_bench(small_bench_text(extra), "small-test-bench"))


@pytest.fixture(scope="module")
def calibrated():
    """Both SLMs calibrated once in alternation (two rounds), from the nominal linear LUTs."""
    bench = open_small()
    session = CalibrationSession(bench)
    results = calibrate_luts(session, rounds=2)
    yield bench, session, results
    bench.close()


def test_both_responses_are_recovered_within_30_mrad_over_0_to_2pi(calibrated):
    bench, _, results = calibrated
    assert set(results) == set(KEYS)
    for key in KEYS:
        m = results[key]
        assert isinstance(m, ResponseMeasurement) and m.slm_key == key
        assert m.phase_rad.shape == (256,) and m.phase_rad[0] == 0.0
        assert np.all(np.diff(m.phase_rad) >= 0)
        err = rms_error_0_2pi(m.phase_rad, planted(bench, key))
        assert err < 0.03, f"{key}: {err:.4f} rad RMS"
        assert m.residual_rms < 0.01
        assert m.lut_range_rad() == pytest.approx(planted(bench, key)[-1], abs=0.05)
        assert m.reaches_2pi and not m.warnings
        # a modest number of patterns: 2 references x 32 grays x 2 (plain, swapped) + set-up
        assert m.counters["patterns_shown"] <= 150


def test_fitted_crosstalk_is_the_planted_blur(calibrated):
    _, _, results = calibrated
    enc, dec = results["encoding_slm"], results["decoding_slm"]
    # sigma within 0.01 px on both (0.600 and 0.606 measured), SLM2's 3 um (0.375 px) offset in the beam
    # included: the twin mixes its pixels' transmissions there, which barely changes the orders'
    # powers, so the fit's resampling term stays small (0.07 and 0.06 measured) and takes no blur
    assert enc.crosstalk_sigma_px == pytest.approx(PLANTED_SIGMA, abs=0.03)
    assert dec.crosstalk_sigma_px == pytest.approx(PLANTED_SIGMA, abs=0.03)
    assert enc.resample_shift_px < 0.15 and dec.resample_shift_px < 0.15


def test_each_new_lut_is_applied_and_the_rounds_converge(calibrated):
    bench, session, results = calibrated
    for key in KEYS:
        m = results[key]
        lut = bench.luts[key]
        assert lut.id.startswith(f"measured:{key}:520nm:")
        assert np.allclose(lut.phase_rad, m.phase_rad)
        slm = session.slms[key]
        assert np.allclose(np.asarray(slm.gamma) * 2 * np.pi, m.phase_rad)
    enc, dec = results["encoding_slm"], results["decoding_slm"]
    assert enc.rounds == 2 and [h["round"] for h in enc.history] == [1, 2]
    assert enc.history[0]["helper_lut_id"].startswith("linear")          # round 1: nominal SLM2 lens
    assert enc.history[1]["helper_lut_id"].startswith("measured:decoding_slm:")
    assert dec.history[0]["helper_lut_id"].startswith("measured:encoding_slm:")
    assert enc.history[0]["change_rad_rms"] is None
    assert enc.history[1]["change_rad_rms"] < 0.01                       # converged
    assert dec.rounds == 1                                               # so SLM2 was not re-measured


def test_the_laser_is_off_after_the_calibration(calibrated):
    bench, _, _ = calibrated
    assert laser_is_off(bench)


def test_the_response_png_is_a_readable_image(calibrated, tmp_path):
    bench, _, results = calibrated
    for key in KEYS:
        path = tmp_path / f"{key}.png"
        write_response_png(path, results[key], planted=bench.world._slms[key].truth.response_rad)
        image = cv2.imread(str(path))
        assert image is not None and image.ndim == 3 and image.shape[0] > 400 and image.shape[1] > 1000
        assert image.std() > 10            # not blank: curves, axes and text were drawn
    write_response_png(tmp_path / "plain.png", results["encoding_slm"])
    assert cv2.imread(str(tmp_path / "plain.png")) is not None


def test_the_sweeps_read_out_only_a_window_around_the_orders_and_the_whole_sensor_comes_back(mocker):
    """The gray sweeps need only the three diffraction-order windows: the camera's window of
    interest holds them (the twin then draws a few thousand pixels' noise, not the sensor's)."""
    with open_small() as bench:
        camera = bench.camera
        woi_calls = mocker.spy(camera, "set_woi")
        shapes = []
        real_capture = camera.capture

        def capture(*args, **kwargs):
            frame = real_capture(*args, **kwargs)
            shapes.append(frame.shape)
            return frame

        mocker.patch.object(camera, "capture", side_effect=capture)
        m = measure_response(CalibrationSession(bench), "encoding_slm")
        windowed = [sh for sh in shapes if sh != camera.shape]
        assert len(windowed) >= 120                          # every sweep frame (4 x 32 gratings and repeats)
        assert all(h * w < 0.5 * camera.shape[0] * camera.shape[1] for h, w in windowed)
        assert woi_calls.call_args_list[-1].args == (None,) and camera.woi == (0, 320, 0, 256)
        assert rms_error_0_2pi(m.phase_rad, planted(bench, "encoding_slm")) < 0.03
        # the recorded order centres are in whole-frame pixels
        zero = m.raw["order_centres_yx_p16"][0]
        assert 0 < zero[0] < camera.shape[0] and 0 < zero[1] < camera.shape[1]


def test_a_session_window_restores_the_whole_sensor_and_its_dark_frame_after_an_error(small_bench):
    session = CalibrationSession(small_bench)
    session.capture_dark(frames=1)
    whole_dark = session.dark
    with pytest.raises(RuntimeError, match="inside"):
        with session.window(slice(20, 60), slice(100, 180)) as (y0, x0):
            assert (y0, x0) == (20, 100) and small_bench.camera.shape == (40, 80)
            assert session.dark.shape == (40, 80) and session.capture().shape == (40, 80)
            raise RuntimeError("inside the window")
    assert small_bench.camera.shape == (256, 320) and session.dark is whole_dark
    assert session.capture().shape == (256, 320)


def test_the_ratio_model_is_the_binary_grating_without_blur_and_departs_from_it_with_blur():
    delta = np.linspace(0, 2 * np.pi, 41)
    c2, s2 = np.cos(delta / 2) ** 2, np.sin(delta / 2) ** 2
    for period, k in ((16, 1.0), (8, 0.8)):
        # pixelated grating: |E0|^2 = cos^2, |E+-1|^2 = 4 sin^2 / (P sin(pi/P))^2 each (4/pi^2 for large P)
        first = 4.0 / (period * np.sin(np.pi / period)) ** 2
        expected = c2 / (c2 + k * 2 * first * s2)
        assert np.allclose(grating_ratio_model(delta, period, 0.0, k), expected, atol=1e-12)
    blurred = grating_ratio_model(delta, 16, PLANTED_SIGMA)
    assert np.max(np.abs(blurred - grating_ratio_model(delta, 16, 0.0))) > 0.02


def test_a_response_short_of_2pi_is_measured_and_flagged():
    bench = open_small({("twin.encoding_slm", "response_max_rad"): "5.0"})
    try:
        m = measure_response(CalibrationSession(bench), "encoding_slm")
        truth = planted(bench, "encoding_slm")
        assert rms_error_0_2pi(m.phase_rad, truth) < 0.03
        assert m.lut_range_rad() == pytest.approx(truth[-1], abs=0.05) and not m.reaches_2pi
        assert any("2 pi" in w for w in m.warnings)
        assert laser_is_off(bench)
    finally:
        bench.close()


def test_no_light_stops_with_a_calibration_error_naming_it():
    bench = open_small()
    try:
        with pytest.raises(CalibrationError, match="no light on the sensor"):
            measure_response(CalibrationSession(bench, power_w=0.0), "encoding_slm")
        assert laser_is_off(bench)
    finally:
        bench.close()


def test_an_slm_that_does_not_modulate_stops_with_a_calibration_error():
    bench = open_small({("twin.decoding_slm", "response_max_rad"): "0.5"})   # the bench file's minimum
    try:
        with pytest.raises(CalibrationError, match="modulat"):
            measure_response(CalibrationSession(bench), "decoding_slm")
        assert laser_is_off(bench)
    finally:
        bench.close()


def test_a_missing_helping_slm_is_named(small_bench):
    session = CalibrationSession(small_bench)
    slm2 = small_bench.decoding_slm
    small_bench.decoding_slm = None
    try:
        with pytest.raises(CalibrationError, match=r"encoding_slm response needs the decoding_slm .*lens"):
            measure_response(session, "encoding_slm")
        with pytest.raises(CalibrationError, match=r"decoding_slm: the bench has no such SLM"):
            measure_response(session, "decoding_slm")
        assert laser_is_off(small_bench)
    finally:
        small_bench.decoding_slm = slm2


def test_a_failure_mid_measurement_leaves_the_laser_off(small_bench, mocker):
    camera = small_bench.camera
    real_capture = camera.capture
    calls = {"n": 0}

    def failing_capture(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 40:
            assert small_bench.world.laser_emission      # the failure comes while the laser is on
            raise RuntimeError("camera unplugged")
        return real_capture(*args, **kwargs)

    mocker.patch.object(camera, "capture", side_effect=failing_capture)
    with pytest.raises(RuntimeError, match="camera unplugged"):
        measure_response(CalibrationSession(small_bench), "decoding_slm")
    assert calls["n"] > 40 and laser_is_off(small_bench)


def test_saturated_frames_stop_the_measurement(small_bench):
    session = CalibrationSession(small_bench)
    real_auto_exposure = session.auto_exposure

    def exposure_then_power_jump(*args, **kwargs):
        exposure = real_auto_exposure(*args, **kwargs)
        small_bench.world.laser_setpoint_w *= 50.0        # the laser drifts far up after the exposure was set
        return exposure

    session.auto_exposure = exposure_then_power_jump
    with pytest.raises(CalibrationError, match="saturated"):
        measure_response(session, "encoding_slm")
    assert laser_is_off(small_bench)


def test_an_slm_with_more_than_2pi_of_stroke_is_driven_within_its_first_turn():
    """8 rad of stroke (as many SLMs have at short wavelengths): slmsuite's nearest-level table
    would mix gray levels one turn apart in neighbouring pixels (2 pi jumps that the crosstalk
    smears); the LUT keeps to the first turn, so both responses and the focal spots come out as
    on a 2 pi SLM."""
    from optgen.calibration.alignment import measure_sensor_registration
    from optgen.calibration.twin_truth import sensor_registration_error_px

    bench = open_small({("twin.encoding_slm", "response_max_rad"): "8.0",
                        ("twin.decoding_slm", "response_max_rad"): "7.9"})
    try:
        session = CalibrationSession(bench)
        results = calibrate_luts(session, rounds=2)
        for key in KEYS:
            truth = planted(bench, key)
            assert rms_error_0_2pi(results[key].phase_rad, truth) < 0.01, key
            first_beyond = int(np.argmax(truth >= 2 * np.pi))
            used = np.unique(np.asarray(session.slms[key].lut))
            assert used.max() < first_beyond and used.size > 0.9 * first_beyond
        sensor = measure_sensor_registration(session)
        window_m = bench.config.geometry.output_window_px * bench.world.pitch_m
        assert sensor_registration_error_px(sensor.output_to_sensor, bench.truths, window_m) < 0.05
        assert laser_is_off(bench)
    finally:
        bench.close()
