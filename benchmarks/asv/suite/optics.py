"""The propagation step: simulators.optics.propagate of one complex64 field over 0.12 m."""

from __future__ import annotations

from ._common import figures, skip_missing


class PropagationStep:
    params = [800]
    param_names = ["grid"]
    repeat = (5, 20, 10.0)

    def setup(self, grid):
        self.step = skip_missing(figures().propagation_step, (grid, grid))

    def time_propagate(self, grid):
        self.step()
