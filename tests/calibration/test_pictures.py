"""The camera calibration's PNG: the fitted line where the fit puts it, ticks and labels, its size.

The image is read back and measured (no plotting library): the axes box is found from its black
edges, the fitted line from its green pixels, the steps from their blue (fitted) and red
(saturated) dots; nothing here asks the module where it drew them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from optgen.calibration.camera import CameraCalibration, fit_linearity
from optgen.calibration.pictures import SIZE, exposure_unit, linearity_legend, write_camera_png

GAIN_DN_PER_S = 3.7e7
EXPOSURES_S = 1e-4 * 2.0 ** np.arange(6)


def calibration(last_step_ratio: float, rng) -> CameraCalibration:
    """Six steps on the line GAIN x exposure, the last one saturated and at ``last_step_ratio`` of it
    (0.8: the old picture's normalised slope 1.25, its line drawn at min(slope, 1) misses every
    fitted step; 1.25: normalised slope 0.8)."""
    sums = GAIN_DN_PER_S * EXPOSURES_S
    sums[-1] *= last_step_ratio
    peaks = np.array([300.0, 600, 1200, 2400, 3600, 4095])        # the last one clipped (>= 0.9 x 4095)
    dark = (100 + 2 * rng.standard_normal((96, 128))).astype(np.float32)
    return CameraCalibration(exposure_s=1e-3, dark_frame=dark, dark_level_dn=100.0, read_noise_dn=2.0, hot_pixels=0,
                             saturation_dn=4000.0, driver_saturation_dn=4095, linearity_rms=0.0,
                             exposures_s=EXPOSURES_S.copy(), spot_counts=sums, peak_counts=peaks)


def axes_box(img: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the linearity axes: the long black lines in the right half."""
    black = img.max(axis=2) < 60
    half = img.shape[1] // 2
    cols = np.flatnonzero(black[:, half:].sum(axis=0) > 250) + half
    rows = np.flatnonzero(black[:, half:].sum(axis=1) > 300)
    assert cols.size >= 2 and rows.size >= 2, "no axes box found"
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


def colour_mask(img: np.ndarray, channel: int, margin: int = 60) -> np.ndarray:
    """Pixels where ``channel`` (BGR index) stands ``margin`` above both others."""
    img = img.astype(int)
    others = np.delete(img, channel, axis=2).max(axis=2)
    return img[..., channel] - others > margin


def blobs(mask: np.ndarray) -> np.ndarray:
    """Centroids (x, y) of the dots in ``mask``."""
    n, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    return centroids[1:][stats[1:, cv2.CC_STAT_AREA] >= 12]


def written(tmp_path, cal) -> np.ndarray:
    path = tmp_path / "camera.png"
    write_camera_png(path, cal)
    img = cv2.imread(str(path))
    assert img is not None
    return img


@pytest.mark.parametrize("last_step_ratio", [0.8, 1.25])
def test_the_fitted_line_runs_from_the_origin_through_the_fitted_steps_to_the_panels_edge(last_step_ratio, rng,
                                                                                           tmp_path):
    img = written(tmp_path, calibration(last_step_ratio, rng))
    left, top, right, bottom = axes_box(img)
    inside = np.zeros(img.shape[:2], bool)
    inside[top + 2:bottom - 1, left + 2:right - 1] = True

    green = colour_mask(img, 1, 50) & inside
    ys, xs = np.nonzero(green)
    assert xs.size > 200
    slope, intercept = np.polyfit(xs, ys, 1)                        # the line in pixels: y = slope x + intercept

    def distance(x, y):
        return abs(slope * x - y + intercept) / np.hypot(slope, 1.0)

    fitted = blobs(colour_mask(img, 0, 80) & inside)
    saturated = blobs(colour_mask(img, 2, 80) & inside)
    assert len(fitted) == 5 and len(saturated) == 1
    for x, y in fitted:                                             # the line goes through every fitted step
        assert distance(x, y) < 1.5
    assert distance(*saturated[0]) > 10                             # and not through the saturated one
    assert distance(left, bottom) < 2.0                             # from counts 0 at exposure 0
    end_x, end_y = xs.max(), ys.min()                               # to where it leaves the panel
    assert end_x >= right - 4 or end_y <= top + 4
    assert slope < 0                                                # counts grow with the exposure (up)


