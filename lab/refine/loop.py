"""``optgen refine``: a trained model's decoder refined on the bench, camera in the loop (decision 0016).

Physics-aware training (Wright et al., Nature 2022): the forward pass is the bench (the seeds of a
batch of teacher noise shown with the current decoder, the frames captured and registered by the run
loop), the gradient that of the calibrated differentiable model of the same optics
(:class:`lab.model.student.OpticalStudent` with the bench's measured optics) evaluated at the same
input: ``y = y_model + (y_bench - y_model).detach()``. The rounds update the decoder phase and the
encoder's output scale (the per-seed intensity scale: the scale output of the encoder's last layer;
the seeds it shows stay as they are). Before the rounds the decoder is fine-tuned through the
calibrated model alone (:mod:`lab.model.fine_tune`), which costs no light.

Stages, each resumable from ``refine.pt`` in the output folder: ``before`` (held-out seeds captured
with the model as it came), ``pretune``, the rounds, ``after`` (the same held-out seeds with the
refined decoder), then the new model file (never over an existing one) and the pictures. Every
capture is a run of the run loop (``rounds/<stage>/run.h5``): the laser is on only while it
captures, Ctrl-C, SIGTERM and the watchdog stop it as they stop a run, and an interrupted round's
run is resumed, not retaken.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from optgen.drivers.errors import OptgenError
from optgen.lab.evaluate.prediction import pearson_r
from optgen.lab.model.fine_tune import fine_tune_decoder, student_from
from optgen.lab.model.shipped import OpticalModel, check_model_name, save_model
from optgen.lab.refine.noise_seeds import NoiseSeedSource
from optgen.lab.run.generate import run_generation
from optgen.lab.runfile.reader import RunFile

__all__ = ["RefineSettings", "refine_model"]

CHECKPOINT = "refine.pt"
SATURATED_SHARE = 0.25      # more frames than this with saturated pixels: the camera is overdriven
DARK_SNR = 5.0              # frames whose brightest pixels stand less than this x the dark frame's noise saw no light


@dataclass
class RefineSettings:
    frames: int = 1536          # captured frames for the rounds (rounds x batch)
    batch: int = 32             # frames per round: one gradient step each
    pretune_steps: int = 600    # decoder steps through the calibrated model before the rounds
    lr: float = 0.002           # the rounds' learning rate (cosine to zero)
    eval_frames: int = 32       # held-out seeds captured before and after
    seed: int = 11
    name: str | None = None
    scale: bool = True          # the rounds also refine the encoder's output scale (per-seed intensity)
    steps_per_round: int = 4    # gradient steps on each round's captures (the bench's residual kept)

    def check(self, pairs: int) -> None:
        for key in ("frames", "batch", "eval_frames", "steps_per_round"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptgenError(f"refine: {key} = {value!r}: expected a positive whole number")
        if self.pretune_steps < 0:
            raise OptgenError(f"refine: pretune_steps = {self.pretune_steps}: expected 0 or more")
        if self.batch > pairs // 2 or self.eval_frames > pairs - pairs // 2:
            raise OptgenError(f"refine: the model file keeps {pairs} teacher pairs: at most {pairs // 2} per round "
                              f"and {pairs - pairs // 2} held out (batch {self.batch}, eval frames {self.eval_frames})")
        if self.name is not None:
            try:
                check_model_name(self.name)
            except ValueError as exc:
                raise OptgenError(f"refine: {exc}") from None

    @property
    def rounds(self) -> int:
        return max(1, self.frames // self.batch)


def refine_model(bench, model: OpticalModel, out_dir: str | Path, optics, optics_record: dict, sigma_px: float,
                 settings: RefineSettings | None = None, *, minutes: float | None = None, log=print) -> Path | None:
    """Refine ``model``'s decoder on the open ``bench`` (module docstring); the new model file, or None
    when ``minutes`` ran out (run again with the same folder to resume)."""
    s = settings or RefineSettings()
    if model.teacher_noise is None or model.teacher_samples is None:
        raise OptgenError(f"{model.name}: the model file keeps no teacher pairs to refine toward")
    s.check(len(model.teacher_noise))
    out = Path(out_dir)
    name = s.name or f"{model.name}-refined"
    model_path = out / f"{name}.npz"
    if model_path.exists():
        raise OptgenError(f"{model_path}: a model file is there already; refine never overwrites one "
                          f"(choose another --out or --name)")
    out.mkdir(parents=True, exist_ok=True)
    identity = {"base_model": model.id, "bench": bench.config.name, "calibrations": bench.calibration_ids(),
                "optics": optics_record, "settings": dataclasses.asdict(s)}
    student = student_from(model, optics, sigma_px)
    for p in student.encoder.parameters():
        p.requires_grad_(False)
    trained = [student.decoder_logits] + (_scale_head(student) if s.scale else [])
    opt = torch.optim.Adam(trained, lr=s.lr, betas=(0.5, 0.999))
    state = _load(out / CHECKPOINT, identity, student, opt)
    started = time.monotonic()
    half = len(model.teacher_noise) // 2
    noise = np.asarray(model.teacher_noise, np.float32)
    targets = np.asarray(model.teacher_samples, np.float32)
    held = list(range(half, half + s.eval_frames))
    judge = _Judge()

    if state["stage"] == "before":
        images = _capture(bench, model, out / "rounds" / "before", noise[held], held,
                          model.decoder_phase[model.wavelengths_nm[0]], f"model:{model.id}", log)
        state["eval_before"] = {**_scores(images, targets[held]), **_judged(judge, images)}
        state["stage"] = "pretune"
        _save(out / CHECKPOINT, identity, student, opt, state)
    if state["stage"] == "pretune":
        if s.pretune_steps:
            log(f"refine: {s.pretune_steps} decoder steps through the calibrated model")
            losses = fine_tune_decoder(student, noise[:half], targets[:half], s.pretune_steps, log=log)
            state["pretune_loss"] = [float(np.mean(losses[:20])), float(np.mean(losses[-20:]))]
        state["stage"], state["round"] = "rounds", 0
        _save(out / CHECKPOINT, identity, student, opt, state)
    for p in trained[1:]:            # the pretune's decoder steps froze the whole encoder
        p.requires_grad_(True)
    while state["stage"] == "rounds" and state["round"] < s.rounds:
        r = state["round"]
        for g in opt.param_groups:
            g["lr"] = s.lr * 0.5 * (1 + np.cos(np.pi * r / s.rounds))
        idx = np.random.default_rng([s.seed, r]).choice(half, s.batch, replace=False)
        phase = student.decoder_phase().detach().numpy()[0]
        images = _capture(bench, model, out / "rounds" / f"r{r:04d}", noise[idx], [int(i) for i in idx], phase,
                          f"refine:{model.id}:round{r}", log)
        state["history"].append({"round": r, **_step(student, opt, noise[idx], images, targets[idx],
                                                     s.steps_per_round), **_judged(judge, images)})
        state["round"] = r + 1
        _save(out / CHECKPOINT, identity, student, opt, state)
        h = state["history"][-1]
        log(f"refine round {r + 1}/{s.rounds}: bench loss {h['bench_loss']:.4g}, model loss {h['model_loss']:.4g}")
        if minutes is not None and time.monotonic() - started > minutes * 60 and state["round"] < s.rounds:
            log(f"refine: stopping after {minutes} min at round {state['round']}; run again to resume")
            return None
    if state["stage"] == "rounds":
        state["stage"] = "after"
        _save(out / CHECKPOINT, identity, student, opt, state)
    phase = student.decoder_phase().detach().numpy()[0]
    images = _capture(bench, model, out / "rounds" / "after", noise[held], held, phase, f"refined:{model.id}", log)
    state["eval_after"] = {**_scores(images, targets[held]), **_judged(judge, images)}
    _pictures(out, state, targets[held], RunFile(out / "rounds" / "before" / "run.h5"), images)
    frames = s.eval_frames * 2 + s.batch * len(state["history"])
    info = {**(model.info or {}), "refined": {
        **{k: v for k, v in identity.items() if k != "settings"}, "settings": dataclasses.asdict(s),
        "frames_captured": frames, "rounds": len(state["history"]), "teacher_pairs_used": [0, half],
        "eval_before": state["eval_before"], "eval_after": state["eval_after"]}}
    info["refined"]["scale_refined"] = bool(s.scale)
    refined = dataclasses.replace(model, name=name, decoder_phase={model.wavelengths_nm[0]: phase}, info=info,
                                  weights=_encoder_weights(student, model) if s.scale else model.weights)
    path = save_model(model_path, refined)
    (out / "refine.json").write_text(json.dumps({"model": str(path), **info["refined"],
                                                 "history": state["history"]}, indent=2) + "\n")
    return path


# --- the encoder's output scale ---------------------------------------------------------------------
def _last_layer(student) -> torch.nn.Linear:
    """The encoder's last layer: the seed values, then the log-scale, of each colour."""
    return [m for m in student.encoder if isinstance(m, torch.nn.Linear)][-1]


