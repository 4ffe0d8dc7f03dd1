"""Read a bench file: TOML in, a validated :class:`~optgen.lab.bench.config.BenchConfig` out.

Every error names the file, the key, the bad value and what is allowed. Unknown keys are
errors too (a misspelt key would otherwise be silently ignored at a real bench). parse_bench
returns a BenchConfig or raises BenchFileError, nothing else: every key has a type and a range
(sizes, timings and device options included), checked before the value is used.
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from pathlib import Path

from optgen.lab.bench.config import (
    DEFAULT_NAME,
    KNOWN_DRIVERS,
    BenchConfig,
    CalibrationConfig,
    CameraConfig,
    ColourConfig,
    Geometry,
    LaserConfig,
    PanelConfig,
    RunConfig,
    SafetyConfig,
    SLMConfig,
    TwinConfig,
    TwinSLM,
)
from optgen.lab.bench.connections import (
    CAMERA_CONNECTION,
    LASER_CONNECTION,
    SLM_CONNECTION,
    read_connection,
)
from optgen.lab.bench.limits import (
    MAX_BEAM_MM,
    MAX_BENCH_BYTES,
    MAX_COLOURS,
    MAX_DISTANCE_MM,
    MAX_DN,
    MAX_ELECTRONS,
    MAX_EXPOSURE_MS,
    MAX_GAIN_DN_PER_E,
    MAX_J_PER_GFLOP,
    MAX_KEY_PARTS,
    MAX_LATENCY_FRAMES,
    MAX_OFFSET_UM,
    MAX_PITCH_UM,
    MAX_POWER_MW,
    MAX_READOUT_MS,
    MAX_REFRESH_HZ,
    MAX_SETTLE_MS,
    MAX_SIDE_PX,
    MAX_TILT_URAD,
    MAX_WALL_PLUG_W,
    MAX_ZERNIKE,
)
from optgen.lab.bench.reader import BenchFileError, show
from optgen.lab.bench.reader import Section as _Section
from optgen.lab.model.shipped import SHIPPED_MODEL

__all__ = ["default_bench_text", "load_bench", "parse_bench"]


def default_bench_text() -> str:
    """The embedded default bench file (the simulated bench)."""
    return resources.files("optgen.lab.bench").joinpath("default_bench.toml").read_text(encoding="utf-8")


def load_bench(path: str | Path | None = None) -> BenchConfig:
    """Load and validate a bench file; ``None`` loads the embedded simulated bench."""
    if path is None:
        return parse_bench(default_bench_text(), DEFAULT_NAME)
    path = Path(path)
    return parse_bench(_read_text(path), str(path))


def _read_text(path: Path) -> str:
    """The file's text (newlines as in text mode); at most MAX_BENCH_BYTES are read."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BENCH_BYTES + 1)
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        raise BenchFileError(f"{path}: bench file not found") from None
    except OSError as exc:
        raise BenchFileError(f"{path}: cannot read the bench file ({exc.strerror or exc})") from None
    except ValueError as exc:   # e.g. a NUL in the path
        raise BenchFileError(f"{path}: cannot read the bench file ({exc})") from None
    if len(data) > MAX_BENCH_BYTES:
        raise _too_large(str(path), f"{size} bytes" if size > MAX_BENCH_BYTES else f"over {MAX_BENCH_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchFileError(f"{path}: the bench file is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _too_large(source: str, size: str) -> BenchFileError:
    return BenchFileError(f"{source}: the bench file is {size}: expected at most {MAX_BENCH_BYTES} bytes (1 MB)")


# One key part (bare or quoted) and a run of them joined by dots; scanned in one linear pass.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_DOTTED_RUN = re.compile(rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*")


def _check_dotted_keys(text: str, source: str) -> None:
    """Refuse a dotted key of more than MAX_KEY_PARTS parts before tomllib spends minutes and
    gigabytes on it (a bench key has at most five)."""
    for match in _DOTTED_RUN.finditer(text):
        if match.group().count(".") >= MAX_KEY_PARTS:
            parts = len(re.findall(_KEY_PART, match.group()))
            if parts > MAX_KEY_PARTS:
                line = text.count("\n", 0, match.start()) + 1
                raise BenchFileError(f"{source}: not valid TOML (line {line}: a dotted key of {parts} parts; "
                                     f"expected at most {MAX_KEY_PARTS})")


def _toml(text: str, source: str) -> dict:
    """The parsed TOML; any failure of the parser (syntax, nesting, size) is a BenchFileError."""
    if not isinstance(text, str):
        raise BenchFileError(f"{source}: expected the bench file's text, got a {type(text).__name__}")
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_BENCH_BYTES:
        raise _too_large(source, f"{size} bytes")
    _check_dotted_keys(text, source)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchFileError(f"{source}: not valid TOML ({exc})") from None
    except RecursionError:
        raise BenchFileError(f"{source}: not valid TOML (nested too deeply)") from None
    except Exception as exc:  # noqa: BLE001 - e.g. MemoryError, or an integer of over 4300 digits
        raise BenchFileError(f"{source}: not valid TOML ({type(exc).__name__}: {show(str(exc))})") from None


def parse_bench(text: str, source: str = DEFAULT_NAME) -> BenchConfig:
    """Validate bench-file text; ``source`` names it in errors.

    Returns a BenchConfig or raises BenchFileError, nothing else: every value is checked for its
    type and range before it is used, so no later step meets an absurd one.
    """
    root = _Section(source, "", _toml(text, source))
    bench = root.sub("bench")
    name = bench.string("name", "unnamed bench", nonempty=True)
    wavelength_nm = bench.number("wavelength_nm", low=200.0, high=2000.0)
    bench.done()
    geometry = _geometry(root.sub("geometry"))
    laser = _laser(root.sub("laser"), wavelength_nm)
    slms = [_slm(root.sub(key), key) for key in ("encoding_slm", "decoding_slm")]
    camera = _camera(root.sub("camera"))
    run = _run(root.sub("run"))
    calibration = _calibration(root.sub("calibration", required=False))
    safety = _safety(root.sub("safety", required=False))
    colour_section = root.sub("colours", required=False)
    colours = _colours(colour_section, laser, camera) if colour_section is not None else None
    twin_section = root.sub("twin", required=False)
    panel_section = root.sub("panel", required=False)
    panel = _panel(panel_section) if panel_section is not None else None
    root.done()
    lasers = list(colours.lasers.values()) if colours is not None else [laser]
    uses_twin = (any(d == "simulated" for d in [slms[0].driver, slms[1].driver, camera.driver]
                     + [c.driver for c in lasers]) or any(c.connection.get("port") == "twin" for c in lasers))
    if uses_twin and twin_section is None:
        raise BenchFileError(f"{source}: simulated devices need the [twin] table (the planted truths)")
    twin = _twin(twin_section, slms) if twin_section is not None else None
    config = BenchConfig(name, wavelength_nm, geometry, laser, slms[0], slms[1], camera, run, twin,
                         calibration=calibration, colours=colours, safety=safety, source=source, text=text,
                         panel=panel)
    _check_consistency(config)
    if panel is not None:
        _check_one_panel(config)
    return config


def _panel(s: _Section) -> PanelConfig:
    panel = PanelConfig(resolution=_resolution(s, "resolution"), encoding_region=_region(s, "encoding_region"),
                        decoding_region=_region(s, "decoding_region"))
    s.done()
    return panel


def _region(s: _Section, key: str) -> tuple[int, int, int, int]:
    """[x, y, width, height] in panel pixels."""
    value = s.value(key)
    what = (f"a region [x, y, width, height] of panel pixels: integers, x and y >= 0, width and height "
            f">= 1 and <= {MAX_SIDE_PX}")
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SIDE_PX for v in value)
            or value[2] < 1 or value[3] < 1):
        raise s.fail(key, value, what)
    return tuple(value)


