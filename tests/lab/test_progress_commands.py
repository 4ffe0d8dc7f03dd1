"""Progress of optgen train and optgen evaluate: each stage, k of n and the time left, on stderr;
none with --quiet. The clock is the test's: one second per item done."""

from __future__ import annotations

import functools
import re

import pytest

from optgen.calibration.progress import StageProgress
from optgen.lab.bench.parse import parse_bench
from optgen.lab.cli import main
from optgen.lab.model import OpticalGeometry
from tests.conftest import small_bench_text


class Ticking(StageProgress):
    """Progress on a clock of its own that moves one second with each item done."""

    def __init__(self, command: str, interval_s: float = 0.0):
        self.t = 0.0
        self.lines: list[str] = []
        super().__init__(command, show=self.lines.append, interval_s=interval_s, clock=lambda: self.t)

    def advance(self, count: int = 1) -> None:
        self.t += count
        super().advance(count)


def starts_and_ends(err: str) -> list[str]:
    """Each stage's start and end line, up to its first comma (a count line every 10 s of wall
    time is left out: how many there are depends on the machine)."""
    return [line.split(",")[0] for line in err.splitlines() if not re.search(r"\): \w+ [1-9]\d* of ", line)]


TINY = {"teacher_steps": 30, "pairs": 64, "student_steps": 6, "batch": 2, "checkpoint_every": 2,
        "encoder_hidden": 24, "encoder_layers": 2}