def _scale_head(student) -> list[torch.Tensor]:
    """The encoder's last layer (weight and bias), made trainable in its scale outputs only: the rows
    that make the seed values get no gradient, so the seeds the bench shows never change."""
    last = _last_layer(student)
    seed_outputs = len(student.wavelengths_nm) * student.geom.seed_superpixels ** 2
    keep = torch.zeros(last.out_features, dtype=torch.bool)
    keep[seed_outputs:] = True
    for p in (last.weight, last.bias):
        p.requires_grad_(True)
        p.register_hook(lambda g, keep=keep: g * (keep[:, None] if g.dim() == 2 else keep))
    return [last.weight, last.bias]


def _encoder_weights(student, model: OpticalModel) -> list[tuple[np.ndarray, np.ndarray]]:
    """``model``'s encoder weights with the student's last layer (its scale outputs refined)."""
    last = _last_layer(student)
    w = last.weight.detach().numpy().T.astype(np.float32)
    return [*model.weights[:-1], (w, last.bias.detach().numpy().astype(np.float32))]


# --- one round ------------------------------------------------------------------------------------
def _capture(bench, model: OpticalModel, folder: Path, noise: np.ndarray, labels: list[int], decoder: np.ndarray,
             decoder_id: str, log) -> np.ndarray:
    """The registered frames (N, n, n) of ``noise``'s seeds shown with ``decoder``, captured as a run in
    ``folder`` (resumed where an earlier try stopped; reused where it finished)."""
    seeds = NoiseSeedSource(model, noise, labels)
    path = folder / "run.h5"
    status = None
    if path.is_file():
        with RunFile(path) as f:
            status = f.status()["status"]
    elif folder.exists():
        shutil.rmtree(folder)                        # made but never written to: nothing captured there
    if status != "complete":
        result = run_generation(bench, seeds, decoder, decoder_id, folder, len(labels), resume=path.is_file(),
                                run_args={"refine": folder.name})
        if result.status != "complete":
            raise OptgenError(f"{folder}: the capture stopped ({result.summary.get('stop_reason') or result.status}); "
                              f"run the same command again to resume")
    with RunFile(path) as f:
        order = np.argsort(f.indices)
        images = f.images()[order].astype(np.float32)
        saturated = f.meta("saturated_pixels")
        dark = f.dark
    if np.mean(saturated > 0) > SATURATED_SHARE:
        raise OptgenError(f"{folder}: {int(np.sum(saturated > 0))} of {len(saturated)} frames have saturated pixels: "
                          f"the camera is overdriven; lower [laser] power_mw or [camera] exposure_ms in the bench file")
    peaks = images.reshape(len(images), -1).max(axis=1)
    # a camera pixel's noise in the dark frame (a registered pixel averages several: less noise)
    dark = np.asarray(dark if dark is not None else np.zeros(1), np.float64)
    noise_level = 1.4826 * float(np.median(np.abs(dark - np.median(dark)))) + 1.0
    if float(np.median(peaks)) < DARK_SNR * noise_level or float(np.median(peaks)) <= 0:
        raise OptgenError(f"{folder}: the frames show no light (brightest pixels {float(np.median(peaks)):.3g} counts "
                          f"above dark); check the laser, the shutter and that the beam reaches the camera")
    log(f"  captured {len(images)} frames -> {folder}")
    return images


