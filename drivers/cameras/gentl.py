"""GenTL plumbing for the GenICam camera: producers, device lookup, pixel formats, nodes.

harvesters and genicam are imported inside the functions that need them, so optgen
imports without them. Two facts about harvesters 1.4 shape this module:

- a GenTL producer (.cti) can be loaded by only one ``Harvester`` per process: a second
  ``Harvester`` on the same file lists no devices. Producers are therefore shared and
  reference-counted here (``acquire_producer`` / ``release_producer``);
- creating an ``ImageAcquirer`` on the main thread replaces the process's SIGINT handler
  with one that destroys the acquirer and swallows Ctrl-C. ``create_acquirer`` puts the
  previous handler back, so the run loop's Ctrl-C handling survives opening a camera.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optgen.drivers.errors import DeviceError

__all__ = ["Features", "PIXEL_FORMATS", "PixelFormat", "acquire_producer", "create_acquirer",
           "match_device", "node", "producer_path", "readable", "release_producer", "writable"]


@dataclass(frozen=True)
class PixelFormat:
    """A pixel format optgen can read: bits per sample, samples per pixel, numpy dtype."""

    name: str
    bitdepth: int
    channels: int

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bitdepth <= 8 else np.uint16)


def _formats(*rows: tuple[str, int, int]) -> dict[str, PixelFormat]:
    return {name: PixelFormat(name, bits, ch) for name, bits, ch in rows}


# Monochrome first (what a laser bench wants); harvesters unpacks the packed ones to uint16.
PIXEL_FORMATS = _formats(
    ("Mono8", 8, 1), ("Mono10", 10, 1), ("Mono10Packed", 10, 1), ("Mono10p", 10, 1),
    ("Mono12", 12, 1), ("Mono12Packed", 12, 1), ("Mono12p", 12, 1), ("Mono14", 14, 1),
    ("Mono16", 16, 1), ("RGB8", 8, 3), ("BGR8", 8, 3), ("RGBa8", 8, 4), ("BGRa8", 8, 4),
)


# --- producers -------------------------------------------------------------------------

_lock = threading.Lock()
_producers: dict[Path, list] = {}   # resolved .cti path -> [Harvester, users]


def producer_path(cti: str | Path, device: str) -> Path:
    """The .cti file as an absolute path, or DeviceError if there is no such file."""
    path = Path(cti).expanduser()
    if not path.is_file():
        raise DeviceError(device, f"GenTL producer file {str(path)!r} does not exist "
                                  "(give the path of the camera vendor's .cti file)")
    return path.resolve()


def acquire_producer(path: Path, device: str):
    """The process's ``Harvester`` for this producer, loaded on first use."""
    try:
        from harvesters.core import Harvester
    except ImportError as error:
        raise DeviceError(device, "the GenICam driver needs the harvesters package "
                                  "(pip install harvesters genicam)") from error
    with _lock:
        entry = _producers.get(path)
        if entry is None:
            harvester = Harvester()
            try:
                harvester.add_file(str(path), check_existence=True, check_validity=True)
                harvester.update()
            except Exception as error:
                harvester.reset()
                raise DeviceError(device, f"cannot load GenTL producer {str(path)!r}: {error}") from error
            entry = _producers[path] = [harvester, 0]
        entry[1] += 1
        return entry[0]


