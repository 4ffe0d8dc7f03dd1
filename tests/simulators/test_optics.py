"""Propagation physics against analytic cases."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.drivers.common.patterns import grating_phase, grid_coordinates, lens_phase
from optgen.simulators.optics import band_limit_hz, field_in_beam, phase_to_field, propagate, transfer_function

WL = 520e-9
PITCH = 8e-6


def gaussian(shape, w0, center=(0.0, 0.0)):
    y, x = grid_coordinates(shape, PITCH)
    return np.exp(-((x - center[1]) ** 2 + (y - center[0]) ** 2) / w0**2).astype(np.complex64)


def centroid(intensity):
    rows, cols = intensity.shape
    y, x = grid_coordinates((rows, cols), PITCH)
    total = intensity.sum()
    return float((intensity * y).sum() / total), float((intensity * x).sum() / total)


def radius_1e2(intensity):
    """1/e^2 radius from the second moment (w = 2 sigma for a Gaussian)."""
    cy, cx = centroid(intensity)
    y, x = grid_coordinates(intensity.shape, PITCH)
    var = (intensity * ((x - cx) ** 2 + (y - cy) ** 2)).sum() / intensity.sum() / 2.0
    return 2.0 * np.sqrt(var)


def test_propagation_conserves_energy():
    rng = np.random.default_rng(1)
    field = phase_to_field(rng.uniform(0, 2 * np.pi, (256, 256)).astype(np.float32))
    out = propagate(field, WL, 0.05, PITCH, band_limit=False)
    assert out.dtype == np.complex64
    np.testing.assert_allclose(np.sum(np.abs(out) ** 2), np.sum(np.abs(field) ** 2), rtol=1e-5)


def test_band_limited_propagation_conserves_energy_of_a_field_inside_the_band():
    field = gaussian((512, 512), 0.4e-3)
    out = propagate(field, WL, 0.1, PITCH)
    np.testing.assert_allclose(np.sum(np.abs(out) ** 2), np.sum(np.abs(field) ** 2), rtol=1e-4)


def test_forward_then_backward_returns_the_field():
    field = gaussian((256, 256), 0.3e-3) * phase_to_field(lens_phase((256, 256), PITCH, WL, 0.5))
    back = propagate(propagate(field, WL, 0.03, PITCH), WL, -0.03, PITCH)
    np.testing.assert_allclose(back, field, atol=2e-4)


def test_propagating_in_place_gives_the_same_field_and_otherwise_leaves_the_input_alone():
    field = gaussian((256, 256), 0.3e-3) * phase_to_field(lens_phase((256, 256), PITCH, WL, 0.5))
    kept = field.copy()
    out = propagate(field, WL, 0.03, PITCH)
    np.testing.assert_array_equal(field, kept)                  # the caller's field untouched
    in_place = propagate(field, WL, 0.03, PITCH, overwrite=True)
    np.testing.assert_allclose(in_place, out, atol=1e-6)


def test_lens_focuses_to_the_gaussian_waist_at_the_focal_plane():
    shape, w0, f = (512, 512), 0.3e-3, 0.05
    field = gaussian(shape, w0) * phase_to_field(lens_phase(shape, PITCH, WL, f))
    focus = np.abs(propagate(field, WL, f, PITCH)) ** 2
    expected = WL * f / (np.pi * w0)  # 27.6 um
    assert radius_1e2(focus) == pytest.approx(expected, rel=0.05)
    # before and after the focus the spot is larger
    for z in (0.8 * f, 1.2 * f):
        assert radius_1e2(np.abs(propagate(field, WL, z, PITCH)) ** 2) > 2 * expected


def test_off_axis_lens_focuses_at_its_own_centre():
    shape, w0, f = (512, 512), 0.3e-3, 0.05
    center = (-0.24e-3, 0.4e-3)
    field = gaussian(shape, w0, center) * phase_to_field(lens_phase(shape, PITCH, WL, f, centre_m=center[::-1]))
    focus = np.abs(propagate(field, WL, f, PITCH)) ** 2
    cy, cx = centroid(focus)
    assert cy == pytest.approx(center[0], abs=PITCH / 4)
    assert cx == pytest.approx(center[1], abs=PITCH / 4)


@pytest.mark.parametrize("period_px", [8, 16, 40])
def test_grating_steers_the_beam_to_the_first_order_angle(period_px):
    shape, w0, z = (512, 1024), 0.25e-3, 0.04
    period = period_px * PITCH
    field = gaussian(shape, w0) * phase_to_field(grating_phase(shape, PITCH, period, axis=1))
    out = np.abs(propagate(field, WL, z, PITCH)) ** 2
    sin_theta = WL / period
    expected_x = z * sin_theta / np.sqrt(1 - sin_theta**2)
    cy, cx = centroid(out)
    assert cx == pytest.approx(expected_x, rel=0.01)
    assert cy == pytest.approx(0.0, abs=PITCH / 10)


def test_band_limit_zeroes_only_frequencies_beyond_the_matsushima_limit():
    shape, z = (256, 256), 0.12
    h = transfer_function(shape, WL, z, PITCH)
    fy_max, fx_max = band_limit_hz(shape, PITCH, WL, z)
    fx = np.fft.fftfreq(shape[1], PITCH)
    fy = np.fft.fftfreq(shape[0], PITCH)
    inside = (np.abs(fy)[:, None] <= fy_max) & (np.abs(fx)[None, :] <= fx_max)
    np.testing.assert_allclose(np.abs(h[inside]), 1.0, rtol=1e-6)
    assert not np.any(h[~inside])
    assert 0 < inside.mean() < 1  # at this distance the limit really cuts


def test_band_limit_removes_a_tilt_that_would_wrap_around_the_window():
    shape, z = (256, 256), 0.12
    fy_max, fx_max = band_limit_hz(shape, PITCH, WL, z)
    steep = 1.0 / (PITCH * 4)  # 31 250 cycles/m, beyond fx_max (about 10 500)
    assert steep > fx_max
    y, x = grid_coordinates(shape, PITCH)
    tilted = np.broadcast_to(np.exp(2j * np.pi * steep * x), shape).astype(np.complex64)
    assert np.sum(np.abs(propagate(tilted, WL, z, PITCH)) ** 2) < 1e-6 * np.sum(np.abs(tilted) ** 2)
    gentle = np.broadcast_to(np.exp(2j * np.pi * (fx_max / 2) * x), shape).astype(np.complex64)
    kept = np.sum(np.abs(propagate(gentle, WL, z, PITCH)) ** 2) / np.sum(np.abs(gentle) ** 2)
    assert kept > 0.99


def test_transfer_function_is_cached_and_read_only():
    a = transfer_function((64, 64), WL, 0.01, PITCH)
    b = transfer_function((64, 64), WL, 0.01, PITCH)
    assert a is b
    with pytest.raises(ValueError):
        a[0, 0] = 0


def test_phase_to_field_matches_complex_exponential():
    phase = np.linspace(-10, 10, 1000, dtype=np.float32).reshape(20, 50)
    np.testing.assert_allclose(phase_to_field(phase), np.exp(1j * phase.astype(np.float64)), atol=2e-6)
    np.testing.assert_allclose(phase_to_field(phase, 2.0), 2.0 * np.exp(1j * phase.astype(np.float64)), atol=4e-6)


def test_propagate_rejects_a_non_2d_field():
    with pytest.raises(ValueError, match="2-D"):
        propagate(np.zeros((2, 3, 4), np.complex64), WL, 0.01, PITCH)


@pytest.mark.parametrize("sigma", [0.3, 0.6, 1.7])
def test_the_crosstalk_blur_gives_scipys_gaussian_filter_numbers(sigma, rng):
    """OpenCV does the twin's pixel-crosstalk blur; it must be scipy's filter (mode nearest,
    4-sigma kernel) to float32 rounding."""
    from scipy import ndimage

    from optgen.simulators.optics import gaussian_blur

    phase = rng.uniform(-6.5, 0.0, (90, 131)).astype(np.float32)
    phase[:, :40] = 0.0                         # a sharp step, so the edge handling matters
    expected = ndimage.gaussian_filter(phase, sigma, mode="nearest")
    np.testing.assert_allclose(gaussian_blur(phase, sigma), expected, atol=5e-6)


def test_a_misplaced_slm_mixes_its_pixels_transmissions_not_their_phases():
    pitch = 8e-6
    rng = np.random.default_rng(4)
    phase = rng.uniform(0.0, 2 * np.pi, (32, 48)).astype(np.float32)
    field = phase_to_field(phase)
    # a whole-pixel shift moves every pixel's transmission as it is (x right 3, y up 2)
    moved = field_in_beam(field, field.shape, (3 * pitch, -2 * pitch), 0.0, pitch)
    np.testing.assert_allclose(moved[5:25, 8:40], field[7:27, 5:37], atol=1e-6)
    # half a pixel across a 2 pi wrap: two pixels at -0.1 and +0.1 rad send light at ~0 rad, never pi
    wrap = np.zeros((8, 8), np.float32)
    wrap[:, 4:] = 2 * np.pi - 0.1
    wrap[:, :4] = 0.1
    half = field_in_beam(phase_to_field(wrap), wrap.shape, (-0.5 * pitch, 0.0), 0.0, pitch)
    between = half[4, 3]                                    # halfway between columns 3 and 4
    assert abs(np.angle(between)) < 1e-5 and abs(between) == pytest.approx(np.cos(0.1), abs=1e-5)
    # a mix of pixels never sends more light than they do; no placement leaves the field as it is
    turned = field_in_beam(field, field.shape, (0.3 * pitch, 0.7 * pitch), 0.4, pitch)
    assert np.abs(turned).max() <= 1.0 + 1e-6 and np.abs(turned).min() < 0.9
    assert field_in_beam(field, field.shape, (0.0, 0.0), 0.0, pitch) is field

