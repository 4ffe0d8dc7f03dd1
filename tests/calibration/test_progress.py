"""Calibration progress: the step, the pattern, and the time left estimated from the last run."""

from __future__ import annotations

import json

import pytest

from optgen.calibration.progress import CalibrationProgress, StepHistory
from optgen.lab.cli import main

from ..conftest import small_bench_text


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_first_run_counts_and_the_next_one_estimates_from_it(tmp_path):
    clock, lines = Clock(), []
    progress = CalibrationProgress(("lut", "alignment"), StepHistory(tmp_path), lines.append, interval_s=1.0,
                                   clock=clock)
    progress.start_step("lut")
    for _ in range(100):                         # 100 patterns, 0.05 s each
        clock.t += 0.05
        progress.pattern()
    assert progress.seconds_left() is None       # nothing to go by yet
    assert lines[0] == "calibrate lut (step 1 of 2): pattern 0, 0 s"
    assert len(lines) == 1 + 4 and lines[1].startswith("calibrate lut (step 1 of 2): pattern 20, 1 s")  # one a second
    progress.end_step(True)
    progress.start_step("alignment")
    clock.t += 2.0
    progress.pattern(20)
    progress.end_step(True)
    assert json.loads((tmp_path / "progress.json").read_text()) == {
        "lut": {"patterns": 100, "seconds": 5.0}, "alignment": {"patterns": 20, "seconds": 2.0}}

    again = CalibrationProgress(("lut", "alignment"), StepHistory(tmp_path), None, clock=clock)
    again.start_step("lut")
    clock.t += 1.0
    again.pattern(10)                            # slower today: 0.1 s a pattern
    assert again.seconds_left() == pytest.approx(90 * 0.1 + 2.0)
    assert again.line() == "calibrate lut (step 1 of 2): pattern 10 of ~100, 1 s, about 11 s left"


def test_a_failed_step_leaves_the_history_and_a_damaged_history_is_started_afresh(tmp_path):
    (tmp_path / "progress.json").write_text("{not json")
    history = StepHistory(tmp_path)
    assert history.steps == {}
    progress = CalibrationProgress(("lut",), history, None, clock=Clock())
    progress.start_step("lut")
    progress.pattern(7)
    progress.end_step(False)
    assert history.expected("lut") is None
    (tmp_path / "progress.json").write_text(json.dumps({"lut": {"patterns": "many", "seconds": 3}, "camera": 5}))
    assert StepHistory(tmp_path).steps == {}


def test_calibrate_says_each_step_on_stderr_and_quiet_says_none(tmp_path, capsys):
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    assert main(["calibrate", "camera", "--bench", str(bench)]) == 0
    err = capsys.readouterr().err
    assert "calibrate camera (step 1 of 1): pattern 0" in err and "calibrate camera: done after 2 patterns" in err
    assert json.loads((tmp_path / "calibrations" / "progress.json").read_text())["camera"]["patterns"] == 2
    assert main(["calibrate", "camera", "--bench", str(bench), "--quiet"]) == 0
    assert "calibrate camera" not in capsys.readouterr().err
    assert main(["calibrate", "camera", "--bench", str(bench)]) == 0
    assert "pattern 0 of ~2" in capsys.readouterr().err


def test_log_level_decides_what_the_console_shows(tmp_path, capsys):
    import os
    import subprocess
    import sys

    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    assert main(["calibrate", "camera", "--bench", str(bench), "--quiet"]) == 0

    def optgen(*args: str) -> str:                 # a process of its own: its console, not pytest's capture
        done = subprocess.run([sys.executable, "-m", "optgen.lab.cli", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env={**os.environ})
        assert done.returncode == 0, done.stderr
        return done.stderr

    err = optgen("run", "--count", "1", "--out", "a", "--bench", str(bench), "--no-progress")
    assert "calibrations from" in err and "calibration: in force" not in err     # run.log has it
    assert "calibration: in force" in (tmp_path / "a" / "run.log").read_text()
    err = optgen("run", "--count", "1", "--out", "b", "--bench", str(bench), "--quiet", "--log-level", "info")
    assert "calibration: in force" in err and "calibrations from" not in err