# what the two regions of one panel share: the device, its electronics and its liquid crystal
_PANEL_SHARED = ("driver", "bitdepth", "refresh_hz", "latency_frames", "settle_s", "lut")
_PANEL_TWIN_SHARED = ("response_max_rad", "response_exponent", "response_wobble_rad", "crosstalk_sigma_px",
                      "latency_frames", "settle_s", "response_drift_per_h")


def _check_one_panel(c: BenchConfig) -> None:
    """[panel]: the regions fit the panel and do not overlap, each SLM table is its region, and what
    one panel has once is the same in both tables."""
    from optgen.drivers.slms.panel import PanelRegion, check_regions

    p = c.panel
    regions = {"encoding": PanelRegion(*p.encoding_region), "decoding": PanelRegion(*p.decoding_region)}
    try:
        check_regions(p.resolution, regions)
    except ValueError as exc:
        raise BenchFileError(f"{c.source}: [panel] {exc}") from None
    for slm, region in ((c.encoding_slm, p.encoding_region), (c.decoding_slm, p.decoding_region)):
        if tuple(slm.resolution) != tuple(region[2:]):
            raise BenchFileError(f"{c.source}: [{slm.key}] resolution = {list(slm.resolution)}: expected the size of "
                                 f"its panel region {list(region[2:])} ([panel] {slm.key.split('_')[0]}_region)")
        if slm.wavefront_correction:
            raise BenchFileError(f"{c.source}: [{slm.key}] wavefront_correction = {slm.wavefront_correction!r}: not "
                                 f"yet with [panel] (the vendor's file covers the whole panel); leave it \"\"")
    for key in _PANEL_SHARED:
        mine, panel = getattr(c.decoding_slm, key), getattr(c.encoding_slm, key)
        if mine != panel:
            text = (f"settle_ms = {mine * 1e3:g}: expected the panel's {panel * 1e3:g}" if key == "settle_s" else
                    f"{key} = {mine!r}: expected the panel's {panel!r}")
            raise BenchFileError(f"{c.source}: [decoding_slm] {text} ([encoding_slm]): one panel, one device")
    if c.decoding_slm.connection:
        raise BenchFileError(f"{c.source}: [decoding_slm.connection] has keys {sorted(c.decoding_slm.connection)}: "
                             f"expected none with [panel] (the panel is opened through [encoding_slm.connection])")
    if c.twin is not None:
        for key in _PANEL_TWIN_SHARED:
            mine, panel = getattr(c.twin.decoding, key), getattr(c.twin.encoding, key)
            if mine != panel:
                name = key.replace("_s", "_ms") if key == "settle_s" else key
                value = (mine * 1e3, panel * 1e3) if key == "settle_s" else (mine, panel)
                raise BenchFileError(f"{c.source}: [twin.decoding_slm] {name} = {value[0]:g}: expected the "
                                     f"encoding region's {value[1]:g} (one panel: one liquid crystal)")


