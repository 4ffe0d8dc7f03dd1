"""Safety in the RunEngine on the twin: the laser is off (verified) after a pause, an abort, a halt,
a failing plan and Ctrl-C, each interruption landing while a frame is in flight; a fault suspends."""
# ruff: noqa: F811 - the fixtures RE, docs and twin come from tests.lab.bluesky_twin

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

pytest.importorskip("bluesky", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")
pytest.importorskip("ophyd_async", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")

import bluesky.plan_stubs as bps  # noqa: E402
import bluesky.preprocessors as bpp  # noqa: E402
from bluesky.utils import FailedStatus, RunEngineInterrupted  # noqa: E402

import optgen.bluesky  # noqa: E402
from optgen.drivers.errors import DeviceError  # noqa: E402
from optgen.lab.bluesky import plans  # noqa: E402
from tests.lab.bluesky_twin import RE, docs, twin  # noqa: E402,F401

TRIALS = 3          # benchmarks/bluesky_safety.py runs 20 of each
WAIT_S = 30.0       # no wait in these tests is longer


class InFlight:
    """Runs ``action`` on a thread of its own while the camera's ``at``-th capture is in flight
    (the capture is held ``hold_s`` of wall time, as a long exposure would be)."""

    def __init__(self, camera, at: int, action, hold_s: float = 0.2):
        self.camera, self.at, self.action, self.hold_s = camera, at, action, hold_s
        self.captures = 0
        self.reached = threading.Event()
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        real = type(camera)._get_image_hw

        def hooked(timeout_s):
            self.captures += 1
            if self.captures == self.at:
                self.reached.set()
                self.done.wait(self.hold_s)
            return real(camera, timeout_s)
        camera._get_image_hw = hooked
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        if self.reached.wait(WAIT_S):
            try:
                self.action()
            except BaseException as exc:   # noqa: BLE001 - reported by finish()
                self.errors.append(exc)
        self.done.set()

    def finish(self) -> None:
        self.reached.set()
        self.thread.join(WAIT_S)
        del self.camera._get_image_hw
        assert not self.thread.is_alive() and not self.errors, self.errors


def assert_laser_off(bench) -> None:
    laser = bench.devices.laser
    assert laser.emission is False and laser.verified_off and bench.devices.world.laser_emission is False


def test_pause_then_abort_leaves_the_laser_off(RE, twin, docs):
    bench, devices = twin
    for trial in range(TRIALS):
        interrupt = InFlight(bench.devices.camera, at=3 + trial, action=RE.request_pause)
        with pytest.raises(RunEngineInterrupted):
            RE(plans.generate(devices, 8, seed=trial))
        interrupt.finish()
        assert RE.state == "paused"
        assert_laser_off(bench)
        RE.abort()
        assert RE.state == "idle" and docs.exit_status() == "abort"
        assert_laser_off(bench)


def test_pause_then_resume_retakes_the_interrupted_frame(RE, twin, docs):
    bench, devices = twin
    lit_while_paused = []
    interrupt = InFlight(bench.devices.camera, at=4, action=RE.request_pause)
    with pytest.raises(RunEngineInterrupted):
        RE(plans.generate(devices, 6, seed=1))
    interrupt.finish()
    lit_while_paused.append(bench.devices.laser.emission)
    RE.resume()
    assert lit_while_paused == [False]
    assert docs.exit_status() == "success"
    events = docs.events()
    frames = docs.frames()               # checks: the file holds exactly the frames the events point to
    assert len(events) == len(frames) >= 6
    assert {e["data"]["bench-encoding_slm-pattern"] for e in events} == {f"seed:seed=1,index={i}" for i in range(6)}
    assert all(e["data"]["bench-laser-emission"] for e in events)
    assert_laser_off(bench)


@pytest.mark.parametrize("how", ["abort", "halt", "stop"])
def test_abort_halt_and_stop_while_a_frame_is_in_flight_leave_the_laser_off(RE, twin, docs, how):
    bench, devices = twin
    for trial in range(TRIALS):
        interrupt = InFlight(bench.devices.camera, at=3 + trial, action=getattr(RE, how))
        try:
            RE(plans.generate(devices, 8, seed=trial))
        except RunEngineInterrupted:
            pass
        interrupt.finish()
        assert RE.state == "idle"
        assert docs.exit_status() == ("success" if how == "stop" else "abort")
        assert len(docs.events()) < 8 * (trial + 1)
        assert_laser_off(bench)


def test_a_failing_plan_leaves_the_laser_off(RE, twin, docs):
    bench, devices = twin

    def broken_capture():
        raise DeviceError("camera", "no frame (planted)")

    for trial in range(TRIALS):
        interrupt = InFlight(bench.devices.camera, at=3 + trial, action=lambda: None)
        bench.devices.camera._get_image_hw, hooked = (lambda timeout_s: broken_capture()), \
            bench.devices.camera._get_image_hw
        calls = {"n": 0}

        def fail_at(timeout_s, hooked=hooked, trial=trial, calls=calls):
            calls["n"] += 1
            if calls["n"] == 3 + trial:
                broken_capture()
            return hooked(timeout_s)
        bench.devices.camera._get_image_hw = fail_at
        with pytest.raises(FailedStatus) as info:
            RE(plans.generate(devices, 8, seed=trial))
        assert "planted" in str(info.value.__cause__)
        interrupt.finish()
        assert docs.exit_status() == "fail"
        assert_laser_off(bench)

    def raises_after_a_frame():
        yield from plans.lit_frame(devices)
        raise ValueError("the plan's own error")

    for _ in range(TRIALS):
        with pytest.raises(ValueError, match="own error"):
            RE(bpp.run_wrapper(plans.capturing(devices, plans.staged(devices.camera, raises_after_a_frame()))))
        assert docs.exit_status() == "fail"
        assert docs.of("stop")[-1]["num_events"] == {"primary": 1}       # the frame before the error is kept
        assert len(docs.frames()) == len(docs.events())                  # and in the file
        assert_laser_off(bench)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_in_the_run_engine_leaves_the_laser_off(RE, twin, docs, presses):
    """The RunEngine's Ctrl-C handling: once pauses at the next checkpoint, twice pauses at once."""
    bench, devices = twin
    assert threading.current_thread() is threading.main_thread()

    def ctrl_c():
        for press in range(presses):
            if press:
                time.sleep(0.15)            # the RunEngine counts presses at least 0.1 s apart
            os.kill(os.getpid(), signal.SIGINT)

    for trial in range(TRIALS):
        interrupt = InFlight(bench.devices.camera, at=3 + trial, action=ctrl_c, hold_s=0.5)
        with pytest.raises(RunEngineInterrupted):
            RE(plans.generate(devices, 8, seed=trial))
        interrupt.finish()
        assert RE.state == "paused"
        assert_laser_off(bench)
        RE.abort()
        assert_laser_off(bench)


def test_a_keyboard_interrupt_raised_by_a_driver_becomes_a_failure_with_the_laser_off(RE, twin, docs):
    bench, devices = twin

    def interrupted(timeout_s):
        raise KeyboardInterrupt

    bench.devices.camera._get_image_hw = interrupted
    try:
        with pytest.raises(FailedStatus) as info:
            RE(plans.generate(devices, 3))
    finally:
        del bench.devices.camera._get_image_hw
    assert "interrupted (KeyboardInterrupt)" in str(info.value.__cause__)
    assert RE.state == "idle"
    assert_laser_off(bench)
    RE(plans.generate(devices, 2))          # the RunEngine and the device thread still work
    assert docs.exit_status() == "success"


def test_a_laser_fault_suspends_the_run_and_it_resumes_when_cleared(RE, twin, docs):
    bench, devices = twin
    suspender = optgen.bluesky.suspend_on_laser_fault(RE, devices, poll_s=0.02)
    laser, world = bench.devices.laser, bench.devices.world
    seen_off = []

    def trip_then_clear():
        laser.trip("interlock open")              # the interlock opens: emission stops
        deadline = time.monotonic() + WAIT_S
        while not suspender.tripped and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        seen_off.append((suspender.tripped, laser.verified_off, world.laser_emission))
        world.laser_faults.clear()                # closed again

    try:
        interrupt = InFlight(bench.devices.camera, at=4, action=trip_then_clear, hold_s=0.0)
        RE(plans.generate(devices, 8, seed=5))
        interrupt.finish()
    finally:
        RE.remove_suspender(suspender)
    assert seen_off == [(True, True, False)]      # suspended, the laser verified off meanwhile
    assert suspender.trips == 1 and docs.exit_status() == "success"
    events = docs.events()
    assert len(events) == 8 and len(docs.frames()) == 8
    assert [e["data"]["bench-encoding_slm-pattern"] for e in events] == [f"seed:seed=5,index={i}" for i in range(8)]
    assert all(e["data"]["bench-laser-emission"] and not e["data"]["bench-laser-faults"] for e in events)
    assert_laser_off(bench)


def test_a_suspender_that_cannot_report_says_so_and_keeps_polling(RE, twin, docs, monkeypatch, caplog):
    """If bluesky's SuspenderBase refuses what the poll hands it (as 1.16 did with a bare value), the poll
    task logs one ERROR naming the laser and goes on polling: it does not die unseen."""
    from bluesky.suspenders import SuspenderBase

    bench, devices = twin
    calls = []

    def refuses(self, value, **kwargs):
        calls.append(value)
        raise TypeError("tuple indices must be integers or slices, not str")

    monkeypatch.setattr(SuspenderBase, "__call__", refuses)
    with caplog.at_level(logging.ERROR, logger="optgen.bluesky"):
        suspender = optgen.bluesky.suspend_on_laser_fault(RE, devices, poll_s=0.02)
        try:
            RE(plans.generate(devices, 3, seed=0))
            for _ in range(200):                             # bounded: each run gives the poll time to look
                if len(calls) >= 3:
                    break
                RE(plans.generate(devices, 1, seed=1))
            failure = suspender.failure
        finally:
            monkeypatch.undo()
            RE.remove_suspender(suspender)
    assert len(calls) >= 3                                   # still polling after the first refusal
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "could not act" in r.getMessage()]
    assert len(errors) == 1 and devices.laser.name in errors[0].getMessage()
    assert "TypeError" in failure
    assert docs.exit_status() == "success"
    assert_laser_off(bench)


def test_a_fault_that_does_not_clear_fails_the_frame_with_the_laser_off(RE, twin, docs, monkeypatch):
    bench, devices = twin
    monkeypatch.setattr(plans, "FAULT_WAIT_S", 0.3)
    interrupt = InFlight(bench.devices.camera, at=3, action=lambda: bench.devices.laser.trip("interlock open"),
                         hold_s=0.0)
    with pytest.raises(Exception, match="interlock open"):
        RE(plans.generate(devices, 5))
    interrupt.finish()
    assert len(docs.events()) == 1 and len(docs.frames()) == 1      # the frame taken in the dark is not kept
    assert_laser_off(bench)
    with pytest.raises(FailedStatus, match="interlock open"):       # no plan starts while it is open
        RE(plans.generate(devices, 1))
    bench.devices.world.laser_faults.clear()
    RE(bps.null())
