"""run.log's share of the drivers' log: every device operation at DEBUG while a run is open.

The drivers log each SLM upload, camera capture and laser command and reply at DEBUG under
``optgen.drivers`` (:mod:`optgen.drivers.io_log`, the laser links' ``wire`` logger), and their
warnings (a reconnect, a safe-off sent blind) there too. :class:`DeviceLogTap` hands all of it
to run.log's handler and lowers that logger's level to DEBUG for as long as a run is open (one
line per operation: a few MB for 10,000 frames), then puts the level back, so outside a run a
device operation costs one level check. Console handlers keep their own levels.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["DEVICE_LOGGER", "DeviceLogTap"]

DEVICE_LOGGER = "optgen.drivers"

_lock = threading.Lock()
_open_taps: list["DeviceLogTap"] = []
_saved_level: list[int] = []          # the drivers' logger level before the first tap opened


class DeviceLogTap:
    """Sends the drivers' log records, DEBUG and up, to ``handler`` until :meth:`close`."""

    def __init__(self, handler: logging.Handler):
        self.handler = handler
        self.logger = logging.getLogger(DEVICE_LOGGER)
        with _lock:
            if not _open_taps:
                _saved_level[:] = [self.logger.level]
            _open_taps.append(self)
            self.logger.addHandler(handler)
            if self.logger.getEffectiveLevel() > logging.DEBUG:
                self.logger.setLevel(logging.DEBUG)

    def close(self) -> None:
        """Stop handing records on; the last tap to close restores the logger's level."""
        with _lock:
            if self not in _open_taps:
                return
            _open_taps.remove(self)
            self.logger.removeHandler(self.handler)
            if not _open_taps and _saved_level:
                self.logger.setLevel(_saved_level.pop())
