"""Shared fixtures: small simulated benches that run in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest

from lab.bench import build_bench
from lab.bench_file import parse_bench
from simulators.benches import SMALL, edit_bench_text, small_bench_text  # noqa: F401 - used by the tests


@pytest.fixture(autouse=True)
def _isolated_working_folder(tmp_path, monkeypatch):
    """Each test runs in its own empty folder: the default calibration store ("calibrations",
    relative to the working folder for the embedded bench) is then empty unless the test fills it."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def small_config():
    return parse_bench(small_bench_text(), "small-test-bench")


@pytest.fixture
def small_bench(small_config):
    bench = build_bench(small_config)
    yield bench
    bench.close()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
