"""The live view's picture of a frame (JPEG, histogram, saturated cells), its overlay, and its test patterns."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from optgen.drivers.common.patterns import lens_phase
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.live.patterns import LiveCommandError, make_pattern
from optgen.lab.live.picture import (
    HISTOGRAM_BINS,
    MAX_SATURATED_CELLS,
    SATURATION_CELL_PX,
    overlay_from_registration,
    render_frame,
)
from optgen.lab.run.registration import OutputRegistration


def _decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED)


def test_full_scale_maps_the_adc_top_to_white_and_half_to_mid_grey():
    frame = np.zeros((64, 80), np.uint16)
    frame[:, 40:] = 4095
    frame[:32, :40] = 2048
    r = render_frame(frame, 7, bitdepth=12, saturation_dn=4000)
    grey = _decode(r.jpeg)
    assert grey.shape == (64, 80) and grey.ndim == 2
    assert grey[40:60, 50:70].mean() > 250                  # 4095 -> white
    assert abs(float(grey[8:24, 8:30].mean()) - 127.5) < 3   # 2048 -> mid grey
    assert grey[40:60, 8:30].mean() < 3
    assert (r.seq, r.width, r.height, r.max_dn, r.scale_top_dn) == (7, 80, 64, 4095, 4095.0)


def test_auto_scale_stretches_a_dim_frame_to_its_brightest_pixel():
    frame = np.full((32, 32), 10, np.uint16)
    frame[10:20, 10:20] = 200
    grey = _decode(render_frame(frame, 1, bitdepth=12, saturation_dn=4095, scale="auto").jpeg)
    assert grey[12:18, 12:18].mean() > 245
    assert _decode(render_frame(frame, 1, bitdepth=12, saturation_dn=4095).jpeg)[12:18, 12:18].mean() < 16


def test_histogram_counts_every_sampled_pixel_in_its_bin():
    frame = np.zeros((40, 40), np.uint16)
    frame[:, :20] = 64 * 10 + 3          # bin 10 of 64 bins over 12 bits (64 counts per bin)
    r = render_frame(frame, 1, bitdepth=12, saturation_dn=4095)
    assert len(r.histogram) == HISTOGRAM_BINS
    assert sum(r.histogram) == 20 * 20                   # every other row and column
    assert r.histogram[10] == 20 * 10 and r.histogram[0] == 20 * 10


def test_saturated_pixels_are_counted_and_reported_per_cell():
    frame = np.zeros((64, 64), np.uint16)
    frame[50, 101 % 64] = 4000           # x = 37, y = 50
    frame[5, 6] = 4095
    r = render_frame(frame, 1, bitdepth=12, saturation_dn=3990)
    c = SATURATION_CELL_PX
    assert r.saturated_px == 2
    assert sorted(map(tuple, r.saturated_cells)) == [(6 // c * c, 5 // c * c), (37 // c * c, 50 // c * c)]
    assert r.stats()["saturated_cell_px"] == c


def test_a_frame_saturated_all_over_reports_the_count_without_the_cells():
    side = int(np.sqrt(MAX_SATURATED_CELLS)) * SATURATION_CELL_PX + 2 * SATURATION_CELL_PX
    r = render_frame(np.full((side, side), 4095, np.uint16), 1, bitdepth=12, saturation_dn=4095)
    assert r.saturated_px == side * side and r.saturated_cells == []


def test_a_frame_that_is_not_2d_is_refused():
    with pytest.raises(ValueError, match="height, width"):
        render_frame(np.zeros((2, 3, 4), np.uint16), 1, bitdepth=12, saturation_dn=4095)


def test_the_nominal_overlay_is_the_output_window_scaled_by_the_pitch_ratio_around_the_sensor_centre():
    cfg = parse_bench(default_bench_text(), "x.toml")
    reg = OutputRegistration(cfg)
    overlay = overlay_from_registration(reg, False, "nominal")
    corners = np.array(overlay.window)
    side = cfg.geometry.output_window_px * cfg.encoding_slm.pitch_um / cfg.camera.pitch_um
    w, h = cfg.camera.resolution
    assert np.allclose(corners.max(axis=0) - corners.min(axis=0), side, atol=0.05)
    assert np.allclose(corners.mean(axis=0), [(w - 1) / 2, (h - 1) / 2], atol=0.05)
    n = cfg.geometry.output_pixels
    assert len(overlay.lines) == 2 * (n - 1)
    first = np.array(overlay.lines[0])                    # the first vertical border: one output pixel in
    assert np.allclose(first[:, 0] - corners[0, 0], side / n, atol=0.05)
    assert overlay.as_dict()["calibrated"] is False


def test_a_measured_placement_rotates_the_overlay():
    cfg = parse_bench(default_bench_text(), "x.toml")
    pitch = cfg.camera.pitch_um * 1e-6
    quarter = np.array([[0.0, -1.0 / pitch, 600.0], [1.0 / pitch, 0.0, 500.0]])     # 90 degrees, centre (600, 500)
    overlay = overlay_from_registration(OutputRegistration(cfg, output_to_sensor=quarter), True, "alignment x")
    corners = np.array(overlay.window)
    assert np.allclose(corners.mean(axis=0), [600, 500], atol=0.05)
    top_edge = corners[1] - corners[0]                   # window x runs along sensor +y after a quarter turn
    assert abs(top_edge[0]) < 1e-6 and top_edge[1] > 0


def _pattern(kind, params, **over):
    args = dict(slm_name="encoding_slm", shape=(64, 96), pitch_m=8e-6, wavelength_m=520e-9, superpixel_px=4,
                seed_phase=lambda k: np.full((4, 4), 0.5 * k, np.float32), seed_count=3,
                decoder=lambda: np.ones((16, 16), np.float32))
    args.update(over)
    return make_pattern(kind, params, **args)


def test_lens_pattern_is_the_wrapped_thin_lens():
    phase = _pattern("lens", {"focal_mm": 250})
    assert np.allclose(phase, lens_phase((64, 96), 8e-6, 520e-9, 0.25, wrapped=True))


@pytest.mark.parametrize("angle, axis", [(0, 1), (90, 0)])
def test_grating_pattern_steps_two_pi_per_period_along_its_direction(angle, axis):
    phase = _pattern("grating", {"period_px": 8, "angle_deg": angle}).astype(np.float64)
    step = np.diff(np.unwrap(phase, axis=axis), axis=axis)
    assert np.allclose(step, 2 * np.pi / 8, atol=1e-4)
    assert phase.min() >= 0 and phase.max() < 2 * np.pi


def test_seed_pattern_shows_superpixels_centred_and_decoder_is_centred():
    phase = _pattern("seed", {"index": 2})
    assert np.allclose(phase[24:40, 40:56], 1.0) and phase.sum() == pytest.approx(16 * 16 * 1.0)
    dec = _pattern("decoder", {})
    assert dec[24:40, 40:56].min() == 1.0 and dec.sum() == 16 * 16


@pytest.mark.parametrize("kind, params, words", [
    ("lens", {"focal_mm": 0}, "focal_mm = 0"),
    ("lens", {"focal_mm": "x"}, "focal_mm = 'x'"),
    ("lens", {}, "focal_mm = None"),
    ("grating", {"period_px": 1}, "period_px = 1"),
    ("grating", {"period_px": 8, "angle_deg": float("nan")}, "angle_deg"),
    ("seed", {"index": 3}, "from 0 to 2"),
    ("seed", {"index": -1}, "index = -1"),
    ("seed", {"index": 1.5}, "index = 1.5"),
    ("spiral", {}, "'spiral' is not known"),
])
def test_bad_pattern_parameters_are_refused_naming_the_slm_and_value(kind, params, words):
    with pytest.raises(LiveCommandError) as err:
        _pattern(kind, params)
    assert "encoding_slm" in str(err.value) and words in str(err.value)


def test_seed_and_decoder_need_a_run_source():
    with pytest.raises(LiveCommandError, match="no seeds"):
        _pattern("seed", {"index": 0}, seed_phase=None, seed_count=0)
    with pytest.raises(LiveCommandError, match="no decoder"):
        _pattern("decoder", {}, decoder=None)
    with pytest.raises(LiveCommandError, match="does not fit"):
        _pattern("decoder", {}, decoder=lambda: np.ones((100, 100), np.float32))
