"""lab.pipeline: uploading ahead of the captures gives the frames of showing one pattern at a
time, in less bench time; a capture that comes late is found and retaken."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.calibration.session import CalibrationSession
from optgen.drivers.common.patterns import binary_grating
from optgen.drivers.common.schedule import ShowCaptureSchedule
from optgen.drivers.identity import CameraTiming, SLMTiming


def sweep_frames(bench, pipelined: bool, stall_at: int | None = None):
    session = CalibrationSession(bench, pipelined=pipelined)
    slm, clock = bench.encoding_slm, bench.clock
    patterns = [binary_grating(slm.shape, 16, 0, g, slm.dtype) for g in range(0, 256, 24)]
    session.show(encoding=patterns[0])

    real_set_phase = slm.set_phase
    uploads = []

    def set_phase(pattern, *args, **kwargs):
        out = real_set_phase(pattern, *args, **kwargs)
        uploads.append(clock.now())
        if len(uploads) == stall_at:
            clock.sleep(0.05)            # this upload returns 50 ms late (a busy USB link), once
        return out

    slm.set_phase = set_phase
    with session.light():
        session.auto_exposure()
        t0 = clock.now()
        frames = session.sweep("encoding_slm", patterns, lambda i: session.capture(), lambda i, f: f)
        elapsed = clock.now() - t0
    del slm.set_phase
    return np.stack(frames), elapsed, session.counters


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_uploading_ahead_gives_the_same_frames_in_less_bench_time(small_bench):
    plain, t_plain, c_plain = sweep_frames(small_bench, pipelined=False)
    ahead, t_ahead, c_ahead = sweep_frames(small_bench, pipelined=True)
    for a, b in zip(ahead, plain):
        assert agreement(a, b) > 0.995
    # distinct patterns really give distinct frames (so the agreement above means something)
    assert agreement(plain[0], plain[len(plain) // 2]) < 0.9
    assert c_ahead.retakes == 0 and c_ahead.patterns_shown == c_plain.patterns_shown
    assert t_ahead < 0.75 * t_plain, (t_ahead, t_plain)


def two_frame_sweeps(bench, work_s: float = 0.0):
    """A sweep of gratings on SLM1 taking two frames a pattern, shown one at a time and pipelined
    (with ``work_s`` of work on each first frame when pipelined): {pipelined: frames}, {pipelined: retakes}."""
    slm, clock = bench.encoding_slm, bench.clock
    patterns = [binary_grating(slm.shape, 16, 0, g, slm.dtype) for g in range(0, 256, 32)]
    taken, retakes = {}, {}
    for pipelined in (False, True):
        session = CalibrationSession(bench, pipelined=pipelined)
        session.show(encoding=patterns[0])
        with session.light():
            session.auto_exposure()

            def grab(i):
                first = session.capture()
                if pipelined and work_s:
                    clock.sleep(work_s)
                return np.stack([first, session.capture()])

            taken[pipelined] = session.sweep("encoding_slm", patterns, grab, lambda i, f: f, frames_per_pattern=2)
        retakes[pipelined] = session.counters.retakes
    return taken, retakes


def test_a_sweep_taking_two_frames_per_pattern_keeps_the_next_pattern_out_of_both(small_bench):
    """The next upload waits for every frame a pattern's grab takes, not only the first."""
    taken, retakes = two_frame_sweeps(small_bench)
    assert retakes == {False: 0, True: 0}
    for ahead, plain in zip(taken[True], taken[False]):
        assert agreement(ahead[0], plain[0]) > 0.995 and agreement(ahead[1], plain[1]) > 0.995
    assert agreement(taken[False][0][1], taken[False][4][1]) < 0.9      # distinct patterns, distinct frames


def test_slow_work_between_a_patterns_frames_has_its_pattern_retaken_clean(small_bench):
    """The second of two frames starts when the first comes back: where the first took long (a
    slow computer, a slow camera link), the second may catch the next pattern moving. Found on the
    hardware-timed realistic twin, whose frames took longer to draw than the plan allowed."""
    taken, retakes = two_frame_sweeps(small_bench, work_s=0.03)     # 30 ms of work on each first frame
    assert retakes[True] >= 1
    for ahead, plain in zip(taken[True], taken[False]):
        assert agreement(ahead[1], plain[1]) > 0.995


def test_a_late_capture_is_retaken_alone_and_its_frame_is_clean(small_bench):
    plain, _, _ = sweep_frames(small_bench, pipelined=False)
    ahead, _, counters = sweep_frames(small_bench, pipelined=True, stall_at=8)   # an upload made ahead of a capture returns late
    assert counters.retakes >= 1
    for a, b in zip(ahead, plain):
        assert agreement(a, b) > 0.995


