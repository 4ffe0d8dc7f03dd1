"""Fine-tune a trained model's decoder phase through one bench's measured optics (issue 20).

The model was trained through the bench file's nominal optics; calibration measured what the bench
really has (true d1/d2, the Gaussian beam, SLM2's wavefront under the decoder, the unmodulated light:
:mod:`lab.model.bench_optics`). A few hundred decoder-only steps through those optics, on the teacher
pairs the model file keeps, move the decoder to the bench: on the realistic twin 600 steps (2.5 min on
two cores) took the Frechet distance from 2.92 to 1.79 (ideal twin 1.50; benchmarks/measured_optics.py).
The encoder stays as it is (its seeds are what the run shows); training's decoder misplacements are
kept, so the decoder stays tolerant of where SLM2 sits.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from optgen.calibration.progress import StageProgress
from optgen.lab.model.bench_optics import BenchOptics
from optgen.lab.model.class_input import class_inputs
from optgen.lab.model.shipped import OpticalModel, check_model_name, save_model
from optgen.lab.model.student import OpticalStudent
from optgen.lab.model.train import TrainSettings, _decoder_misplacement

__all__ = ["FINE_TUNE_STEPS", "fine_tune_decoder", "fine_tune_model", "student_from"]

FINE_TUNE_STEPS = 600
FINE_TUNE_LR = 0.005
BATCH = 16


def student_from(model: OpticalModel, optics: BenchOptics | None, crosstalk_sigma_px: float) -> OpticalStudent:
    """A student holding ``model``'s encoder, decoder and scale (one colour), seeing ``optics``."""
    if len(model.wavelengths_nm) != 1:
        raise ValueError(f"{model.name}: a {len(model.wavelengths_nm)}-colour model; fine-tuning through measured "
                         f"optics is for one-colour models (each colour has its own optics)")
    layers, classes = len(model.weights) - 2, class_inputs(model.info)
    student = OpticalStudent(model.geometry, model.weights[0][0].shape[0] - classes, hidden=model.weights[0][0].shape[1],
                             hidden_layers=layers + 1, crosstalk_sigma_px=crosstalk_sigma_px, optics=optics,
                             classes=classes)
    linear = [m for m in student.encoder if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for m, (w, b) in zip(linear, model.weights):
            m.weight.copy_(torch.from_numpy(np.asarray(w, np.float32).T))
            m.bias.copy_(torch.from_numpy(np.asarray(b, np.float32)))
        phase = np.clip(model.decoder_phase[model.wavelengths_nm[0]] / (2 * np.pi), 1e-4, 1 - 1e-4)
        student.decoder_logits.copy_(torch.from_numpy(np.log(phase / (1 - phase)).astype(np.float32))[None])
        student.log_scale_offset.fill_(float(model.log_scale_offset))
    student.straight_through = True
    return student


def fine_tune_decoder(student: OpticalStudent, noise: np.ndarray, targets: np.ndarray, steps: int,
                      lr: float = FINE_TUNE_LR, seed: int = 7, log=None, misplaced: bool = True,
                      on_step: Callable[[], None] | None = None) -> list[float]:
    """Decoder-only Adam steps (cosine learning rate), with training's decoder misplacements unless
    ``misplaced`` is False; the losses. ``on_step``: called after each step (progress)."""
    for p in student.encoder.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([student.decoder_logits], lr=lr, betas=(0.5, 0.999))
    rng, settings, losses = np.random.default_rng(seed), TrainSettings(), []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        idx = rng.integers(0, len(noise), BATCH)
        shift, rotation = _decoder_misplacement(rng, settings) if misplaced else ((0.0, 0.0), 0.0)
        predicted = student(torch.from_numpy(noise[idx]), shift=shift, rotation_deg=rotation)[:, 0]
        loss = torch.mean((predicted - torch.from_numpy(targets[idx])) ** 2)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"fine-tuning diverged at step {step}: a non-finite loss; try a lower "
                                     f"learning rate")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step()
        if log is not None and (step + 1) % 100 == 0:
            log(f"fine-tune step {step + 1}/{steps} loss {np.mean(losses[-100:]):.5g}")
    return losses


def fine_tune_model(model: OpticalModel, optics: BenchOptics, optics_record: dict, out_dir: str | Path,
                    crosstalk_sigma_px: float, *, steps: int = FINE_TUNE_STEPS, lr: float = FINE_TUNE_LR,
                    name: str | None = None, log=print, misplaced: bool = True,
                    progress: StageProgress | None = None) -> Path:
    """Fine-tune ``model``'s decoder through ``optics`` on the first half of the teacher pairs its file
    keeps (the second half stays unseen, for judging) and write a new model file in ``out_dir``
    (never over an existing one); returns its path. ``progress``: told of the steps (stage
    "fine-tune")."""
    if model.teacher_noise is None or model.teacher_samples is None or len(model.teacher_noise) < 2 * BATCH:
        raise ValueError(f"{model.name}: the model file keeps no teacher pairs (noise and images) to fine-tune on")
    if not isinstance(steps, int) or not 1 <= steps <= 100_000:
        raise ValueError(f"steps = {steps!r}: expected a whole number from 1 to 100000")
    name = name or f"{model.name}-measured-optics"
    check_model_name(name)
    out = Path(out_dir)
    path = out / f"{name}.npz"
    if path.exists():
        raise FileExistsError(f"{path}: a model file is there already; fine-tuning never overwrites one "
                              f"(choose another --out or --name)")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    half = len(model.teacher_noise) // 2
    noise = np.asarray(model.teacher_noise[:half], np.float32)
    targets = np.asarray(model.teacher_samples[:half], np.float32)
    student = student_from(model, optics, crosstalk_sigma_px)
    t0 = time.perf_counter()
    progress = progress or StageProgress("train")
    progress.plan(("fine-tune",))
    with progress.stage_of("fine-tune", steps, "step"):
        losses = fine_tune_decoder(student, noise, targets, steps, lr, log=log, misplaced=misplaced,
                                   on_step=progress.advance)
    phase = student.decoder_phase().detach().numpy()[0]
    info = {**(model.info or {}), "fine_tuned": {
        "base_model": model.id, "steps": steps, "lr": lr, "misplaced": misplaced, "teacher_pairs_used": [0, half],
        "loss_first_last": [float(np.mean(losses[:20])), float(np.mean(losses[-20:]))],
        "minutes": round((time.perf_counter() - t0) / 60, 2), "measured_optics": optics_record}}
    tuned = dataclasses.replace(model, name=name, decoder_phase={model.wavelengths_nm[0]: phase}, info=info)
    return save_model(path, tuned)
