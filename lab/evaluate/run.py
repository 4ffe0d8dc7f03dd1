"""``optgen evaluate RUN``: judge a run's images and compare each frame with the twin's prediction.

Writes an ``evaluation`` section into the run's summary.json:
- ``generated``: classifier-based scores of the run's output images (lab.model.evaluate);
- ``teacher``: the same scores for as many of the model's teacher samples as the run has images
  (when the run used a model; the Fréchet distance depends on the count, see ``frechet_floor``);
- ``twin_agreement``: per frame, the Pearson correlation between the captured output image and
  the twin's noiseless prediction for the same seed and decoder phase (when the bench file
  describes a twin), with its mean and minimum.

Both stages, "judge" (fitting the judge, then judging the frames) and "predict" (the twin's
prediction, frame by frame), report to a ``calibration.progress.StageProgress``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from optgen.calibration.progress import StageProgress
from optgen.drivers.errors import OptgenError
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.config import colour_bench
from optgen.lab.bench.parse import parse_bench
from optgen.lab.evaluate.prediction import pearson_r
from optgen.lab.run.patterns import seed_to_slm_phase
from optgen.lab.run.placement import place_decoder
from optgen.lab.run.registration import OutputRegistration
from optgen.lab.runfile.reader import RunFile
from optgen.simulators.noise import photon_energy_j

__all__ = ["evaluate_run", "prediction_config", "requested_class_scores", "twin_predictions"]


def _read_run(folder: Path) -> dict:
    path = folder / "run.h5"
    if not path.is_file():
        raise OptgenError(f"{folder}: no run.h5; not a run folder")
    with RunFile(path) as run:
        if not run.written.any():
            raise OptgenError(f"{path}: the run holds no frames")
        return {
            "images": run.images(),
            "seed_phase": run.seed_phase(),
            "power_w": run.meta("laser_power_w"),
            "exposure_s": run.meta("exposure_s"),
            "decoder_phase": run.decoder_phase,
            "bench_text": run.attrs["bench_file"],
            "run_args": run.attrs.get("run_args") or {},
            "decoder_id": run.attrs.get("decoder_phase", ""),
            "calibration_ids": run.attrs.get("calibrations") or {},
            "calibration_store": run.attrs.get("calibration_store") or "",
        }


def run_calibration_store(run: dict) -> Path | None:
    """The calibration store a run used: as it recorded it (runs since session 14), else the
    --calibrations it was given, else the store beside the bench file it was started from."""
    if run.get("calibration_store"):
        return Path(run["calibration_store"])
    args = run.get("run_args") or {}
    if args.get("calibrations"):
        return Path(args["calibrations"])
    if args.get("bench_dir"):
        store = Path(parse_bench(run["bench_text"], "run bench file").calibration.store).expanduser()
        return store if store.is_absolute() else Path(args["bench_dir"]) / store
    return None


def twin_predictions(cfg, seed_phase: np.ndarray, decoder_phase: np.ndarray, power_w: np.ndarray,
                     exposure_s: np.ndarray, calibrations: Path | None = None,
                     on_frame: Callable[[], None] | None = None) -> np.ndarray:
    """The twin's noiseless output images (counts above dark) for each stored seed of a run on ``cfg``,
    shown and registered as the run did: with the calibrations of ``calibrations`` (the run's store).
    ``on_frame``: called after each frame is predicted (progress)."""
    if cfg.twin is None:
        raise OptgenError("the run's bench file has no [twin] table to predict frames with")
    out = []
    with build_bench(cfg, calibrations) as bench:
        cals = bench.calibrations
        registration = OutputRegistration(cfg, dark_level_dn=0.0,
                                          output_to_sensor=cals.output_to_sensor() if cals else None)
        world = bench.world
        sensor = world.sensor
        bench.decoding_slm.set_phase(place_decoder(decoder_phase, bench.decoding_slm.shape,
                                                   cals.decoder_placement() if cals else None,
                                                   cfg.decoding_slm.pitch_um * 1e-6))
        for phase, power, exposure in zip(seed_phase, power_w, exposure_s):
            bench.encoding_slm.set_phase(seed_to_slm_phase(phase, cfg.geometry.superpixel_px,
                                                           bench.encoding_slm.shape))
            bench.clock.sleep(10.0)  # fully settled
            pixel_power = world.sensor_power(bench.clock.now(), float(power))
            counts = pixel_power * np.float32(sensor.qe * exposure / photon_energy_j(world.wavelength_m)
                                              * sensor.gain_dn_per_e)
            out.append(registration.image(counts))
            if on_frame is not None:
                on_frame()
    return np.stack(out)


def _calibrations_changed(cfg, store: Path | None, recorded: dict) -> list[str]:
    """What the store holds now that differs from the calibrations the run recorded (the
    prediction then uses today's)."""
    from optgen.lab.bench.calibrations import load_bench_calibrations

    if not recorded:
        return []
    now = load_bench_calibrations(cfg, store).ids()
    return [f"{name}: run used {recorded[name]}, the store now gives {now.get(name, 'none')}"
            for name in sorted(recorded) if now.get(name) != recorded[name]]


def prediction_config(run: dict):
    """The bench the twin predicts a run's frames with (a colour pass: at its colour), or None when
    there is nothing to predict (no decoder phase stored, or no [twin] table)."""
    if run["decoder_phase"] is None:
        return None
    cfg = parse_bench(run["bench_text"], "run bench file")
    args = run["run_args"]
    if args.get("colour_nm") is not None:        # one colour pass of a multi-colour run: that colour's optics
        cfg = colour_bench(cfg, float(args["colour_nm"]))
    return cfg if cfg.twin is not None else None


def requested_class_scores(judge, images: np.ndarray, requested: int) -> dict:
    """How the judge classified the images of a run that asked for class ``requested`` (optgen run --class)."""
    labels, _ = judge.classify(images)
    return {"class": int(requested), "as_requested": float(np.mean(labels == requested)),
            "judged_classes": np.bincount(labels, minlength=10).tolist()}


def evaluate_run(folder: str | Path, judge=None, model=None, progress: StageProgress | None = None,
                 colour: str = "") -> dict:
    """Score a run folder and write the result into its summary.json; returns the evaluation.

    ``progress``: told of the stages "judge" and "predict" (planned here unless the caller planned
    them), with ``colour`` (a colour pass of a colour run, "638 nm") after their names."""
    from optgen.lab.model.evaluate import DigitsJudge, teacher_scores

    folder = Path(folder)
    run = _read_run(folder)
    cfg = prediction_config(run)
    stages = tuple(f"{stage} {colour}".strip() for stage in ("judge", "predict")[:2 if cfg is not None else 1])
    progress = progress or StageProgress("evaluate")
    if not progress.stages:
        progress.plan(stages)
    count = len(run["images"])
    with progress.stage_of(stages[0], count, "frame"):
        judge = judge or DigitsJudge(image_size=run["images"].shape[-1])
        evaluation: dict = {"generated": judge.scores(run["images"])}
        requested = (run["run_args"] or {}).get("class")
        if requested is not None:                # optgen run --class K: how many came out as K
            evaluation["requested_class"] = requested_class_scores(judge, run["images"], int(requested))
        if model is not None and model.teacher_samples is not None:
            evaluation["teacher"] = teacher_scores(judge, model.teacher_samples, count)
        progress.advance(count)
    if cfg is not None:
        store = run_calibration_store(run)
        changed = _calibrations_changed(cfg, store, run["calibration_ids"])
        if changed:
            evaluation["calibrations_changed"] = changed
        with progress.stage_of(stages[1], count, "frame"):
            predicted = twin_predictions(cfg, run["seed_phase"], run["decoder_phase"], run["power_w"],
                                         run["exposure_s"], store, on_frame=progress.advance)
        r = [pearson_r(p, c) for p, c in zip(predicted, run["images"])]
        evaluation["twin_agreement"] = {"pearson_r": r, "mean": float(np.mean(r)), "min": float(np.min(r))}
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["evaluation"] = evaluation
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return evaluation
