"""One student training step (forward + backward), batch 16 on the default bench's geometry at the
512 grid, as `optgen train` runs it (inside heap_kept where the commit has it). Needs torch (the
train extra): skipped where the environment lacks it."""

from __future__ import annotations

import contextlib

from ._common import need


class StudentStep:
    params = [512]
    param_names = ["grid"]
    batch = 16
    repeat = (3, 10, 15.0)
    timeout = 300

    def setup(self, grid):
        torch = need("torch")
        default_bench_text, parse_bench = need("optgen.lab.bench.parse", "default_bench_text", "parse_bench")
        OpticalGeometry, = need("optgen.lab.model", "OpticalGeometry")
        OpticalStudent, = need("optgen.lab.model.student", "OpticalStudent")
        try:
            heap_kept, = need("optgen.lab.model.memory", "heap_kept")
        except NotImplementedError:
            heap_kept = contextlib.nullcontext
        geom = OpticalGeometry.from_bench(parse_bench(default_bench_text(), "default"), grid)
        torch.manual_seed(0)
        self.student = OpticalStudent(geom, noise_dim=64)
        self.noise = torch.randn(self.batch, 64)
        self.target = torch.rand(self.batch, 1, geom.output_pixels, geom.output_pixels)
        self.torch = torch
        self._heap = contextlib.ExitStack()
        self._heap.enter_context(heap_kept())

    def teardown(self, grid):           # asv calls it after a skipped setup too
        if hasattr(self, "_heap"):
            self._heap.close()

    def step(self) -> float:
        loss = self.torch.mean((self.student(self.noise, shift=(1, -1)) - self.target) ** 2)
        self.student.zero_grad()
        loss.backward()
        return loss.item()

    def time_student_step(self, grid):
        self.step()