def _geometry(s: _Section) -> Geometry:
    g = Geometry(
        d1_m=s.number("d1_mm", low=0.0, low_open=True, high=MAX_DISTANCE_MM) * 1e-3,
        d2_m=s.number("d2_mm", low=0.0, low_open=True, high=MAX_DISTANCE_MM) * 1e-3,
        seed_superpixels=_side_px(s, "seed_superpixels"),
        superpixel_px=_side_px(s, "superpixel_px"),
        decoder_px=_side_px(s, "decoder_px"),
        output_window_px=_side_px(s, "output_window_px"),
        output_pixels=_side_px(s, "output_pixels"),
        sensor_offset_m=_offset_m(s, "sensor_offset_um"),
        sensor_rotation_deg=s.number("sensor_rotation_deg", 0.0, low=-180.0, high=180.0),
    )
    if g.output_window_px % g.output_pixels:
        raise BenchFileError(f"{s.source}: [geometry] output_window_px = {g.output_window_px}: expected a "
                             f"multiple of output_pixels = {g.output_pixels}")
    s.done()
    return g


def _side_px(s: _Section, key: str) -> int:
    """A size in pixels along one side: 1 to MAX_SIDE_PX."""
    return s.integer(key, low=1, high=MAX_SIDE_PX)


def _resolution(s: _Section, key: str) -> tuple[int, int]:
    """[width, height] pixels, each 1 to MAX_SIDE_PX."""
    return s.pair(key, integer=True, low=1, high=MAX_SIDE_PX)


