"""Identity and timing that every device reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DeviceIdentity:
    """Who a device says it is (what `*IDN?` or a vendor SDK reports)."""

    vendor: str
    model: str
    serial: str = ""
    firmware: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in (("serial", self.serial), ("firmware", self.firmware)) if v)
        return f"{self.vendor} {self.model}" + (f" ({extra})" if extra else "")


@dataclass(frozen=True)
class SLMTiming:
    """When a pattern uploaded to an SLM is really shown.

    ``latency_frames`` video frames pass before the liquid crystal starts to move; it then
    needs ``settle_s`` to reach the new pattern (to within 1 %).
    """

    refresh_hz: float
    latency_frames: int
    settle_s: float

    @property
    def frame_s(self) -> float:
        return 1.0 / self.refresh_hz

    @property
    def latency_s(self) -> float:
        return self.latency_frames / self.refresh_hz

    @property
    def wait_s(self) -> float:
        """Time from upload to a settled pattern: latency plus settle."""
        return self.latency_s + self.settle_s

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "latency_s": self.latency_s, "wait_s": self.wait_s}


@dataclass(frozen=True)
class CameraTiming:
    """Exposure and readout of one frame."""

    exposure_s: float
    readout_s: float

    @property
    def frame_s(self) -> float:
        return self.exposure_s + self.readout_s

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "frame_s": self.frame_s}
