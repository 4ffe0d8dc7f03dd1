"""Hot pixels and the per-pixel dark frame: found against planted truths, applied to frames."""

from __future__ import annotations

import re

import numpy as np
import pytest

from optgen.calibration.camera import measure_camera
from optgen.calibration.camera_pixels import PixelCorrection, find_hot_pixels
from optgen.calibration.session import CalibrationSession
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import add_to_bench_text
from optgen.lab.bench.parse import parse_bench
from tests.conftest import small_bench_text


def _dark_with_defects(rng, shape=(200, 300), dsnu=2.0, hot_share=0.002, hot_dn=(12.0, 400.0)):
    dark = 100.0 + dsnu * rng.standard_normal(shape) + 0.3 * rng.standard_normal(shape)
    hot = rng.random(shape) < hot_share
    dark[hot] += rng.uniform(*hot_dn, size=int(hot.sum()))
    return dark.astype(np.float32), hot


def test_hot_pixels_stand_out_of_the_pixel_to_pixel_spread(rng):
    dark, hot = _dark_with_defects(rng, hot_dn=(20.0, 400.0))      # 20 DN: 10 x the DSNU
    found, threshold = find_hot_pixels(dark)
    assert 12.0 < threshold < 20.0                                  # 8 robust sigma of ~2 DN
    assert (found & hot).sum() >= 0.99 * hot.sum()
    assert (found & ~hot).sum() <= 2


def test_a_uniform_slope_or_a_smooth_shading_is_not_hot(rng):
    y, x = np.mgrid[0:200, 0:300]
    dark = (100.0 + 0.2 * x + 30.0 * np.exp(-((x - 150) ** 2 + (y - 100) ** 2) / 4000.0)).astype(np.float32)
    found, _ = find_hot_pixels(dark + 0.5 * rng.standard_normal(dark.shape).astype(np.float32))
    assert found.sum() == 0


