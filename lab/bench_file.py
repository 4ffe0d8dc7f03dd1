"""The bench file: one TOML file that describes a bench, validated on load.

Every error names the file, the key, the bad value and what is allowed. Unknown keys are
errors too (a misspelt key would otherwise be silently ignored at a real bench).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from .bench_reader import BenchFileError, Section as _Section
from .model.shipped import SHIPPED_MODEL

__all__ = [
    "BenchConfig", "BenchFileError", "CalibrationConfig", "CameraConfig", "ColourConfig", "Geometry", "LaserConfig",
    "RunConfig", "SLMConfig", "TwinConfig", "colour_bench", "default_bench_text", "load_bench", "parse_bench",
    "KNOWN_DRIVERS",
]

DEFAULT_NAME = "<embedded default bench>"

# Driver names the bench builder knows, per device kind.
KNOWN_DRIVERS: dict[str, tuple[str, ...]] = {
    "laser": ("simulated", "obis", "cobolt", "scpi-ldc"),
    "encoding_slm": ("simulated", "screen", "meadowlark", "holoeye", "santec", "hamamatsu"),
    "decoding_slm": ("simulated", "screen", "meadowlark", "holoeye", "santec", "hamamatsu"),
    "camera": ("simulated", "genicam", "opencv"),
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


@dataclass(frozen=True)
class RunConfig:
    host_j_per_gflop: float
    seed_source: str
    seed_file: str
    decoder_phase: str
    timing: str
    model: str = SHIPPED_MODEL


@dataclass(frozen=True)
class CalibrationConfig:
    store: str = "calibrations"     # folder of calibration files, relative to the bench file's folder
    use_alignment: bool = True      # compensate the measured misalignment in runs
    use_camera: bool = True         # use the camera calibration (saturation level, hot pixels)


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
    source: str = DEFAULT_NAME
    text: str = field(default="", repr=False)

    @property
    def wavelength_m(self) -> float:
        return self.wavelength_nm * 1e-9


def default_bench_text() -> str:
    """The embedded default bench file (the simulated bench)."""
    return resources.files("lab").joinpath("default_bench.toml").read_text(encoding="utf-8")


def load_bench(path: str | Path | None = None) -> BenchConfig:
    """Load and validate a bench file; ``None`` loads the embedded simulated bench."""
    if path is None:
        return parse_bench(default_bench_text(), DEFAULT_NAME)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchFileError(f"{path}: bench file not found") from None
    except OSError as exc:
        raise BenchFileError(f"{path}: cannot read the bench file ({exc.strerror})") from None
    return parse_bench(text, str(path))


def parse_bench(text: str, source: str = DEFAULT_NAME) -> BenchConfig:
    """Validate bench-file text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchFileError(f"{source}: not valid TOML ({exc})") from None
    root = _Section(source, "", data)
    bench = root.sub("bench")
    name = bench.string("name", "unnamed bench")
    wavelength_nm = bench.number("wavelength_nm", low=200.0, high=2000.0)
    bench.done()
    geometry = _geometry(root.sub("geometry"))
    laser = _laser(root.sub("laser"), wavelength_nm)
    slms = [_slm(root.sub(key), key) for key in ("encoding_slm", "decoding_slm")]
    camera = _camera(root.sub("camera"))
    run = _run(root.sub("run"))
    calibration = _calibration(root.sub("calibration", required=False))
    colour_section = root.sub("colours", required=False)
    colours = _colours(colour_section, laser, camera) if colour_section is not None else None
    twin_section = root.sub("twin", required=False)
    root.done()
    lasers = list(colours.lasers.values()) if colours is not None else [laser]
    uses_twin = (any(d == "simulated" for d in [slms[0].driver, slms[1].driver, camera.driver]
                     + [c.driver for c in lasers]) or any(c.connection.get("port") == "twin" for c in lasers))
    if uses_twin and twin_section is None:
        raise BenchFileError(f"{source}: simulated devices need the [twin] table (the planted truths)")
    twin = _twin(twin_section, slms) if twin_section is not None else None
    config = BenchConfig(name, wavelength_nm, geometry, laser, slms[0], slms[1], camera, run, twin,
                         calibration, colours, source, text)
    _check_consistency(config)
    return config


