"""The shipped model on the realistic twin (what real benches get wrong planted; decision 0012).

Columns, each a run of N frames of the shipped model judged as benchmarks/model.py judges them
(confident share, inception-style score, Frechet distance against the teacher) and against the
prediction from what the calibrations measured (Pearson r of each registered frame):

- ideal:        the default twin (nothing new planted) after ``optgen calibrate all``;
- uncalibrated: the realistic twin, no calibration;
- before:       the realistic twin after the calibrations of the last round (camera, LUTs, alignment);
- after:        the realistic twin after ``optgen calibrate all`` (wavefronts and distances too).

For ``after`` each calibration's error against the planted truth is printed, and with ``--wall``
the time of calibrate all on the hardware-timed realistic twin against its patterns x (latency +
settle).

Usage:  python benchmarks/real_bench.py [--frames N] [--only COLUMN] [--wall] [--wall-steps]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from optgen.calibration.procedure import calibrate
from optgen.calibration.store import CalibrationStore
from optgen.calibration.twin_truth import truth_errors
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.calibrations import load_bench_calibrations
from optgen.lab.bench.examples import realistic_bench_text
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.evaluate.prediction import calibrated_optics, run_agreement
from optgen.lab.evaluate.run import evaluate_run
from optgen.lab.model import SHIPPED_MODEL, load_model
from optgen.lab.run.generate import run_generation
from optgen.lab.run.sources import run_sources

COLUMNS = ("ideal", "uncalibrated", "before", "after")
STEPS = {"ideal": ("all",), "uncalibrated": (), "before": ("camera", "lut", "alignment"), "after": ("all",)}


def column(name: str, frames: int) -> dict:
    """One column: calibrate as the column says, run ``frames`` frames, judge them."""
    cfg = parse_bench(default_bench_text() if name == "ideal" else realistic_bench_text(), name)
    with tempfile.TemporaryDirectory() as tmp:
        store, out = Path(tmp) / "calibrations", Path(tmp) / "run"
        truth, calibrate_s = {}, 0.0
        for step in STEPS[name]:
            with build_bench(cfg, store) as bench:
                t0 = time.perf_counter()
                report = calibrate(bench, step, CalibrationStore(store), truths=bench.truths)
                calibrate_s += time.perf_counter() - t0
                truth.update(truth_errors(report, bench.truths, bench.config.light_path))
        seeds, decoder, decoder_id = run_sources(cfg, None, random_seed=20261205)
        t0 = time.perf_counter()
        with build_bench(cfg, store) as bench:
            run_generation(bench, seeds, decoder, decoder_id, out, frames)
        wall = time.perf_counter() - t0
        calibrations = load_bench_calibrations(cfg, store)
        sigma = tuple(float(calibrations.lut_records[k].results["crosstalk_sigma_px"])
                      if k in calibrations.lut_records else 0.0 for k in ("encoding_slm", "decoding_slm"))
        r = run_agreement(out, cfg, sigma, calibrations.decoder_placement(), calibrated_optics(calibrations, cfg))
        ev = evaluate_run(out, model=load_model(SHIPPED_MODEL))
    return {"name": name, "frames_per_s": frames / wall, "calibrate_s": calibrate_s, "truth": truth,
            "agreement": (float(np.mean(r)), float(np.min(r))), **ev}


def report(col: dict) -> None:
    g, t = col["generated"], col.get("teacher")
    print(f"{col['name']}: {g['count']} digits, {col['frames_per_s']:.1f} frames/s"
          + (f", calibrations {col['calibrate_s']:.0f} s" if col["calibrate_s"] else ""))
    print(f"  confident {g['confident_fraction']:.1%}, inception score {g['inception_score']:.2f}, "
          f"Frechet {g['frechet_distance']:.2f}"
          + (f" (teacher {t['frechet_distance']:.2f}, ratio {g['frechet_distance'] / t['frechet_distance']:.2f})"
             if t else ""))
    print(f"  frames vs the prediction from the calibrations: Pearson r mean {col['agreement'][0]:.3f}, "
          f"min {col['agreement'][1]:.3f}")
    for key, value in col["truth"].items():
        print(f"    {key:<44} {value}")


def wall_clock_calibration() -> None:
    """calibrate all on the hardware-timed realistic twin: wall time against patterns x (latency + settle)."""
    text = realistic_bench_text().replace('timing = "virtual"', 'timing = "wall"')
    cfg = parse_bench(text, "realistic, hardware-timed")
    with tempfile.TemporaryDirectory() as tmp, build_bench(cfg, Path(tmp)) as bench:
        t0 = time.perf_counter()
        rep = calibrate(bench, "all", CalibrationStore(Path(tmp)))
        wall = time.perf_counter() - t0
    c = rep.counters
    print(f"calibrate all, hardware-timed realistic twin: {wall:.1f} s for {c['patterns_shown']} patterns, "
          f"{c['frames_captured']} frames; patterns x (latency + settle) {c['pattern_time_s']:.1f} s; "
          f"ratio {wall / c['pattern_time_s']:.2f}")


def wall_clock_steps() -> None:
    """Each step of calibrate all on its own, on the hardware-timed realistic twin: where the time goes."""
    text = realistic_bench_text().replace('timing = "virtual"', 'timing = "wall"')
    cfg = parse_bench(text, "realistic, hardware-timed")
    with tempfile.TemporaryDirectory() as tmp:
        for step in ("camera", "lut", "wavefront", "alignment"):
            with build_bench(cfg, Path(tmp)) as bench:
                t0 = time.perf_counter()
                c = calibrate(bench, step, CalibrationStore(Path(tmp))).counters
                wall = time.perf_counter() - t0
            print(f"  {step:<10} {wall:5.1f} s, {c['patterns_shown']} patterns, {c['frames_captured']} frames, "
                  f"latency + settle {c['pattern_time_s']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--only", choices=(*COLUMNS, "none"), default=None, help="one column, or none")
    parser.add_argument("--wall", action="store_true", help="also time calibrate all on the hardware-timed twin")
    parser.add_argument("--wall-steps", action="store_true", help="also time each step alone on the hardware-timed twin")
    args = parser.parse_args()
    for name in COLUMNS:
        if args.only in (None, name):
            report(column(name, args.frames))
    if args.wall:
        wall_clock_calibration()
    if args.wall_steps:
        wall_clock_steps()
    print(f"\ncommand: python benchmarks/real_bench.py --frames {args.frames}"
          + (f" --only {args.only}" if args.only else "") + (" --wall" if args.wall else "")
          + (" --wall-steps" if args.wall_steps else ""))


if __name__ == "__main__":
    main()