def _offset_m(s: _Section, key: str, default: tuple = (0.0, 0.0)) -> tuple[float, float]:
    """An [x, y] offset in micrometres (at most MAX_OFFSET_UM each way), in metres."""
    return tuple(v * 1e-6 for v in s.pair(key, default, low=-MAX_OFFSET_UM, high=MAX_OFFSET_UM))


def _wall_plug(s: _Section) -> float:
    return s.number("wall_plug_w", 0.0, low=0.0, high=MAX_WALL_PLUG_W)


def _driver(s: _Section, kind: str) -> str:
    return s.string("driver", choices=KNOWN_DRIVERS[kind])


def _laser(s: _Section, bench_nm: float) -> LaserConfig:
    cfg = _laser_table(s)
    if abs(cfg.wavelength_nm - bench_nm) > 1.0:
        raise BenchFileError(f"{s.source}: [laser] wavelength_nm = {cfg.wavelength_nm:g}: expected the "
                             f"bench wavelength {bench_nm:g} nm ([bench] wavelength_nm)")
    return cfg


def _laser_table(s: _Section) -> LaserConfig:
    driver = _driver(s, "laser")
    cfg = LaserConfig(
        driver=driver,
        wavelength_nm=s.number("wavelength_nm", low=200.0, high=2000.0),
        power_w=s.number("power_mw", low=0.0, high=MAX_POWER_MW) * 1e-3,
        max_power_w=s.number("max_power_mw", low=0.0, low_open=True, high=MAX_POWER_MW) * 1e-3,
        connection=read_connection(s, driver, LASER_CONNECTION),
        wall_plug_w=_wall_plug(s),
    )
    if cfg.power_w > cfg.max_power_w:
        raise BenchFileError(f"{s.source}: [{s.name}] power_mw = {cfg.power_w * 1e3:g}: expected at most the "
                             f"ceiling max_power_mw = {cfg.max_power_w * 1e3:g}")
    s.done()
    return cfg


def _colours(s: _Section, laser: LaserConfig, camera: CameraConfig) -> ColourConfig:
    """[colours]: order_nm (RGB order, the [bench] wavelength among them), camera_qe per colour, and
    [colours.lasers.<nm>] for every colour but the [laser] one."""
    order = s.numbers("order_nm", low=200.0, high=2000.0, max_len=MAX_COLOURS)
    if any(abs(a - b) <= 1.0 for i, a in enumerate(order) for b in order[i + 1:]):
        raise BenchFileError(f"{s.source}: [colours] order_nm = {list(order)}: expected distinct wavelengths")
    main = next((wl for wl in order if abs(wl - laser.wavelength_nm) <= 1.0), None)
    if main is None:
        raise BenchFileError(f"{s.source}: [colours] order_nm = {list(order)}: expected the [laser] wavelength "
                             f"{laser.wavelength_nm:g} nm among the colours")
    qe = s.numbers("camera_qe", tuple(camera.qe for _ in order), low=0.0, high=1.0, max_len=MAX_COLOURS)
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


def _slm(s: _Section, key: str) -> SLMConfig:
    driver = _driver(s, key)
    cfg = SLMConfig(
        key=key,
        driver=driver,
        resolution=_resolution(s, "resolution"),
        pitch_um=s.number("pitch_um", low=0.0, low_open=True, high=MAX_PITCH_UM),
        bitdepth=s.integer("bitdepth", low=1, high=16),
        refresh_hz=s.number("refresh_hz", low=0.0, low_open=True, high=MAX_REFRESH_HZ),
        latency_frames=_latency_frames(s),
        settle_s=_settle_ms(s) * 1e-3,
        lut=s.string("lut", "calibrated", nonempty=True),
        connection=read_connection(s, driver, SLM_CONNECTION),
        wall_plug_w=_wall_plug(s),
        wavefront_correction=s.string("wavefront_correction", ""),
    )
    s.done()
    return cfg


