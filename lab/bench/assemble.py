"""Assemble a bench (laser, two SLMs, camera, clock) from a validated bench file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optgen.calibration.lut import PhaseResponse, apply_response
from optgen.drivers.camera import BenchCamera
from optgen.drivers.common.clock import Clock
from optgen.drivers.common.zernike import wavefront
from optgen.drivers.identity import SLMTiming
from optgen.drivers.laser import Laser
from optgen.drivers.slm import PhaseSLM
from optgen.lab.bench.calibrations import BenchCalibrations, load_bench_calibrations
from optgen.lab.bench.config import BenchConfig, SLMConfig, TwinSLM
from optgen.lab.bench.reader import BenchFileError
from optgen.simulators import (
    DECODING,
    ENCODING,
    LaserTruth,
    OpticalWorld,
    SensorTruth,
    SimulatedCamera,
    SimulatedLaser,
    SimulatedPhaseSLM,
    SLMTruth,
    VirtualClock,
    WallClock,
    planted_response,
)

__all__ = ["Bench", "build_bench"]


@dataclass
class Bench:
    """Open devices of one bench. Close it (or use ``with``) to turn the laser off and release all."""

    config: BenchConfig
    laser: Laser
    encoding_slm: PhaseSLM
    decoding_slm: PhaseSLM
    camera: BenchCamera
    clock: Clock
    luts: dict[str, PhaseResponse]
    world: OpticalWorld | None = None
    protocol_twin: object | None = None
    calibrations: BenchCalibrations | None = None
    closed: bool = field(default=False, init=False)

    @property
    def truths(self):
        """On the twin, the truths it planted (``OpticalWorld.planted_truths()``); None on a real bench."""
        return self.world.planted_truths() if self.world is not None else None

    def reload_calibrations(self, calibrations: BenchCalibrations) -> None:
        """Run with ``calibrations`` from now on (after a calibration): their LUTs on the SLMs."""
        calibrations.check_devices(self)
        for slm in (self.encoding_slm, self.decoding_slm):
            apply_response(slm, calibrations.luts[slm.name])
        _apply_measured_wavefronts(self, calibrations)
        self.calibrations, self.luts = calibrations, dict(calibrations.luts)

    def calibration_ids(self) -> dict[str, str]:
        """Which calibration each device runs with (recorded in every run file)."""
        if self.calibrations is not None:
            return self.calibrations.ids()
        return {f"{key}.lut": lut.id for key, lut in self.luts.items()}

    def describe(self) -> dict:
        """Every device setting, for the run file's snapshot."""
        return {
            "laser": self.laser.describe(),
            "encoding_slm": self.encoding_slm.describe(),
            "decoding_slm": self.decoding_slm.describe(),
            "camera": self.camera.describe(),
            "calibrations": self.calibration_ids(),
            "simulated": self.world is not None,
        }

    def close(self) -> None:
        """Laser off first (verified), then release every device; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            self.laser.close()
        finally:
            for device in (self.camera, self.decoding_slm, self.encoding_slm):
                device.close()
            if self.protocol_twin is not None:
                self.protocol_twin.close()

    def __enter__(self) -> "Bench":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def build_bench(config: BenchConfig, calibration_store: str | Path | None = None) -> Bench:
    """Open every device the bench file names, with the calibrations of its store (or ``calibration_store``).

    A calibration file that is corrupt or made for another wavelength, path or device is refused
    before any device opens (or, for a device-identity mismatch, right after, with all closed again).
    """
    calibrations = load_bench_calibrations(config, calibration_store)
    luts = calibrations.luts
    others = {config.encoding_slm.driver, config.decoding_slm.driver, config.camera.driver}
    if others == {"simulated"}:
        bench = _build_twin(config, luts)
    elif "simulated" in others:
        raise ValueError(f"{config.source}: simulated and real SLMs/camera cannot share a light path; make "
                         f"[encoding_slm], [decoding_slm] and [camera] all real or all 'simulated'")
    else:
        from optgen.lab.bench.real import open_real_bench

        bench = open_real_bench(config, luts, open_laser, apply_response, Bench)
    bench.calibrations = calibrations
    bench.laser.watchdog_s = config.safety.watchdog_s
    if bench.protocol_twin is not None:
        bench.laser.light_ends_with_process = True   # the twin answers from a thread of this process
    try:
        calibrations.check_devices(bench)      # a calibration measured on another device's serial
        for cfg, slm in ((config.encoding_slm, bench.encoding_slm), (config.decoding_slm, bench.decoding_slm)):
            if cfg.wavefront_correction:
                slm.load_vendor_correction(_beside_bench_file(config, cfg.wavefront_correction))
        _apply_measured_wavefronts(bench, calibrations)
    except Exception:
        bench.close()
        raise
    return bench


def _beside_bench_file(config: BenchConfig, name: str) -> Path:
    path = Path(name)
    if not path.is_absolute() and Path(config.source).is_file():
        path = Path(config.source).parent / path
    return path


def _apply_measured_wavefronts(bench: "Bench", calibrations: BenchCalibrations) -> None:
    """Each SLM's measured wavefront correction (none where the store holds none) on top of its vendor
    file's; SLM2's only where ``[calibration] correct_decoder_wavefront`` asks for it."""
    from optgen.calibration.wavefront import WavefrontCalibration, wavefront_correction_rad

    pitch = bench.config.light_path.pitch_m
    for slm in (bench.encoding_slm, bench.decoding_slm):
        record = calibrations.wavefronts.get(slm.name)
        if slm is bench.decoding_slm and not bench.config.calibration.correct_decoder_wavefront:
            record = None
        cal = WavefrontCalibration.from_record(record) if record is not None else None
        slm.set_wavefront_correction(wavefront_correction_rad(cal, slm.shape, pitch))


def _slm_timing(cfg: SLMConfig) -> SLMTiming:
    return SLMTiming(refresh_hz=cfg.refresh_hz, latency_frames=cfg.latency_frames, settle_s=cfg.settle_s)


def _slm_truth(twin_slm: TwinSLM, cfg: SLMConfig, config: BenchConfig) -> SLMTruth:
    return SLMTruth(
        response_rad=planted_response(cfg.bitdepth, twin_slm.response_max_rad, twin_slm.response_exponent,
                                      twin_slm.response_wobble_rad),
        crosstalk_sigma_px=twin_slm.crosstalk_sigma_px,
        shift_m=twin_slm.shift_m,
        rotation_deg=twin_slm.rotation_deg,
        latency_s=twin_slm.latency_frames / cfg.refresh_hz,
        settle_s=twin_slm.settle_s,
        wavefront_rad=_planted_wavefront(twin_slm, config, cfg.key),
        unmodulated_fraction=twin_slm.unmodulated_fraction,
        response_drift_per_h=twin_slm.response_drift_per_h,
    )


def _planted_wavefront(twin_slm: TwinSLM, config: BenchConfig, key: str) -> np.ndarray | None:
    """The panel's phase error (radians, the twin's grid): its Zernike terms plus a map file."""
    grid = config.twin.grid_shape
    pitch = config.encoding_slm.pitch_um * 1e-6
    waves = np.zeros(grid)
    if any(twin_slm.wavefront_waves):
        waves += wavefront(twin_slm.wavefront_waves, grid, pitch, twin_slm.wavefront_radius_m)
    if twin_slm.wavefront_file:
        waves += _wavefront_file(twin_slm.wavefront_file, config, key)
    if not waves.any():
        return None
    return (2.0 * np.pi * waves).astype(np.float32)


def _wavefront_file(name: str, config: BenchConfig, key: str) -> np.ndarray:
    """A planted wavefront map in waves (.npy of the twin's grid), relative to the bench file."""
    path = Path(name)
    if not path.is_absolute() and Path(config.source).is_file():
        path = Path(config.source).parent / path
    where = f"{config.source}: [twin.{key}] wavefront_file = {name!r}"
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BenchFileError(f"{where}: cannot read it ({exc})") from None
    if data.shape != tuple(config.twin.grid_shape) or not np.issubdtype(data.dtype, np.floating) \
            or not np.isfinite(data).all():
        raise BenchFileError(f"{where}: {data.dtype} {data.shape}; expected finite waves of the twin's grid "
                             f"{tuple(config.twin.grid_shape)} (rows, cols)")
    return data.astype(np.float64)


def make_world(config: BenchConfig, clock: Clock | None = None) -> OpticalWorld:
    """The twin's world model with the truths planted by the bench file."""
    twin = config.twin
    if twin is None:
        raise ValueError(f"{config.source}: no [twin] table")
    if clock is None:
        clock = VirtualClock() if config.run.timing == "virtual" else WallClock()
    sensor = SensorTruth(
        resolution=config.camera.resolution, pitch_m=twin.camera_pitch_m, offset_m=twin.camera_offset_m,
        rotation_deg=twin.camera_rotation_deg, qe=twin.qe, gain_dn_per_e=twin.gain_dn_per_e,
        read_noise_e=twin.read_noise_e, dark_offset_dn=twin.dark_offset_dn, full_well_e=twin.full_well_e,
        bitdepth=config.camera.bitdepth, readout_s=config.camera.readout_s,
        hot_pixel_fraction=twin.hot_pixel_fraction, hot_pixel_e_per_s=twin.hot_pixel_e_per_s,
        prnu_rms=twin.prnu_rms, dsnu_dn_rms=twin.dsnu_dn_rms, background_w_per_m2=twin.background_w_per_m2)
    laser = LaserTruth(beam=twin.beam, waist_m=twin.waist_m, aperture_m=twin.aperture_m,
                       power_noise_rms=twin.power_noise_rms, device_max_power_w=twin.device_max_power_w,
                       centre_m=twin.beam_centre_m, tilt_rad=twin.beam_tilt_rad,
                       pointing_drift_rad_per_h=twin.pointing_drift_rad_per_h)
    g = config.geometry
    return OpticalWorld(
        wavelength_m=config.laser.wavelength_nm * 1e-9, pitch_m=config.encoding_slm.pitch_um * 1e-6,
        grid_shape=twin.grid_shape, d1_m=twin.d1_m if twin.d1_m is not None else g.d1_m,
        d2_m=twin.d2_m if twin.d2_m is not None else g.d2_m,
        encoding=_slm_truth(twin.encoding, config.encoding_slm, config),
        decoding=_slm_truth(twin.decoding, config.decoding_slm, config),
        sensor=sensor, laser=laser, clock=clock, rng=np.random.default_rng(twin.random_seed),
        band_limit=twin.band_limit)


def _build_twin(config: BenchConfig, luts: dict[str, PhaseResponse]) -> Bench:
    world = make_world(config)
    wav_um = config.laser.wavelength_nm * 1e-3
    slms = {}
    for cfg, key in ((config.encoding_slm, ENCODING), (config.decoding_slm, DECODING)):
        slm = SimulatedPhaseSLM(world, key, cfg.resolution, timing=_slm_timing(cfg), bitdepth=cfg.bitdepth,
                                pitch_um=cfg.pitch_um, wav_um=wav_um, name=cfg.key)
        apply_response(slm, luts[cfg.key])
        slms[key] = slm
    if config.panel is not None:          # one panel: the two planes are its regions, written together
        from optgen.lab.bench.one_panel import twin_panel_slms

        regions = twin_panel_slms(config, world, {"encoding_slm": slms[ENCODING], "decoding_slm": slms[DECODING]})
        for cfg in (config.encoding_slm, config.decoding_slm):
            apply_response(regions[cfg.key], luts[cfg.key])
        slms = {ENCODING: regions["encoding_slm"], DECODING: regions["decoding_slm"]}
    camera = SimulatedCamera(world, exposure_s=config.camera.exposure_s, trigger_overlap=config.twin.trigger_overlap)
    laser, twin = open_laser(config, world)
    if twin is None and not isinstance(laser, SimulatedLaser):
        laser.observers.append(world.follow_laser)   # a laser outside: the light is what it reports
    bench = Bench(config=config, laser=laser, encoding_slm=slms[ENCODING], decoding_slm=slms[DECODING],
                  camera=camera, clock=world.clock, luts=luts, world=world)
    bench.protocol_twin = twin
    return bench


_LASER_OPTIONS = {
    "obis": {"port", "baudrate", "timeout_s", "expected_model"},
    "cobolt": {"port", "baudrate", "timeout_s", "expected_model"},
    "scpi-ldc": {"resource", "timeout_s", "slope_w_per_a", "threshold_a", "expected_model", "visa_library",
                 "power_query"},
    "table": {"table", "port", "resource", "baudrate", "timeout_s", "visa_library"},
}


def open_laser(config: BenchConfig, world: OpticalWorld | None):
    """(laser, protocol twin or None) for the bench file's [laser] table.

    ``port = "twin"`` (OBIS, Cobolt) starts the protocol twin on a pseudo-terminal, wired to the
    physics twin, and opens the real driver on it: the driver's whole byte path runs.
    """
    cfg = config.laser
    if cfg.driver == "simulated":
        if world is None:
            raise ValueError(f"{config.source}: [laser] driver 'simulated' can only light the simulated bench; "
                             f"with real SLMs and camera choose a real laser driver")
        return SimulatedLaser(world, wavelength_nm=cfg.wavelength_nm, max_power_w=cfg.max_power_w), None
    from optgen.drivers.lasers import LASER_DRIVERS

    options = dict(cfg.connection)
    unknown = set(options) - _LASER_OPTIONS[cfg.driver]
    if unknown:
        raise ValueError(f"{config.source}: [laser.connection] has unknown key(s) {sorted(unknown)} for driver "
                         f"{cfg.driver!r}; allowed: {sorted(_LASER_OPTIONS[cfg.driver])}")
    twin = None
    address_key = "resource" if cfg.driver == "scpi-ldc" or "resource" in options else "port"
    if address_key not in options:
        raise ValueError(f"{config.source}: [laser.connection] needs '{address_key}' for driver {cfg.driver!r}")
    if options.get("port") == "twin":
        twin = _protocol_twin(config, world)
        options["port"] = twin.port
    address = options.pop(address_key)
    if cfg.driver == "table" and Path(config.source).is_file():
        options["base_dir"] = Path(config.source).parent
    try:
        laser = LASER_DRIVERS[cfg.driver](address, "laser", cfg.wavelength_nm, cfg.max_power_w, **options)
    except Exception:
        if twin is not None:
            twin.close()
        raise
    return laser, twin


def _protocol_twin(config: BenchConfig, world: OpticalWorld | None):
    """The protocol twin for ``port = "twin"``: OBIS, Cobolt, or the laser family of a shipped table."""
    from optgen.simulators.protocol import TABLE_TWINS, CoboltTwin, ObisTwin

    cfg = config.laser
    if cfg.driver == "table":
        name = cfg.connection["table"]
        if name not in TABLE_TWINS:
            raise ValueError(f"{config.source}: [laser.connection] port = \"twin\": there is no protocol twin for "
                             f"table {name!r} (twins exist for {', '.join(sorted(TABLE_TWINS))})")
        max_w = world.laser.device_max_power_w if world is not None else 0.1
        return TABLE_TWINS[name](world, max_power_w=max_w, wavelength_nm=cfg.wavelength_nm)
    twin_cls = {"obis": ObisTwin, "cobolt": CoboltTwin}[cfg.driver]
    max_w = world.laser.device_max_power_w if world is not None else 0.1
    return twin_cls(world, max_power_w=max_w)
