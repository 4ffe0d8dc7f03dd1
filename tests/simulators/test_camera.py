"""The twin's image sensor: noise statistics, saturation, placement, stalls."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from optgen.drivers.errors import CaptureTimeout
from optgen.simulators import LaserTruth, OpticalWorld, SensorTruth, SimulatedCamera, SLMTruth, VirtualClock
from optgen.simulators.noise import POISSON_EXACT_BELOW_E, expose, photon_energy_j, poisson_small

WL = 520e-9


def power_for_electrons(mean_e, sensor, exposure_s, shape=(400, 500)):
    return np.full(shape, mean_e * photon_energy_j(WL) / (sensor.qe * exposure_s), dtype=np.float32)


@pytest.mark.parametrize("mean_e", [2.0, 20.0, 1000.0])
def test_shot_and_read_noise_have_the_analytic_mean_and_variance(mean_e, rng):
    sensor = SensorTruth(resolution=(500, 400), pitch_m=5e-6, qe=0.6, gain_dn_per_e=1.0, read_noise_e=0.0,
                         dark_offset_dn=50.0, full_well_e=1e6, bitdepth=16)
    frame, saturated = expose(power_for_electrons(mean_e, sensor, 1e-3), 1e-3, WL, sensor, rng)
    counts = frame.astype(np.float64) - sensor.dark_offset_dn
    n = counts.size
    # Poisson: mean = variance = mean_e; above the exact-Poisson threshold the normal
    # approximation is continuous and rounding to counts adds 1/12
    rounding = 1 / 12 if mean_e >= POISSON_EXACT_BELOW_E else 0.0
    assert counts.mean() == pytest.approx(mean_e, abs=5 * np.sqrt(mean_e / n) + 0.01)
    assert counts.var() == pytest.approx(mean_e + rounding, rel=0.03)
    assert saturated == 0


def test_gain_offset_and_read_noise_scale_as_a_linear_sensor(rng):
    sensor = SensorTruth(resolution=(500, 400), pitch_m=5e-6, qe=0.7, gain_dn_per_e=0.5, read_noise_e=8.0,
                         dark_offset_dn=100.0, full_well_e=1e6, bitdepth=16)
    mean_e = 400.0
    frame, _ = expose(power_for_electrons(mean_e, sensor, 2e-3), 2e-3, WL, sensor, rng)
    counts = frame.astype(np.float64)
    assert counts.mean() == pytest.approx(100.0 + 0.5 * mean_e, rel=2e-3)
    assert counts.var() == pytest.approx(0.25 * (mean_e + 64.0) + 1 / 12, rel=0.03)


def test_low_light_keeps_the_poisson_zero_probability(rng):
    sensor = SensorTruth(resolution=(500, 400), pitch_m=5e-6, qe=1.0, gain_dn_per_e=1.0, read_noise_e=0.0,
                         dark_offset_dn=0.0, full_well_e=1e6, bitdepth=16)
    frame, _ = expose(power_for_electrons(0.5, sensor, 1e-3), 1e-3, WL, sensor, rng)
    assert np.mean(frame == 0) == pytest.approx(np.exp(-0.5), abs=0.01)
    assert frame.min() == 0  # never negative counts


@pytest.mark.parametrize("mean", [0.003, 0.5, 4.0, 4.0 + 1 / 128, 7.3, 30.0, 49.0, 49.99, 63.0])
def test_the_small_mean_poisson_sampler_follows_the_poisson_law(mean, rng):
    n = 200_000
    draws = poisson_small(np.full((400, n // 400), mean, dtype=np.float32), rng)
    assert draws.shape == (400, n // 400) and draws.dtype == np.float32
    assert np.all(draws == np.round(draws)) and draws.min() >= 0
    k = np.arange(int(mean + 8 * np.sqrt(mean) + 8))
    observed = np.bincount(draws.astype(int).ravel(), minlength=k.size)[:k.size]
    expected = n * scipy.stats.poisson.pmf(k, mean)
    use = expected > 20                                     # chi-square over well-filled bins
    chi2 = np.sum((observed[use] - expected[use]) ** 2 / expected[use])
    assert chi2 < scipy.stats.chi2.ppf(0.9999, max(int(use.sum()) - 1, 1))
    assert draws.mean() == pytest.approx(mean, abs=6 * np.sqrt(mean / n))


def test_the_small_mean_sampler_draws_each_pixel_from_its_own_mean(rng):
    # means off the table's grid, mixed in one array (neighbours unrelated), one above the table
    means = np.array([0.0, 0.01, 0.7, 2.2, 9.9, 18.35, 33.3, 49.9, 50.0, 75.5], dtype=np.float32)
    reps = 40_000
    draws = poisson_small(np.tile(means, (reps, 1)), rng)
    assert np.all(draws[:, 0] == 0)
    for column, mean in enumerate(means[1:], start=1):
        k = np.arange(int(mean + 8 * np.sqrt(mean) + 8))
        observed = np.bincount(draws[:, column].astype(int), minlength=k.size)[:k.size]
        expected = reps * scipy.stats.poisson.pmf(k, mean)
        use = expected > 20
        chi2 = np.sum((observed[use] - expected[use]) ** 2 / expected[use])
        assert chi2 < scipy.stats.chi2.ppf(0.9999, max(int(use.sum()) - 1, 1)), mean


@pytest.mark.parametrize("bad", [-0.5, np.nan, np.inf])
def test_the_small_mean_sampler_refuses_a_mean_that_is_no_mean(bad, rng):
    with pytest.raises(ValueError, match="finite means >= 0"):
        poisson_small(np.array([1.0, bad], dtype=np.float32), rng)


def test_a_scaled_picture_exposes_as_the_picture_times_its_scale():
    from optgen.simulators.truth import SensorDefects
    sensor = SensorTruth(resolution=(500, 400), pitch_m=5e-6, qe=0.6, gain_dn_per_e=0.25, read_noise_e=2.5,
                         dark_offset_dn=100.0, full_well_e=10500.0, bitdepth=12)
    picture = power_for_electrons(1.0, sensor, 1e-3) * np.linspace(0.1, 80.0, 500, dtype=np.float32)
    stray = SensorDefects(background_w=float(power_for_electrons(3.0, sensor, 1e-3)[0, 0]))
    for defects in (None, stray):
        scaled, _ = expose(picture, 1e-3, WL, sensor, np.random.default_rng(3), defects, scale=0.37)
        product, _ = expose(picture * np.float32(0.37), 1e-3, WL, sensor, np.random.default_rng(3), defects)
        assert np.mean(scaled != product) < 1e-4            # the same draws; float rounding may move a count
        assert np.abs(scaled.astype(int) - product.astype(int)).max() <= 1


def test_full_well_and_adc_saturate_and_are_counted(rng):
    sensor = SensorTruth(resolution=(50, 40), pitch_m=5e-6, qe=0.7, gain_dn_per_e=0.25, read_noise_e=2.0,
                         dark_offset_dn=100.0, full_well_e=10000.0, bitdepth=12)
    power = power_for_electrons(100.0, sensor, 1e-3, shape=(40, 50))
    power[:10] *= 1000.0  # far above the full well
    frame, saturated = expose(power, 1e-3, WL, sensor, rng)
    assert frame.dtype == np.uint16
    assert frame.max() <= 4095
    assert saturated == 500
    assert np.all(frame[:10] >= 0.25 * 10000 + 100 - 10)


def make_world(sensor: SensorTruth, clock=None):
    response = np.linspace(0.02, 6.3, 256)
    return OpticalWorld(wavelength_m=WL, pitch_m=8e-6, grid_shape=(128, 128), d1_m=0.01, d2_m=0.01,
                        encoding=SLMTruth(response), decoding=SLMTruth(response), sensor=sensor,
                        laser=LaserTruth(aperture_m=0), clock=clock or VirtualClock())


@pytest.mark.parametrize("offset_um, rotation_deg, pitch_um", [
    ((0.0, 0.0), 0.0, 8.0), ((40.0, -24.0), 0.0, 4.0), ((16.0, 8.0), 30.0, 5.0)])
def test_sensor_samples_the_output_plane_at_its_planted_place(offset_um, rotation_deg, pitch_um, monkeypatch):
    sensor = SensorTruth(resolution=(160, 120), pitch_m=pitch_um * 1e-6,
                         offset_m=(offset_um[0] * 1e-6, offset_um[1] * 1e-6), rotation_deg=rotation_deg)
    world = make_world(sensor)
    spot = (70, 50)  # grid (row, col): x = (50 - 63.5) * 8 um, y = (70 - 63.5) * 8 um
    irradiance = np.zeros((128, 128), np.float32)
    irradiance[spot] = 1.0
    monkeypatch.setattr(world, "output_irradiance", lambda t, p: irradiance)
    image = world.sensor_power(0.0, 1.0)
    q = np.array([(spot[1] - 63.5) * 8e-6, (spot[0] - 63.5) * 8e-6]) - np.array(sensor.offset_m)
    a = np.deg2rad(rotation_deg)
    local = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) @ q / sensor.pitch_m
    expected_x, expected_y = local + np.array([79.5, 59.5])
    ys, xs = np.nonzero(image)
    w = image[ys, xs]
    assert np.average(xs, weights=w) == pytest.approx(expected_x, abs=0.6)
    assert np.average(ys, weights=w) == pytest.approx(expected_y, abs=0.6)


def test_camera_stall_raises_capture_timeout_after_the_timeout():
    clock = VirtualClock()
    world = make_world(SensorTruth(resolution=(64, 48), pitch_m=8e-6), clock=clock)
    camera = SimulatedCamera(world, exposure_s=2e-3)
    camera.stall = True
    t0 = clock.now()
    with pytest.raises(CaptureTimeout, match="camera: no frame within"):
        camera.capture(timeout_s=0.5)
    assert clock.now() - t0 == pytest.approx(0.5 + 2e-3)  # slmsuite adds the exposure to the timeout


def test_camera_reports_timing_and_a_finite_default_timeout():
    world = make_world(SensorTruth(resolution=(64, 48), pitch_m=8e-6, readout_s=0.01))
    camera = SimulatedCamera(world, exposure_s=0.004)
    assert camera.timing.frame_s == pytest.approx(0.014)
    assert camera.default_timeout_s() == pytest.approx(1.028)
    t0 = world.clock.now()
    assert camera.capture().shape == (48, 64)
    assert world.clock.now() - t0 == pytest.approx(0.014)  # exposure + readout


def banded_sensor():
    return SensorTruth(resolution=(640, 480), pitch_m=5e-6, qe=1.0, gain_dn_per_e=1.0, read_noise_e=1.5,
                       dark_offset_dn=20.0, full_well_e=1e6, bitdepth=16)


def test_a_large_frame_drawn_in_bands_is_the_same_for_the_same_seed_and_its_bands_are_independent(monkeypatch):
    from optgen.simulators import noise
    monkeypatch.setattr(noise, "_SENSOR_THREADS", 3)
    monkeypatch.setattr(noise, "BAND_PIXELS", 32 * 1024)
    sensor = banded_sensor()
    power = power_for_electrons(20.0, sensor, 1e-3, shape=(480, 640))
    assert noise._band_count(power) == 3
    first, _ = expose(power, 1e-3, WL, sensor, np.random.default_rng(7))
    again, _ = expose(power, 1e-3, WL, sensor, np.random.default_rng(7))
    other, _ = expose(power, 1e-3, WL, sensor, np.random.default_rng(8))
    assert first.shape == (480, 640)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    top, bottom = first[:160].astype(float), first[320:].astype(float)   # the first and the last band
    assert abs(np.corrcoef(top.ravel(), bottom.ravel())[0, 1]) < 0.02
    for band in (top, first[160:320].astype(float), bottom):            # each band: Poisson + read noise
        assert band.mean() - 20.0 == pytest.approx(20.0, abs=0.1)
        assert band.var() == pytest.approx(20.0 + 1.5**2 + 1 / 12, rel=0.05)


def test_frames_are_the_same_whether_their_normals_were_drawn_ahead_or_not(monkeypatch):
    from optgen.simulators import noise
    from optgen.simulators.band_generators import BandGenerators
    monkeypatch.setattr(noise, "BAND_PIXELS", 32 * 1024)
    monkeypatch.setattr(noise, "_SENSOR_THREADS", 2)
    sensor = banded_sensor()
    whole = power_for_electrons(20.0, sensor, 1e-3, shape=(480, 640))
    whole[:, ::7] *= 10.0                                     # bright columns: both noise paths
    smaller = whole[:240, :500].copy()                        # a region of interest: another shape
    sequence = [whole, whole, whole, smaller, whole, whole, whole]
    runs = {}
    for ahead in (True, False):
        generators = BandGenerators()
        generators.draw_ahead_enabled = ahead
        monkeypatch.setattr(noise, "_BAND_GENERATORS", generators)
        rng = np.random.default_rng(11)
        runs[ahead] = [expose(power, 1e-3, WL, sensor, rng)[0] for power in sequence]
        if ahead:                                             # the last steady frames were drawn ahead
            assert generators._streams[id(rng)].ahead is not None
    for drawn_ahead, drawn_then in zip(runs[True], runs[False]):
        assert np.array_equal(drawn_ahead, drawn_then)
    assert not np.array_equal(runs[True][1], runs[True][2])   # each frame its own noise


def test_a_frame_drawn_in_bands_keeps_each_defect_on_its_own_pixel(monkeypatch):
    from optgen.simulators import noise
    from optgen.simulators.truth import SensorDefects
    monkeypatch.setattr(noise, "_SENSOR_THREADS", 4)
    monkeypatch.setattr(noise, "BAND_PIXELS", 32 * 1024)
    sensor = banded_sensor()
    power = power_for_electrons(5.0, sensor, 1e-3, shape=(480, 640))
    hot = np.zeros((480, 640), np.float32)
    hot[[3, 170, 250, 477], [600, 2, 320, 639]] = 2e6          # 2,000 electrons in 1 ms, one per band
    offset = np.zeros((480, 640), np.float32)
    offset[::2] = 100.0                                        # every other row 100 counts up
    gain = np.ones((480, 640), np.float32)
    gain[:, :320] = 3.0                                        # left half three times as sensitive
    defects = SensorDefects(gain=gain, offset_dn=offset, dark_e_per_s=hot)
    assert noise._band_count(power) == 4
    frame, _ = expose(power, 1e-3, WL, sensor, np.random.default_rng(1), defects)
    counts = frame.astype(float) - sensor.dark_offset_dn - offset
    assert set(zip(*np.nonzero(counts > 1000))) == {(3, 600), (170, 2), (250, 320), (477, 639)}
    quiet = counts < 1000
    assert counts[:, :320][quiet[:, :320]].mean() == pytest.approx(15.0, abs=0.2)
    assert counts[:, 320:][quiet[:, 320:]].mean() == pytest.approx(5.0, abs=0.1)