def _geometry(s: _Section) -> Geometry:
    g = Geometry(
        d1_m=s.number("d1_mm", low=0.0, low_open=True) * 1e-3,
        d2_m=s.number("d2_mm", low=0.0, low_open=True) * 1e-3,
        seed_superpixels=s.integer("seed_superpixels", low=1),
        superpixel_px=s.integer("superpixel_px", low=1),
        decoder_px=s.integer("decoder_px", low=1),
        output_window_px=s.integer("output_window_px", low=1),
        output_pixels=s.integer("output_pixels", low=1),
        sensor_offset_m=tuple(v * 1e-6 for v in s.pair("sensor_offset_um", (0.0, 0.0))),
        sensor_rotation_deg=s.number("sensor_rotation_deg", 0.0, low=-180.0, high=180.0),
    )
    if g.output_window_px % g.output_pixels:
        raise BenchFileError(f"{s.source}: [geometry] output_window_px = {g.output_window_px}: expected a "
                             f"multiple of output_pixels = {g.output_pixels}")
    s.done()
    return g


def _driver(s: _Section, kind: str) -> str:
    return s.string("driver", choices=KNOWN_DRIVERS[kind])


def _laser(s: _Section, bench_nm: float) -> LaserConfig:
    cfg = _laser_table(s)
    if abs(cfg.wavelength_nm - bench_nm) > 1.0:
        raise BenchFileError(f"{s.source}: [laser] wavelength_nm = {cfg.wavelength_nm:g}: expected the "
                             f"bench wavelength {bench_nm:g} nm ([bench] wavelength_nm)")
    return cfg


def _laser_table(s: _Section) -> LaserConfig:
    cfg = LaserConfig(
        driver=_driver(s, "laser"),
        wavelength_nm=s.number("wavelength_nm", low=200.0, high=2000.0),
        power_w=s.number("power_mw", low=0.0) * 1e-3,
        max_power_w=s.number("max_power_mw", low=0.0, low_open=True) * 1e-3,
        connection=s.table_of("connection"),
        wall_plug_w=s.number("wall_plug_w", 0.0, low=0.0),
    )
    if cfg.power_w > cfg.max_power_w:
        raise BenchFileError(f"{s.source}: [{s.name}] power_mw = {cfg.power_w * 1e3:g}: expected at most the "
                             f"ceiling max_power_mw = {cfg.max_power_w * 1e3:g}")
    s.done()
    return cfg


def _colours(s: _Section, laser: LaserConfig, camera: CameraConfig) -> ColourConfig:
    """[colours]: order_nm (RGB order, the [bench] wavelength among them), camera_qe per colour, and
    [colours.lasers.<nm>] for every colour but the [laser] one."""
    order = s.numbers("order_nm", low=200.0, high=2000.0)
    if any(abs(a - b) <= 1.0 for i, a in enumerate(order) for b in order[i + 1:]):
        raise BenchFileError(f"{s.source}: [colours] order_nm = {list(order)}: expected distinct wavelengths")
    main = next((wl for wl in order if abs(wl - laser.wavelength_nm) <= 1.0), None)
    if main is None:
        raise BenchFileError(f"{s.source}: [colours] order_nm = {list(order)}: expected the [laser] wavelength "
                             f"{laser.wavelength_nm:g} nm among the colours")
    qe = s.numbers("camera_qe", tuple(camera.qe for _ in order), low=0.0, high=1.0)
    if len(qe) != len(order) or min(qe) <= 0.0:
        raise BenchFileError(f"{s.source}: [colours] camera_qe = {list(qe)}: expected one quantum efficiency "
                             f"in (0, 1] per colour of order_nm ({len(order)})")
    table = s.sub("lasers", required=len(order) > 1)
    lasers = {main: laser}
    given = dict(table.table) if table is not None else {}
    for wl in order:
        if wl == main:
            continue
        key = next((k for k in given if _nm_key(k) is not None and abs(_nm_key(k) - wl) <= 1.0), None)
        if key is None:
            raise BenchFileError(f"{s.source}: [colours.lasers] has no laser for {wl:g} nm; expected a table "
                                 f"[colours.lasers.{wl:g}] (keys as in [laser])")
        cfg = _laser_table(table.sub(key))
        if abs(cfg.wavelength_nm - wl) > 1.0:
            raise BenchFileError(f"{s.source}: [colours.lasers.{key}] wavelength_nm = {cfg.wavelength_nm:g}: "
                                 f"expected {wl:g} nm")
        lasers[wl] = cfg
    if table is not None:
        table.done()
    s.done()
    return ColourConfig(order_nm=order, lasers=lasers, camera_qe=dict(zip(order, qe)))


