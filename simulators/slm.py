"""A simulated phase SLM: the real optgen SLM code path, writing its gray levels into the world model."""

from __future__ import annotations

from drivers.identity import DeviceIdentity, SLMTiming
from drivers.slm import PhaseSLM

from .world import OpticalWorld

__all__ = ["SimulatedPhaseSLM"]


class SimulatedPhaseSLM(PhaseSLM):
    """An SLM of the twin. ``key`` is its place in the light path (encoding or decoding)."""

    def __init__(self, world: OpticalWorld, key: str, resolution: tuple[int, int], *,
                 timing: SLMTiming, bitdepth: int = 8, pitch_um: float = 8.0,
                 wav_um: float = 0.52, name: str | None = None):
        self.world = world
        self.key = key
        self._identity = DeviceIdentity("optgen", "simulated phase SLM", serial=key, firmware="twin")
        world.attach_slm(key, (int(resolution[1]), int(resolution[0])))
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
        """Nothing to release."""

    def _set_phase_hw(self, display) -> None:
        self.world.upload(self.key, display.copy())
