"""HDMI/DVI phase SLMs (Holoeye PLUTO, Thorlabs Exulus, Meadowlark HDMI, ...): a full-screen window.

Composition, not inheritance. ``ScreenSLM`` is optgen's ``PhaseSLM`` and *owns* an slmsuite
``ScreenMirrored`` (``self.window``) that only ever receives integer gray levels:

- ``PhaseSLM`` (validation, the phase->gray LUT, identity, timing, settle) stays the one SLM
  object the rest of optgen sees; its ``_set_phase_hw(display)`` hands the gray levels to the
  window's own hardware hook, so the phase is converted exactly once, by the outer LUT.
- ``class ScreenSLM(PhaseSLM, ScreenMirrored)`` would put two ``SLM.__init__`` chains with
  incompatible signatures in one MRO (``PhaseSLM`` calls ``super().__init__(resolution, ...)``,
  which would land in ``ScreenMirrored.__init__(display_number, ...)``), give one object two
  sets of phase/LUT state, and force pyglet to be imported when optgen is.

pyglet is imported only when a ``ScreenSLM`` is opened. On Linux it needs an X display
(``DISPLAY``); under Xvfb pyglet sees one screen only, so test one SLM per X server.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import numpy as np

from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import DeviceIdentity, SLMTiming
from optgen.drivers.slm import PhaseSLM

__all__ = ["ScreenSLM", "screens"]

_log = logging.getLogger(__name__)
_PYGLET_TESTED = (2, 1, 19)   # slmsuite warns that pyglet 2.1.9 left the screen zeroed


def _screen_mirrored(device: str):
    """slmsuite's ScreenMirrored class, or DeviceError saying what is missing."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DeviceError(device, "no display to show the SLM on: DISPLAY is not set (an HDMI SLM is a "
                                  "screen of the X server; run under X, or Xvfb for tests)")
    try:
        import pyglet
    except ImportError as error:
        raise DeviceError(device, "HDMI SLMs need pyglet: pip install 'pyglet>=2.1.19'") from error
    version = tuple(int(p) for p in pyglet.version.split(".")[:3] if p.isdigit())
    if version < _PYGLET_TESTED:
        _log.warning("pyglet %s is older than the tested 2.1.19 (2.1.9 left the screen zeroed)", pyglet.version)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from slmsuite.hardware.slms.screenmirrored import ScreenMirrored
    return ScreenMirrored


def screens(device: str = "screen") -> list[tuple]:
    """slmsuite's screen list: (index, (x, y, width, height), is_main, has_slm_window, id)."""
    ScreenMirrored = _screen_mirrored(device)
    try:
        return list(ScreenMirrored.info(verbose=False))
    except Exception as error:
        raise DeviceError(device, f"cannot list the screens of display {os.environ.get('DISPLAY')!r}: {error}") from error


class ScreenSLM(PhaseSLM):
    """A phase SLM driven as screen ``display`` (pyglet's numbering; ``screens()`` lists them).

    ``resolution`` (width, height), when given, must equal the screen's mode: a PLUTO shown at
    the wrong mode would be scaled by the graphics card. The main screen (the operator's
    desktop) is refused unless ``allow_main``. HDMI SLMs cannot say who they are, so
    ``vendor``/``model``/``serial`` come from the bench file.
    """

    def __init__(self, display: int = 1, *, timing: SLMTiming, resolution: tuple[int, int] | None = None,
                 bitdepth: int = 8, pitch_um: float = 8.0, wav_um: float = 0.52, name: str = "slm",
                 vendor: str = "unknown", model: str = "HDMI phase SLM", serial: str = "",
                 allow_main: bool = False):
        if not 1 <= bitdepth <= 8:
            raise DeviceError(name, f"bitdepth = {bitdepth}: a screen carries at most 8 bits per pixel")
        found = screens(name)
        if not 0 <= display < len(found):
            raise DeviceError(name, f"no screen {display}; screens: {[(s[0], s[1]) for s in found]}")
        _, (x, y, width, height), is_main, has_window, screen_id = found[display][:5]
        if has_window:
            raise DeviceError(name, f"screen {display} already shows an SLM window")
        if is_main and not allow_main:
            raise DeviceError(name, f"screen {display} is the main screen (the desktop), not an SLM; "
                                    "choose the SLM's screen, or pass allow_main=True (e.g. under Xvfb)")
        if resolution is not None and tuple(int(v) for v in resolution) != (width, height):
            raise DeviceError(name, f"screen {display} is {width}x{height}, the bench file says "
                                    f"{resolution[0]}x{resolution[1]}: set the screen mode first")
        ScreenMirrored = _screen_mirrored(name)
        self.display_number = int(display)
        self.screen = {"id": str(screen_id), "geometry": [int(x), int(y), int(width), int(height)],
                       "is_main": bool(is_main)}
        self._identity = DeviceIdentity(vendor, model, serial=serial)
        try:
            self.window = ScreenMirrored(display, bitdepth=bitdepth, wav_um=wav_um,
                                         pitch_um=(pitch_um, pitch_um), gpu=False, name=f"{name}-window")
        except Exception as error:
            raise DeviceError(name, f"cannot open a full-screen window on screen {display}: {error}") from error
        try:
            super().__init__((width, height), timing=timing, bitdepth=bitdepth, pitch_um=pitch_um,
                             wav_um=wav_um, name=name)
            self.set_phase(None)
        except BaseException:
            self.close()
            raise

    @property
    def identity(self) -> DeviceIdentity:
        return self._identity

    @staticmethod
    def info(verbose: bool = True) -> list:
        """The screens pyglet sees (see ``screens``)."""
        found = screens()
        if verbose:
            for entry in found:
                print(entry)
        return found

    def describe(self) -> dict:
        mode = self.window.window.mode if self.window is not None else None
        return {**super().describe(), "driver": "screen", "display": self.display_number,
                "screen": self.screen, "window_mode": mode}

    def close(self) -> None:
        """Close the window (and its render thread). Safe to call twice."""
        window, self.window = getattr(self, "window", None), None
        if window is not None:
            window.close()

    def _set_phase_hw(self, display: np.ndarray, execute: bool = True, block: bool = True) -> None:
        """Show the gray levels; ``block`` waits until they are rendered (else only the previous frame)."""
        if self.window is None:
            raise DeviceError(self.name, "SLM window is closed")
        self.window._set_phase_hw(display, execute=execute, block=block)
