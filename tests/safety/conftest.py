"""A protocol-twin laser in a process of its own (simulators.protocol.serve), so a test can kill
the optgen process that drives it and still see, from outside, whether its emission went off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optgen.lab.bench.examples import external_laser_bench_text as external_bench_text  # noqa: F401 - for the tests
from optgen.simulators.protocol.serve import ExternalTwinLaser

ROOT = Path(__file__).parents[2]


class ExternalLaser(ExternalTwinLaser):
    def __init__(self, kind: str, state: Path, max_power_mw: float = 100.0):
        super().__init__(kind, state, cwd=ROOT, max_power_mw=max_power_mw)


@pytest.fixture
def external_laser(tmp_path):
    laser = ExternalLaser("obis", tmp_path / "laser-state.json")
    yield laser
    laser.close()


def optgen(args: list[str], **kwargs) -> subprocess.Popen:
    """`optgen ARGS` as a process of its own."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "optgen.lab.cli", *args], cwd=kwargs.pop("cwd", ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_file(path: Path, timeout_s: float = 10.0) -> dict:
    """The JSON file at ``path`` once it is there (the watchdog writes it after verifying the off)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.02)
    raise AssertionError(f"{path} did not appear within {timeout_s} s")
