"""`optgen run` on the embedded twin (800 x 800 grid, virtual clock, storage included): a short run
of 20 frames. asv counts lower as better for every figure, so the one `asv continuous` judges is
the run's time; its rate in frames/s (the median of three runs: a track is one sample, without
asv's statistics) is tracked beside it for reading - where asv marks it "-", the rate went down."""

from __future__ import annotations

import contextlib
import itertools
import statistics
import tempfile
from pathlib import Path

from ._common import figures, skip_missing

FRAMES = 20
RATE_RUNS = 3


class RunRate:
    params = [800]
    param_names = ["grid"]
    number = 1
    repeat = (2, 4, 30.0)
    warmup_time = 0
    timeout = 300

    def setup(self, grid):
        self._stack = contextlib.ExitStack()
        try:
            self.run = skip_missing(lambda: self._stack.enter_context(
                figures().run_setup(None if grid == 800 else (grid, grid))))
            self.folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
            self._names = itertools.count()
        except BaseException:
            self._stack.close()
            raise

    def teardown(self, grid):           # asv calls it after a skipped setup too
        self._stack.close()

    def _run(self) -> dict:
        return self.run(FRAMES, self.folder / f"run-{next(self._names)}")

    def time_run_20_frames(self, grid):
        self._run()

    def track_run_rate(self, grid):
        return statistics.median(self._run()["frames_per_s"] for _ in range(RATE_RUNS))

    track_run_rate.unit = "frames/s"
