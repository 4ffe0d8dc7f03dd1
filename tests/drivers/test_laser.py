"""The laser interface: ceiling, read-back setters, verified safe-off, the exit-path registry."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.drivers.errors import DeviceError, LaserSafetyError, PowerCeilingError
from optgen.drivers.laser import Laser, all_lasers_safe_off, open_lasers
from optgen.simulators import LaserTruth, OpticalWorld, SensorTruth, SimulatedLaser, SLMTruth, VirtualClock


def make_laser(max_power_w=1e-3, device_max_w=0.1):
    response = np.linspace(0.02, 6.3, 256)
    world = OpticalWorld(wavelength_m=520e-9, pitch_m=8e-6, grid_shape=(32, 32), d1_m=0.01, d2_m=0.01,
                         encoding=SLMTruth(response), decoding=SLMTruth(response),
                         sensor=SensorTruth(resolution=(32, 32), pitch_m=8e-6),
                         laser=LaserTruth(device_max_power_w=device_max_w), clock=VirtualClock())
    return SimulatedLaser(world, wavelength_nm=520.0, max_power_w=max_power_w), world


def test_set_power_returns_the_read_back_setpoint():
    laser, world = make_laser()
    assert laser.set_power(5e-4) == pytest.approx(5e-4)
    assert world.laser_setpoint_w == pytest.approx(5e-4)


@pytest.mark.parametrize("request_w, match", [
    (2e-3, "above the ceiling of 1 mW"), (float("nan"), "finite"), (-1e-4, ">= 0"), ("lots", "number of watts")])
def test_bad_power_requests_never_reach_the_laser(request_w, match):
    laser, world = make_laser()
    laser.set_power(1e-4)
    with pytest.raises(PowerCeilingError, match=match) as info:
        laser.set_power(request_w)
    assert str(info.value).startswith("laser:")
    assert world.laser_setpoint_w == pytest.approx(1e-4)


def test_ceiling_is_never_above_the_device_maximum():
    laser, _ = make_laser(max_power_w=0.5, device_max_w=0.05)
    assert laser.ceiling_w == pytest.approx(0.05)
    with pytest.raises(PowerCeilingError, match="device maximum = 50 mW"):
        laser.set_power(0.06)


def test_emission_setter_returns_read_back_and_faults_block_emission():
    laser, world = make_laser()
    assert laser.set_emission(True) is True
    assert laser.set_emission(False) is False
    world.laser_faults.append("interlock open")
    assert laser.faults() == ["interlock open"]
    with pytest.raises(DeviceError, match="interlock open"):
        laser.set_emission(True)
    assert world.laser_emission is False


def test_safe_off_turns_emission_off_and_verifies_it():
    laser, world = make_laser()
    laser.set_emission(True)
    laser.safe_off()
    assert world.laser_emission is False


def test_safe_off_raises_when_the_laser_cannot_be_verified_off():
    laser, world = make_laser()
    laser.set_emission(True)
    laser.stuck_on = True
    with pytest.raises(LaserSafetyError, match="could not be verified off"):
        laser.safe_off()
    assert world.laser_emission is True  # the error is honest: it is still on


def test_close_turns_the_laser_off_and_forbids_further_use():
    laser, world = make_laser()
    laser.set_emission(True)
    with laser:
        pass
    assert world.laser_emission is False and laser.closed
    assert laser not in open_lasers()
    with pytest.raises(DeviceError, match="closed"):
        laser.set_emission(True)


def test_all_lasers_safe_off_reaches_every_open_laser_and_reports_failures():
    (a, wa), (b, wb) = make_laser(), make_laser()
    a.set_emission(True)
    b.set_emission(True)
    b.stuck_on = True
    errors = all_lasers_safe_off()
    assert wa.laser_emission is False
    assert any(e.startswith(f"{b.name}:") for e in errors)
    b.stuck_on = False
    assert all_lasers_safe_off() == []
    assert wb.laser_emission is False


def test_safe_off_is_mandatory_for_every_driver():
    class NoSafeOff(Laser):
        identity = None

        def _set_power_hw(self, watts): ...
        def _get_power_setpoint_hw(self): return 0.0
        def _get_measured_power_hw(self): return 0.0
        def _set_emission_hw(self, on): ...
        def _get_emission_hw(self): return False

    with pytest.raises(TypeError, match="safe_off"):
        NoSafeOff("x", 520.0, 1e-3)


def test_a_safe_off_from_another_thread_waits_for_a_reconnect_under_way():
    """The run's storage worker may be reconnecting when the main thread switches the laser off:
    the off must not be sent on a link that is closed or half open."""
    import threading
    import time

    from optgen.drivers.identity import DeviceIdentity
    from optgen.drivers.lasers._base import ConnectedLaser
    from optgen.drivers.lasers._common import LaserReadback

    events: list[str] = []

    class SlowLink(ConnectedLaser):
        def __init__(self):
            self.link_open = False
            self.emitting = True
            super().__init__("laser", 520.0, 1e-3, "fake")
            self._start()

        def _open_transport(self):
            events.append("open starts")
            time.sleep(0.2)
            self.link_open = True
            events.append("open ends")

        def _close_transport(self):
            self.link_open = False

        def _handshake(self, previous):
            self._accept_identity(DeviceIdentity("Acme", "L1", "1", "1.0"), previous)
            return LaserReadback(self.emitting, 1e-3)

        def _set_emission_hw(self, on):
            if not self.link_open:
                raise OSError("port closed")
            events.append("off sent")
            self.emitting = on

        def _get_emission_hw(self):
            if not self.link_open:
                raise OSError("port closed")
            return self.emitting

        def _set_power_hw(self, watts): ...
        def _get_power_setpoint_hw(self): return 1e-3
        def _get_measured_power_hw(self): return 1e-3
        def _get_faults_hw(self): return []

    laser = SlowLink()
    events.clear()
    worker = threading.Thread(target=laser.reconnect)
    worker.start()
    deadline = time.monotonic() + 5.0
    while "open starts" not in events:
        assert time.monotonic() < deadline, "the reconnect never started"
        time.sleep(0.001)
    laser.safe_off()                     # without the lock: three failed attempts on a closed port
    worker.join(timeout=5.0)
    assert not worker.is_alive()
    assert events == ["open starts", "open ends", "off sent"]
    assert laser.emitting is False
    laser.close()
