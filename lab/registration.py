"""Register sensor frames to the model's output grid and average them down to output images."""

from __future__ import annotations

import cv2
import numpy as np

from .bench_file import BenchConfig

__all__ = ["OutputRegistration"]


class OutputRegistration:
    """Maps a raw frame to the (output_pixels, output_pixels) image the model predicts.

    The output window (output_window_px at the SLM pitch, centred on the optical axis) is
    resampled from the frame with the sensor placement the bench file states (pitch, offset,
    rotation), dark-subtracted, then block-averaged. Calibration replaces the nominal placement.
    """

    def __init__(self, config: BenchConfig, dark_level_dn: float = 0.0,
                 sensor_offset_m: tuple[float, float] | None = None,
                 sensor_rotation_deg: float | None = None):
        g = config.geometry
        self.window_px = g.output_window_px
        self.pool = g.output_window_px // g.output_pixels
        self.dark_level_dn = float(dark_level_dn)
        grid_pitch = config.encoding_slm.pitch_um * 1e-6
        sensor_pitch = config.camera.pitch_um * 1e-6
        offset = np.array(g.sensor_offset_m if sensor_offset_m is None else sensor_offset_m)
        angle = np.deg2rad(g.sensor_rotation_deg if sensor_rotation_deg is None else sensor_rotation_deg)
        w, h = config.camera.resolution
        # window pixel (u, v) -> output-plane metres -> sensor pixel (x, y)
        centre_window = (self.window_px - 1) / 2.0
        rot_inv = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
        lin = rot_inv * (grid_pitch / sensor_pitch)
        centre_sensor = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        shift = centre_sensor - rot_inv @ offset / sensor_pitch - lin @ np.array([centre_window, centre_window])
        self.window_to_sensor = np.hstack([lin, shift[:, None]])

    def window(self, frame: np.ndarray) -> np.ndarray:
        """The output window of ``frame`` in counts above dark, float32 (window_px, window_px)."""
        img = cv2.warpAffine(np.asarray(frame, dtype=np.float32), self.window_to_sensor,
                             (self.window_px, self.window_px),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=self.dark_level_dn)
        img -= np.float32(self.dark_level_dn)
        return img

    def image(self, frame: np.ndarray) -> np.ndarray:
        """The output image (output_pixels, output_pixels), float32 counts above dark."""
        win = self.window(frame)
        n = self.window_px // self.pool
        return win.reshape(n, self.pool, n, self.pool).mean(axis=(1, 3))
