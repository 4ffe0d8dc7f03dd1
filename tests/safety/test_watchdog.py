"""The laser watchdog outside the process: the optgen process is killed or stalled while the
laser (a protocol twin in a process of its own) emits; the watchdog turns it off and says so."""

from __future__ import annotations

import json
import random
import signal
import time

import pytest

from optgen.drivers.errors import LaserSafetyError
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import parse_bench
from optgen.lab.cli import main

from .conftest import external_bench_text, optgen, wait_for_file


def kill_while_emitting(proc, laser, rng: random.Random, signum=signal.SIGKILL) -> float:
    """Wait until the laser emits, then signal the process at a random moment; returns when."""
    assert laser.wait_for(True, 60.0), "the laser never came on"
    time.sleep(rng.uniform(0.0, 0.3))
    t = time.time()
    proc.send_signal(signum)
    return t


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_during_a_run_leaves_the_laser_off_and_the_watchdog_says_so_in_the_run_folder(
        external_laser, tmp_path, trial):
    bench = tmp_path / "bench.toml"
    bench.write_text(external_bench_text(external_laser.port))
    out = tmp_path / "run"
    proc = optgen(["run", "--count", "400", "--out", str(out), "--bench", str(bench), "--no-progress"])
    kill_while_emitting(proc, external_laser, random.Random(trial))
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert external_laser.wait_for(False, 10.0)
    record = wait_for_file(out / "watchdog.json")
    assert record["cause"] == "died" and record["verified_off"] is True
    summary = json.loads((out / "summary.json").read_text())
    assert summary["laser_verified_off"] is True and summary["watchdog"]["cause"] == "died"
    assert "CRITICAL watchdog: the optgen process" in (out / "run.log").read_text()
    assert main(["run", "--resume", str(out), "--no-progress"]) in (0, 1)   # the frames stored stay usable


@pytest.mark.parametrize("table", ["toptica-ibeam-smart", "omicron-luxx"])
def test_sigkill_during_a_run_with_a_command_table_laser_leaves_it_off(tmp_path, table):
    """The watchdog reaches a table-driven laser with the table's off command and reads the
    table's emission query (iBeam's ON/OFF words; LuxX's status word, bit 1)."""
    from .conftest import ExternalLaser

    laser = ExternalLaser(table, tmp_path / "laser-state.json", max_power_mw=1.0)
    try:
        bench = tmp_path / "bench.toml"
        text = external_bench_text(laser.port, {("laser", "driver"): '"table"'})
        bench.write_text(text.replace("[laser.connection]", f'[laser.connection]\ntable = "{table}"', 1))
        out = tmp_path / "run"
        proc = optgen(["run", "--count", "400", "--out", str(out), "--bench", str(bench), "--no-progress"])
        kill_while_emitting(proc, laser, random.Random(3))
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert laser.wait_for(False, 10.0)
        record = wait_for_file(out / "watchdog.json")
        assert record["cause"] == "died" and record["verified_off"] is True
        query = {"toptica-ibeam-smart": "sta la", "omicron-luxx": "?GAS"}[table]
        assert laser.state()["last_command"] == [query]       # the watchdog's verifying query came last
    finally:
        laser.close()


def test_sigkill_during_calibrate_leaves_the_laser_off(external_laser, tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text(external_bench_text(external_laser.port))
    store = tmp_path / "store"
    proc = optgen(["calibrate", "all", "--bench", str(bench), "--store", str(store)])
    killed = kill_while_emitting(proc, external_laser, random.Random(7))
    proc.communicate(timeout=30)
    assert external_laser.wait_for(False, 10.0)
    if external_laser.state()["emission_changes"][-1][0] > killed:   # it was on when killed: the watchdog acted
        record = wait_for_file(store / "watchdog.json")
        assert record["verified_off"] is True and "watchdog" in (store / "watchdog.log").read_text()


def test_a_stalled_process_is_taken_over_by_the_watchdog(external_laser, tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text(external_bench_text(external_laser.port))
    out = tmp_path / "run"
    proc = optgen(["run", "--count", "400", "--out", str(out), "--bench", str(bench), "--no-progress"])
    try:
        assert external_laser.wait_for(True, 60.0)
        proc.send_signal(signal.SIGSTOP)             # frozen: no heartbeat, the pipe still open
        assert external_laser.wait_for(False, 20.0)
        record = wait_for_file(out / "watchdog.json")
        assert record["cause"] == "stalled" and record["verified_off"] is True
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_a_run_that_ends_says_goodbye_and_the_watchdog_does_not_act(external_laser, tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text(external_bench_text(external_laser.port))
    out = tmp_path / "run"
    assert main(["run", "--count", "6", "--out", str(out), "--bench", str(bench), "--no-progress"]) == 0
    commands = external_laser.state()["commands"]
    time.sleep(1.0)                                    # a watchdog that acted would have written by now
    assert external_laser.state()["commands"] == commands
    assert not (out / "watchdog.json").exists()
    assert json.loads((out / "summary.json").read_text())["laser_verified_off"] is True


def test_emission_is_refused_when_the_watchdog_cannot_start(external_laser, tmp_path, monkeypatch):
    from optgen.drivers import watchdog

    monkeypatch.setattr(watchdog, "CHILD_SCRIPT", tmp_path / "no-such-watchdog.py")
    cfg = parse_bench(external_bench_text(external_laser.port), "external-laser bench")
    with build_bench(cfg) as bench:
        with pytest.raises(LaserSafetyError, match="watchdog process did not start.*emission stays off"):
            bench.laser.set_emission(True)
        assert external_laser.emission is False


def test_devices_says_whether_a_watchdog_covers_the_laser(external_laser, tmp_path, capsys):
    bench = tmp_path / "bench.toml"
    bench.write_text(external_bench_text(external_laser.port))
    assert main(["devices", "--bench", str(bench)]) == 0
    assert "watchdog: covered: a watchdog process turns emission off" in capsys.readouterr().out
    assert main(["devices"]) == 0
    assert "watchdog: its light ends with the optgen process" in capsys.readouterr().out
