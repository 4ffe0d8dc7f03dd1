"""The calibration pictures' axes: round ticks that cover the data, lines clipped to the box."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.calibration.plot_axes import draw_axes, line_in_box, nice_ticks


@pytest.mark.parametrize("lo, hi, expected", [
    (0.0, 3.26, [0, 1, 2, 3, 4]),
    (0.0, 151.0, [0, 50, 100, 150, 200]),
    (0.0, 0.0013, [0, 0.0005, 0.001, 0.0015]),
    (-12.0, 40.0, [-20, 0, 20, 40]),
])
def test_ticks_are_round_and_cover_the_range(lo, hi, expected):
    assert nice_ticks(lo, hi) == pytest.approx(expected)


def test_a_line_is_drawn_only_inside_the_box():
    img = np.full((200, 300, 3), 255, np.uint8)
    to_px = draw_axes(img, (50, 20), (200, 150), (0, 10), (0, 10), "x", "y", "t", [0, 5, 10], [0, 5, 10])
    ends = line_in_box(img, to_px, (50, 20), (200, 150), (0, 0), (10, 20), (0, 150, 0))
    assert ends is not None
    (x0, y0), (x1, y1) = ends
    assert (x0, y0) == (50, 170)                        # the origin
    assert y1 == 20 and x1 == pytest.approx(150, abs=1)  # leaves through the top at x = 5
    green = (img[..., 1].astype(int) - img[..., 0]) > 50
    ys, xs = np.nonzero(green)
    assert ys.min() >= 19 and xs.max() <= 152
    assert line_in_box(img, to_px, (50, 20), (200, 150), (20, 20), (30, 30), (0, 150, 0)) is None