@pytest.fixture
def bench(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text(small_bench_text(), encoding="utf-8")
    return path


def test_training_says_each_stage_its_steps_and_the_time_left_and_a_resume_only_what_is_left(tmp_path):
    pytest.importorskip("torch")
    from optgen.lab.model.train import TrainSettings, train_model

    geom = OpticalGeometry.from_bench(parse_bench(small_bench_text(), "small"))
    settings = TrainSettings(**TINY, name="tiny")
    progress = Ticking("train", interval_s=10.0)
    assert train_model(tmp_path, geom, settings, max_minutes=0.0, log=lambda m: None, progress=progress) is None
    assert progress.lines == [
        "train teacher (stage 1 of 3): step 0 of 30, 0 s",
        "train teacher (stage 1 of 3): step 10 of 30, 10 s, about 20 s left",
        "train teacher (stage 1 of 3): step 20 of 30, 20 s, about 10 s left",
        "train teacher (stage 1 of 3): step 30 of 30, 30 s, about 0 s left",
        "train teacher: done after 30 steps, 30 s",
        "train pairs (stage 2 of 3): pair 0 of 64, 0 s",
        "train pairs (stage 2 of 3): pair 64 of 64, 64 s, about 0 s left",
        "train pairs: done after 64 pairs, 64 s",
        "train student (stage 3 of 3): step 0 of 6, 0 s, 0 s left of the 0 s budget",
        "train student: stopped after 1 step, 1 s"]                  # --minutes 0: one step, then it stops
    again = Ticking("train", interval_s=2.0)
    assert train_model(tmp_path, geom, settings, log=lambda m: None, progress=again) is not None
    assert again.lines == [                                          # teacher and pairs are on file
        "train student (stage 1 of 1): step 1 of 6, 0 s",
        "train student (stage 1 of 1): step 3 of 6, 2 s, about 3 s left",
        "train student (stage 1 of 1): step 5 of 6, 4 s, about 1 s left",
        "train student: done after 6 steps, 5 s"]


def test_fine_tuning_says_its_steps():
    pytest.importorskip("torch")
    from optgen.lab.model.fine_tune import fine_tune_model
    from tests.lab.test_fine_tune import measured_optics, model_with_targets
    from tests.lab.test_model import IDEAL_TWIN

    geom = OpticalGeometry.from_bench(parse_bench(small_bench_text(IDEAL_TWIN), "ideal"))
    optics = measured_optics(geom)
    progress = Ticking("train", interval_s=2.0)
    fine_tune_model(model_with_targets(geom, optics), optics, {}, "tuned", 0.0, steps=4, log=lambda m: None,
                    progress=progress)
    assert progress.lines == ["train fine-tune (stage 1 of 1): step 0 of 4, 0 s",
                              "train fine-tune (stage 1 of 1): step 2 of 4, 2 s, about 2 s left",
                              "train fine-tune (stage 1 of 1): step 4 of 4, 4 s, about 0 s left",
                              "train fine-tune: done after 4 steps, 4 s"]


def test_optgen_train_draws_its_progress_on_stderr_and_quiet_draws_none(tmp_path, bench, monkeypatch, capsys):
    pytest.importorskip("torch")
    from optgen.lab.model import train as train_module

    monkeypatch.setattr(train_module, "TrainSettings", functools.partial(train_module.TrainSettings, **TINY))
    assert main(["train", "--out", "a", "--bench", str(bench), "--name", "tiny"]) == 0
    said = capsys.readouterr()
    assert starts_and_ends(said.err) == [
        "train teacher (stage 1 of 3): step 0 of 30", "train teacher: done after 30 steps",
        "train pairs (stage 2 of 3): pair 0 of 64", "train pairs: done after 64 pairs",
        "train student (stage 3 of 3): step 0 of 6", "train student: done after 6 steps"]
    assert "student step 6/6 loss" in said.out and "(stage" not in said.out      # stdout: the log and the result
    assert main(["train", "--out", "b", "--bench", str(bench), "--name", "tiny", "--quiet"]) == 0
    said = capsys.readouterr()
    assert said.err == "" and said.out.splitlines()[-1].startswith("model written to")
    assert "student step" not in said.out


def test_evaluate_says_the_frames_judged_then_predicted(tmp_path, bench, capsys):
    from optgen.lab.evaluate.run import evaluate_run

    assert main(["run", "--count", "3", "--out", "run", "--bench", str(bench), "--no-progress", "--quiet"]) == 0
    progress = Ticking("evaluate")
    evaluate_run("run", progress=progress)
    assert progress.lines == ["evaluate judge (stage 1 of 2): frame 0 of 3, 0 s",
                              "evaluate judge (stage 1 of 2): frame 3 of 3, 3 s, about 0 s left",
                              "evaluate judge: done after 3 frames, 3 s",
                              "evaluate predict (stage 2 of 2): frame 0 of 3, 0 s",
                              "evaluate predict (stage 2 of 2): frame 1 of 3, 1 s, about 2 s left",
                              "evaluate predict (stage 2 of 2): frame 2 of 3, 2 s, about 1 s left",
                              "evaluate predict (stage 2 of 2): frame 3 of 3, 3 s, about 0 s left",
                              "evaluate predict: done after 3 frames, 3 s"]
    capsys.readouterr()
    assert main(["evaluate", "run"]) == 0
    said = capsys.readouterr()
    assert starts_and_ends(said.err) == [
        "evaluate judge (stage 1 of 2): frame 0 of 3", "evaluate judge: done after 3 frames",
        "evaluate predict (stage 2 of 2): frame 0 of 3", "evaluate predict: done after 3 frames"]
    assert "(stage" not in said.out and "Pearson r mean" in said.out
    assert main(["evaluate", "run", "--quiet"]) == 0
    said = capsys.readouterr()
    assert said.err == "" and "Pearson r mean" in said.out


def test_evaluating_a_colour_run_goes_colour_by_colour(tmp_path):
    from optgen.lab.evaluate.colour import evaluate_colour_run
    from optgen.lab.run.colour_run import run_colours
    from tests.lab.test_colour_run import rgb_model, rgb_text

    cfg = parse_bench(rgb_text(), "rgb")
    run_colours(cfg, rgb_model(cfg), tmp_path / "run", 2)
    progress = Ticking("evaluate", interval_s=10.0)
    evaluate_colour_run(tmp_path / "run", progress=progress)
    stages = [line for line in progress.lines if "(stage" in line]
    assert stages == [f"evaluate {stage} (stage {k} of 7): {unit} 0 of 2, 0 s" for k, (stage, unit) in enumerate(
        [("judge RGB", "image"), ("judge 638 nm", "frame"), ("predict 638 nm", "frame"), ("judge 520 nm", "frame"),
         ("predict 520 nm", "frame"), ("judge 450 nm", "frame"), ("predict 450 nm", "frame")], start=1)]
    assert progress.lines[-1] == "evaluate predict 450 nm: done after 2 frames, 2 s"
