"""calibrate(): how the steps run (the steps' own results are tested beside each step)."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import optgen.calibration.procedure as procedure
from optgen.calibration.session import CalibrationError
from optgen.calibration.store import CalibrationStore


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_the_steps_run_with_one_blas_thread_and_the_limit_ends_with_them(small_bench, tmp_path, monkeypatch):
    seen = []

    def measure_camera(session):
        seen.append(_blas_threads())
        small_bench.laser.set_emission(True)
        raise CalibrationError("camera: stopped here by the test")

    monkeypatch.setattr(procedure, "measure_camera", measure_camera)
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        with pytest.raises(CalibrationError, match="stopped here"):
            procedure.calibrate(small_bench, "camera", CalibrationStore(tmp_path))
        assert _blas_threads() == before
    assert seen and set(seen[0]) == {1}
    assert not small_bench.laser.emission
