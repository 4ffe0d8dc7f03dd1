"""On a twin: how far each calibration landed from the truths it planted.

The truths come as an argument (``optgen.simulators.OpticalWorld.planted_truths()``, passed by
the lab): calibration never reads the twin itself. Any object with the fields of
``optgen.simulators.truth.PlantedTruths`` will do.
"""

from __future__ import annotations

import numpy as np

from optgen.calibration.compare import affine_distance_px, response_error_rad
from optgen.drivers.common.patterns import grid_coordinates
from optgen.drivers.common.roles import DECODING, ENCODING, SLM_ROLES

__all__ = ["alignment_errors", "camera_pixel_errors", "planted_error_waves", "sensor_registration_error_px",
           "similarity_limit_px", "truth_errors"]


def sensor_registration_error_px(output_to_sensor: np.ndarray, truths, window_m: float) -> float:
    """Largest distance (sensor pixels) between the fitted and true maps over the output window."""
    return affine_distance_px(output_to_sensor, truths.output_to_sensor, window_m)


def truth_errors(report, truths, light_path, *, decoder_corrected: bool = False) -> dict:
    """Errors of each calibration in ``report`` against ``truths``, on ``light_path``.

    The alignment is compared with where the planted tilts and panel curvature put the light
    (:func:`optgen.calibration.twin_rays.light_truths`: what it measures, and what runs need);
    ``light_moves_*`` say how far that is from the parts' mechanical placement.
    ``decoder_corrected``: SLM2's wavefront correction was in force during the alignment (the
    bench file's ``correct_decoder_wavefront``)."""
    out: dict = {}
    for role in SLM_ROLES:
        m = report.measurements.get(f"{role}.lut")
        if m is not None:
            out[f"{role}_response_error_rad_rms"] = response_error_rad(m.phase_rad, truths.response_rad[role])
            out[f"{role}_crosstalk_sigma_planted_px"] = truths.crosstalk_sigma_px[role]
        cal = report.measurements.get(f"{role}.wavefront")
        if cal is not None and truths.wavefront_rad.get(role) is not None:
            planted, left = planted_error_waves(cal, truths.wavefront_rad[role], light_path.pitch_m, light_path.seed_m)
            out[f"{role}_wavefront_planted_rms_waves"] = round(planted, 4)
            out[f"{role}_wavefront_left_rms_waves"] = round(left, 4)
            planted_u = truths.unmodulated_fraction[role]
            out[f"{role}_unmodulated_error"] = round(cal.unmodulated_fraction - planted_u, 4)
            if np.isfinite(cal.unmodulated_fit):
                out[f"{role}_unmodulated_fit_error"] = round(cal.unmodulated_fit - planted_u, 4)
    d = report.measurements.get("distances")
    if d is not None:
        out["d1_error_mm"] = round((d.d1_m - truths.d1_m) * 1e3, 4)
        out["d2_error_mm"] = round((d.d2_m - truths.d2_m) * 1e3, 4)
    cal = report.measurements.get(f"{ENCODING}.wavefront")
    if cal is not None and truths.beam.get("profile") == "gaussian":
        out["beam_centre_error_px"] = [round((a - b) / light_path.pitch_m, 3)
                                       for a, b in zip(cal.beam_centre_m, truths.beam["centre_m"])]
        out["beam_waist_error"] = round(cal.beam_waist_m / truths.beam["waist_m"] - 1.0, 4)
    camera = report.measurements.get("camera")
    if camera is not None:
        out.update(camera_pixel_errors(camera, truths))
    if "alignment" in report.measurements:
        out.update(alignment_errors(report, truths, light_path, decoder_corrected))
    return out


