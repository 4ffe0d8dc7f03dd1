"""`optgen calibrate all` on the small twin (the test suite's 256 x 256 bench, virtual clock), one
LUT round (the quickest setting that still measures every calibration), into a fresh store."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ._common import need


class CalibrateAll:
    number = 1
    repeat = (1, 3, 30.0)
    warmup_time = 0
    timeout = 300
    rounds_of_lut = 1

    def setup(self):
        build_bench, = need("optgen.lab.bench.assemble", "build_bench")
        small_bench_text, = need("optgen.lab.bench.examples", "small_bench_text")
        parse_bench, = need("optgen.lab.bench.parse", "parse_bench")
        self.calibrate, = need("optgen.calibration.procedure", "calibrate")
        self.CalibrationStore, = need("optgen.calibration.store", "CalibrationStore")
        self._tmp = tempfile.TemporaryDirectory()
        self.store = Path(self._tmp.name) / "calibrations"
        self.bench = build_bench(parse_bench(small_bench_text(), "small twin"), self.store)

    def teardown(self):                 # asv calls it after a skipped setup too
        if hasattr(self, "bench"):
            self.bench.close()
        if hasattr(self, "_tmp"):
            self._tmp.cleanup()

    def time_calibrate_all(self):
        self.calibrate(self.bench, "all", self.CalibrationStore(self.store), rounds=self.rounds_of_lut)
