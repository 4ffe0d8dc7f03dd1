"""The light path of a bench as the model, the twin and the calibrations see it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LightPath"]


@dataclass(frozen=True)
class LightPath:
    """Laser -> encoding SLM -> d1 -> decoding SLM -> d2 -> sensor, in SI units.

    Shapes are (rows, cols); the sensor's nominal placement in the output plane is (x, y).
    Both SLMs share one pitch (one model grid).
    """

    wavelength_m: float
    pitch_m: float
    d1_m: float
    d2_m: float
    seed_superpixels: int
    superpixel_px: int
    decoder_px: int
    output_window_px: int
    output_pixels: int
    encoding_shape: tuple[int, int]
    decoding_shape: tuple[int, int]
    camera_shape: tuple[int, int]
    camera_pitch_m: float
    sensor_offset_m: tuple[float, float] = (0.0, 0.0)
    sensor_rotation_deg: float = 0.0

    @property
    def seed_px(self) -> int:
        """Side of the seed on the encoding SLM, in pixels."""
        return self.seed_superpixels * self.superpixel_px

    @property
    def seed_m(self) -> float:
        """Side of the seed (the lit beam) on the encoding SLM, in metres."""
        return self.seed_px * self.pitch_m

    @property
    def window_m(self) -> float:
        """Side of the output window in the sensor plane, in metres."""
        return self.output_window_px * self.pitch_m

    def digest(self) -> str:
        """What an alignment calibration depends on, as the key calibration files carry."""
        return f"d1={self.d1_m * 1e3:.3f}mm;d2={self.d2_m * 1e3:.3f}mm"
