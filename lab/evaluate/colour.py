"""Judging a multi-colour run: the digits in its RGB images, and each colour's own evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from optgen.drivers.errors import OptgenError
from optgen.lab.model import OpticalModel
from optgen.lab.run.colour_run import colour_folder
from optgen.lab.run.folder import COLOUR_RUN_FILE

__all__ = ["evaluate_colour_run"]


def evaluate_colour_run(out: str | Path, model: OpticalModel | None = None) -> dict:
    """Judge a finished colour run: the digits in its RGB images (channel sum), and each colour's
    own evaluation (scores and agreement with the twin); written into its summary.json."""
    from optgen.lab.evaluate.run import evaluate_run
    from optgen.lab.model.evaluate import DigitsJudge, teacher_scores

    out = Path(out)
    if not (out / "rgb.npy").is_file():
        raise OptgenError(f"{out}: no rgb.npy; finish the run first (optgen run --resume {out})")
    rgb = np.load(out / "rgb.npy")
    judge = DigitsJudge(image_size=rgb.shape[1])
    evaluation: dict = {"generated_rgb": judge.scores(rgb.sum(axis=-1))}
    if model is not None and model.teacher_samples is not None:
        evaluation["teacher"] = teacher_scores(judge, model.teacher_samples, len(rgb))
    settings = json.loads((out / COLOUR_RUN_FILE).read_text())
    evaluation["per_colour"] = {f"{wl:g}nm": evaluate_run(colour_folder(out, wl), judge=judge)
                                for wl in settings["colours_nm"]}
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["evaluation"] = evaluation
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return evaluation
