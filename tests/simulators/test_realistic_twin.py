"""What a real bench adds to the twin, each against an analytic case: the panels' wavefront (Zernike),
unmodulated light, the beam's centre and tilt, true distances, drift, and the camera's defects."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.drivers.common.patterns import grid_coordinates
from optgen.drivers.common.zernike import noll_to_nm, wavefront, zernike
from optgen.lab.bench.assemble import make_world as world_from_bench
from optgen.lab.bench.examples import add_to_bench_text, realistic_bench_text, small_bench_text
from optgen.lab.bench.parse import parse_bench
from optgen.simulators import DECODING, ENCODING, LaserTruth, OpticalWorld, SensorTruth, SLMTruth, VirtualClock
from optgen.simulators.noise import expose
from optgen.simulators.truth import SensorDefects

PITCH, WL = 8e-6, 520e-9
GRID = (128, 128)


def world(encoding=None, laser=None, d1=0.02, d2=0.02, clock=None, sensor=None, decoding=None) -> OpticalWorld:
    flat = SLMTruth(np.arange(256) * np.pi / 128)          # gray g delays g * pi / 128: gray 128 is pi
    return OpticalWorld(wavelength_m=WL, pitch_m=PITCH, grid_shape=GRID, d1_m=d1, d2_m=d2,
                        encoding=encoding or flat, decoding=decoding or SLMTruth(flat.response_rad),
                        sensor=sensor or SensorTruth(resolution=(128, 128), pitch_m=PITCH),
                        laser=laser or LaserTruth(beam="gaussian", waist_m=0.2e-3, aperture_m=0),
                        clock=clock or VirtualClock(), rng=np.random.default_rng(1))


def show_flat(w: OpticalWorld, gray: int = 0) -> None:
    for key in (ENCODING, DECODING):
        w.upload(key, np.full(GRID, gray, np.uint8))


def centroid(image: np.ndarray) -> tuple[float, float]:
    """(x, y) in metres from the grid centre."""
    y, x = grid_coordinates(image.shape, PITCH)
    total = image.sum()
    return float((image * x).sum() / total), float((image * y).sum() / total)


# --- Zernike ------------------------------------------------------------------------------
def test_noll_order_and_unit_rms_orthonormal_modes_over_the_pupil():
    assert [noll_to_nm(j) for j in range(1, 12)] == [(0, 0), (1, 1), (1, -1), (2, 0), (2, -2), (2, 2), (3, -1),
                                                     (3, 1), (3, -3), (3, 3), (4, 0)]
    n = 801
    v = np.linspace(-1, 1, n)
    x, y = np.meshgrid(v, v)
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    inside = rho <= 1
    modes = np.array([zernike(j, rho, theta)[inside] for j in range(1, 16)])
    gram = modes @ modes.T / inside.sum()
    np.testing.assert_allclose(gram, np.eye(15), atol=0.02)


def test_defocus_is_a_lens_and_tilt_a_prism():
    r = 1e-3
    w4 = wavefront([0, 0, 0, 0.5], GRID, PITCH, r)           # half a wave RMS of defocus
    y, x = grid_coordinates(GRID, PITCH)
    np.testing.assert_allclose(w4, 0.5 * np.sqrt(3) * (2 * (x**2 + y**2) / r**2 - 1), atol=1e-12)
    w2 = wavefront([0, 0.25], GRID, PITCH, r)
    np.testing.assert_allclose(w2, 0.25 * 2 * np.broadcast_to(x, GRID) / r, atol=1e-12)


def test_a_wavefront_is_the_sum_of_its_modes_at_any_order_off_centre_and_clamped():
    """wavefront() builds cos(m theta) and sin(m theta) by recurrence: the same as each mode at its angle."""
    shape, r, centre, clamp = (65, 80), 0.3e-3, (40e-6, -24e-6), 0.2e-3
    coefficients = np.random.default_rng(4).normal(0, 0.2, 36)         # up to n = 7, |m| = 7
    y, x = grid_coordinates(shape, PITCH)
    x, y = np.clip(x - centre[0], -clamp, clamp), np.clip(y - centre[1], -clamp, clamp)
    rho, theta = np.hypot(x, y) / r, np.arctan2(y, x)
    expected = sum(c * zernike(j, rho, theta) for j, c in enumerate(coefficients, start=1))
    np.testing.assert_allclose(wavefront(coefficients, shape, PITCH, r, centre, clamp_m=clamp), expected, atol=1e-12)
    on_axis = wavefront(coefficients, (65, 65), PITCH, r)               # a pixel at r = 0: theta taken as 0
    assert np.isfinite(on_axis).all()
    v = (np.arange(65) - 32) * PITCH
    xx, yy = np.meshgrid(v, v)
    np.testing.assert_allclose(on_axis, sum(c * zernike(j, np.hypot(xx, yy) / r, np.arctan2(yy, xx))
                                            for j, c in enumerate(coefficients, start=1)), atol=1e-12)


# --- the panels ---------------------------------------------------------------------------
def test_a_tilted_panel_steers_the_beam_by_the_angle_its_wavefront_says():
    r, c = 1e-3, 0.5                                       # Z2: W = 2 c x / r waves -> angle 2 c lambda / r
    tilted = SLMTruth(np.arange(256) * np.pi / 128,
                      wavefront_rad=(2 * np.pi * wavefront([0, c], GRID, PITCH, r)).astype(np.float32))
    flat_w, tilt_w = world(), world(encoding=tilted)
    show_flat(flat_w)
    show_flat(tilt_w)
    before = centroid(flat_w.output_irradiance(1.0, 1.0))
    after = centroid(tilt_w.output_irradiance(1.0, 1.0))
    expected = (0.02 + 0.02) * 2 * c * WL / r               # (d1 + d2) x angle
    assert after[0] - before[0] == pytest.approx(expected, rel=0.03)
    assert abs(after[1] - before[1]) < 0.02 * expected


def test_unmodulated_light_adds_the_picture_of_a_blank_slm_incoherently_and_no_light_is_lost():
    tilted = (2 * np.pi * wavefront([0, 0, 0, 0.3, 0.2], GRID, PITCH, 0.4e-3)).astype(np.float32)
    y, x = grid_coordinates(GRID, PITCH)
    lens = np.mod(np.round((x**2 + y**2) / (WL * 0.04) * 128), 256).astype(np.uint8)   # delay pi r^2 / (lambda f)

    def picture(role, u, pattern):
        truth = SLMTruth(np.arange(256) * np.pi / 128, unmodulated_fraction=u, wavefront_rad=tilted)
        w = world(**{role.split("_")[0]: truth})
        show_flat(w)
        w.upload(role, pattern)
        return w.output_irradiance(1.0, 1.0).astype(np.float64)

    blank = np.zeros(GRID, np.uint8)
    for role in (ENCODING, DECODING):
        for u in (0.05, 0.2):
            lit, focused, flat = picture(role, u, lens), picture(role, 0.0, lens), picture(role, 0.0, blank)
            np.testing.assert_allclose(lit, (1 - u) * focused + u * flat, rtol=1e-4, atol=1e-6 * lit.max())
            assert float(lit.sum() * PITCH**2) == pytest.approx(float(flat.sum() * PITCH**2), rel=1e-4)


# --- the beam -----------------------------------------------------------------------------
def test_the_beam_lands_where_it_is_planted_and_arrives_at_its_angle():
    centre = (60e-6, -40e-6)
    w = world(laser=LaserTruth(beam="gaussian", waist_m=0.2e-3, aperture_m=0, centre_m=centre,
                               tilt_rad=(0.0, 2e-3)))
    amplitude = np.abs(w.beam_field(0.0)) ** 2
    got = centroid(amplitude)
    assert got[0] == pytest.approx(centre[0], abs=PITCH / 20) and got[1] == pytest.approx(centre[1], abs=PITCH / 20)
    assert float(amplitude.sum() * PITCH**2) == pytest.approx(1.0, rel=1e-3)      # 1 W
    show_flat(w)
    out = centroid(w.output_irradiance(1.0, 1.0))
    assert out[1] - centre[1] == pytest.approx((0.02 + 0.02) * 2e-3, rel=0.03)
    assert out[0] == pytest.approx(centre[0], abs=PITCH / 4)


def test_pointing_drifts_with_bench_time():
    clock = VirtualClock()
    w = world(laser=LaserTruth(beam="gaussian", waist_m=0.2e-3, aperture_m=0, pointing_drift_rad_per_h=(1e-3, 0.0)),
              clock=clock)
    show_flat(w)
    at_start = centroid(w.output_irradiance(0.0, 1.0))
    clock.sleep(3600.0)
    later = centroid(w.output_irradiance(3600.0, 1.0))
    assert later[0] - at_start[0] == pytest.approx(0.04 * 1e-3, rel=0.03)


def test_pointing_moves_in_steps_that_turn_the_phase_across_the_grid_by_a_hundredth_of_a_radian():
    from optgen.simulators.world import POINTING_STEP_RAD

    clock = VirtualClock()
    rate = 3e-5                                                      # rad/h: a slow drift, steps of seconds
    w = world(laser=LaserTruth(beam="gaussian", waist_m=0.2e-3, aperture_m=0, pointing_drift_rad_per_h=(rate, 0.0)),
              clock=clock)
    step = w.pointing_step_s()
    width = GRID[1] * PITCH
    assert step > 1.0
    assert 2 * np.pi / WL * width * rate / 3600.0 * step == pytest.approx(POINTING_STEP_RAD)
    first = w.beam_field(0.4 * step)
    assert w.beam_field(0.1 * step) is first                         # the same step: nothing recomputed
    later = w.beam_field(1.0 * step)
    turned = np.angle(later * np.conj(first))[GRID[0] // 2]          # one row, across the grid
    assert np.ptp(turned) == pytest.approx(POINTING_STEP_RAD * (GRID[1] - 1) / GRID[1], rel=0.02)


def test_the_response_drifts_with_bench_time():
    clock = VirtualClock()
    w = world(encoding=SLMTruth(np.arange(256) * np.pi / 128, response_drift_per_h=0.02), clock=clock)
    w.upload(ENCODING, np.full(GRID, 100, np.uint8))
    before = float(w.retardance(ENCODING, 1.0)[0, 0])
    clock.sleep(1800.0)
    w.upload(ENCODING, np.full(GRID, 100, np.uint8))
    after = float(w.retardance(ENCODING, 3600.0)[0, 0])
    assert before == pytest.approx(-100 * np.pi / 128, rel=1e-6)
    assert after == pytest.approx(before * 1.01, rel=1e-5)              # half an hour at 2 % an hour


def test_drift_counts_from_the_twin_s_start_not_from_the_clock_s_zero():
    """A wall clock reads the host's time since boot: a twin started after 11 hours of uptime must
    start undrifted (its LC response and pointing drifted by 11 hours' worth before this fix)."""
    uptime = 11 * 3600.0
    late, fresh = VirtualClock(start=uptime), VirtualClock()
    truth = dict(encoding=SLMTruth(np.arange(256) * np.pi / 128, response_drift_per_h=0.02),
                 laser=LaserTruth(beam="gaussian", waist_m=0.2e-3, aperture_m=0, pointing_drift_rad_per_h=(1e-3, 0.0)))
    w_late, w_fresh = world(clock=late, **truth), world(clock=fresh, **truth)
    for w, clock in ((w_late, late), (w_fresh, fresh)):
        w.upload(ENCODING, np.full(GRID, 100, np.uint8))
    t_late, t_fresh = late.now() + 1.0, fresh.now() + 1.0
    assert float(w_late.retardance(ENCODING, t_late)[0, 0]) == pytest.approx(
        float(w_fresh.retardance(ENCODING, t_fresh)[0, 0]), rel=1e-6)
    np.testing.assert_allclose(w_late.beam_field(t_late), w_fresh.beam_field(t_fresh), atol=1e-6)
    late.sleep(1800.0)                                                  # and it still drifts from there
    w_late.upload(ENCODING, np.full(GRID, 100, np.uint8))
    assert float(w_late.retardance(ENCODING, late.now() + 1.0)[0, 0]) == pytest.approx(-100 * np.pi / 128 * 1.01,
                                                                                        rel=1e-4)


# --- the camera ---------------------------------------------------------------------------
def test_hot_pixels_prnu_dsnu_and_stray_light_in_the_frames():
    sensor = SensorTruth(resolution=(400, 300), pitch_m=5e-6, read_noise_e=0.0, gain_dn_per_e=1.0,
                         dark_offset_dn=100.0, hot_pixel_fraction=0.01, hot_pixel_e_per_s=20_000.0,
                         prnu_rms=0.02, dsnu_dn_rms=3.0, background_w_per_m2=0.0)
    rng = np.random.default_rng(7)
    defects = SensorDefects.draw(sensor, rng)
    assert defects.hot_pixels.sum() == pytest.approx(0.01 * 120_000, rel=0.1)
    assert float(defects.gain.std()) == pytest.approx(0.02, rel=0.05)
    assert float(defects.offset_dn.std()) == pytest.approx(3.0, rel=0.05)
    dark, _ = expose(np.zeros(sensor.shape, np.float32), 0.01, WL, sensor, rng, defects)
    hot = defects.hot_pixels
    assert float(dark[hot].mean() - dark[~hot].mean()) == pytest.approx(200.0, rel=0.05)   # 20k e/s x 10 ms
    np.testing.assert_allclose(dark[~hot].astype(float) - 100.0, np.rint(defects.offset_dn[~hot]), atol=1.0)
    stray = SensorTruth(**{**sensor.__dict__, "hot_pixel_fraction": 0.0, "prnu_rms": 0.0, "dsnu_dn_rms": 0.0,
                           "background_w_per_m2": 1e-3})
    lit, _ = expose(np.zeros(stray.shape, np.float32), 0.01, WL, stray, rng, SensorDefects.draw(stray, rng))
    photons = 1e-3 * (5e-6) ** 2 * 0.01 / (6.62607015e-34 * 299792458.0 / WL) * stray.qe
    assert float(lit.mean()) - 100.0 == pytest.approx(photons, rel=0.05)


def test_a_default_twin_draws_no_defects_and_plants_none():
    w = world_from_bench(parse_bench(small_bench_text(), "small"))
    t = w.planted_truths()
    assert w.sensor_defects is None and t.hot_pixels is None
    assert not any(v.any() for v in t.wavefront_rad.values()) and t.unmodulated_fraction[ENCODING] == 0.0


# --- the realistic bench ------------------------------------------------------------------
def test_the_realistic_bench_plants_every_effect_from_its_bench_file():
    cfg = parse_bench(realistic_bench_text(), "realistic")
    t = world_from_bench(cfg).planted_truths()
    g = cfg.geometry
    rows, cols = cfg.twin.grid_shape
    for role, used_px in ((ENCODING, g.seed_superpixels * g.superpixel_px), (DECODING, g.decoder_px)):
        r0, c0 = (rows - used_px) // 2, (cols - used_px) // 2
        used = t.wavefront_rad[role][r0:r0 + used_px, c0:c0 + used_px]
        assert 0.7 < float(np.ptp(used)) / (2 * np.pi) < 2.0       # about a wave P-V over the used aperture
        assert 0.01 <= t.unmodulated_fraction[role] <= 0.1
    assert abs(t.d1_m - g.d1_m) >= 0.5e-3 and abs(t.d2_m - g.d2_m) >= 0.5e-3
    assert t.beam["profile"] == "gaussian" and any(t.beam["centre_m"]) and any(t.beam["tilt_rad"])
    assert t.hot_pixels is not None and t.hot_pixels.any()
    twin = cfg.twin
    assert twin.prnu_rms > 0 and twin.dsnu_dn_rms > 0 and twin.background_w_per_m2 > 0
    assert twin.encoding.response_drift_per_h != 0 and any(twin.pointing_drift_rad_per_h)


def test_true_distances_and_a_panels_zernikes_come_from_the_twin_section_and_leave_the_geometry_nominal():
    text = add_to_bench_text(small_bench_text(), {
        "twin": ["d1_mm = 42.0", "d2_mm = 29.0"],
        "twin.encoding_slm": ["wavefront_waves = [0.0, 0.5, 0.0, 0.25]", "wavefront_radius_mm = 1.0"]})
    cfg = parse_bench(text, "distances")
    w = world_from_bench(cfg)
    assert (cfg.geometry.d1_m, cfg.geometry.d2_m) == (pytest.approx(0.040), pytest.approx(0.030))
    assert (w.d1_m, w.d2_m) == (pytest.approx(0.042), pytest.approx(0.029))
    planted = w.planted_truths().wavefront_rad
    expected = 2 * np.pi * wavefront([0.0, 0.5, 0.0, 0.25], cfg.twin.grid_shape, cfg.encoding_slm.pitch_um * 1e-6, 1e-3)
    np.testing.assert_allclose(planted[ENCODING], expected, atol=1e-4)
    assert not planted[DECODING].any()


def test_a_tilted_panel_steers_by_the_true_distances_not_the_nominal_ones():
    angle = 2 * 0.5 * WL / 1e-3
    tilted = SLMTruth(np.arange(256) * np.pi / 128,
                      wavefront_rad=(2 * np.pi * wavefront([0, 0.5], GRID, PITCH, 1e-3)).astype(np.float32))
    shifts = []
    for d1, d2 in ((0.02, 0.02), (0.023, 0.019)):
        flat_w, tilt_w = world(d1=d1, d2=d2), world(encoding=tilted, d1=d1, d2=d2)
        show_flat(flat_w)
        show_flat(tilt_w)
        shifts.append(centroid(tilt_w.output_irradiance(1.0, 1.0))[0] - centroid(flat_w.output_irradiance(1.0, 1.0))[0])
    assert shifts[1] - shifts[0] == pytest.approx(0.002 * angle, rel=0.1)
