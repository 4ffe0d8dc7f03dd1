"""Upload SLM patterns ahead of the frames still to be taken of earlier ones.

A video-driven SLM latches an upload at its next refresh edge, holds the old pattern for
``latency`` after that edge, then settles. So the frames of pattern ``j`` can be taken from
``edge_j + latency + settle`` until pattern ``j + 1`` starts to move, which is never before
``call_{j+1} + latency`` (an edge never comes before the call), or, where the SLM reports
when it showed a frame (the twin does; a real SLM through a frame-shown output), exactly then,
which lets a capture that started a few milliseconds late be kept. Uploading the next pattern while
the last one still sits out its latency lets patterns follow each other as fast as
``settle + exposure`` and one upload per refresh frame allow, instead of
``latency + settle + readout + the time to the next edge``.

:class:`ShowCaptureSchedule` decides, from the bench clock, when the next upload is safe and
when the oldest pending pattern's frames are due; :func:`pipelined_frames` runs it. Every
capture's real times are checked afterwards against the same rule, and any pattern whose
frames might hold the next pattern is reported for a retake, so a stall (a slow upload, a
late frame) costs time, never a mixed frame. The rule assumes what the bench file states:
the SLM's ``latency_frames`` is a lower bound, and a capture call starts its exposure within
``guard_s``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from optgen.drivers.identity import CameraTiming, SLMTiming

__all__ = ["ShowCaptureSchedule", "Shown", "TriggeredSchedule", "pipelined_frames"]


@dataclass
class Shown:
    index: int
    call_s: float          # when set_phase was called
    edge_s: float          # when it returned: the refresh edge that latched it
    shown_s: float | None = None   # when the SLM says the frame was shown (it starts to move), if it says


@dataclass
class ShowCaptureSchedule:
    """When to upload and when to capture, for one SLM and one camera."""

    slm: SLMTiming
    camera: CameraTiming
    frames_per_pattern: int = 1
    guard_s: float = 0.002
    max_ahead: int = 2
    pending: deque = field(default_factory=deque)
    camera_free_s: float = -np.inf
    observed_s: deque = field(default_factory=lambda: deque(maxlen=16))   # recent capture + work times
    _p90_s: float = field(default=0.0, repr=False)

    @property
    def capture_s(self) -> float:
        """From the capture call to the end of the work on its frames: the frames' own time, or
        the 90th percentile of the recent ones where that is longer (a rare slower one costs a
        retake, not a slower schedule)."""
        return max(self.frames_per_pattern * self.camera.frame_s, self._p90_s)

    def observe(self, seconds: float) -> None:
        """A capture (and the work on its frames) took ``seconds``."""
        self.observed_s.append(seconds)
        self._p90_s = float(np.percentile(self.observed_s, 90))   # once here, not at every plan

    @property
    def exposing_s(self) -> float:
        """From the capture call to the end of the last exposure (the camera's own timing)."""
        return self.frames_per_pattern * self.camera.frame_s - self.camera.readout_s

    def due_s(self, shown: Shown) -> float:
        """When this pattern is settled (its frames may start)."""
        return shown.edge_s + self.slm.wait_s

    def capture_plan(self, now: float) -> list[float]:
        """Start times of the pending captures if taken in order from ``now`` on."""
        t, starts = max(now, self.camera_free_s), []
        for shown in self.pending:
            start = max(self.due_s(shown), t)
            starts.append(start)
            t = start + self.capture_s
        return starts

    def next_upload_s(self, now: float) -> float:
        """Earliest call time for the next upload that keeps every pending capture clean."""
        if not self.pending:
            return now
        if len(self.pending) >= self.max_ahead:
            return np.inf
        last_exposure_end = self.capture_plan(now)[-1] + self.exposing_s
        return max(now, last_exposure_end + self.guard_s - self.slm.latency_s)

    def upload_first(self, now: float) -> bool:
        """Whether the next upload fits before the oldest pending capture is due (an upload on
        the capturing thread may block up to one refresh frame)."""
        t_up = self.next_upload_s(now)
        if not self.pending:
            return True
        return t_up + self.slm.frame_s + self.guard_s <= self.capture_plan(now)[0]

    def clean(self, shown: Shown, start_s: float, next_call_s: float | None,
              next_shown_s: float | None = None, last_exposure_end_s: float | None = None) -> bool:
        """Whether frames whose capture was called at ``start_s`` show only ``shown``.

        The next pattern starts to move at ``next_shown_s`` where the SLM reports when it showed
        it (a frame-shown output), else never before ``next_call_s + latency``. Several frames of
        one pattern are taken one after the other, each started when the last came back: where
        that came late (slow work on a frame), ``last_exposure_end_s`` (the last frame's return
        less the readout) is later than the plan's ``start_s + exposing_s`` and counts instead.
        """
        settled = start_s >= self.due_s(shown) - 1e-9
        exposure_end = start_s + self.exposing_s
        if last_exposure_end_s is not None:
            exposure_end = max(exposure_end, last_exposure_end_s)
        # the planning margin (guard_s) is not asked of the check: a capture that started a little
        # late but still ended before the next pattern could move is clean
        if next_call_s is None:
            return settled
        moves_s = next_shown_s if next_shown_s is not None else next_call_s + self.slm.latency_s
        return settled and exposure_end <= moves_s + 1e-9


@dataclass
class TriggeredSchedule:
    """When to upload while the SLM's frame-shown output triggers the camera ``settle`` later.

    The camera then exposes each pattern just as it has settled, in hardware, so the software
    only picks the refresh edge each upload latches at. Pattern ``j + 1`` must not move before
    pattern ``j``'s exposure has ended, and its trigger must find the camera armed again (at
    once with a camera that overlaps exposure and readout, ``overlap``; else after the readout):
    it latches :attr:`period_frames` refresh edges after pattern ``j``, so it is called inside
    the refresh frame before that edge (:meth:`earliest_call_s`). An earlier call would latch
    earlier and move during ``j``'s exposure; a later one latches a frame later: time lost,
    never a mixed frame.
    """

    slm: SLMTiming
    camera: CameraTiming
    overlap: bool = False
    margin_s: float = 0.0005          # kept between one exposure's end and the next pattern's move / trigger

    @property
    def period_frames(self) -> int:
        """Refresh frames from one pattern's edge to the next one's."""
        hold = self.slm.settle_s + self.camera.exposure_s
        if not self.overlap:
            hold += self.camera.readout_s          # the next trigger must come after the readout
        need = max(hold, self.camera.readout_s) + self.margin_s   # and frames must not queue up
        return max(1, math.ceil(need / self.slm.frame_s - 1e-9))

    @property
    def period_s(self) -> float:
        return self.period_frames * self.slm.frame_s

    def edge_s(self, shown: Shown) -> float:
        """The refresh edge that latched ``shown``: from the SLM's frame-shown report where there
        is one, else the time its upload returned (never before the edge)."""
        return shown.shown_s - self.slm.latency_s if shown.shown_s is not None else shown.edge_s

    def earliest_call_s(self, previous: Shown | None) -> float:
        """Earliest call time for the upload after ``previous`` (whose upload has returned)."""
        if previous is None:
            return -math.inf
        frame_s = self.slm.frame_s
        return self.edge_s(previous) + (self.period_frames - 1) * frame_s + min(0.1 * frame_s, 2e-4)

    def trigger_s(self, shown: Shown) -> float:
        """When ``shown`` was shown: the trigger edge it gives the camera."""
        return shown.shown_s if shown.shown_s is not None else shown.edge_s + self.slm.latency_s

    def clean(self, shown: Shown, exposure_start_s: float, following: Shown | None) -> bool:
        """Whether an exposure that began at ``exposure_start_s`` shows only ``shown``: settled, and
        over before ``following`` (the next upload; its fields are read once, as its thread sets
        them) could move."""
        if exposure_start_s < self.trigger_s(shown) + self.slm.settle_s - 1e-9:
            return False
        if following is None:
            return True
        next_shown, next_call = following.shown_s, following.call_s
        moves_s = next_shown if next_shown is not None else next_call + self.slm.latency_s
        return exposure_start_s + self.camera.exposure_s <= moves_s + 1e-9


def pipelined_frames(clock, upload: Callable[[int], None], grab: Callable[[int], object],
                     process: Callable[[int, object], object], count: int,
                     schedule: ShowCaptureSchedule) -> tuple[list, list[int]]:
    """Show patterns ``0 .. count-1`` (``upload(i)``), take their frames (``grab(i)``, which
    starts exposing when called) and reduce them (``process(i, frames)``, kept short: the
    next capture waits for it).

    Returns ``process``'s results in order and the indices whose frames may not be clean
    (to be retaken one by one by the caller).
    """
    results: list = [None] * count
    shown: list[Shown] = []
    starts: list[float] = []
    ends: list[float | None] = []                # the last frame's exposure end, where several are taken
    while len(shown) < count or schedule.pending:
        now = clock.now()
        if len(shown) < count and schedule.upload_first(now):
            clock.sleep(schedule.next_upload_s(now) - now)
            call = clock.now()
            upload(len(shown))
            shown.append(Shown(len(shown), call, clock.now()))
            schedule.pending.append(shown[-1])
            continue
        oldest = schedule.pending[0]
        clock.sleep(schedule.capture_plan(now)[0] - now)
        t0 = clock.now()
        frames = grab(oldest.index)
        grabbed = clock.now()
        results[oldest.index] = process(oldest.index, frames)
        t1 = clock.now()
        schedule.pending.popleft()
        schedule.camera_free_s = t1
        schedule.observe(t1 - t0)
        starts.append(t0)                        # captures run in upload order
        ends.append(grabbed - schedule.camera.readout_s if schedule.frames_per_pattern > 1 else None)
    retake = [i for i in range(count)
              if not schedule.clean(shown[i], starts[i], shown[i + 1].call_s if i + 1 < count else None,
                                    last_exposure_end_s=ends[i])]
    return results, retake
