"""Camera calibration against the twin's planted sensor: dark level, read noise, saturation."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.calibration.camera import measure_camera
from optgen.calibration.session import CalibrationError, CalibrationSession


def test_dark_read_noise_and_saturation_match_the_planted_sensor(small_bench):
    sensor = small_bench.world.sensor
    cal = measure_camera(CalibrationSession(small_bench))
    assert cal.dark_level_dn == pytest.approx(sensor.dark_offset_dn, abs=1.0)
    assert cal.read_noise_dn == pytest.approx(sensor.read_noise_e * sensor.gain_dn_per_e, rel=0.15)
    full_well_dn = sensor.full_well_e * sensor.gain_dn_per_e + sensor.dark_offset_dn
    assert cal.saturation_dn == pytest.approx(full_well_dn, abs=2.0)
    assert cal.saturation_dn < 2**sensor.bitdepth - 1        # the well fills before the ADC tops out
    assert cal.linearity_rms < 0.03
    assert cal.exposure_s == pytest.approx(small_bench.config.camera.exposure_s)
    assert small_bench.camera.timing.exposure_s == pytest.approx(cal.exposure_s)  # left at the run exposure
    assert small_bench.world.laser_emission is False


def test_no_light_stops_with_the_reason_and_the_laser_off(small_bench, monkeypatch):
    monkeypatch.setattr(small_bench.world, "delivered_power_w", lambda: 0.0)   # beam blocked
    with pytest.raises(CalibrationError, match="no light on the sensor"):
        measure_camera(CalibrationSession(small_bench))
    assert small_bench.world.laser_emission is False


def test_a_camera_failure_mid_measurement_leaves_the_laser_off(small_bench, monkeypatch):
    session = CalibrationSession(small_bench)
    calls = {"n": 0}
    real = small_bench.camera.capture

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 12:
            raise RuntimeError("camera unplugged")
        return real(*args, **kwargs)

    monkeypatch.setattr(small_bench.camera, "capture", failing)
    with pytest.raises(RuntimeError, match="camera unplugged"):
        measure_camera(session)
    assert small_bench.world.laser_emission is False
    assert np.isfinite(small_bench.world.laser_setpoint_w)
