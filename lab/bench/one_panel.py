"""The two SLMs of a [panel] bench: two regions of one panel, on the twin or on a real device."""

from __future__ import annotations

from optgen.drivers.common.clock import sleep_until
from optgen.drivers.identity import DeviceIdentity, SLMTiming
from optgen.drivers.slms.panel import PanelRegion, PanelRegionSLM, SharedPanel
from optgen.lab.bench.config import BenchConfig

__all__ = ["REGION_KEYS", "real_panel_slms", "twin_panel_slms"]

# bench-file table -> its region in [panel]
REGION_KEYS = {"encoding_slm": "encoding_region", "decoding_slm": "decoding_region"}


def _timing(config: BenchConfig) -> SLMTiming:
    cfg = config.encoding_slm
    return SLMTiming(refresh_hz=cfg.refresh_hz, latency_frames=cfg.latency_frames, settle_s=cfg.settle_s)


def _regions(panel: SharedPanel, config: BenchConfig, wav_um: float,
             frame_shown: dict[str, list] | None = None) -> dict[str, PanelRegionSLM]:
    cfg = config.encoding_slm
    return {key: PanelRegionSLM(panel, PanelRegion(*getattr(config.panel, region)), timing=_timing(config),
                                bitdepth=cfg.bitdepth, pitch_um=cfg.pitch_um, wav_um=wav_um, name=key,
                                on_frame_shown=(frame_shown or {}).get(key))
            for key, region in REGION_KEYS.items()}


def twin_panel_slms(config: BenchConfig, world, devices: dict) -> dict[str, PanelRegionSLM]:
    """The regions of one twin panel. ``devices`` are the twin's SLMs of the two planes (one per
    region, each of its region's size, not blocking on their own): every panel upload writes both
    at the same instant (one refresh edge, one latency and settle), then waits for that edge as a
    vsync-locked panel does."""
    import numpy as np

    panel_cfg = config.panel
    shape = (panel_cfg.resolution[1], panel_cfg.resolution[0])
    for device in devices.values():
        device.block_until_refresh = False

    last: dict[str, np.ndarray] = {}

    def upload(display: np.ndarray) -> None:
        # both regions are latched at one refresh edge; a region whose gray levels did not change is
        # not moved (the liquid crystal has nothing to do there), so the twin need not re-render it
        changed = {key: display[PanelRegion(*getattr(panel_cfg, REGION_KEYS[key])).slices] for key in devices}
        changed = {key: crop for key, crop in changed.items() if key not in last or not np.array_equal(crop, last[key])}
        for key, crop in changed.items():
            devices[key]._set_phase_hw(crop)
            last[key] = crop.copy()
        edge = max((devices[key].last_refresh_edge_s for key in changed), default=None)
        if edge is not None:
            sleep_until(world.clock, edge)

    identity = DeviceIdentity("optgen", "simulated phase SLM panel", serial="panel", firmware="twin")
    panel = SharedPanel(shape, devices["encoding_slm"].dtype, upload, identity,
                        shown=lambda: devices["encoding_slm"].last_frame_shown_s,
                        close=lambda: [d.close() for d in devices.values()])
    return _regions(panel, config, config.laser.wavelength_nm * 1e-3,
                    {key: d.on_frame_shown for key, d in devices.items()})


def real_panel_slms(config: BenchConfig, open_slm, wav_um: float) -> dict[str, PanelRegionSLM]:
    """The regions of one real panel: the device [encoding_slm] names, opened at the whole panel's
    resolution; the regions' gray levels (each through its own LUT) go to it as one image."""
    from dataclasses import replace

    device = open_slm(config, replace(config.encoding_slm, resolution=config.panel.resolution), wav_um)
    try:
        panel = SharedPanel(device.shape, device.dtype, device._set_phase_hw, device.identity,
                            shown=lambda: getattr(device, "last_frame_shown_s", None), close=device.close)
        return _regions(panel, config, wav_um)
    except BaseException:
        device.close()
        raise
