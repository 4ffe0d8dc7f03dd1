"""Register sensor frames to the model's output grid and average them down to output images."""

from __future__ import annotations

import cv2
import numpy as np

from optgen.lab.bench.config import BenchConfig

__all__ = ["OutputRegistration"]


class OutputRegistration:
    """Maps a raw frame to the (output_pixels, output_pixels) image the model predicts.

    The output window (output_window_px at the SLM pitch, centred on the optical axis) is
    resampled from the frame with the sensor placement the bench file states (pitch, offset,
    rotation), dark-subtracted, then block-averaged. Calibration replaces the nominal placement:
    ``output_to_sensor`` is the 2x3 affine output-plane metres (x, y, origin on the axis) -> sensor
    pixel (x, y) that ``calibration.alignment.measure_sensor_registration`` measures
    (``SensorRegistration.output_to_sensor``); it replaces the camera pitch, offset and rotation.

    With a camera calibration (:meth:`use_correction`) the window's part of each frame is
    corrected pixel by pixel first (dark frame, hot pixels replaced; the dark level
    is then not subtracted again).
    """

    def __init__(self, config: BenchConfig, dark_level_dn: float = 0.0,
                 sensor_offset_m: tuple[float, float] | None = None,
                 sensor_rotation_deg: float | None = None,
                 output_to_sensor: np.ndarray | None = None):
        g = config.geometry
        self.window_px = g.output_window_px
        self.pool = g.output_window_px // g.output_pixels
        self.dark_level_dn = float(dark_level_dn)
        grid_pitch = config.encoding_slm.pitch_um * 1e-6
        w, h = config.camera.resolution
        if output_to_sensor is None:
            sensor_pitch = config.camera.pitch_um * 1e-6
            offset = np.array(g.sensor_offset_m if sensor_offset_m is None else sensor_offset_m)
            angle = np.deg2rad(g.sensor_rotation_deg if sensor_rotation_deg is None else sensor_rotation_deg)
            rot_inv = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
            centre_sensor = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
            output_to_sensor = np.hstack([rot_inv / sensor_pitch,
                                          (centre_sensor - rot_inv @ offset / sensor_pitch)[:, None]])
        else:
            if sensor_offset_m is not None or sensor_rotation_deg is not None:
                raise ValueError("give either output_to_sensor or sensor_offset_m/sensor_rotation_deg, not both")
            output_to_sensor = np.asarray(output_to_sensor, dtype=np.float64)
            if output_to_sensor.shape != (2, 3) or not np.isfinite(output_to_sensor).all():
                raise ValueError(f"output_to_sensor: expected a finite 2x3 affine, got {output_to_sensor.shape}")
            if np.linalg.det(output_to_sensor[:, :2]) == 0:
                raise ValueError("output_to_sensor: the affine is singular")
        self.output_to_sensor = np.array(output_to_sensor, dtype=np.float64)
        # window pixel (u, v) -> output-plane metres ((u, v) - centre) * pitch -> sensor pixel (x, y)
        centre_window = (self.window_px - 1) / 2.0
        lin = self.output_to_sensor[:, :2] * grid_pitch
        shift = self.output_to_sensor[:, 2] - lin @ np.array([centre_window, centre_window])
        self.window_to_sensor = np.hstack([lin, shift[:, None]])
        self.sensor_shape = (int(h), int(w))
        self.frame_origin = (0, 0)         # (x, y): the sensor pixel of a frame's first pixel
        self.correction = None
        self._crop: tuple[slice, slice] | None = None
        self._window_to_crop: np.ndarray | None = None

    def sensor_box(self, margin_px: int = 4) -> tuple[int, int, int, int] | None:
        """(x, width, y, height): the sensor pixels the output window reads (with ``margin_px`` around
        for the interpolation and the hot-pixel neighbours), clipped to the sensor; None where the
        window misses the sensor."""
        box = self._box(self.sensor_shape, margin_px, self.frame_origin)
        return None if box is None else (box[0], box[2] - box[0], box[1], box[3] - box[1])

    def _box(self, shape: tuple[int, int], margin_px: int,
             origin: tuple[int, int] = (0, 0)) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1): the pixels of an image of ``shape`` (rows, cols) whose pixel (0, 0) is frame
        pixel -``origin`` that the output window reads, ``margin_px`` around, clipped to the image;
        None where the window misses it."""
        rows, cols = shape
        corners = np.array([[0, 0, 1], [self.window_px, 0, 1], [0, self.window_px, 1],
                            [self.window_px, self.window_px, 1]], dtype=np.float64)
        xy = corners @ self.window_to_sensor.T + np.asarray(origin, dtype=np.float64)
        x0, y0 = (int(np.clip(np.floor(v) - margin_px, 0, n)) for v, n in zip(xy.min(axis=0), (cols, rows)))
        x1, y1 = (int(np.clip(np.ceil(v) + margin_px + 1, 0, n)) for v, n in zip(xy.max(axis=0), (cols, rows)))
        return None if x1 - x0 < 2 or y1 - y0 < 2 else (x0, y0, x1, y1)

    def read_from(self, woi: tuple[int, int, int, int]) -> None:
        """Frames are the sensor window ``woi`` = (x, width, y, height) from now on (the camera's window
        of interest): the maps move to the window's pixels. Call before :meth:`use_correction`,
        whose correction is then of that window."""
        if self.correction is not None:
            raise RuntimeError("read_from() after use_correction(): give the window first")
        x, _, y, _ = (int(v) for v in woi)
        move = np.array([x, y], dtype=np.float64) - np.asarray(self.frame_origin, dtype=np.float64)
        self.output_to_sensor[:, 2] -= move
        self.window_to_sensor[:, 2] -= move
        self.frame_origin = (x, y)

    def use_correction(self, correction) -> None:
        """Correct every frame with ``correction`` (a ``calibration.camera_pixels.PixelCorrection``
        of the frames' pixels: the whole sensor, or the window :meth:`read_from` gave) before
        registering it; only the pixels the window reads are corrected."""
        rows, cols = correction.shape
        # the window misses the frame: correct it all
        x0, y0, x1, y1 = self._box((rows, cols), 3) or (0, 0, cols, rows)
        self._crop = (slice(y0, y1), slice(x0, x1))
        self.correction = correction.crop(*self._crop)
        self._window_to_crop = self.window_to_sensor - np.array([[0, 0, x0], [0, 0, y0]], dtype=np.float64)

    def window(self, frame: np.ndarray) -> np.ndarray:
        """The output window of ``frame`` in counts above dark, float32 (window_px, window_px)."""
        if self.correction is not None:
            return cv2.warpAffine(self.correction.apply(np.asarray(frame)[self._crop]), self._window_to_crop,
                                  (self.window_px, self.window_px),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=0.0)
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
