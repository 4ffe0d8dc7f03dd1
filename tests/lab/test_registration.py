"""Frames registered to the output grid with the bench file's sensor placement."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.lab.bench.assemble import make_world
from optgen.lab.bench.parse import parse_bench
from optgen.lab.run.registration import OutputRegistration
from optgen.simulators import VirtualClock
from tests.conftest import small_bench_text


@pytest.mark.parametrize("offset, rotation, pitch", [("[0.0, 0.0]", "0.0", "4.8"), ("[30.0, -18.0]", "1.5", "3.45")])
def test_registration_with_the_true_placement_undoes_the_sensor_sampling(offset, rotation, pitch, monkeypatch):
    text = small_bench_text({("geometry", "sensor_offset_um"): offset, ("geometry", "sensor_rotation_deg"): rotation,
                             ("twin.camera", "offset_um"): offset, ("twin.camera", "rotation_deg"): rotation,
                             ("twin.camera", "pitch_um"): pitch, ("camera", "pitch_um"): pitch})
    cfg = parse_bench(text, "t")
    world = make_world(cfg, VirtualClock())
    rows, cols = world.grid_shape
    y, x = np.mgrid[0:rows, 0:cols]
    pattern = (1.0 + np.sin(x / 7.0) * np.cos(y / 5.0)).astype(np.float32)  # smooth output-plane irradiance
    monkeypatch.setattr(world, "output_irradiance", lambda t, p: pattern)
    frame = world.sensor_power(0.0, 1.0) / np.float32(world.sensor.pitch_m**2)
    registration = OutputRegistration(cfg)
    window = registration.window(frame)
    n = cfg.geometry.output_window_px
    r0, c0 = (rows - n) // 2, (cols - n) // 2
    np.testing.assert_allclose(window, pattern[r0:r0 + n, c0:c0 + n], atol=0.03)
    image = registration.image(frame)
    assert image.shape == (16, 16)
    np.testing.assert_allclose(image[3, 4], window[18:24, 24:30].mean(), rtol=1e-5)


def test_registration_subtracts_the_dark_level():
    cfg = parse_bench(small_bench_text(), "t")
    frame = np.full(cfg.camera.resolution[::-1], 130, dtype=np.uint16)
    image = OutputRegistration(cfg, dark_level_dn=100.0).image(frame)
    np.testing.assert_allclose(image, 30.0)


def test_a_camera_correction_registers_as_if_the_whole_frame_were_corrected_first(rng):
    from optgen.calibration.camera_pixels import PixelCorrection

    cfg = parse_bench(small_bench_text({("geometry", "sensor_offset_um"): "[30.0, -18.0]",
                                        ("geometry", "sensor_rotation_deg"): "1.5"}), "t")
    shape = cfg.camera.resolution[::-1]
    dark = (100.0 + 2.0 * rng.standard_normal(shape)).astype(np.float32)
    hot = rng.random(shape) < 0.002
    frame = (dark + 40.0 + 20.0 * rng.random(shape)).astype(np.float32)
    frame[hot] = 4095.0
    correction = PixelCorrection(dark, hot)
    corrected = OutputRegistration(cfg)
    corrected.use_correction(correction)
    whole = OutputRegistration(cfg).window(correction.apply(frame))
    np.testing.assert_allclose(corrected.window(frame), whole, atol=1e-3)
    assert corrected.window(frame).max() < 61.0                   # no hot pixel left in the window
    assert OutputRegistration(cfg, dark_level_dn=100.0).window(frame).max() > 1000.0   # without: they show
