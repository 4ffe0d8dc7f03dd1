"""A thread that renders the newest camera frame for the page, so capturing never waits on it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from optgen.lab.live.picture import RenderedFrame, render_frame
from optgen.lab.live.slots import LatestSlot

__all__ = ["FrameRenderer"]

log = logging.getLogger("optgen.live")

WAIT_S = 0.2       # the longest the thread waits for a frame before looking at its stop flag


class FrameRenderer:
    """Renders what arrives in ``frames`` ((frame, captured_s, extra) tuples) into ``shown``.

    A frame that arrives while the previous one is rendered replaces it: the page always gets the
    newest, and the camera is never held up by the page.
    """

    def __init__(self, frames: LatestSlot, *, bitdepth: int, saturation_dn: float,
                 scale: Callable[[], str] = lambda: "full") -> None:
        self.frames = frames
        self.shown: LatestSlot[RenderedFrame] = LatestSlot()
        self.bitdepth, self.saturation_dn, self.scale = int(bitdepth), float(saturation_dn), scale
        self.error: str = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="optgen-live-render", daemon=True)

    def start(self) -> "FrameRenderer":
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        done = 0
        while not self._stop.is_set():
            seq, item = self.frames.wait_newer(done, WAIT_S)
            if item is None:
                continue
            done = seq
            frame, captured_s, extra = item
            try:
                rendered = render_frame(frame, seq, bitdepth=self.bitdepth, saturation_dn=self.saturation_dn,
                                        scale=self.scale(), captured_s=captured_s)
            except Exception as exc:       # a frame the page cannot show: say so, keep the camera going
                self.error = f"frame {seq} could not be drawn: {exc}"
                log.exception("live view: frame %d could not be drawn", seq)
                continue
            rendered.extra = dict(extra)
            self.error = ""
            self.shown.put(rendered)
