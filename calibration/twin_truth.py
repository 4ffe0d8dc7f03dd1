"""On a twin: how far each calibration landed from the truths it planted.

The truths come as an argument (``optgen.simulators.OpticalWorld.planted_truths()``, passed by
the lab): calibration never reads the twin itself. Any object with the fields of
``optgen.simulators.truth.PlantedTruths`` will do.
"""

from __future__ import annotations

import numpy as np

from optgen.calibration.compare import affine_distance_px, response_error_rad
from optgen.drivers.common.roles import SLM_ROLES

__all__ = ["sensor_registration_error_px", "truth_errors"]


def sensor_registration_error_px(output_to_sensor: np.ndarray, truths, window_m: float) -> float:
    """Largest distance (sensor pixels) between the fitted and true maps over the output window."""
    return affine_distance_px(output_to_sensor, truths.output_to_sensor, window_m)


def truth_errors(report, truths, light_path) -> dict:
    """Errors of each calibration in ``report`` against ``truths``, on ``light_path``."""
    out: dict = {}
    for role in SLM_ROLES:
        m = report.measurements.get(f"{role}.lut")
        if m is not None:
            out[f"{role}_response_error_rad_rms"] = response_error_rad(m.phase_rad, truths.response_rad[role])
            out[f"{role}_crosstalk_sigma_planted_px"] = truths.crosstalk_sigma_px[role]
    if "alignment" in report.measurements:
        sensor, placement = report.measurements["alignment"]
        pitch = light_path.pitch_m
        out["decoder_shift_error_px"] = [float((a - b) / pitch)
                                         for a, b in zip(placement.shift_m, truths.decoder_shift_m)]
        out["decoder_rotation_error_deg"] = float(placement.rotation_deg - truths.decoder_rotation_deg)
        out["sensor_registration_error_px"] = sensor_registration_error_px(sensor.output_to_sensor, truths,
                                                                           light_path.window_m)
    return out
