"""Driver-test hygiene: no real laser driver outlives its test (the exit-path registry is global)."""

from __future__ import annotations

import pytest

from optgen.drivers.laser import open_lasers
from optgen.drivers.lasers._base import ConnectedLaser


@pytest.fixture(autouse=True)
def _no_leaked_connected_lasers():
    yield
    for laser in open_lasers():
        if isinstance(laser, ConnectedLaser):
            laser.closed = True
            laser._close_transport()
            if laser.watchdog is not None:
                laser.watchdog.close()
