"""Shared fixtures: small simulated benches that run in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import SMALL, edit_bench_text, small_bench_text  # noqa: F401 - used by the tests
from optgen.lab.bench.parse import parse_bench

# The third-party packages whose releases have changed what the tests see (bluesky 1.16 moved its
# Tiled writer): their versions close every test session, so a CI log says what it ran against.
REPORTED_VERSIONS = ("numpy", "scipy", "h5py", "slmsuite", "opencv-python", "torch", "bluesky", "ophyd-async",
                     "tiled", "bluesky-tiled-plugins", "bluesky-queueserver", "pyvisa", "harvesters", "genicam")


def installed_versions(names=REPORTED_VERSIONS) -> str:
    """``name version`` for each of ``names``, "not installed" for those missing."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in names:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"tested against: {installed_versions()}")


@pytest.fixture(autouse=True)
def _isolated_working_folder(tmp_path, monkeypatch):
    """Each test runs in its own empty folder, with its own user data folder (where the embedded
    bench keeps its calibrations): that store is empty unless the test fills it, and no test
    writes into the user's real data folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTGEN_DATA_DIR", str(tmp_path / "user-data"))


@pytest.fixture(autouse=True)
def _in_process_twin_lasers_need_no_watchdog(monkeypatch):
    """A real driver talking to a protocol twin of this process (tests open them by their pty
    path): its light ends with this process, as lab.bench marks it for ``port = "twin"``. Only
    lasers outside the process (tests/safety) get a watchdog."""
    from optgen.drivers.laser import Laser
    from optgen.simulators.protocol._pty import live_ports

    real = Laser._ensure_watchdog

    def ensure(self):
        if getattr(self, "address", None) in live_ports():
            self.light_ends_with_process = True
        real(self)

    monkeypatch.setattr(Laser, "_ensure_watchdog", ensure)


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