def _step(student, opt, noise: np.ndarray, captured: np.ndarray, targets: np.ndarray, steps: int = 1) -> dict:
    """Physics-aware steps on one round's captures: the bench's images in the forward pass, the model's
    gradient. The first step is the plain one, ``y = y_model + (y_bench - y_model).detach()``; each
    further step keeps what the bench added to the model at capture (``y_bench - y_model`` then) on top
    of the model's new images: the decoder moves little in a step, so the residual still holds, and
    one round's frames give ``steps`` steps (on the realistic twin 4 steps a round took the held-out
    paired r from 0.9754 to 0.9769 with the same frames)."""
    x = torch.from_numpy(noise)
    with torch.no_grad():
        _, log_scale = student.encode(x)
    scaled = torch.from_numpy(captured) * torch.exp(log_scale[:, 0])[:, None, None]
    target = torch.from_numpy(targets)
    for step in range(steps):
        y_model = student(x)[:, 0]
        if step == 0:                                # the model's images at capture, and what the bench added
            y_first = y_model.detach()
            gain = (y_first * scaled).sum() / torch.clamp((scaled * scaled).sum(), min=1e-30)
            y_bench = gain * scaled                  # counts -> the teacher's units, one gain per round
            residual = y_bench - y_first
        loss = torch.mean((y_model + residual - target) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            bench_loss = float(loss.detach())
    return {"bench_loss": bench_loss, "model_loss": float(torch.mean((y_first - target) ** 2)),
            "bench_vs_model_r": pearson_r(y_bench.numpy(), y_first.numpy()),
            "bench_vs_target_r": pearson_r(y_bench.numpy(), targets)}


def _scores(images: np.ndarray, targets: np.ndarray) -> dict:
    """Captured against the teacher's images for the same noise: mean per-frame Pearson r."""
    r = [pearson_r(i, t) for i, t in zip(images, targets)]
    return {"paired_r_mean": float(np.mean(r)), "paired_r_min": float(np.min(r)), "frames": len(r)}


class _Judge:
    """The digits judge (lab.model.evaluate), made on first use for the frames' size."""

    def __init__(self):
        self.judge = None

    def scores(self, images: np.ndarray) -> dict:
        if self.judge is None:
            from optgen.lab.model.evaluate import DigitsJudge

            self.judge = DigitsJudge(image_size=images.shape[-1])
        return self.judge.scores(images)


def _judged(judge: _Judge, images: np.ndarray) -> dict:
    """The judge's confident share and inception score of the captured frames."""
    scores = judge.scores(images)
    return {"confident": scores["confident_fraction"], "inception": scores["inception_score"]}


# --- checkpoint ----------------------------------------------------------------------------------
def _save(path: Path, identity: dict, student, opt, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    last = _last_layer(student)
    torch.save({"identity": json.loads(json.dumps(identity)), "decoder_logits": student.decoder_logits.detach(),
                "encoder_last": {k: v.detach() for k, v in last.state_dict().items()},
                "optimizer": opt.state_dict(), "state": state}, tmp)
    os.replace(tmp, path)


def _load(path: Path, identity: dict, student, opt) -> dict:
    if not path.is_file():
        return {"stage": "before", "round": 0, "history": []}
    saved = torch.load(path, weights_only=False)
    if saved["identity"] != json.loads(json.dumps(identity)):
        differ = sorted(k for k in identity if saved["identity"].get(k) != json.loads(json.dumps(identity[k])))
        raise OptgenError(f"{path}: refined so far with another {', '.join(differ)}; resume with the same model, "
                          f"bench, calibrations and settings, or refine into a new folder")
    with torch.no_grad():
        student.decoder_logits.copy_(saved["decoder_logits"])
        last = _last_layer(student)
        for key, value in saved.get("encoder_last", {}).items():
            getattr(last, key).copy_(value)
    opt.load_state_dict(saved["optimizer"])
    return saved["state"]


# --- pictures -------------------------------------------------------------------------------------
def _pictures(out: Path, state: dict, targets: np.ndarray, before: RunFile, after: np.ndarray) -> None:
    """Contact sheets (teacher and captured side by side) before and after, and per round the losses,
    r and the judge's scores of the captured frames."""
    from optgen.lab.runfile.contact_sheet import write_contact_sheet

    with before:
        first = before.images()[np.argsort(before.indices)]
    for label, images in (("before", first), ("after", after)):
        pairs = np.stack([np.asarray(targets[:16], np.float32), np.asarray(images[:16], np.float32)], axis=1)
        write_contact_sheet(out / f"sheet_{label}.png", pairs.reshape(-1, *images.shape[1:]), columns=8)
    history = state["history"]
    if history:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
        rounds = [h["round"] + 1 for h in history]
        axes[0].plot(rounds, [h["bench_loss"] for h in history], label="bench (captured)")
        axes[0].plot(rounds, [h["model_loss"] for h in history], label="calibrated model")
        axes[0].set(xlabel="round", ylabel="loss against the teacher", yscale="log")
        axes[0].legend()
        axes[1].plot(rounds, [h["bench_vs_target_r"] for h in history], label="captured vs teacher")
        axes[1].plot(rounds, [h["bench_vs_model_r"] for h in history], label="captured vs model")
        axes[1].set(xlabel="round", ylabel="Pearson r")
        axes[1].legend()
        axes[2].plot(rounds, [h["confident"] for h in history], label="confident share")
        axes[2].plot(rounds, [h["inception"] / 10 for h in history], label="inception score / 10")
        axes[2].set(xlabel="round", ylabel="judge (captured frames)", ylim=(0, 1.05))
        axes[2].legend()
        from matplotlib.ticker import MaxNLocator

        for ax in axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        fig.savefig(out / "rounds.png", dpi=100)
        plt.close(fig)
