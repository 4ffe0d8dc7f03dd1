"""The run's laser guard: a frame confirmed after the run switched the laser off itself."""

from __future__ import annotations

import math

import pytest

from optgen.drivers.errors import LinkLost
from optgen.lab.run.laser_guard import LaserFault, LaserGuard


class FakeLaser:
    name = "laser"

    def __init__(self):
        self.emission, self.power, self.reads = True, 1.25e-6, 0
        self.fault_list: list[str] = []
        self.lost = False

    def faults(self):
        return list(self.fault_list)

    def measured_power(self):
        if self.lost:
            raise LinkLost(self.name, "cable out")
        self.reads += 1
        return self.power


class Clock:
    t = 10.0

    def now(self):
        return self.t


def test_frames_confirmed_after_the_run_switched_off_record_the_power_measured_before_the_off():
    """The storage worker lagged: no frame was confirmed before the run stood down. The power is
    measured at the stand-down, while the laser still emits, and each late frame records it (it was NaN,
    which a colour run divides by)."""
    laser, clock = FakeLaser(), Clock()
    guard = LaserGuard(laser, clock, lambda kind, text: None)
    guard.stand_down()
    assert laser.reads == 1                      # measured at the stand-down, the laser still on
    laser.emission, laser.power = False, 0.0     # the run's own safe-off
    for t in (5.0, 7.0, 9.5):
        assert guard.confirm(t) == pytest.approx(1.25e-6)


def test_a_confirmed_power_is_kept_and_a_lost_link_at_the_stand_down_leaves_it_to_the_off():
    laser, clock = FakeLaser(), Clock()
    guard = LaserGuard(laser, clock, lambda kind, text: None)
    assert guard.confirm(5.0) == pytest.approx(1.25e-6)
    laser.power = 9e-6
    guard.stand_down()                           # a frame was confirmed: nothing more is read
    assert guard.power_w == pytest.approx(1.25e-6)
    fresh = LaserGuard(laser, clock, lambda kind, text: None)
    laser.lost = True
    fresh.stand_down()
    assert math.isnan(fresh.power_w)


def test_a_fault_after_the_stand_down_still_stops_the_frames():
    laser, clock = FakeLaser(), Clock()
    guard = LaserGuard(laser, clock, lambda kind, text: None)
    guard.stand_down()
    laser.emission, laser.fault_list = False, ["interlock open"]
    with pytest.raises(LaserFault, match="interlock open"):
        guard.confirm(9.0)
