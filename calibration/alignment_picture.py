"""The alignment calibration's PNG: the spots found and fitted over the sensor image, and the numbers."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from optgen.calibration.alignment import DecoderPlacement, SensorRegistration

__all__ = ["write_alignment_png"]

_GREEN, _RED, _CYAN, _MAGENTA, _YELLOW, _WHITE = ((0, 220, 0), (40, 40, 255), (255, 200, 0), (255, 0, 255),
                                                  (0, 230, 255), (255, 255, 255))


def write_alignment_png(path, sensor: SensorRegistration, placement: DecoderPlacement | None,
                        frame: np.ndarray | None = None) -> None:
    """An overlay a person can read: the sensor image (``frame``, or the spots' composite), the
    spots found and where the fitted maps put them, residuals magnified, and the numbers."""
    if frame is None:
        frame = sensor.composite if placement is None or placement.composite is None else (
            np.maximum(sensor.composite, placement.composite) if sensor.composite is not None else placement.composite)
    if frame is None:
        h = int(np.ceil(max(sensor.detected_px[:, 1].max() + 20, 100)))
        w = int(np.ceil(max(sensor.detected_px[:, 0].max() + 20, 100)))
        frame = np.zeros((h, w), np.float32)
    img = np.asarray(frame, dtype=np.float32)
    img = np.sqrt(np.clip(img / max(float(np.percentile(img, 99.99)), 1e-9), 0, 1))
    gray = (img * 200).astype(np.uint8)
    zoom = max(1, math.ceil(640 / gray.shape[1]))
    gray = cv2.resize(gray, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    canvas = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    gain = 20.0      # residual arrows magnified

    def pt(p):
        return (int(round((p[0] + 0.5) * zoom - 0.5)), int(round((p[1] + 0.5) * zoom - 0.5)))

    fitted = sensor.to_sensor(sensor.expected_m)
    for det, fit in zip(sensor.detected_px, fitted):
        cv2.drawMarker(canvas, pt(fit), _RED, cv2.MARKER_CROSS, 16, 1, cv2.LINE_AA)
        cv2.circle(canvas, pt(det), 9, _GREEN, 1, cv2.LINE_AA)
        cv2.line(canvas, pt(fit), pt(fit + gain * (det - fit)), _YELLOW, 1, cv2.LINE_AA)
    if placement is not None:
        det_px = sensor.to_sensor(placement.detected_m)
        fit_px = sensor.to_sensor(placement.slm_to_beam(placement.centres_px))
        for det, fit in zip(det_px, fit_px):
            cv2.drawMarker(canvas, pt(fit), _MAGENTA, cv2.MARKER_TILTED_CROSS, 14, 1, cv2.LINE_AA)
            cv2.circle(canvas, pt(det), 6, _CYAN, 1, cv2.LINE_AA)
            cv2.line(canvas, pt(fit), pt(fit + gain * (det - fit)), _YELLOW, 1, cv2.LINE_AA)
    # the output window (its outline) and the axis
    if sensor.window_m:
        half = sensor.window_m / 2.0
        corners = sensor.to_sensor(np.array([[-half, -half], [half, -half], [half, half], [-half, half]]))
        cv2.polylines(canvas, [np.array([pt(c) for c in corners], np.int32)], True, (160, 160, 160), 1, cv2.LINE_AA)
    cv2.drawMarker(canvas, pt(sensor.to_sensor(np.zeros((1, 2)))[0]), _WHITE, cv2.MARKER_STAR, 12, 1)

    lines = [("Alignment (sensor image, sqrt scale)", _WHITE),
             ("SENSOR in output plane (SLM1 lens+tilt spots)", _WHITE),
             ("  o  spot found", _GREEN), ("  +  fitted map of commanded spot", _RED),
             (f"  offset   x {sensor.offset_m[0] * 1e6:+.2f} um, y {sensor.offset_m[1] * 1e6:+.2f} um", _WHITE),
             (f"  rotation {sensor.rotation_deg:+.4f} deg   pitch ratio {sensor.pitch_ratio:.5f}"
              + ("  MIRRORED" if sensor.mirrored else ""), _WHITE),
             (f"  residual {sensor.residual_px:.3f} px RMS ({len(sensor.expected_m)} spots)", _WHITE)]
    if placement is not None:
        lines += [("SLM2 in SLM1's beam (SLM2 lens spots)", _WHITE),
                  ("  o  focus found", _CYAN), ("  x  fitted placement of lens centre", _MAGENTA),
                  (f"  shift    x {placement.shift_m[0] * 1e6:+.2f} um, y {placement.shift_m[1] * 1e6:+.2f} um",
                   _WHITE),
                  (f"  rotation {placement.rotation_deg:+.4f} deg", _WHITE),
                  (f"  residual {placement.residual_m * 1e6:.3f} um RMS ({len(placement.centres_px)} spots)",
                   _WHITE)]
    lines += [(f"yellow: residual x{gain:.0f}; star: optical axis; grey: output window", _YELLOW)]
    panel_w, line_h = 470, 22
    panel = np.zeros((max(canvas.shape[0], line_h * (len(lines) + 1)), panel_w, 3), np.uint8)
    for i, (text, colour) in enumerate(lines):
        cv2.putText(panel, text, (8, line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.48, colour, 1, cv2.LINE_AA)
    if panel.shape[0] > canvas.shape[0]:
        canvas = cv2.copyMakeBorder(canvas, 0, panel.shape[0] - canvas.shape[0], 0, 0, cv2.BORDER_CONSTANT)
    out = np.hstack([canvas, panel])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), out):
        raise OSError(f"{path}: could not write the alignment PNG")