def test_the_next_upload_waits_until_the_pending_frames_are_safe():
    slm = SLMTiming(refresh_hz=60.0, latency_frames=2, settle_s=0.010)
    camera = CameraTiming(exposure_s=0.001, readout_s=0.010)
    schedule = ShowCaptureSchedule(slm, camera, guard_s=0.002)
    from optgen.drivers.common.schedule import Shown

    assert schedule.next_upload_s(5.0) == 5.0                      # nothing pending: at once
    schedule.pending.append(Shown(0, call_s=0.0, edge_s=0.010))
    due = 0.010 + slm.wait_s
    assert schedule.capture_plan(0.02) == [pytest.approx(due)]
    # pattern 1 may be called once pattern 0's exposure (due + 1 ms) ends before 1 can move
    assert schedule.next_upload_s(0.02) == pytest.approx(due + 0.001 + 0.002 - slm.latency_s)
    assert schedule.clean(schedule.pending[0], due, next_call_s=due + 0.001 - slm.latency_s)
    assert not schedule.clean(schedule.pending[0], due, next_call_s=due - slm.latency_s)   # 1 moved mid-exposure
    assert not schedule.clean(schedule.pending[0], due - 0.001, next_call_s=None)         # before settled
    # where the SLM reports when it showed pattern 1 (a frame-shown output), that time decides:
    # a capture 4 ms late is clean if 1 was shown (latched a frame after its call) later still
    late, call_1 = due + 0.004, due + 0.001 - slm.latency_s
    assert not schedule.clean(schedule.pending[0], late, next_call_s=call_1)
    assert schedule.clean(schedule.pending[0], late, next_call_s=call_1, next_shown_s=late + 0.0015)
    assert not schedule.clean(schedule.pending[0], late, next_call_s=call_1, next_shown_s=late + 0.0005)
    # a last frame that ended later than planned (it started late) counts, not the plan
    assert not schedule.clean(schedule.pending[0], due, next_call_s=due + 0.001 - slm.latency_s,
                              last_exposure_end_s=due + 0.002)
    schedule.pending.append(Shown(1, call_s=0.02, edge_s=0.0267))
    assert schedule.next_upload_s(0.03) == np.inf                  # max_ahead = 2 in flight


def test_the_twin_keeps_a_render_for_every_pattern_the_loop_shows_ahead():
    """The loop captures an upload while up to MAX_UPLOADS_AHEAD later ones are shown; with fewer
    render slots the twin would overwrite their renders and fall back to rendering on the
    capture's critical path (slower, same numbers)."""
    from optgen.lab.run.capture_loop import MAX_UPLOADS_AHEAD
    from optgen.simulators.world import RENDER_SLOTS, render_slot

    pending = [(upload, 1) for upload in range(10, 10 + MAX_UPLOADS_AHEAD)]
    assert RENDER_SLOTS >= MAX_UPLOADS_AHEAD
    assert len({render_slot(key) for key in pending}) == len(pending)


@pytest.mark.parametrize("refresh_hz, overlap, frames", [(500.0, True, 6), (500.0, False, 11), (60.0, True, 1),
                                                          (60.0, False, 2)])
def test_a_triggered_camera_paces_uploads_by_settle_exposure_and_readout(refresh_hz, overlap, frames):
    """Patterns follow each other as fast as settle + exposure (+ the readout, for a camera that
    cannot take a trigger while it reads out) allow, in whole refresh frames."""
    from optgen.drivers.common.schedule import Shown, TriggeredSchedule

    slm = SLMTiming(refresh_hz=refresh_hz, latency_frames=2, settle_s=0.010)
    camera = CameraTiming(exposure_s=0.0001, readout_s=0.0099)
    schedule = TriggeredSchedule(slm, camera, overlap=overlap)
    # 10.1 ms (overlap) or 20.0 ms + the 0.5 ms margin, in 2 ms or 16.7 ms refresh frames
    assert schedule.period_frames == frames
    shown = 1.0
    previous = Shown(0, call_s=0.99, edge_s=shown - slm.latency_s + 3e-4, shown_s=shown)
    call = schedule.earliest_call_s(previous)
    edge = shown - slm.latency_s                       # from the frame-shown report, not the late return
    # the call falls inside the refresh frame before the edge it must latch at ...
    assert edge + (frames - 1) * slm.frame_s < call < edge + frames * slm.frame_s
    # ... so the next pattern moves once this one's exposure is over (and the camera armed again)
    moves = edge + frames * slm.frame_s + slm.latency_s
    exposure_end = schedule.trigger_s(previous) + slm.settle_s + camera.exposure_s
    assert moves >= exposure_end + (0.0 if overlap else camera.readout_s)
    assert schedule.earliest_call_s(None) == -np.inf   # the first upload goes at once
    # without a frame-shown report the edge is the time the upload returned (never before the edge)
    unreported = Shown(0, call_s=0.99, edge_s=edge + 3e-4)
    assert schedule.trigger_s(unreported) == pytest.approx(edge + 3e-4 + slm.latency_s)


def test_a_triggered_frame_is_clean_only_if_settled_and_over_before_the_next_pattern_moves():
    from optgen.drivers.common.schedule import Shown, TriggeredSchedule

    slm = SLMTiming(refresh_hz=500.0, latency_frames=2, settle_s=0.010)
    schedule = TriggeredSchedule(slm, CameraTiming(exposure_s=0.001, readout_s=0.005), overlap=True)
    this = Shown(0, call_s=0.0, edge_s=0.002, shown_s=0.006)
    start = 0.006 + 0.010
    assert schedule.clean(this, start, None)
    assert not schedule.clean(this, start - 0.001, None)                              # not settled
    assert schedule.clean(this, start, Shown(1, call_s=0.014, edge_s=0.014, shown_s=0.018))
    assert not schedule.clean(this, start, Shown(1, call_s=0.010, edge_s=0.012, shown_s=0.0165))
    # the next upload called, not yet returned: it cannot move before its call + latency
    assert schedule.clean(this, start, Shown(1, call_s=0.013, edge_s=np.nan))
    assert not schedule.clean(this, start, Shown(1, call_s=0.012, edge_s=np.nan))
    # not yet called at all (call time infinite): it moves after this exposure
    assert schedule.clean(this, start, Shown(1, call_s=np.inf, edge_s=np.nan))
