"""A simulated phase SLM: the real optgen SLM code path, writing its gray levels into the world model."""

from __future__ import annotations

from collections.abc import Callable

from optgen.drivers.common.clock import sleep_until
from optgen.drivers.identity import DeviceIdentity, SLMTiming
from optgen.drivers.slm import PhaseSLM
from optgen.simulators.world import OpticalWorld

__all__ = ["SimulatedPhaseSLM"]


class SimulatedPhaseSLM(PhaseSLM):
    """An SLM of the twin. ``key`` is its place in the light path (encoding or decoding).

    Timing, as a video-driven SLM: an upload is latched at the next refresh edge (frames at
    k / ``timing.refresh_hz`` on the world's clock, one new pattern per frame). With
    ``block_until_refresh`` (the default, as a vsync-locked buffer swap) ``set_phase`` returns
    at that edge, so that waiting ``timing.wait_s`` afterwards finds the pattern settled; the
    wait is real on a wall clock and advances a virtual one. The liquid crystal starts moving
    the planted latency after the edge (:attr:`last_frame_shown_s`) and settles with the
    planted settle time.

    Frame-shown output: every upload calls each ``on_frame_shown`` callback with the time (on
    the world's clock) at which the pattern will be shown. The call comes at upload, ahead of
    that time (the twin knows its future); a receiver acts at the time given, as the simulated
    camera's trigger input does (``camera.trigger_from(slm, delay_s)``).
    """

    def __init__(self, world: OpticalWorld, key: str, resolution: tuple[int, int], *,
                 timing: SLMTiming, bitdepth: int = 8, pitch_um: float = 8.0,
                 wav_um: float = 0.52, name: str | None = None, block_until_refresh: bool = True):
        self.world = world
        self.key = key
        self.block_until_refresh = bool(block_until_refresh)
        self.on_frame_shown: list[Callable[[float], None]] = []
        self.last_refresh_edge_s: float | None = None
        self.last_frame_shown_s: float | None = None
        self._identity = DeviceIdentity("optgen", "simulated phase SLM", serial=key, firmware="twin")
        world.attach_slm(key, (int(resolution[1]), int(resolution[0])), refresh_hz=timing.refresh_hz)
        super().__init__(resolution, timing=timing, bitdepth=bitdepth, pitch_um=pitch_um,
                         wav_um=wav_um, name=name or key)
        self.set_phase(None)

    @property
    def identity(self) -> DeviceIdentity:
        return self._identity

    @staticmethod
    def info(verbose: bool = True) -> list:
        return []

    def close(self) -> None:
        """Stop the world's render-ahead thread (nothing else to release)."""
        self.world.close()

    def _set_phase_hw(self, display) -> None:
        t_edge = self.world.upload(self.key, display.copy())
        t_shown = self.world.frame_shown_s(self.key)
        self.last_refresh_edge_s, self.last_frame_shown_s = t_edge, t_shown
        for callback in list(self.on_frame_shown):
            callback(t_shown)
        if self.block_until_refresh:
            sleep_until(self.world.clock, t_edge)
