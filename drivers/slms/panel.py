"""One SLM panel showing both the seed and the decoder, in two regions (a folded two-plane path:
panel region A -> mirror -> panel region B -> camera).

A :class:`SharedPanel` keeps the gray levels of the whole panel; each region is a
:class:`PanelRegionSLM`, a full optgen SLM of the region's size (its own LUT, wavefront
correction and phase checks) whose uploads go into its part of the panel image and send the
**whole** panel, as a real panel is driven: every seed upload re-sends the decoder region with
the same gray levels (a pixel whose level does not change does not move), and the two regions
share one refresh, latency and settle. The run loop and the calibrations see two SLMs and need
no change; they also never see one region's upload without the other's current pattern.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import DeviceIdentity, SLMTiming
from optgen.drivers.slm import PhaseSLM

__all__ = ["PanelRegion", "PanelRegionSLM", "SharedPanel", "check_regions"]


@dataclass(frozen=True)
class PanelRegion:
    """A rectangle of panel pixels: top-left corner (x, y) and size (width, height)."""

    x: int
    y: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)

    def overlaps(self, other: PanelRegion) -> bool:
        return (self.x < other.x + other.width and other.x < self.x + self.width
                and self.y < other.y + other.height and other.y < self.y + self.height)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.width, self.height]


def check_regions(panel: tuple[int, int], regions: dict[str, PanelRegion]) -> None:
    """ValueError naming the region that leaves the panel (``(width, height)``) or two that overlap."""
    width, height = panel
    names = list(regions)
    for name, r in regions.items():
        if r.width <= 0 or r.height <= 0 or r.x < 0 or r.y < 0 or r.x + r.width > width or r.y + r.height > height:
            raise ValueError(f"{name} region {r.as_list()} ([x, y, width, height]) leaves the {width} x {height} "
                             f"panel")
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if regions[a].overlaps(regions[b]):
                raise ValueError(f"{a} region {regions[a].as_list()} and {b} region {regions[b].as_list()} overlap: "
                                 f"each panel pixel can show one pattern")


class SharedPanel:
    """The whole panel's gray levels and the one device that shows them.

    ``upload(display)`` sends the whole panel image (a real SLM's ``_set_phase_hw``, or the twin's);
    ``shown()`` returns when the last upload is shown (``None`` where the device cannot say).
    """

    def __init__(self, shape: tuple[int, int], dtype, upload: Callable[[np.ndarray], None],
                 identity: DeviceIdentity, *, shown: Callable[[], float | None] = lambda: None,
                 close: Callable[[], None] = lambda: None):
        self.display = np.zeros(shape, dtype=dtype)
        self.identity = identity
        self.regions: dict[str, PanelRegion] = {}
        self.uploads = 0
        self._upload = upload
        self._shown = shown
        self._close = close
        self._open_regions = 0
        self._lock = threading.Lock()

    def add(self, name: str, region: PanelRegion) -> None:
        check_regions((self.display.shape[1], self.display.shape[0]), {**self.regions, name: region})
        self.regions[name] = region
        self._open_regions += 1

    def show(self, name: str, display: np.ndarray) -> None:
        """Put ``display`` into region ``name`` and send the whole panel."""
        region = self.regions[name]
        with self._lock:
            self.display[region.slices] = display
            self.uploads += 1
            self._upload(self.display)

    @property
    def last_frame_shown_s(self) -> float | None:
        return self._shown()

    def release(self) -> None:
        """A region is done; the device closes once both are."""
        self._open_regions -= 1
        if self._open_regions <= 0:
            self._close()


class PanelRegionSLM(PhaseSLM):
    """One region of a :class:`SharedPanel`, as an optgen SLM of the region's size."""

    def __init__(self, panel: SharedPanel, region: PanelRegion, *, timing: SLMTiming, bitdepth: int,
                 pitch_um: float, wav_um: float, name: str, on_frame_shown: list | None = None):
        self.panel = panel
        self.region = region
        self.on_frame_shown = on_frame_shown if on_frame_shown is not None else []
        panel.add(name, region)
        self._closed = False
        super().__init__((region.width, region.height), timing=timing, bitdepth=bitdepth, pitch_um=pitch_um,
                         wav_um=wav_um, name=name)

    @property
    def identity(self) -> DeviceIdentity:
        base = self.panel.identity
        where = f"region {self.region.as_list()}"
        return DeviceIdentity(base.vendor, f"{base.model}, {where}", base.serial, base.firmware)

    @property
    def last_frame_shown_s(self) -> float | None:
        return self.panel.last_frame_shown_s

    @staticmethod
    def info(verbose: bool = True) -> list:
        return []

    def describe(self) -> dict:
        return {**super().describe(), "panel_region": self.region.as_list(),
                "panel": list(map(int, (self.panel.display.shape[1], self.panel.display.shape[0])))}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.panel.release()

    def _set_phase_hw(self, display) -> None:
        if self._closed:
            raise DeviceError(self.name, "the panel region is closed")
        self.panel.show(self.name, display)