def release_producer(path: Path) -> None:
    """Forget one user of the producer; unload it when none is left."""
    with _lock:
        entry = _producers.get(path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _producers[path]
            entry[0].reset()


# --- devices ---------------------------------------------------------------------------

def _describe(info) -> str:
    return f"{info.vendor} {info.model} (serial {info.serial_number!r})"


def match_device(infos: list, selector: int | dict | None, device: str, path: Path) -> int:
    """Index of the one device that ``selector`` names, or DeviceError listing those present.

    ``selector``: None (the only device, or the first one), an index, or a dict of
    harvesters DeviceInfo properties that must all match, e.g. ``{"serial_number": "0"}``.
    """
    if not infos:
        raise DeviceError(device, f"GenTL producer {path.name} reports no devices")
    present = "; ".join(f"[{i}] {_describe(info)}" for i, info in enumerate(infos))
    if selector is None:
        return 0
    if isinstance(selector, int):
        if not 0 <= selector < len(infos):
            raise DeviceError(device, f"no device number {selector}; present: {present}")
        return selector
    if not isinstance(selector, dict) or not selector:
        raise DeviceError(device, f"device selector must be an index or a dict of properties, got {selector!r}")
    hits = [i for i, info in enumerate(infos)
            if all(str(getattr(info, key, None)) == str(value) for key, value in selector.items())]
    if len(hits) != 1:
        what = "no device" if not hits else f"{len(hits)} devices"
        raise DeviceError(device, f"{what} match {selector}; present: {present}")
    return hits[0]


def create_acquirer(harvester, index: int, device: str):
    """``harvester.create(index)``, keeping the process's SIGINT handler as it was."""
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if on_main else None
    try:
        return harvester.create(index)
    except Exception as error:
        raise DeviceError(device, f"cannot open {_describe(harvester.device_info_list[index])}: {error}") from error
    finally:
        if on_main and previous is not None:
            signal.signal(signal.SIGINT, previous)


# --- nodes -----------------------------------------------------------------------------

def node(node_map, name: str):
    """The feature ``name`` of a GenICam node map, or None when the map has no such node."""
    try:
        return node_map.get_node(name)
    except Exception:
        return None


# GenApi access modes (genicam.genapi.EAccessMode): NI 0, NA 1, WO 2, RO 3, RW 4.
_WO, _RO, _RW = 2, 3, 4


def readable(feature) -> bool:
    return feature is not None and int(feature.get_access_mode()) in (_RO, _RW)


def writable(feature) -> bool:
    return feature is not None and int(feature.get_access_mode()) in (_WO, _RW)


class Features:
    """Typed access to a node map; every failure is a DeviceError naming the device and the node."""

    def __init__(self, node_map, device: str):
        self.node_map = node_map
        self.device = device

    def has(self, name: str) -> bool:
        return node(self.node_map, name) is not None

    def readable(self, name: str) -> bool:
        return readable(node(self.node_map, name))

    def writable(self, name: str) -> bool:
        return writable(node(self.node_map, name))

    def get(self, name: str, *fallbacks: str):
        """Value of the first readable node among ``name`` and ``fallbacks``."""
        for candidate in (name, *fallbacks):
            feature = node(self.node_map, candidate)
            if readable(feature):
                return feature.value
        raise DeviceError(self.device, f"camera has no readable {name} node")

    def choices(self, name: str) -> tuple[str, ...]:
        feature = node(self.node_map, name)
        return tuple(getattr(feature, "symbolics", ())) if feature is not None else ()

    def bounds(self, name: str) -> tuple[float, float] | None:
        try:
            feature = node(self.node_map, name)
            return float(feature.min), float(feature.max)
        except Exception:
            return None

    def snap(self, name: str, value: int) -> int:
        """``value`` rounded down to the node's increment and clipped to its range."""
        feature = node(self.node_map, name)
        low, high = int(feature.min), int(feature.max)
        step = max(1, int(getattr(feature, "inc", 1)))
        return low + ((min(max(int(value), low), high) - low) // step) * step

    def set(self, name: str, value):
        """Write ``value`` and return what the camera reads back."""
        feature = node(self.node_map, name)
        if feature is None:
            raise DeviceError(self.device, f"camera has no {name} node")
        try:
            feature.value = value
            return feature.value
        except Exception as error:
            raise DeviceError(self.device, f"cannot set {name} = {value!r}: {error}") from error

    def set_enum(self, name: str, value: str, *, required: bool = True) -> str | None:
        """Select an enumeration entry; when not ``required``, skip quietly if the camera cannot."""
        offered = self.choices(name)
        if not self.writable(name) or value not in offered:
            if not required:
                return None
            raise DeviceError(self.device, f"cannot set {name} = {value!r}: " + (
                f"the camera offers {list(offered)}" if offered else f"the camera has no writable {name} node"))
        return self.set(name, value)

    def choose_format(self, requested: str | None) -> PixelFormat:
        """Set and return the pixel format: ``requested``, or (None) a supported mono one."""
        offered = self.choices("PixelFormat")
        current = str(self.get("PixelFormat")) if self.readable("PixelFormat") else None
        if requested is None:
            mono = [f for f in offered if f in PIXEL_FORMATS and PIXEL_FORMATS[f].channels == 1]
            if current in mono:
                requested = current
            elif mono:
                requested = "Mono8" if "Mono8" in mono else mono[0]
            elif current in PIXEL_FORMATS:
                requested = current
            else:
                raise DeviceError(self.device, f"no supported pixel format; the camera offers {list(offered)}, "
                                               f"optgen reads {sorted(PIXEL_FORMATS)}")
        if requested not in PIXEL_FORMATS:
            raise DeviceError(self.device, f"pixel format {requested!r} is not supported; "
                                           f"optgen reads {sorted(PIXEL_FORMATS)}")
        if requested != current:
            self.set_enum("PixelFormat", requested)
        return PIXEL_FORMATS[requested]
