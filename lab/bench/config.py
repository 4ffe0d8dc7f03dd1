"""What a bench file describes: frozen dataclasses, one per table (read by
:mod:`optgen.lab.bench.parse`), and the bench as it runs at one of its colours."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from optgen.drivers.common.light_path import LightPath
from optgen.lab.bench.reader import BenchFileError
from optgen.lab.model.shipped import SHIPPED_MODEL

__all__ = [
    "BenchConfig", "CalibrationConfig", "CameraConfig", "ColourConfig", "DEFAULT_NAME", "Geometry", "KNOWN_DRIVERS",
    "LaserConfig", "PanelConfig", "RunConfig", "SLMConfig", "SafetyConfig", "TwinConfig", "TwinSLM", "colour_bench",
]

DEFAULT_NAME = "<embedded default bench>"

KNOWN_DRIVERS: dict[str, tuple[str, ...]] = {
    "laser": ("simulated", "obis", "cobolt", "scpi-ldc", "table"),
    "encoding_slm": ("simulated", "screen", "meadowlark", "holoeye", "santec", "hamamatsu"),
    "decoding_slm": ("simulated", "screen", "meadowlark", "holoeye", "santec", "hamamatsu"),
    "camera": ("simulated", "genicam", "opencv", "slmsuite"),
}


@dataclass(frozen=True)
class Geometry:
    d1_m: float
    d2_m: float
    seed_superpixels: int
    superpixel_px: int
    decoder_px: int
    output_window_px: int
    output_pixels: int
    sensor_offset_m: tuple[float, float]
    sensor_rotation_deg: float


@dataclass(frozen=True)
class LaserConfig:
    driver: str
    wavelength_nm: float
    power_w: float
    max_power_w: float
    connection: dict
    wall_plug_w: float = 0.0


@dataclass(frozen=True)
class SLMConfig:
    key: str
    driver: str
    resolution: tuple[int, int]
    pitch_um: float
    bitdepth: int
    refresh_hz: float
    latency_frames: int
    settle_s: float
    lut: str
    connection: dict
    wall_plug_w: float = 0.0
    wavefront_correction: str = ""     # the vendor's correction file (8-bit BMP/PNG), relative to the bench file

    @property
    def shape(self) -> tuple[int, int]:
        return (self.resolution[1], self.resolution[0])


@dataclass(frozen=True)
class CameraConfig:
    driver: str
    resolution: tuple[int, int]
    pitch_um: float
    bitdepth: int
    exposure_s: float
    readout_s: float
    connection: dict
    wall_plug_w: float = 0.0
    qe: float = 0.7
    gain_dn_per_e: float = 1.0
    flat_field: str = ""               # relative pixel gains (.npy, the sensor's shape), relative to the bench file


@dataclass(frozen=True)
class PanelConfig:
    """[panel]: one SLM panel shows both: the encoding and decoding SLMs are regions of it (a folded
    path). Regions are (x, y, width, height) in panel pixels; the panel is [encoding_slm]'s device."""

    resolution: tuple[int, int]                  # (width, height) of the whole panel
    encoding_region: tuple[int, int, int, int]
    decoding_region: tuple[int, int, int, int]


@dataclass(frozen=True)
class RunConfig:
    host_j_per_gflop: float
    seed_source: str
    seed_file: str
    decoder_phase: str
    timing: str
    model: str = SHIPPED_MODEL
    readout: str = "full"           # "window": runs read out only the sensor under the output window


@dataclass(frozen=True)
class CalibrationConfig:
    store: str = "calibrations"     # folder of calibration files, relative to the bench file's folder
    use_alignment: bool = True      # compensate the measured misalignment in runs
    use_camera: bool = True         # use the camera calibration (saturation level, hot pixels)
    use_wavefront: bool = True      # add SLM1's measured wavefront correction to what it shows
    correct_decoder_wavefront: bool = False   # SLM2's too: it moves the trained decoder's 2 pi wraps (decision 0013)


@dataclass(frozen=True)
class ColourConfig:
    """A multi-colour bench: the colours in RGB-channel order, a laser and a sensor QE per colour."""

    order_nm: tuple[float, ...]
    lasers: dict[float, LaserConfig]     # every colour, the [laser] one included
    camera_qe: dict[float, float]        # datasheet quantum efficiency of the sensor per colour

    def find(self, wavelength_nm: float) -> float | None:
        """The configured colour within 1 nm of ``wavelength_nm``, or None."""
        return next((wl for wl in self.order_nm if abs(wl - wavelength_nm) <= 1.0), None)


@dataclass(frozen=True)
class TwinSLM:
    response_max_rad: float
    response_exponent: float
    response_wobble_rad: float
    crosstalk_sigma_px: float
    latency_frames: int
    settle_s: float
    shift_m: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    # what a real panel adds (decision 0012)
    wavefront_waves: tuple[float, ...] = ()       # Zernike coefficients, Noll order from j = 1, in waves RMS
    wavefront_radius_m: float = 2.5e-3            # the pupil radius the coefficients are normalised on
    wavefront_file: str = ""                      # a map in waves (.npy, the twin's grid), added to them
    unmodulated_fraction: float = 0.0
    response_drift_per_h: float = 0.0


