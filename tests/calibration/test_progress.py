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


def test_a_stage_counts_its_items_and_says_the_time_left_from_its_rate_or_the_budget():
    from optgen.calibration.progress import StageProgress

    clock, lines = Clock(), []
    progress = StageProgress("train", ("pairs", "student"), lines.append, interval_s=10.0, clock=clock)
    with progress.stage_of("student", 100, "step", done=40):       # resumed at step 40
        for _ in range(30):                                          # 2 s a step
            clock.t += 2.0
            progress.advance()
        progress.budget(30.0)                                        # stops in 30 s: sooner than the 60 s the rate says
        assert progress.line() == "train student (stage 2 of 2): step 70 of 100, 60 s, 30 s left of the 30 s budget"
    head = "train student (stage 2 of 2): step"
    assert lines == [f"{head} 40 of 100, 0 s",
                     f"{head} 45 of 100, 10 s, about 1.8 min left",          # 55 steps at 2 s: 110 s
                     f"{head} 50 of 100, 20 s, about 1.7 min left",
                     f"{head} 55 of 100, 30 s, about 1.5 min left",
                     f"{head} 60 of 100, 40 s, about 80 s left",
                     f"{head} 65 of 100, 50 s, about 70 s left",
                     f"{head} 70 of 100, 60 s, about 60 s left",
                     "train student: done after 70 steps, 60 s"]
    assert [line.kind for line in lines] == ["start"] + ["count"] * 6 + ["end"]
    with pytest.raises(KeyError):
        with progress.stage_of("pairs", None, "pair"):               # no total: counts and elapsed time only
            progress.advance(3)
            assert progress.line() == "train pairs (stage 1 of 2): pair 3, 0 s, 30 s left of the 30 s budget"
            raise KeyError("a failure inside the stage")
    assert lines[-1] == "train pairs: stopped after 3 pairs, 0 s"
    progress.end(True)                                               # said once only
    assert lines[-1] == "train pairs: stopped after 3 pairs, 0 s"


def test_the_console_redraws_counts_on_a_terminal_and_prints_one_every_10_s_elsewhere():
    import io

    from optgen.calibration.progress import ProgressLine
    from optgen.lab.cli.calibrate import ConsoleProgress, console_progress

    terminal = io.StringIO()
    console = ConsoleProgress(terminal, tty=True)
    console(ProgressLine("evaluate predict (stage 2 of 2): frame 0 of 9, 0 s", "start"))
    console(ProgressLine("evaluate predict (stage 2 of 2): frame 4 of 9, 1 s, about 1 s left", "count"))
    console.clear()                                                  # before a line of its own on stdout
    console.clear()
    console(ProgressLine("evaluate predict: done after 9 frames, 2 s", "end"))
    console("a note")
    assert terminal.getvalue() == ("\r\x1b[Kevaluate predict (stage 2 of 2): frame 0 of 9, 0 s"
                                   "\r\x1b[Kevaluate predict (stage 2 of 2): frame 4 of 9, 1 s, about 1 s left"
                                   "\r\x1b[K"
                                   "\r\x1b[Kevaluate predict: done after 9 frames, 2 s\n\r\x1b[Ka note\n")
    clock, log = Clock(), io.StringIO()
    console = ConsoleProgress(log, tty=False, clock=clock)
    console(ProgressLine("start", "start"))
    for t in range(1, 25):
        clock.t = float(t)
        console(ProgressLine(f"count at {t} s", "count"))
    console.clear()                                                  # nothing to take away in a log
    console(ProgressLine("end", "end"))
    assert log.getvalue().splitlines() == ["start", "count at 10 s", "count at 20 s", "end"]
    assert console_progress(quiet=True) is None
