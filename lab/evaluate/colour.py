"""Judging a multi-colour run: the digits in its RGB images, and each colour's own evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from optgen.calibration.progress import StageProgress
from optgen.drivers.errors import OptgenError
from optgen.lab.model import OpticalModel
from optgen.lab.run.colour_run import colour_folder
from optgen.lab.run.folder import COLOUR_RUN_FILE

__all__ = ["colour_stages", "evaluate_colour_run"]


def colour_stages(settings: dict) -> tuple[str, ...]:
    """The stages of evaluating a colour run (``settings``: its colour_run.json): the RGB images
    judged, then each colour's frames judged and (on a twin) predicted."""
    from optgen.lab.bench.parse import parse_bench

    twin = parse_bench(settings["bench_file"], COLOUR_RUN_FILE).twin is not None
    stages = ["judge RGB"]
    for wl in settings["colours_nm"]:
        stages += [f"judge {wl:g} nm"] + ([f"predict {wl:g} nm"] if twin else [])
    return tuple(stages)


def evaluate_colour_run(out: str | Path, model: OpticalModel | None = None,
                        progress: StageProgress | None = None) -> dict:
    """Judge a finished colour run: the digits in its RGB images (channel sum), and each colour's
    own evaluation (scores and agreement with the twin); written into its summary.json.
    ``progress``: told of each stage (:func:`colour_stages`) and the frames it has done."""
    from optgen.lab.evaluate.run import evaluate_run, requested_class_scores
    from optgen.lab.model.evaluate import DigitsJudge, teacher_scores

    out = Path(out)
    if not (out / "rgb.npy").is_file():
        raise OptgenError(f"{out}: no rgb.npy; finish the run first (optgen run --resume {out})")
    rgb = np.load(out / "rgb.npy")
    settings = json.loads((out / COLOUR_RUN_FILE).read_text())
    progress = progress or StageProgress("evaluate")
    progress.plan(colour_stages(settings))
    with progress.stage_of("judge RGB", len(rgb), "image"):
        judge = DigitsJudge(image_size=rgb.shape[1])
        channel_sum = rgb.sum(axis=-1)
        evaluation: dict = {"generated_rgb": judge.scores(channel_sum)}
        if settings.get("class") is not None:     # optgen run --colours --class K: how many came out as K
            evaluation["requested_class"] = requested_class_scores(judge, channel_sum, int(settings["class"]))
        if model is not None and model.teacher_samples is not None:
            evaluation["teacher"] = teacher_scores(judge, model.teacher_samples, len(rgb))
        progress.advance(len(rgb))
    evaluation["per_colour"] = {f"{wl:g}nm": evaluate_run(colour_folder(out, wl), judge=judge, progress=progress,
                                                          colour=f"{wl:g} nm")
                                for wl in settings["colours_nm"]}
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["evaluation"] = evaluation
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return evaluation
