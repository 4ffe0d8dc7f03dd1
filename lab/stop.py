"""How a run is asked to stop: Ctrl-C once finishes the frames in flight, twice stops now.

While :meth:`StopControl.signals` is active (main thread only), the first SIGINT only sets
:attr:`StopControl.requested`; the run loop uploads nothing more, takes the frames of the
patterns already shown, stores them and ends with status "stopped". A second SIGINT raises
KeyboardInterrupt at once, SIGTERM raises SystemExit at once: every ``finally`` still runs,
so the laser goes off and the frames already captured are stored. Once the run is ending
(:attr:`StopControl.cleaning`), signals are logged and otherwise ignored, so a further Ctrl-C
cannot cut the cleanup short (laser off, run file closed, summary written).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["StopControl"]

log = logging.getLogger("optgen.run")


class StopControl:
    """A stop request shared by the run loop, the signal handlers and the caller."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""
        self.cleaning = False      # the run is ending: signals no longer interrupt (laser off, files closed)

    def request(self, reason: str) -> None:
        """Ask the run to stop after the frames in flight (idempotent: the first reason stays)."""
        if not self.requested:
            self.requested, self.reason = True, reason

    def _on_sigint(self, signum, frame) -> None:
        if self.cleaning:
            log.warning("Ctrl-C: the run is already ending (laser off, frames stored, files closed); one moment")
            return
        if self.requested:
            raise KeyboardInterrupt
        self.request("interrupted (Ctrl-C): stopped after the frames in flight")
        log.warning("Ctrl-C: finishing the frames in flight, then stopping; press Ctrl-C again to stop now")

    def _on_sigterm(self, signum, frame) -> None:
        if self.cleaning:
            log.warning("SIGTERM: the run is already ending (laser off, frames stored, files closed)")
            return
        raise SystemExit(128 + signum)

    @contextmanager
    def signals(self) -> Iterator["StopControl"]:
        """Install the SIGINT/SIGTERM handlers for the block (a no-op off the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, handler)
                    for sig, handler in ((signal.SIGINT, self._on_sigint), (signal.SIGTERM, self._on_sigterm))}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
