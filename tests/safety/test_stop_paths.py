"""SIGTERM and Ctrl-C during `optgen run` and `optgen calibrate`, the laser a protocol twin in a
process of its own: every stop ends with the laser off, the reason said, no traceback, and a
SIGTERM is never reported as a completed run."""

from __future__ import annotations

import json
import random
import shutil
import signal
import time

import pytest

from .conftest import ExternalLaser, external_bench_text, optgen

CALIBRATIONS = ("camera", "lut", "alignment")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A store after `optgen calibrate all` (made once; the twin laser's identity is the same every time)."""
    folder = tmp_path_factory.mktemp("calibrated")
    laser = ExternalLaser("obis", folder / "laser-state.json")
    try:
        bench = folder / "bench.toml"
        bench.write_text(external_bench_text(laser.port))
        proc = optgen(["calibrate", "all", "--bench", str(bench), "--store", str(folder / "store")])
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    finally:
        laser.close()
    return folder / "store"


def signal_while_emitting(proc, laser, rng: random.Random, signum) -> None:
    assert laser.wait_for(True, 60.0), "the laser never came on"
    time.sleep(rng.uniform(0.0, 0.2))
    proc.send_signal(signum)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("what", CALIBRATIONS)
def test_a_signal_during_each_calibration_stops_it_with_the_laser_off(external_laser, tmp_path, calibrated, signum,
                                                                      code, what):
    bench = tmp_path / "bench.toml"
    bench.write_text(external_bench_text(external_laser.port))
    store = tmp_path / "store"
    if what != "camera":      # the later steps need the earlier ones' files
        shutil.copytree(calibrated, store)
    before = {p.name for p in store.iterdir()} if store.exists() else set()
    proc = optgen(["calibrate", what, "--bench", str(bench), "--store", str(store)])
    signal_while_emitting(proc, external_laser, random.Random(hash(what) % 100), signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert external_laser.emission is False
    assert "Traceback" not in err
    assert ("terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted") in err
    assert "the laser is off" in err
    assert not (store / "watchdog.json").exists()          # the process turned it off itself
    if what != "camera":
        assert {p.name for p in store.iterdir()} == before     # no half-made calibration file


@pytest.mark.parametrize("trial", range(6))
def test_sigterm_at_a_random_moment_of_a_run_is_a_clean_stop_never_a_complete_run(external_laser, tmp_path, trial):
    bench = tmp_path / "bench.toml"
    bench.write_text(external_bench_text(external_laser.port))
    out = tmp_path / "run"
    proc = optgen(["run", "--count", "300", "--out", str(out), "--bench", str(bench), "--no-progress"])
    signal_while_emitting(proc, external_laser, random.Random(trial), signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "Exception ignored" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["stop_reason"] == "terminated (exit 143)"
    assert summary["laser_verified_off"] is True and external_laser.emission is False
