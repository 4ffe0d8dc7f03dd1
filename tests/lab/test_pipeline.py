"""lab.pipeline: uploading ahead of the captures gives the frames of showing one pattern at a
time, in less bench time; a capture that comes late is found and retaken."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.response import _grating
from calibration.session import CalibrationSession
from drivers.identity import CameraTiming, SLMTiming
from lab.pipeline import ShowCaptureSchedule


def sweep_frames(bench, pipelined: bool, stall_at: int | None = None):
    session = CalibrationSession(bench, pipelined=pipelined)
    slm, clock = bench.encoding_slm, bench.clock
    patterns = [_grating(slm, 0, g, 16) for g in range(0, 256, 24)]
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
    from lab.pipeline import _Shown

    assert schedule.next_upload_s(5.0) == 5.0                      # nothing pending: at once
    schedule.pending.append(_Shown(0, call_s=0.0, edge_s=0.010))
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
    schedule.pending.append(_Shown(1, call_s=0.02, edge_s=0.0267))
    assert schedule.next_upload_s(0.03) == np.inf                  # max_ahead = 2 in flight


def test_the_twin_keeps_a_render_for_every_pattern_the_loop_shows_ahead():
    """The loop captures an upload while up to MAX_UPLOADS_AHEAD later ones are shown; with fewer
    render slots the twin would overwrite their renders and fall back to rendering on the
    capture's critical path (slower, same numbers)."""
    from lab.capture_loop import MAX_UPLOADS_AHEAD
    from simulators.world import RENDER_SLOTS, render_slot

    pending = [(upload, 1) for upload in range(10, 10 + MAX_UPLOADS_AHEAD)]
    assert RENDER_SLOTS >= MAX_UPLOADS_AHEAD
    assert len({render_slot(key) for key in pending}) == len(pending)
