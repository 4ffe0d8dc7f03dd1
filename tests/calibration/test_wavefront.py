"""Each SLM's wavefront and the true distances: the phase-diversity fit against its own model, then
``optgen calibrate all`` on a small twin with wavefronts, distances and a Gaussian beam planted here."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import scipy.fft

from optgen.calibration.procedure import calibrate
from optgen.calibration.session import CalibrationError
from optgen.calibration.store import CalibrationStore
from optgen.calibration.twin_truth import truth_errors
from optgen.calibration.wavefront import WavefrontCalibration, wavefront_correction_rad
from optgen.calibration.wavefront_fit import FitCancelled, PupilFit, PupilGrid, fit_pupil, model_pictures, pattern_terms
from optgen.drivers.common.patterns import lens_phase
from optgen.drivers.common.roles import DECODING, ENCODING
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import add_to_bench_text, edit_bench_text, small_bench_text
from optgen.lab.bench.parse import parse_bench

PITCH, WL = 8e-6, 520e-9


# --- the fit against its own model --------------------------------------------------------------
def test_phase_diversity_recovers_the_zernike_terms_the_beam_and_the_unmodulated_light_it_made():
    distance, half = 0.2, 1.0e-3
    grid = PupilGrid.for_path(PITCH, WL, distance, 2 * half, 1.4e-3, tuple(range(2, 16)), (600, 600))
    terms = [pattern_terms(lens_phase((600, 600), PITCH, WL, 1 / (1 / distance + 2 * WL * d / half**2), wrapped=True),
                           grid, 0.5) for d in (-6, -3, 3, 6)]
    rng = np.random.default_rng(3)
    truth = PupilFit(rng.normal(0, 0.08, 14), 0.04, 0.03 - 0.02j, (30e-6, -20e-6), 2.5e-3, 0.0, 0)
    pictures = [3.0 * p + 0.2 for p in model_pictures(grid, terms, truth, aperture_half_m=half)]
    fit = fit_pupil(grid, terms, pictures, [np.ones_like(p) for p in pictures], aperture_half_m=half)
    np.testing.assert_allclose(fit.coefficients_waves, truth.coefficients_waves, atol=2e-3)
    assert fit.unmodulated_fraction == pytest.approx(0.04, abs=2e-3)
    assert fit.beam_waist_m == pytest.approx(2.5e-3, rel=0.01)
    assert fit.beam_centre_m == (pytest.approx(30e-6, abs=1e-6), pytest.approx(-20e-6, abs=1e-6))
    assert fit.residual < 1e-6


def _small_problem(shared_chirp: bool):
    from optgen.calibration.wavefront_fit import _Problem

    distance, half = 0.2, 1.0e-3
    grid = PupilGrid.for_path(PITCH, WL, distance, 2 * half, 1.4e-3, tuple(range(2, 8)), (300, 300))
    terms = [pattern_terms(lens_phase((300, 300), PITCH, WL, 1 / (1 / distance + 2 * WL * d / half**2), wrapped=True),
                           grid, 0.5) for d in (-3, 3)]
    if not shared_chirp:
        terms[1] = (terms[1][0], terms[1][1] * (0.9 + 0.2j))
    rng = np.random.default_rng(5)
    truth = PupilFit(rng.normal(0, 0.1, 6), 0.05, 0.02 + 0.01j, (2e-5, 0.0), 2.5e-3, 0.0, 0)
    pictures = [2.0 * p + 0.1 for p in model_pictures(grid, terms, truth, aperture_half_m=half)]
    weights = [rng.uniform(0.5, 1.0, p.shape) for p in pictures]
    problem = _Problem(grid, terms, pictures, weights, None, half)
    p = np.concatenate([rng.normal(0, 0.1, 6), [1e-5, -1e-5, 1 / 2.2e-3**2], [0.03, -0.01, 0.08]])
    return problem, p


@pytest.mark.parametrize("shared_chirp", [True, False])
def test_the_misfit_gradient_is_its_finite_difference(shared_chirp):
    problem, p = _small_problem(shared_chirp)
    assert problem.shared_chirp is shared_chirp
    _, grad = problem(p)
    for i in (0, 3, 6, 7, 8, 9, 10, 11):                  # wavefront terms, beam centre and waist, eps, u
        h = 1e-4 * max(abs(p[i]), 1e-2) if i < 6 or i > 8 else (1e-7 if i < 8 else 1e-3 * p[i])
        up, down = p.copy(), p.copy()
        up[i] += h
        down[i] -= h
        numeric = (problem(up)[0] - problem(down)[0]) / (2 * h)
        assert grad[i] == pytest.approx(numeric, rel=2e-2, abs=1e-3 * np.abs(grad).max()), i


def test_pictures_sharing_their_chirp_take_the_one_fft_path_to_the_same_misfit(mocker):
    problem, p = _small_problem(True)
    forward = mocker.spy(scipy.fft, "fft2")
    value, grad = problem(p)
    assert forward.call_count == 1 + len(problem.pictures)       # the unmodulated field once, not per picture
    problem.chirps = [problem.chirps[0]] * len(problem.pictures)  # the same problem, one chirp per picture
    problem.chirp_of = list(range(len(problem.pictures)))
    value_each, grad_each = problem(p)
    assert value == pytest.approx(value_each, rel=1e-6)
    np.testing.assert_allclose(grad, grad_each, rtol=1e-4, atol=1e-6 * np.abs(grad_each).max())


def test_a_cancelled_fit_stops_at_its_next_evaluation():
    distance, half = 0.2, 1.0e-3
    grid = PupilGrid.for_path(PITCH, WL, distance, 2 * half, 1.4e-3, tuple(range(2, 8)), (300, 300))
    terms = [pattern_terms(lens_phase((300, 300), PITCH, WL, 1 / (1 / distance + 2 * WL * d / half**2), wrapped=True),
                           grid, 0.5) for d in (-3, 3)]
    truth = PupilFit(np.full(6, 0.05), 0.02, 0j, (0.0, 0.0), 2.5e-3, 0.0, 0)
    pictures = model_pictures(grid, terms, truth, aperture_half_m=half)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(FitCancelled):
        fit_pupil(grid, terms, pictures, [np.ones_like(p) for p in pictures], aperture_half_m=half, cancel=cancel)


def test_the_correction_is_minus_the_wavefront_from_defocus_on():
    cal = WavefrontCalibration(ENCODING, tuple(range(2, 8)), np.array([0.3, -0.2, 0.1, 0.05, 0.0, 0.02]), 1e-3,
                               0.01, 0.0, (0.0, 0.0), 0.0)
    correction = wavefront_correction_rad(cal, (64, 64), PITCH)
    expected = -2 * np.pi * cal.wavefront_waves((64, 64), PITCH, corrected_only=True)
    np.testing.assert_allclose(correction, expected, atol=1e-5)
    assert list(cal.corrected_waves()) == [0.0, 0.0, 0.1, 0.05, 0.0, 0.02]       # tilt left to the alignment
    cal.extent_m = 0.1e-3                              # beyond the measured square: its edge's value
    clamped = cal.wavefront_waves((64, 64), PITCH)
    np.testing.assert_allclose(clamped[:, 44:], np.repeat(clamped[:, 44:45], 20, axis=1), atol=1e-12)
    free = dataclasses.replace(cal, extent_m=0.0).wavefront_waves((64, 64), PITCH)
    np.testing.assert_allclose(clamped[26:38, 26:38], free[26:38, 26:38])
    assert not np.allclose(clamped[:, 50:], free[:, 50:])


# --- the fit against light propagated another way ---------------------------------------------------
def _angular_spectrum_pictures(grid: PupilGrid, patterns, waist_m: float, centre_m, half_m: float, sigma_px: float,
                               n_px: int = 800):
    """Pictures of a clipped Gaussian beam through ``patterns`` (wrapped, blurred by ``sigma_px`` of
    fringing) made on the SLM's own pixels by the twin's band-limited angular-spectrum propagation,
    sampled at the fit's sensor-plane points: not the fit's Fresnel model on its coarser cells."""
    import cv2

    from optgen.drivers.common.patterns import grid_coordinates
    from optgen.simulators.optics import gaussian_blur, propagate

    y, x = grid_coordinates((n_px, n_px), PITCH)
    amplitude = np.exp(-((x - centre_m[0]) ** 2 + (y - centre_m[1]) ** 2) / waist_m**2)
    amplitude *= (np.abs(x) <= half_m) & (np.abs(y) <= half_m)
    pixels_per_cell = grid.du_m / PITCH
    offset = (n_px - 1) / 2.0 - grid.n / 2.0 * pixels_per_cell    # the fit's point k sits at (k - n/2) du
    warp = np.array([[pixels_per_cell, 0.0, offset], [0.0, pixels_per_cell, offset]])
    pictures = []
    for pattern in patterns:
        r0, c0 = (pattern.shape[0] - n_px) // 2, (pattern.shape[1] - n_px) // 2
        shown = gaussian_blur(np.mod(pattern[r0:r0 + n_px, c0:c0 + n_px], 2 * np.pi).astype(np.float32), sigma_px)
        light = np.abs(propagate((amplitude * np.exp(1j * shown)).astype(np.complex64), WL, grid.distance_m,
                                 PITCH)) ** 2
        pictures.append(cv2.warpAffine(light.astype(np.float32), warp, (grid.n, grid.n),
                                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP).astype(np.float64))
    return pictures


def test_the_fit_finds_the_beam_of_pictures_propagated_on_the_slms_own_pixels():
    """The fit's cells are three SLM pixels wide: light its cells cannot hold is left out (not folded
    back), the aperture clips as the pixels do, and the pictures are point samples. Before, the same
    pictures read as a beam 15 % too wide, 8 % of the light unmodulated and the centre 14 um off."""
    distance, half, waist, centre, sigma = 0.2165, 1.28e-3, 3.0e-3, (40e-6, -25e-6), 0.6
    grid = PupilGrid.for_path(PITCH, WL, distance, 2 * half, 2 * half / np.sqrt(2), tuple(range(2, 16)), (800, 800))
    assert grid.block == 3
    patterns = [lens_phase((800, 800), PITCH, WL, 1 / (1 / distance + 2 * WL * d / half**2), flyback_px=2.0)
                for d in (-6, -3, 3, 6)]
    pictures = _angular_spectrum_pictures(grid, patterns, waist, centre, half, sigma)
    fit = fit_pupil(grid, [pattern_terms(p, grid, sigma) for p in patterns], pictures,
                    [np.ones_like(p) for p in pictures], aperture_half_m=half)
    assert fit.beam_waist_m == pytest.approx(waist, rel=0.02)
    assert fit.beam_centre_m == (pytest.approx(centre[0], abs=1.5e-6), pytest.approx(centre[1], abs=1.5e-6))
    assert fit.unmodulated_fraction < 0.02                       # none was there
    assert float(np.sqrt(np.mean(fit.coefficients_waves**2))) < 0.002
    assert fit.residual < 2e-3


def test_frames_are_taken_at_the_fits_points_not_averaged_over_a_cell():
    from optgen.calibration.wavefront import _on_model_grid

    grid = PupilGrid(n=8, block=1, pitch_m=PITCH, wavelength_m=WL, distance_m=0.1, radius_m=1e-3, noll=(2,))
    camera_pitch = grid.du_m / 5.0                            # five camera pixels a cell
    frame = np.zeros((60, 60), np.float32)
    frame[30, 30] = 100.0                                     # the point at the grid's centre (index n/2)
    to_sensor = np.array([[1 / camera_pitch, 0.0, 30.0], [0.0, 1 / camera_pitch, 30.0]])
    picture, weights = _on_model_grid(frame, to_sensor, grid, camera_pitch)
    assert picture[4, 4] == pytest.approx(100.0)              # a cell-wide box would have left 4
    assert picture[4, 5] == 0.0 and picture[3, 4] == 0.0
    assert weights.min() == 1.0


# --- on the twin ----------------------------------------------------------------------------------
PLANTED = {
    "twin": ["d1_mm = 40.6", "d2_mm = 29.6"],
    "twin.encoding_slm": ["wavefront_waves = [0, 0, 0, 0.3, 0.15, -0.1, 0.05, 0, 0, 0, 0.04]",
                          "wavefront_radius_mm = 0.6", "unmodulated_fraction = 0.03"],
    "twin.decoding_slm": ["wavefront_waves = [0, 0, 0, -0.2, 0.0, 0.12, 0, -0.05]", "wavefront_radius_mm = 0.6",
                          "unmodulated_fraction = 0.04"],
}


def planted_bench_text() -> str:
    text = edit_bench_text(small_bench_text(), {("twin.laser", "beam"): '"gaussian"', ("twin.laser", "waist_mm"): "0.9"})
    return add_to_bench_text(text, PLANTED)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wavefront")
    cfg = parse_bench(planted_bench_text(), "planted")
    with build_bench(cfg, folder) as bench:
        report = calibrate(bench, "all", CalibrationStore(folder), truths=bench.truths)
        errors = truth_errors(report, bench.truths, cfg.light_path)
        assert bench.world.laser_emission is False
    return cfg, folder, report, errors


def test_calibrate_all_takes_most_of_each_planted_wavefront_out(calibrated):
    _, _, report, errors = calibrated
    for role in (ENCODING, DECODING):
        assert errors[f"{role}_wavefront_planted_rms_waves"] > 0.1
        assert errors[f"{role}_wavefront_left_rms_waves"] <= 0.06, errors      # lambda/20 on the full-size bench
        assert report.measurements[f"{role}.wavefront"].misfit < 0.1
        # the small twin leaves no room between a focus and a grating's first order: the fit's figure is kept
        assert "leaves no room" in report.measurements[f"{role}.wavefront"].unmodulated_from


def test_d2_comes_from_the_gratings_to_a_tenth_of_a_millimetre(calibrated):
    _, _, report, errors = calibrated
    assert abs(errors["d2_error_mm"]) <= 0.1, errors
    assert abs(errors["d1_error_mm"]) <= 1.2, errors          # the small twin reads d1 short (test_distances.py)
    d = report.measurements["distances"]
    assert d.nominal_d1_m == pytest.approx(0.040) and d.nominal_d2_m == pytest.approx(0.030)


def test_a_bench_opened_on_the_store_corrects_slm1_and_leaves_the_decoder_as_trained_unless_asked(calibrated):
    cfg, folder, report, _ = calibrated
    for correct_decoder in (False, True):
        text = edit_bench_text(planted_bench_text(),
                               {("calibration", "correct_decoder_wavefront"): str(correct_decoder).lower()})
        config = parse_bench(text, "planted")
        assert config.calibration.correct_decoder_wavefront is correct_decoder
        with build_bench(config, folder) as bench:
            ids = bench.calibration_ids()
            for role, slm in ((ENCODING, bench.encoding_slm), (DECODING, bench.decoding_slm)):
                assert ids[f"{role}.wavefront"].startswith(f"wavefront:{role}")
                if role == DECODING and not correct_decoder:
                    assert slm.measured_correction_rad is None          # the decoder's 2 pi wraps as trained
                    continue
                expected = wavefront_correction_rad(report.measurements[f"{role}.wavefront"], slm.shape,
                                                    cfg.light_path.pitch_m)
                np.testing.assert_allclose(slm.measured_correction_rad, expected, atol=1e-5)
                flat = slm.phase_to_gray(np.zeros(slm.shape, np.float32))
                assert np.ptp(flat.astype(int)) > 0            # a flat phase is no longer one gray level
            assert ids["distances"].startswith("distances:bench")
    for path in folder.glob("*.h5"):
        assert path.with_suffix(".png").is_file()


def test_slm2s_wavefront_fit_overlaps_the_alignment_and_is_stored_after_it(calibrated):
    _, folder, report, _ = calibrated
    assert not parse_bench(planted_bench_text(), "planted").calibration.correct_decoder_wavefront
    slm2 = report.files[f"{DECODING}.wavefront"]
    assert report.files["alignment"].stat().st_mtime_ns <= slm2.stat().st_mtime_ns
    assert report.files[f"{ENCODING}.wavefront"].stat().st_mtime_ns <= report.files["alignment"].stat().st_mtime_ns
    assert report.measurements[f"{DECODING}.wavefront"].unmodulated_from       # the unmodulated light joined it


def test_a_step_failing_after_the_wavefront_drops_slm2s_running_fit_and_keeps_slm1s(tmp_path, monkeypatch):
    import optgen.calibration.alignment as alignment

    measure = alignment.measure_sensor_registration

    def full_grid_fails(session, *args, **kwargs):
        if kwargs.get("grid") is None:                  # the alignment step's, not the wavefront step's quick one
            raise CalibrationError("no spots (planted by the test)")
        return measure(session, *args, **kwargs)

    monkeypatch.setattr(alignment, "measure_sensor_registration", full_grid_fails)
    cfg = parse_bench(planted_bench_text(), "planted")
    with build_bench(cfg, tmp_path) as bench:
        with pytest.raises(CalibrationError, match="planted by the test"):
            calibrate(bench, "all", CalibrationStore(tmp_path))
        assert bench.world.laser_emission is False
    assert len(list(tmp_path.glob(f"wavefront-{ENCODING}-*.h5"))) == 1
    assert not list(tmp_path.glob(f"wavefront-{DECODING}-*.h5"))
    assert not list(tmp_path.glob("alignment-*.h5"))
    for thread in threading.enumerate():               # the dropped fit stopped at its next evaluation
        if thread.name.startswith("optgen-wavefront-fit"):
            thread.join(timeout=10.0)
            assert not thread.is_alive()


def test_an_aberration_beyond_the_range_stops_with_the_previous_correction_in_force_and_the_laser_off(tmp_path):
    text = add_to_bench_text(small_bench_text(), {"twin.encoding_slm": ["wavefront_waves = [0, 0, 0, 6.0, 4.0]",
                                                                        "wavefront_radius_mm = 0.4"]})
    cfg = parse_bench(text, "too much")
    with build_bench(cfg, tmp_path) as bench:
        before = {slm.name: np.full(slm.shape, 0.25, np.float32) for slm in (bench.encoding_slm, bench.decoding_slm)}
        for slm in (bench.encoding_slm, bench.decoding_slm):
            slm.set_wavefront_correction(before[slm.name])
        with pytest.raises(CalibrationError, match="wavefront_correction.*previous calibration stays in force"):
            calibrate(bench, "wavefront", CalibrationStore(tmp_path))
        assert bench.world.laser_emission is False
        for slm in (bench.encoding_slm, bench.decoding_slm):
            np.testing.assert_array_equal(slm.measured_correction_rad, before[slm.name])
    assert not list(tmp_path.glob("wavefront-*.h5")) and not list(tmp_path.glob("distances-*.h5"))
