"""`optgen run` as a process: Ctrl-C once and twice, SIGKILL at a random moment, then
`optgen status` and `optgen run --resume`: every frame stored exactly once, the laser off."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from optgen.lab.bench.parse import parse_bench
from optgen.lab.cli import main
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder
from tests.conftest import small_bench_text

ROOT = Path(__file__).parents[2]
COUNT = 80


def start_run(tmp_path, out, count=COUNT):
    bench = tmp_path / "bench.toml"
    if not bench.exists():
        bench.write_text(small_bench_text({("run", "timing"): '"wall"'}))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "optgen.lab.cli", "run", "--count", str(count), "--out", str(out),
                             "--bench", str(bench), "--no-progress", "--seed", "7"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_frames(out, n, timeout_s=60.0):
    """Until the run has stored at least ``n`` frames (read as `optgen status` reads it)."""
    from optgen.lab.runfile.reader import read_run_status

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (out / "run.h5").exists():
            try:
                if read_run_status(out / "run.h5")["frames_written"] >= n:
                    return
            except Exception:
                pass
        time.sleep(0.05)
    raise AssertionError(f"the run did not store {n} frames within {timeout_s} s")


def assert_complete_each_frame_once(out, count=COUNT):
    with h5py.File(out / "run.h5", "r") as f:
        assert f.attrs["status"] == "complete"
        assert f["meta/written"][:].all()
        assert list(f["seed/index"][:]) == list(range(count))
        cfg = parse_bench(f.attrs["bench_file"])
        n = cfg.geometry.seed_superpixels
        seeds = EncoderSeedSource(PlaceholderEncoder(n * n), n, 7)
        for i in (0, count // 2, count - 1):
            np.testing.assert_array_equal(f["seed/phase"][i], seeds.seed(i).phase)
        frames = f["frames"]
        dark = float(np.median(f["dark"][:]))
        assert min(float(frames[i].mean()) for i in range(0, count, 37)) > dark + 20   # every frame lit


def resume(out, capsys):
    code = main(["run", "--resume", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["laser_verified_off"] is True and summary["status"] == "complete"


def test_ctrl_c_once_finishes_the_frames_in_flight_and_resume_completes(tmp_path, capsys):
    out = tmp_path / "run"
    proc = start_run(tmp_path, out)
    wait_for_frames(out, 5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped" and "Ctrl-C" in summary["stop_reason"]
    assert summary["laser_verified_off"] is True and 5 <= summary["frames_written"] < COUNT
    assert main(["status", str(out)]) == 1
    said = capsys.readouterr().out
    assert "stopped" in said and f"of {COUNT}" in said and "--resume" in said
    resume(out, capsys)
    assert_complete_each_frame_once(out)
    assert main(["status", str(out)]) == 0


def test_ctrl_c_twice_stops_at_once_with_the_laser_off(tmp_path, capsys):
    # A 250 ms settle keeps frames in flight for a quarter second after the first Ctrl-C, so the
    # second one (sent once the run said it heard the first) always arrives before they are done.
    # With a short settle the run could finish them first, and then the second Ctrl-C is ignored
    # by design (the cleanup is under way): a race that CI once lost.
    out, count = tmp_path / "run", 20
    (tmp_path / "bench.toml").write_text(small_bench_text({("run", "timing"): '"wall"',
                                                           ("encoding_slm", "settle_ms"): "250.0"}))
    proc = start_run(tmp_path, out, count=count)
    wait_for_frames(out, 2)
    proc.send_signal(signal.SIGINT)
    heard = []
    for line in proc.stderr:                # the handler's warning: the first Ctrl-C was handled
        heard.append(line)
        if "press Ctrl-C again" in line:
            break
    assert heard and "press Ctrl-C again" in heard[-1], "".join(heard)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(heard) + err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["laser_verified_off"] is True
    assert summary["stop_reason"] == "interrupted (Ctrl-C)"
    resume(out, capsys)
    assert_complete_each_frame_once(out, count)


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_at_a_random_moment_then_status_and_resume_lose_and_double_nothing(tmp_path, capsys, trial):
    out = tmp_path / "run"
    proc = start_run(tmp_path, out)
    wait_for_frames(out, 2)
    time.sleep(random.Random(trial).uniform(0.0, 0.5))
    proc.kill()
    proc.communicate(timeout=30)
    assert main(["status", str(out)]) == 1
    said = capsys.readouterr().out
    assert "killed" in said or "running" in said
    resume(out, capsys)
    assert_complete_each_frame_once(out)


def test_resume_of_a_finished_run_and_a_zero_count_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text())
    assert main(["run", "--count", "3", "--out", str(out), "--bench", str(bench), "--no-progress"]) == 0
    before = (out / "run.h5").read_bytes()
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert (out / "run.h5").read_bytes() == before
    assert main(["run", "--count", "0", "--out", str(tmp_path / "zero"), "--bench", str(bench)]) == 2
    assert "positive" in capsys.readouterr().err and not (tmp_path / "zero").exists()