def test_the_correction_subtracts_the_dark_frame_and_replaces_each_hot_pixel_by_its_neighbours(rng):
    dark = (100.0 + 3.0 * rng.standard_normal((20, 30))).astype(np.float32)
    hot = np.zeros((20, 30), bool)
    hot[5, 7] = hot[0, 0] = hot[19, 29] = True                        # corners too
    light = np.full((20, 30), 50.0, np.float32)
    light[5, 8] = 60.0
    frame = (dark + light).astype(np.float32)
    frame[hot] = 4095.0                                               # saturated hot pixels
    out = PixelCorrection(dark, hot).apply(frame)
    expected = light.copy()
    expected[5, 7] = 50.0                                             # median of its eight neighbours
    expected[0, 0] = expected[19, 29] = 50.0
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert PixelCorrection(dark, hot).hot_count == 3
    shifted = PixelCorrection(dark, hot).shifted(2.0).apply(frame)
    np.testing.assert_allclose(shifted[~hot], (light - 2.0)[~hot], atol=1e-4)
    window = PixelCorrection(dark, hot).crop(slice(2, 10), slice(4, 12))
    np.testing.assert_allclose(window.apply(frame[2:10, 4:12]), expected[2:10, 4:12], atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        PixelCorrection(dark, hot).apply(frame[:10])


def _hot_bench(e_per_s: float, fraction: float = 0.003):
    text = add_to_bench_text(small_bench_text(), {"twin.camera": [
        f"hot_pixel_fraction = {fraction}", f"hot_pixel_e_per_s = {e_per_s}", "dsnu_dn_rms = 2.0"]})
    return build_bench(parse_bench(text, "hot-pixel bench"))


@pytest.mark.parametrize("e_per_s", [3.0e5, 3.0e7])     # warm (found only at the long exposure) and saturating
def test_the_camera_calibration_finds_the_planted_hot_pixels(e_per_s):
    with _hot_bench(e_per_s) as bench:
        planted = bench.truths.hot_pixels
        cal = measure_camera(CalibrationSession(bench))
        assert planted.sum() > 100
        assert (cal.hot_map & planted).sum() >= 0.99 * planted.sum()
        assert (cal.hot_map & ~planted).sum() <= 0.01 * planted.sum()
        assert cal.hot_pixels == int(cal.hot_map.sum())
        assert np.isfinite(cal.linearity_rms)                       # hot pixels do not pose as the spot's peak
        assert bench.world.laser_emission is False


def test_a_dark_frame_between_two_measured_ones_is_drawn_from_them_and_matches_a_measured_one():
    """Offset, DSNU, hot pixels' dark current and stray light: all linear in the exposure."""
    text = add_to_bench_text(small_bench_text(), {"twin.camera": [
        "hot_pixel_fraction = 0.01", "hot_pixel_e_per_s = 2.0e6", "dsnu_dn_rms = 2.0", "background_w_per_m2 = 0.05"]})
    with build_bench(parse_bench(text, "dark bench")) as bench:
        session = CalibrationSession(bench)
        assert session.modelled_dark(1e-3) is None                    # nothing measured yet
        for exposure in (0.5e-3, 2e-3):
            session.set_exposure(exposure)
            session.capture_dark(frames=8)
        assert session.modelled_dark(1e-3 / 0.9) is not None
        assert session.modelled_dark(5e-3) is None                    # beyond twice the longer one
        session.set_exposure(1e-3)
        modelled = session.modelled_dark(1e-3)
        measured = session.capture_dark(frames=8)
        again = session.capture_dark(frames=8).copy()
        hot = bench.truths.hot_pixels
        assert measured[hot].mean() > measured[~hot].mean() + 100       # hot pixels well above the rest
        assert abs(float(np.mean(modelled - measured))) < 0.3           # no bias: the level is right
        assert float(np.mean(modelled[hot] - measured[hot])) == pytest.approx(0.0, abs=0.02 * float(measured[hot].mean()))
        # pixel by pixel as close as two dark frames measured one after the other (shot and read noise)
        noise = float(np.sqrt(np.mean((again - measured) ** 2)))
        assert float(np.sqrt(np.mean((modelled - measured) ** 2))) < 1.5 * noise
        with session.light():
            before = session.counters.frames_captured
            session.dark_for_exposure()                                 # modelled: no frames, laser stays on
            assert session.counters.frames_captured == before and session.counters.darks_modelled == 1
            assert bench.world.laser_emission is True
        with session.window(slice(10, 60), slice(20, 90)):
            assert not session._whole_sensor()


def test_a_flat_field_file_is_read_normalised_and_divides_each_frame(tmp_path, rng):
    from optgen.calibration.camera_pixels import load_flat_field

    gain = (1.0 + 0.05 * rng.standard_normal((20, 30))).astype(np.float32)
    np.save(tmp_path / "flat.npy", 2.0 * gain)                      # any scale: normalised to median 1
    loaded = load_flat_field(tmp_path / "flat.npy", (20, 30))
    np.testing.assert_allclose(loaded, gain / np.median(gain), rtol=1e-6)
    dark = np.full((20, 30), 100.0, np.float32)
    light = (50.0 + 10.0 * rng.random((20, 30))).astype(np.float32)
    frame = dark + light * loaded
    np.testing.assert_allclose(PixelCorrection(dark, None, loaded).apply(frame), light, rtol=1e-5)
    window = PixelCorrection(dark, None, loaded).crop(slice(3, 9), slice(5, 15))
    np.testing.assert_allclose(window.apply(frame[3:9, 5:15]), light[3:9, 5:15], rtol=1e-5)


@pytest.mark.parametrize("content, name, fragment", [
    (np.ones((20, 31), np.float32), "flat.npy", "shape (20, 31)"),
    (np.ones((20, 30), np.int32), "flat.npy", "dtype int32"),
    (np.full((20, 30), np.nan, np.float32), "flat.npy", "NaN or infinite"),
    (np.r_[np.zeros((1, 30)), np.ones((19, 30))].astype(np.float32), "flat.npy", "relative gains from 0 to 1"),
    (np.zeros((20, 30), np.float32), "flat.npy", "a median gain of 0"),
    (np.ones((20, 30), np.float32), "flat.txt", "a .npy array"),
    (None, "flat.npy", "cannot read the flat field"),
    (np.array([{"a": 1}], dtype=object), "flat.npy", "cannot read the flat field"),
])
def test_a_flat_field_that_cannot_be_this_cameras_is_refused_naming_the_file(tmp_path, content, name, fragment):
    from optgen.calibration.camera_pixels import FlatFieldError, load_flat_field

    path = tmp_path / name
    if content is not None:
        with open(path, "wb") as fh:
            np.save(fh, content, allow_pickle=True)
    with pytest.raises(FlatFieldError, match=re.escape(fragment)) as info:
        load_flat_field(path, (20, 30))
    assert str(path) in str(info.value)


def test_a_bench_naming_a_broken_flat_field_stops_before_any_device_opens_and_a_good_one_reaches_the_run(tmp_path):
    from optgen.calibration.camera_pixels import FlatFieldError
    from optgen.lab.bench import assemble
    from optgen.lab.run.decoder import load_decoder_phase
    from optgen.lab.run.generate import run_generation
    from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder

    bench_file = tmp_path / "bench.toml"
    bench_file.write_text(small_bench_text({("camera", "flat_field"): '"flat.npy"'}), encoding="utf-8")
    cfg = parse_bench(bench_file.read_text(encoding="utf-8"), str(bench_file))
    np.save(tmp_path / "flat.npy", np.ones((10, 10), np.float32))
    opened = []
    real_make_world = assemble.make_world
    assemble.make_world = lambda *a, **k: opened.append(1) or real_make_world(*a, **k)
    try:
        with pytest.raises(FlatFieldError, match="expected floating-point gains of the \\[camera\\] sensor's 256 x 320"):
            build_bench(cfg)
        assert opened == []
    finally:
        assemble.make_world = real_make_world
    np.save(tmp_path / "flat.npy", np.ones((256, 320), np.float32))
    with build_bench(cfg) as bench:
        n = cfg.geometry.seed_superpixels
        result = run_generation(bench, EncoderSeedSource(PlaceholderEncoder(n * n), n, 0),
                                *load_decoder_phase("flat", cfg.geometry.decoder_px), tmp_path / "run", 2)
    assert result.status == "complete"
    assert f"this run's dark frame; flat field {tmp_path / 'flat.npy'}" in (tmp_path / "run" / "run.log").read_text()