def _nm_key(key: str) -> float | None:
    try:
        return float(key.removesuffix("nm"))
    except ValueError:
        return None


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
    return replace(slm, response_max_rad=slm.response_max_rad * ratio,
                   response_wobble_rad=slm.response_wobble_rad * ratio)


def _slm(s: _Section, key: str) -> SLMConfig:
    cfg = SLMConfig(
        key=key,
        driver=_driver(s, key),
        resolution=s.pair("resolution", integer=True, positive=True),
        pitch_um=s.number("pitch_um", low=0.0, low_open=True),
        bitdepth=s.integer("bitdepth", low=1, high=16),
        refresh_hz=s.number("refresh_hz", low=0.0, low_open=True),
        latency_frames=s.integer("latency_frames", low=0),
        settle_s=s.number("settle_ms", low=0.0) * 1e-3,
        lut=s.string("lut", "calibrated"),
        connection=s.table_of("connection"),
        wall_plug_w=s.number("wall_plug_w", 0.0, low=0.0),
    )
    s.done()
    return cfg


def _camera(s: _Section) -> CameraConfig:
    cfg = CameraConfig(
        driver=_driver(s, "camera"),
        resolution=s.pair("resolution", integer=True, positive=True),
        pitch_um=s.number("pitch_um", low=0.0, low_open=True),
        bitdepth=s.integer("bitdepth", low=1, high=16),
        exposure_s=s.number("exposure_ms", low=0.0, low_open=True) * 1e-3,
        readout_s=s.number("readout_ms", 0.0, low=0.0) * 1e-3,
        connection=s.table_of("connection"),
        wall_plug_w=s.number("wall_plug_w", 0.0, low=0.0),
        qe=s.number("qe", 0.7, low=0.0, low_open=True, high=1.0),
        gain_dn_per_e=s.number("gain_dn_per_e", 1.0, low=0.0, low_open=True),
    )
    s.done()
    return cfg


def _run(s: _Section) -> RunConfig:
    cfg = RunConfig(
        host_j_per_gflop=s.number("host_j_per_gflop", 1.0, low=0.0),
        seed_source=s.string("seed_source", "placeholder-encoder", choices=("model", "placeholder-encoder", "file")),
        seed_file=s.string("seed_file", ""),
        decoder_phase=s.string("decoder_phase", "flat"),
        timing=s.string("timing", "virtual", choices=("virtual", "wall")),
        model=s.string("model", SHIPPED_MODEL),
    )
    if cfg.seed_source == "file" and not cfg.seed_file:
        raise BenchFileError(f"{s.source}: [run] seed_file = '': expected a .npy file of seed phases "
                             f"when seed_source = 'file'")
    s.done()
    return cfg


def _calibration(s: _Section | None) -> CalibrationConfig:
    if s is None:
        return CalibrationConfig()
    cfg = CalibrationConfig(store=s.string("store", "calibrations"),
                            use_alignment=s.boolean("use_alignment", True),
                            use_camera=s.boolean("use_camera", True))
    if not cfg.store.strip():
        raise BenchFileError(f"{s.source}: [calibration] store = '': expected a folder for calibration files")
    s.done()
    return cfg


def _twin_slm(s: _Section, nominal: SLMConfig, movable: bool) -> TwinSLM:
    values = dict(
        response_max_rad=s.number("response_max_rad", low=0.5, high=50.0),
        response_exponent=s.number("response_exponent", 1.0, low=0.2, high=5.0),
        response_wobble_rad=s.number("response_wobble_rad", 0.0, low=-5.0, high=5.0),
        crosstalk_sigma_px=s.number("crosstalk_sigma_px", 0.0, low=0.0, high=10.0),
        latency_frames=s.integer("latency_frames", nominal.latency_frames, low=0),
        settle_s=s.number("settle_ms", nominal.settle_s * 1e3, low=0.0) * 1e-3,
    )
    if movable:
        values["shift_m"] = tuple(v * 1e-6 for v in s.pair("shift_um", (0.0, 0.0)))
        values["rotation_deg"] = s.number("rotation_deg", 0.0, low=-10.0, high=10.0)
    s.done()
    return TwinSLM(**values)