def _camera(s: _Section) -> CameraConfig:
    driver = _driver(s, "camera")
    cfg = CameraConfig(
        driver=driver,
        resolution=_resolution(s, "resolution"),
        pitch_um=s.number("pitch_um", low=0.0, low_open=True, high=MAX_PITCH_UM),
        bitdepth=s.integer("bitdepth", low=1, high=16),
        exposure_s=s.number("exposure_ms", low=0.0, low_open=True, high=MAX_EXPOSURE_MS) * 1e-3,
        readout_s=s.number("readout_ms", 0.0, low=0.0, high=MAX_READOUT_MS) * 1e-3,
        connection=read_connection(s, driver, CAMERA_CONNECTION),
        wall_plug_w=_wall_plug(s),
        qe=s.number("qe", 0.7, low=0.0, low_open=True, high=1.0),
        gain_dn_per_e=s.number("gain_dn_per_e", 1.0, low=0.0, low_open=True, high=MAX_GAIN_DN_PER_E),
        flat_field=s.string("flat_field", ""),
    )
    s.done()
    return cfg


def _run(s: _Section) -> RunConfig:
    cfg = RunConfig(
        host_j_per_gflop=s.number("host_j_per_gflop", 1.0, low=0.0, high=MAX_J_PER_GFLOP),
        seed_source=s.string("seed_source", "placeholder-encoder", choices=("model", "placeholder-encoder", "file")),
        seed_file=s.string("seed_file", ""),
        decoder_phase=s.string("decoder_phase", "flat", nonempty=True),
        timing=s.string("timing", "virtual", choices=("virtual", "wall")),
        model=s.string("model", SHIPPED_MODEL, nonempty=True),
        readout=s.string("readout", "full", choices=("full", "window")),
    )
    if cfg.seed_source == "file" and not cfg.seed_file:
        raise BenchFileError(f"{s.source}: [run] seed_file = '': expected a .npy file of seed phases "
                             f"when seed_source = 'file'")
    s.done()
    return cfg


def _latency_frames(s: _Section, *default: int) -> int:
    """Frames between an upload and its display: 0 to MAX_LATENCY_FRAMES."""
    return s.integer("latency_frames", *default, low=0, high=MAX_LATENCY_FRAMES)


def _settle_ms(s: _Section, *default: float) -> float:
    """Time the liquid crystal takes to settle, in ms: 0 to MAX_SETTLE_MS."""
    return s.number("settle_ms", *default, low=0.0, high=MAX_SETTLE_MS)


def _safety(s: _Section | None) -> SafetyConfig:
    """[safety] (optional): the laser watchdog's heartbeat bound and the storage stall limit."""
    if s is None:
        return SafetyConfig()
    cfg = SafetyConfig(watchdog_s=s.number("watchdog_s", SafetyConfig.watchdog_s, low=0.2, high=30.0),
                       storage_stall_s=s.number("storage_stall_s", SafetyConfig.storage_stall_s, low=1.0, high=600.0))
    s.done()
    return cfg


def _calibration(s: _Section | None) -> CalibrationConfig:
    if s is None:
        return CalibrationConfig()
    cfg = CalibrationConfig(store=s.string("store", "calibrations"),
                            use_alignment=s.boolean("use_alignment", True),
                            use_camera=s.boolean("use_camera", True),
                            use_wavefront=s.boolean("use_wavefront", True),
                            correct_decoder_wavefront=s.boolean("correct_decoder_wavefront", False))
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
        latency_frames=_latency_frames(s, nominal.latency_frames),
        settle_s=_settle_ms(s, nominal.settle_s * 1e3) * 1e-3,
        wavefront_waves=s.numbers("wavefront_waves", (), low=-20.0, high=20.0, max_len=MAX_ZERNIKE,
                                  allow_empty=True),
        wavefront_radius_m=s.number("wavefront_radius_mm", 2.5, low=0.0, low_open=True, high=MAX_BEAM_MM) * 1e-3,
        wavefront_file=s.string("wavefront_file", ""),
        unmodulated_fraction=s.number("unmodulated_fraction", 0.0, low=0.0, high=0.5),
        response_drift_per_h=s.number("response_drift_per_h", 0.0, low=-0.5, high=0.5),
    )
    if movable:
        values["shift_m"] = _offset_m(s, "shift_um")
        values["rotation_deg"] = s.number("rotation_deg", 0.0, low=-10.0, high=10.0)
    s.done()
    return TwinSLM(**values)