def test_both_axes_have_tick_labels_and_axis_labels_and_the_png_its_size(rng, tmp_path):
    img = written(tmp_path, calibration(0.8, rng))
    assert img.shape == (SIZE[1], SIZE[0], 3)
    left, top, right, bottom = axes_box(img)
    ink = img.max(axis=2) < 128
    below = ink[bottom + 8:bottom + 24, left - 10:right + 10]       # x tick labels
    beside = ink[top:bottom, left - 50:left - 8]                    # y tick labels
    x_label = ink[bottom + 28:bottom + 48, left:right]
    y_label = ink[top:bottom, left - 75:left - 52]
    for name, region in (("x tick labels", below), ("y tick labels", beside), ("x label", x_label),
                         ("y label", y_label)):
        assert region.sum() > 40, name
    # tick marks: short black strokes just outside the box, on both axes
    assert (img[bottom + 2:bottom + 5, left:right + 1].max(axis=2) < 60).any(axis=0).sum() >= 4
    assert (img[top:bottom + 1, left - 4:left - 1].max(axis=2) < 60).any(axis=1).sum() >= 3


def test_the_legend_gives_the_fitted_slope_and_the_steps_it_fits(rng):
    cal = calibration(0.8, rng)
    fit = fit_linearity(cal.exposures_s, cal.spot_counts, cal.peak_counts, cal.driver_saturation_dn)
    assert fit.gain_dn_per_s == pytest.approx(GAIN_DN_PER_S)          # the saturated step is left out
    assert exposure_unit(cal.exposures_s) == ("ms", 1e-3)
    assert linearity_legend(fit, ("ms", 1e-3)) == "fit through 0: slope 37,000 DN/ms, 5 of 6 steps"
    assert exposure_unit(cal.exposures_s / 100) == ("us", 1e-6)      # steps under 1 ms: in microseconds
    assert linearity_legend(fit, ("us", 1e-6)) == "fit through 0: slope 37 DN/us, 5 of 6 steps"


def test_every_step_saturated_draws_the_steps_without_a_line(rng, tmp_path):
    cal = calibration(0.8, rng)
    cal.peak_counts = np.full(6, 4095.0)
    img = written(tmp_path, cal)
    left, top, right, bottom = axes_box(img)
    inside = img[top + 2:bottom - 1, left + 2:right - 1]
    assert not colour_mask(inside, 1, 50).any()
    assert len(blobs(colour_mask(inside, 2, 80))) == 6
    fit = fit_linearity(cal.exposures_s, cal.spot_counts, cal.peak_counts, cal.driver_saturation_dn)
    assert linearity_legend(fit).startswith("no fit")


def test_the_twins_camera_calibration_draws_its_steps_on_its_fit(small_bench, tmp_path):
    from optgen.calibration.camera import measure_camera
    from optgen.calibration.session import CalibrationSession

    cal = measure_camera(CalibrationSession(small_bench))
    img = written(tmp_path, cal)
    left, top, right, bottom = axes_box(img)
    inside = np.zeros(img.shape[:2], bool)
    inside[top + 2:bottom - 1, left + 2:right - 1] = True
    ys, xs = np.nonzero(colour_mask(img, 1, 50) & inside)
    slope, intercept = np.polyfit(xs, ys, 1)
    for x, y in blobs(colour_mask(img, 0, 80) & inside):
        assert abs(slope * x - y + intercept) / np.hypot(slope, 1.0) < 3.0   # within a dot's radius
