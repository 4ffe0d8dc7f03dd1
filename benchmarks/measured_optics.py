"""Does training through the measured optics help on the realistic twin? (issue 20 -> 21)

On the realistic twin (`optgen config --dump --realistic`), after `optgen calibrate all`:

- baseline: the shipped model as trained (nominal optics), run and judged as benchmarks/real_bench.py's
  "after" column does;
- fine-tuned: the same model with its decoder phase trained further for ``--steps`` steps through
  the optics the calibrations measured (`lab/model/bench_optics.py`: true d1/d2, the Gaussian
  beam, SLM2's wavefront under the decoder, both SLMs' unmodulated light), on the first half of the
  teacher pairs the model file keeps (250 of 500), encoder frozen; then run and judged the same way.

Both runs are judged against the other half of the teacher samples (250, held out from the
fine-tuning), so the Frechet distance does not reward remembering the targets.

Needs the train extra (torch). Usage: python benchmarks/measured_optics.py [--steps N] [--frames N]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from optgen.calibration.procedure import calibrate
from optgen.calibration.store import CalibrationStore
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.calibrations import load_bench_calibrations
from optgen.lab.bench.examples import edit_bench_text, realistic_bench_text
from optgen.lab.bench.parse import parse_bench
from optgen.lab.evaluate.prediction import calibrated_optics
from optgen.lab.evaluate.run import evaluate_run
from optgen.lab.model import SHIPPED_MODEL, load_model
from optgen.lab.model.bench_optics import bench_optics
from optgen.lab.model.fine_tune import fine_tune_decoder, student_from
from optgen.lab.model.shipped import save_model
from optgen.lab.run.generate import run_generation
from optgen.lab.run.sources import run_sources


def judged(cfg, store: Path, out: Path, frames: int, model) -> dict:
    seeds, decoder, decoder_id = run_sources(cfg, None, random_seed=20261205)
    with build_bench(cfg, store) as bench:
        run_generation(bench, seeds, decoder, decoder_id, out, frames)
    return evaluate_run(out, model=model)


def line(name: str, ev: dict) -> str:
    g, t = ev["generated"], ev.get("teacher")
    return (f"{name:<11} confident {g['confident_fraction']:.1%}, inception {g['inception_score']:.2f}, "
            f"Frechet {g['frechet_distance']:.2f}" + (f" (teacher {t['frechet_distance']:.2f})" if t else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.005)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = parse_bench(realistic_bench_text(), "realistic")
    model = load_model(SHIPPED_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "calibrations"
        with build_bench(cfg, store) as bench:
            calibrate(bench, "all", CalibrationStore(store))
        cals = load_bench_calibrations(cfg, store)
        sigma = float(cals.lut_records["decoding_slm"].results["crosstalk_sigma_px"])
        optics = bench_optics(calibrated_optics(cals, cfg), cfg, model.geometry.grid_px)
        student = student_from(model, optics, sigma)
        half = len(model.teacher_noise) // 2
        noise = model.teacher_noise[:half].astype(np.float32)
        targets = model.teacher_samples[:half].astype(np.float32)
        judge = dataclasses.replace(model)                       # the held-out half as the reference
        judge.teacher_samples = model.teacher_samples[half:]
        judge.teacher_noise = model.teacher_noise[half:]
        t0 = time.perf_counter()
        losses = fine_tune_decoder(student, noise, targets, args.steps, args.lr)
        minutes = (time.perf_counter() - t0) / 60
        phase = student.decoder_phase().detach().numpy()[0]
        tuned = dataclasses.replace(model, name="digits-v7-measured-optics",
                                    decoder_phase={model.geometry.wavelength_nm: phase},
                                    info={**model.info, "fine_tuned_through_measured_optics": args.steps})
        path = save_model(Path(tmp) / "tuned.npz", tuned)
        base = judged(cfg, store, Path(tmp) / "base", args.frames, judge)
        tuned_cfg = parse_bench(edit_bench_text(realistic_bench_text(), {("run", "model"): f'"{path}"'}), "tuned")
        after = judged(tuned_cfg, store, Path(tmp) / "tuned", args.frames, judge)
    print(f"realistic twin after calibrate all; {args.frames} frames each; fine-tune {args.steps} decoder steps "
          f"on {half} teacher pairs ({minutes:.1f} min), loss {np.mean(losses[:20]):.4g} -> {np.mean(losses[-20:]):.4g}; "
          f"judged against the other {len(model.teacher_noise) - half} teacher samples")
    print(line("shipped", base))
    print(line("fine-tuned", after))
    g0, g1 = base["generated"], after["generated"]
    print(f"ratio (fine-tuned / shipped): Frechet {g1['frechet_distance'] / g0['frechet_distance']:.2f}, "
          f"inception {g1['inception_score'] / g0['inception_score']:.3f}")
    print(f"\ncommand: python benchmarks/measured_optics.py --steps {args.steps} --frames {args.frames}")


if __name__ == "__main__":
    main()
