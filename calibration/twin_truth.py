"""On the twin: how far each calibration landed from the truth the bench file planted."""

from __future__ import annotations

import numpy as np

__all__ = ["planted_output_to_sensor", "response_error_rad", "sensor_registration_error_px", "truth_errors"]


def planted_output_to_sensor(world) -> np.ndarray:
    """The twin's true 2x3 map from output-plane metres (origin on the axis) to sensor pixels."""
    rows, cols = world.grid_shape
    sensor_to_grid = np.vstack([world._sensor_map, [0.0, 0.0, 1.0]])
    metres_to_grid = np.array([[1 / world.pitch_m, 0, (cols - 1) / 2.0],
                               [0, 1 / world.pitch_m, (rows - 1) / 2.0], [0, 0, 1.0]])
    return (np.linalg.inv(sensor_to_grid) @ metres_to_grid)[:2]


def sensor_registration_error_px(world, output_to_sensor: np.ndarray, window_m: float) -> float:
    """Largest distance (sensor pixels) between the fitted and true maps over the output window."""
    from optgen.calibration.check import affine_distance_px

    return affine_distance_px(output_to_sensor, planted_output_to_sensor(world), window_m)


def response_error_rad(measured: np.ndarray, planted: np.ndarray) -> float:
    """RMS of measured - planted (both relative to gray 0) over the gray levels planted within 0..2 pi."""
    planted_rel = np.asarray(planted, dtype=float) - planted[0]
    measured_rel = np.asarray(measured, dtype=float) - measured[0]
    within = planted_rel <= 2 * np.pi
    return float(np.sqrt(np.mean((measured_rel[within] - planted_rel[within]) ** 2)))


def truth_errors(bench, report) -> dict:
    """Errors of each calibration in ``report`` against the planted truths of ``bench.world``."""
    from optgen.simulators import DECODING, ENCODING

    world = bench.world
    out: dict = {}
    for key, world_key in (("encoding_slm", ENCODING), ("decoding_slm", DECODING)):
        m = report.measurements.get(f"{key}.lut")
        if m is not None:
            truth = world._slms[world_key].truth
            out[f"{key}_response_error_rad_rms"] = response_error_rad(m.phase_rad, truth.response_rad)
            out[f"{key}_crosstalk_sigma_planted_px"] = truth.crosstalk_sigma_px
    if "alignment" in report.measurements:
        sensor, placement = report.measurements["alignment"]
        truth = world._slms[DECODING].truth
        pitch = world.pitch_m
        window_m = bench.config.geometry.output_window_px * pitch
        out["decoder_shift_error_px"] = [float((a - b) / pitch) for a, b in zip(placement.shift_m, truth.shift_m)]
        out["decoder_rotation_error_deg"] = float(placement.rotation_deg - truth.rotation_deg)
        out["sensor_registration_error_px"] = sensor_registration_error_px(world, sensor.output_to_sensor, window_m)
    return out