def _twin(s: _Section, slms: list[SLMConfig]) -> TwinConfig:
    grid = s.pair("grid_px", integer=True, positive=True)
    band_limit = s.boolean("band_limit", True)
    random_seed = s.integer("random_seed", 0, low=0)
    laser = s.sub("laser")
    beam = dict(
        beam=laser.string("beam", "flat-top", choices=("flat-top", "gaussian")),
        waist_m=laser.number("waist_mm", 3.0, low=0.0, low_open=True) * 1e-3,
        aperture_m=laser.number("aperture_mm", 0.0, low=0.0) * 1e-3,
        power_noise_rms=laser.number("power_noise_rms", 0.0, low=0.0, high=0.5),
        device_max_power_w=laser.number("device_max_power_mw", 100.0, low=0.0, low_open=True) * 1e-3,
    )
    laser.done()
    encoding = _twin_slm(s.sub("encoding_slm"), slms[0], movable=False)
    decoding = _twin_slm(s.sub("decoding_slm"), slms[1], movable=True)
    cam = s.sub("camera")
    camera = dict(
        camera_pitch_m=cam.number("pitch_um", low=0.0, low_open=True) * 1e-6,
        camera_offset_m=tuple(v * 1e-6 for v in cam.pair("offset_um", (0.0, 0.0))),
        camera_rotation_deg=cam.number("rotation_deg", 0.0, low=-180.0, high=180.0),
        qe=cam.number("qe", 0.7, low=0.0, low_open=True, high=1.0),
        gain_dn_per_e=cam.number("gain_dn_per_e", 0.25, low=0.0, low_open=True),
        read_noise_e=cam.number("read_noise_e", 2.5, low=0.0),
        dark_offset_dn=cam.number("dark_offset_dn", 100.0, low=0.0),
        full_well_e=cam.number("full_well_e", 10500.0, low=1.0),
        trigger_overlap=cam.string("trigger_overlap", "off", choices=("off", "readout")),
    )
    cam.done()
    s.done()
    return TwinConfig(grid_shape=(grid[1], grid[0]), band_limit=band_limit, random_seed=random_seed,
                      encoding=encoding, decoding=decoding, **beam, **camera)


def _check_consistency(c: BenchConfig) -> None:
    g = c.geometry
    seed_px = g.seed_superpixels * g.superpixel_px
    for slm, need, what in ((c.encoding_slm, seed_px, "the seed"), (c.decoding_slm, g.decoder_px, "the decoder")):
        if min(slm.shape) < need:
            raise BenchFileError(f"{c.source}: [{slm.key}] resolution = {list(slm.resolution)}: expected at "
                                 f"least {need} pixels each way to show {what} ([geometry])")
    if c.encoding_slm.pitch_um != c.decoding_slm.pitch_um:
        raise BenchFileError(f"{c.source}: [decoding_slm] pitch_um = {c.decoding_slm.pitch_um:g}: expected "
                             f"the encoding SLM's pitch {c.encoding_slm.pitch_um:g} (one model grid)")
    if c.twin is not None:
        rows, cols = c.twin.grid_shape
        for slm in (c.encoding_slm, c.decoding_slm):
            if rows > slm.shape[0] or cols > slm.shape[1]:
                raise BenchFileError(f"{c.source}: [twin] grid_px = [{cols}, {rows}]: expected at most the "
                                     f"{slm.key} resolution {list(slm.resolution)}")
        if max(seed_px, g.decoder_px, g.output_window_px) > min(rows, cols):
            raise BenchFileError(f"{c.source}: [twin] grid_px = [{cols}, {rows}]: expected room for the seed, "
                                 f"decoder and output window ({max(seed_px, g.decoder_px, g.output_window_px)} px)")
