"""The stop control: handlers only record, the loops act at their bounded waits, cleanups are
shielded, and a process whose main thread does not stop ends only once every laser is safe."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from optgen.drivers import stop
from optgen.drivers.stop import StopControl

ROOT = Path(__file__).parents[2]


def test_handlers_only_record_and_the_next_check_raises_on_the_main_thread():
    control = StopControl()
    with control.signals():
        control._on_signal(signal.SIGTERM, None)          # returns: nothing raised in a handler
        assert control.now and control.reason == "terminated (SIGTERM)"
        seen = []
        thread = threading.Thread(target=lambda: (stop.check(), seen.append("no raise off the main thread")))
        thread.start()
        thread.join()
        assert seen == ["no raise off the main thread"]
        with pytest.raises(SystemExit) as info:
            stop.check()
        assert info.value.code == 128 + signal.SIGTERM
        with pytest.raises(SystemExit):                   # every later check too: it cannot be swallowed
            stop.check()


def test_the_first_ctrl_c_is_graceful_only_where_a_graceful_stop_is_under_way():
    control = StopControl()
    with control.signals():
        control.graceful = True
        control._on_signal(signal.SIGINT, None)
        assert control.requested and not control.now
        stop.check()                                      # a graceful request never raises
        control._on_signal(signal.SIGINT, None)
        assert control.now
        with pytest.raises(KeyboardInterrupt):
            stop.check()
    other = StopControl()
    with other.signals():
        other._on_signal(signal.SIGINT, None)             # nothing graceful under way: stop now
        with pytest.raises(KeyboardInterrupt):
            stop.sleep(10.0)                              # a long wait notices it within a slice


def test_a_shielded_cleanup_is_not_cut_short():
    control = StopControl()
    with control.signals():
        control.request_now("test", SystemExit(143))
        with control.shielded():
            stop.check()
            stop.sleep(0.01)
            with stop.active_shield():
                stop.check()
        with pytest.raises(SystemExit):
            stop.check()


def test_a_real_signal_is_recorded_and_announced_and_the_handlers_are_restored(caplog):
    before = signal.getsignal(signal.SIGTERM)
    control = StopControl()
    with control.signals():
        signal.raise_signal(signal.SIGTERM)
        assert control.now
        with pytest.raises(SystemExit):
            stop.sleep(1.0)
        control.shield_depth = 1                           # let the guard thread announce it in peace
        for _ in range(100):
            if "SIGTERM: stopping now" in caplog.text:
                break
            stop.sleep(0.01)
    assert "SIGTERM: stopping now" in caplog.text
    assert signal.getsignal(signal.SIGTERM) is before and stop.active() is None


GUARD_SCRIPT = textwrap.dedent("""
    import sys, threading
    from optgen.drivers import stop
    from optgen.drivers.laser import Laser
    from optgen.drivers.identity import DeviceIdentity

    class HardLaser(Laser):            # a laser no watchdog can reach, left emitting
        identity = DeviceIdentity("test", "hard", "1", "1")
        def safe_off(self): self._emission_off_verified()
        def _set_power_hw(self, w): pass
        def _get_power_setpoint_hw(self): return 0.0
        def _get_measured_power_hw(self): return 0.0
        def _set_emission_hw(self, on): self.on = on
        def _get_emission_hw(self): return self.on

    stop.EXIT_GRACE_S = 0.5
    laser = HardLaser("hard", 520.0, 1.0)
    laser.on = False
    if sys.argv[1] == "unsafe":
        laser.set_emission(True)
    control = stop.StopControl()
    with control.signals():
        print("ready", flush=True)
        threading.Event().wait()       # a main thread stuck where no check is reached
""")


@pytest.mark.parametrize("laser_state, exits", [("safe", True), ("unsafe", False)])
def test_a_stuck_main_thread_ends_after_the_grace_only_with_every_laser_safe(laser_state, exits):
    proc = subprocess.Popen([sys.executable, "-c", GUARD_SCRIPT, laser_state], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10.0)
        except subprocess.TimeoutExpired:
            pass
        if exits:
            assert proc.returncode == 143
            assert "every laser is off: exiting now" in proc.stderr.read()
        else:
            assert proc.returncode is None                  # nothing but a verified safe-off ends its day
    finally:
        proc.kill()
        proc.communicate()