def alignment_errors(report, truths, light_path, decoder_corrected: bool = False) -> dict:
    """The alignment in ``report`` against where the light goes on the twin, and how far the light
    moved from the mechanical truths (pixels of SLM2 for its shift, of the camera for the sensor)."""
    from optgen.calibration.twin_rays import light_truths
    from optgen.calibration.wavefront import wavefront_correction_rad

    sensor, placement = report.measurements["alignment"]
    pitch, window = light_path.pitch_m, light_path.window_m
    shape = next((w.shape for w in truths.wavefront_rad.values() if w is not None), light_path.encoding_shape)
    in_force = {ENCODING: wavefront_correction_rad(report.measurements.get(f"{ENCODING}.wavefront"), shape, pitch)}
    if decoder_corrected:
        in_force[DECODING] = wavefront_correction_rad(report.measurements.get(f"{DECODING}.wavefront"), shape, pitch)
    light = light_truths(truths, light_path, in_force)
    return {
        "decoder_shift_error_px": [float((a - b) / pitch) for a, b in zip(placement.shift_m, light.decoder_shift_m)],
        "decoder_rotation_error_deg": float(placement.rotation_deg - light.decoder_rotation_deg),
        "sensor_registration_error_px": affine_distance_px(sensor.output_to_sensor, light.output_to_sensor, window),
        "light_moves_decoder_px": [round(float((a - b) / pitch), 3)
                                   for a, b in zip(light.decoder_shift_m, truths.decoder_shift_m)],
        "light_moves_sensor_px": round(affine_distance_px(light.output_to_sensor, truths.output_to_sensor, window), 3),
        "sensor_registration_similarity_limit_px": round(similarity_limit_px(light.output_to_sensor, window), 3)}


def similarity_limit_px(output_to_sensor: np.ndarray, window_m: float) -> float:
    """How far the best similarity (what the alignment fits: rotation, one scale, offset) stays from
    an affine map over the output window (pixels): the part of an astigmatic or sheared
    registration the alignment cannot hold."""
    from optgen.calibration.alignment import fit_similarity

    u = np.linspace(-window_m / 2, window_m / 2, 9)
    points = np.array([(x, y) for x in u for y in u])
    m = np.asarray(output_to_sensor, dtype=np.float64)
    best, _ = fit_similarity(points, points @ m[:, :2].T + m[:, 2])
    return affine_distance_px(best, m, window_m)


def camera_pixel_errors(camera, truths) -> dict:
    """Hot pixels found and mistaken."""
    out: dict = {}
    hot = getattr(truths, "hot_pixels", None)
    if hot is not None and camera.hot_map is not None:
        planted = int(hot.sum())
        out["hot_pixels_planted"] = planted
        out["hot_pixels_found_share"] = round(float((camera.hot_map & hot).sum()) / max(planted, 1), 4)
        out["hot_pixels_false"] = int((camera.hot_map & ~hot).sum())
    return out


def planted_error_waves(cal, planted_rad: np.ndarray, grid_pitch_m: float,
                        used_side_m: float) -> tuple[float, float]:
    """(RMS of the planted wavefront, RMS of what the correction leaves) over the used square,
    piston and tilt removed from both (waves). ``planted_rad``: a twin's panel error on its grid."""
    shape = planted_rad.shape
    y, x = grid_coordinates(shape, grid_pitch_m)
    inside = np.broadcast_to((np.abs(x) <= used_side_m / 2) & (np.abs(y) <= used_side_m / 2), shape)
    xs, ys = np.broadcast_to(x, shape)[inside], np.broadcast_to(y, shape)[inside]
    planted = planted_rad[inside] / (2 * np.pi)
    left = planted - cal.wavefront_waves(shape, grid_pitch_m, corrected_only=True)[inside]
    basis = np.stack([np.ones_like(xs), xs, ys], axis=1)

    def rms_without_tilt(v: np.ndarray) -> float:
        coef, *_ = np.linalg.lstsq(basis, v, rcond=None)
        return float(np.sqrt(np.mean((v - basis @ coef) ** 2)))

    return rms_without_tilt(planted), rms_without_tilt(left)
