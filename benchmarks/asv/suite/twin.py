"""The twin frame: a seed pattern uploaded to the encoding SLM, SLM1 -> d1 -> SLM2 -> d2 -> the
camera with noise, at the embedded bench's 800 x 800 grid (camera 1280 x 1024)."""

from __future__ import annotations

import contextlib

from ._common import figures, skip_missing


class TwinFrame:
    params = [800]
    param_names = ["grid"]
    repeat = (3, 10, 15.0)

    def setup(self, grid):
        self._stack = contextlib.ExitStack()
        try:
            case = skip_missing(lambda: self._stack.enter_context(figures().twin_frame((grid, grid))))
            self.frame, self.bench, _ = case
        except BaseException:
            self._stack.close()
            raise

    def teardown(self, grid):           # asv calls it after a skipped setup too
        self._stack.close()

    def time_twin_frame(self, grid):
        self.frame()
