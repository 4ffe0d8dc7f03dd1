"""The standard phase patterns against their closed forms (float64 references)."""

import numpy as np
import pytest

from optgen.drivers.common.patterns import grid_coordinates, lens_phase

PITCH, WAVELENGTH = 8e-6, 520e-9
SHAPE = (120, 200)
CENTRE = (1.3e-4, -0.7e-4)


def _reference(focal_m: float) -> np.ndarray:
    """-pi r^2 / (lambda f) in float64."""
    y, x = grid_coordinates(SHAPE, PITCH)
    return -np.pi * ((y - CENTRE[1]) ** 2 + (x - CENTRE[0]) ** 2) / (WAVELENGTH * focal_m)


def _circular(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (np.asarray(a, np.float64) - b))))


@pytest.mark.parametrize("focal_m", [0.15, -0.3, 0.01])
def test_lens_is_the_thin_lens_phase(focal_m):
    got = lens_phase(SHAPE, PITCH, WAVELENGTH, focal_m, CENTRE)
    ref = _reference(focal_m)
    assert got.dtype == np.float32 and got.shape == SHAPE
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("focal_m", [0.15, -0.3, 0.01])
def test_wrapped_lens_is_the_phase_modulo_two_pi(focal_m):
    got = lens_phase(SHAPE, PITCH, WAVELENGTH, focal_m, CENTRE, wrapped=True)
    assert got.dtype == np.float32
    assert got.min() >= 0.0 and got.max() < 2.0 * np.pi
    assert _circular(got, _reference(focal_m)).max() < 1e-5


def test_flyback_keeps_the_lens_between_jumps_and_removes_them():
    focal_m, flyback_px = 0.1, 3.0                       # local periods down to 7 pixels at the edge
    wrapped = lens_phase(SHAPE, PITCH, WAVELENGTH, focal_m, CENTRE, wrapped=True)
    fly = lens_phase(SHAPE, PITCH, WAVELENGTH, focal_m, CENTRE, flyback_px=flyback_px)
    y, x = grid_coordinates(SHAPE, PITCH)
    r = np.sqrt((y - CENTRE[1]) ** 2 + (x - CENTRE[0]) ** 2)
    b = np.minimum(flyback_px * r * PITCH / (WAVELENGTH * focal_m), 0.5)     # the flyback's share of a period
    u = wrapped / (2.0 * np.pi)
    keep = u < 1.0 - b - 1e-4
    assert keep.mean() > 0.5
    np.testing.assert_allclose(fly[keep], wrapped[keep], atol=1e-5)
    back = u > 1.0 - b + 1e-4                            # a linear return from the top to 0
    expected = 2.0 * np.pi * (1.0 - u[back]) * (1.0 - b[back]) / b[back]
    np.testing.assert_allclose(fly[back], expected, atol=1e-3)   # u is float32: x (1 - b) / b
    # continuous: no neighbour differs by anything near 2 pi, where the plain wrap jumps
    assert np.abs(np.diff(wrapped, axis=1)).max() > 5.0
    assert np.abs(np.diff(fly, axis=1)).max() < 2.5