def _twin(s: _Section, slms: list[SLMConfig]) -> TwinConfig:
    grid = _resolution(s, "grid_px")
    band_limit = s.boolean("band_limit", True)
    random_seed = s.integer("random_seed", 0, low=0, high=2 ** 63 - 1)
    laser = s.sub("laser")
    beam = dict(
        beam=laser.string("beam", "flat-top", choices=("flat-top", "gaussian")),
        waist_m=laser.number("waist_mm", 3.0, low=0.0, low_open=True, high=MAX_BEAM_MM) * 1e-3,
        aperture_m=laser.number("aperture_mm", 0.0, low=0.0, high=MAX_BEAM_MM) * 1e-3,
        power_noise_rms=laser.number("power_noise_rms", 0.0, low=0.0, high=0.5),
        device_max_power_w=laser.number("device_max_power_mw", 100.0, low=0.0, low_open=True,
                                        high=MAX_POWER_MW) * 1e-3,
        beam_centre_m=_offset_m(laser, "centre_um"),
        beam_tilt_rad=tuple(v * 1e-6 for v in laser.pair("tilt_urad", (0.0, 0.0), low=-MAX_TILT_URAD,
                                                         high=MAX_TILT_URAD)),
        pointing_drift_rad_per_h=tuple(v * 1e-6 for v in laser.pair("pointing_drift_urad_per_h", (0.0, 0.0),
                                                                    low=-MAX_TILT_URAD, high=MAX_TILT_URAD)),
    )
    laser.done()
    encoding = _twin_slm(s.sub("encoding_slm"), slms[0], movable=False)
    decoding = _twin_slm(s.sub("decoding_slm"), slms[1], movable=True)
    cam = s.sub("camera")
    camera = dict(
        camera_pitch_m=cam.number("pitch_um", low=0.0, low_open=True, high=MAX_PITCH_UM) * 1e-6,
        camera_offset_m=_offset_m(cam, "offset_um"),
        camera_rotation_deg=cam.number("rotation_deg", 0.0, low=-180.0, high=180.0),
        qe=cam.number("qe", 0.7, low=0.0, low_open=True, high=1.0),
        gain_dn_per_e=cam.number("gain_dn_per_e", 0.25, low=0.0, low_open=True, high=MAX_GAIN_DN_PER_E),
        read_noise_e=cam.number("read_noise_e", 2.5, low=0.0, high=MAX_ELECTRONS),
        dark_offset_dn=cam.number("dark_offset_dn", 100.0, low=0.0, high=MAX_DN),
        full_well_e=cam.number("full_well_e", 10500.0, low=1.0, high=MAX_ELECTRONS),
        trigger_overlap=cam.string("trigger_overlap", "off", choices=("off", "readout")),
        hot_pixel_fraction=cam.number("hot_pixel_fraction", 0.0, low=0.0, high=0.1),
        hot_pixel_e_per_s=cam.number("hot_pixel_e_per_s", 0.0, low=0.0, high=MAX_ELECTRONS),
        prnu_rms=cam.number("prnu_rms", 0.0, low=0.0, high=0.5),
        dsnu_dn_rms=cam.number("dsnu_dn_rms", 0.0, low=0.0, high=MAX_DN),
        background_w_per_m2=cam.number("background_w_per_m2", 0.0, low=0.0, high=1000.0),
    )
    cam.done()
    distances = {f"{key}_m": s.number(f"{key}_mm", low=0.0, low_open=True, high=MAX_DISTANCE_MM) * 1e-3
                 for key in ("d1", "d2") if s.has(f"{key}_mm")}
    s.done()
    return TwinConfig(grid_shape=(grid[1], grid[0]), band_limit=band_limit, random_seed=random_seed,
                      encoding=encoding, decoding=decoding, **beam, **camera, **distances)


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
