"""Open a bench of real devices from the bench file (the twin's devices live in lab.bench)."""

from __future__ import annotations

from contextlib import ExitStack

from optgen.drivers.common.clock import WallClock
from optgen.drivers.identity import SLMTiming

__all__ = ["open_camera", "open_slm", "SLM_OPTIONS", "CAMERA_OPTIONS"]

SLM_OPTIONS = {
    "screen": {"display", "allow_main", "vendor", "model", "serial"},
    "meadowlark": None, "holoeye": None, "santec": None, "hamamatsu": None,  # options go to slmsuite's class
}
CAMERA_OPTIONS = {
    "genicam": {"cti", "device", "pixel_format", "gain", "trigger", "trigger_source", "num_buffers"},
    "opencv": {"source", "api"},
    "slmsuite": None,           # options go to slmsuite's class
}


def _check_options(source: str, table: str, driver: str, options: dict, allowed: set | None) -> None:
    if allowed is None:
        return
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"{source}: [{table}.connection] has unknown key(s) {sorted(unknown)} for driver "
                         f"{driver!r}; allowed: {sorted(allowed)}")


def open_slm(config, slm_cfg, wav_um: float):
    """The SLM the bench file's [encoding_slm] or [decoding_slm] table names."""
    from optgen.drivers.slms import ScreenSLM, VendorSLM

    options = dict(slm_cfg.connection)
    _check_options(config.source, slm_cfg.key, slm_cfg.driver, options, SLM_OPTIONS[slm_cfg.driver])
    timing = SLMTiming(slm_cfg.refresh_hz, slm_cfg.latency_frames, slm_cfg.settle_s)
    common = dict(timing=timing, resolution=slm_cfg.resolution, bitdepth=slm_cfg.bitdepth,
                  pitch_um=slm_cfg.pitch_um, wav_um=wav_um, name=slm_cfg.key)
    if slm_cfg.driver == "screen":
        return ScreenSLM(options.pop("display", 1), **common, **options)
    return VendorSLM(slm_cfg.driver, **common, **options)


def open_camera(config):
    """The camera the bench file's [camera] table names."""
    from optgen.drivers.cameras import GenICamCamera, OpenCVCamera, SlmsuiteCamera

    cam = config.camera
    options = dict(cam.connection)
    _check_options(config.source, "camera", cam.driver, options, CAMERA_OPTIONS[cam.driver])
    common = dict(pitch_um=cam.pitch_um, exposure_s=cam.exposure_s, readout_s=cam.readout_s,
                  resolution=cam.resolution)
    if cam.driver == "genicam":
        if "cti" not in options:
            raise ValueError(f"{config.source}: [camera.connection] needs 'cti' (the GenTL producer file)")
        return GenICamCamera(options.pop("cti"), **common, **options)
    if cam.driver == "slmsuite":
        return SlmsuiteCamera(options.pop("class"), woi=options.pop("woi", None), options=options, **common)
    return OpenCVCamera(options.pop("source", 0), **common, **options)


def open_real_bench(config, luts, open_laser, apply_response, bench_cls):
    """Open laser, SLMs and camera; if one fails, close (laser off) what was opened, then raise."""
    wav_um = config.laser.wavelength_nm * 1e-3
    with ExitStack() as stack:
        laser, twin = open_laser(config, None)
        if twin is not None:
            stack.callback(twin.close)  # closed after the laser (callbacks run last-in, first-out)
        stack.callback(laser.close)
        slms = {}
        if config.panel is not None:      # one panel: the two SLMs are its regions
            from optgen.lab.bench.one_panel import real_panel_slms

            slms = real_panel_slms(config, open_slm, wav_um)
            for slm in slms.values():
                stack.callback(slm.close)
        for slm_cfg in (config.encoding_slm, config.decoding_slm):
            if slm_cfg.key not in slms:
                slms[slm_cfg.key] = open_slm(config, slm_cfg, wav_um)
                stack.callback(slms[slm_cfg.key].close)
            apply_response(slms[slm_cfg.key], luts[slm_cfg.key])
        camera = open_camera(config)
        stack.callback(camera.close)
        bench = bench_cls(config=config, laser=laser, encoding_slm=slms["encoding_slm"],
                          decoding_slm=slms["decoding_slm"], camera=camera, clock=WallClock(), luts=luts)
        bench.protocol_twin = twin
        stack.pop_all()  # success: the bench owns the devices now
    return bench