@dataclass(frozen=True)
class TwinConfig:
    grid_shape: tuple[int, int]
    band_limit: bool
    random_seed: int
    beam: str
    waist_m: float
    aperture_m: float
    power_noise_rms: float
    device_max_power_w: float
    encoding: TwinSLM
    decoding: TwinSLM
    camera_pitch_m: float
    camera_offset_m: tuple[float, float]
    camera_rotation_deg: float
    qe: float
    gain_dn_per_e: float
    read_noise_e: float
    dark_offset_dn: float
    full_well_e: float
    trigger_overlap: str = "off"       # "readout": the camera takes a trigger while it reads out
    # what a real bench adds (decision 0012)
    d1_m: float | None = None          # the true distances, where they differ from [geometry]
    d2_m: float | None = None
    beam_centre_m: tuple[float, float] = (0.0, 0.0)
    beam_tilt_rad: tuple[float, float] = (0.0, 0.0)
    pointing_drift_rad_per_h: tuple[float, float] = (0.0, 0.0)
    hot_pixel_fraction: float = 0.0
    hot_pixel_e_per_s: float = 0.0
    prnu_rms: float = 0.0
    dsnu_dn_rms: float = 0.0
    background_w_per_m2: float = 0.0


@dataclass(frozen=True)
class SafetyConfig:
    """[safety]: the heartbeat bound of an external laser watchdog, and how long storage may take to
    accept a frame before the run turns the laser off and stops."""

    watchdog_s: float = 2.0
    storage_stall_s: float = 10.0


@dataclass(frozen=True)
class BenchConfig:
    name: str
    wavelength_nm: float
    geometry: Geometry
    laser: LaserConfig
    encoding_slm: SLMConfig
    decoding_slm: SLMConfig
    camera: CameraConfig
    run: RunConfig
    twin: TwinConfig | None
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    colours: ColourConfig | None = None
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    source: str = DEFAULT_NAME
    text: str = field(default="", repr=False)
    panel: PanelConfig | None = None       # one panel for both SLMs ([panel]); None: two panels

    @property
    def wavelength_m(self) -> float:
        return self.wavelength_nm * 1e-9

    @property
    def light_path(self) -> LightPath:
        """The light path this bench file describes (what the model and the calibrations depend on)."""
        g = self.geometry
        return LightPath(wavelength_m=self.wavelength_m, pitch_m=self.encoding_slm.pitch_um * 1e-6, d1_m=g.d1_m,
                         d2_m=g.d2_m, seed_superpixels=g.seed_superpixels, superpixel_px=g.superpixel_px,
                         decoder_px=g.decoder_px, output_window_px=g.output_window_px, output_pixels=g.output_pixels,
                         encoding_shape=tuple(self.encoding_slm.shape), decoding_shape=tuple(self.decoding_slm.shape),
                         camera_shape=(self.camera.resolution[1], self.camera.resolution[0]),
                         camera_pitch_m=self.camera.pitch_um * 1e-6, sensor_offset_m=tuple(g.sensor_offset_m),
                         sensor_rotation_deg=g.sensor_rotation_deg)


def colour_bench(config: BenchConfig, wavelength_nm: float) -> BenchConfig:
    """The bench as it runs at one of its colours: that colour's laser and sensor QE, and the twin's
    planted SLM responses rescaled from the bench wavelength (retardance in radians goes as 1/lambda)."""
    if config.colours is None:
        if abs(wavelength_nm - config.wavelength_nm) <= 1.0:
            return config
        raise BenchFileError(f"{config.source}: no colour at {wavelength_nm:g} nm: the bench has one colour, "
                             f"{config.wavelength_nm:g} nm (add a [colours] table for more)")
    wl = config.colours.find(wavelength_nm)
    if wl is None:
        have = ", ".join(f"{w:g} nm" for w in config.colours.order_nm)
        raise BenchFileError(f"{config.source}: no colour at {wavelength_nm:g} nm; [colours] has {have}")
    twin = config.twin
    if twin is not None:
        ratio = config.wavelength_nm / wl
        twin = replace(twin, encoding=_scaled_response(twin.encoding, ratio),
                       decoding=_scaled_response(twin.decoding, ratio),
                       qe=twin.qe * config.colours.camera_qe[wl] / config.camera.qe)
    return replace(config, wavelength_nm=wl, laser=config.colours.lasers[wl],
                   camera=replace(config.camera, qe=config.colours.camera_qe[wl]), twin=twin)


def _scaled_response(slm: TwinSLM, ratio: float) -> TwinSLM:
    """A twin SLM at another colour: retardance in radians, and the panel's error in waves, go as 1/lambda."""
    return replace(slm, response_max_rad=slm.response_max_rad * ratio,
                   response_wobble_rad=slm.response_wobble_rad * ratio,
                   wavefront_waves=tuple(c * ratio for c in slm.wavefront_waves))
