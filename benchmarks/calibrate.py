"""Figures of `optgen calibrate all` on the twin, against the truths the bench file planted.

1. A run of N fresh seeds on the uncalibrated bench (nominal LUTs, decoder centred on SLM2 as
   if it sat right, frames registered with the nominal sensor placement): Pearson r between each
   registered image and the calibrated-model prediction (lab.prediction) - the baseline.
2. `calibrate all` (camera, both LUTs in alternating rounds, alignment): each figure against the
   planted truth, patterns shown, wall time, and the time those patterns need at the SLMs'
   latency + settle (the ratio is the calibration-time figure; on the virtual clock the wall
   time is pure computation, with --wall the twin is hardware-timed).
3. The same N seeds again with the calibrations in force: Pearson r again.

Usage:  python benchmarks/calibrate.py [--frames N] [--wall] [--rounds R]
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
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.evaluate.prediction import run_agreement
from optgen.lab.run.generate import run_generation
from optgen.lab.run.sources import run_sources


def generate(cfg, store: Path, out: Path, frames: int) -> Path:
    seeds, decoder, decoder_id = run_sources(cfg, None, random_seed=20261124)
    with build_bench(cfg, store) as bench:
        run_generation(bench, seeds, decoder, decoder_id, out, frames)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--wall", action="store_true", help="hardware-timed twin (real waits)")
    args = parser.parse_args()
    text = default_bench_text()
    if args.wall:
        text = text.replace('timing = "virtual"', 'timing = "wall"')
    cfg = parse_bench(text, "benchmark bench")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = tmp / "calibrations"
        generate(cfg, store, tmp / "before", args.frames)
        r_before = run_agreement(tmp / "before", cfg)

        with build_bench(cfg, store) as bench:
            t0 = time.perf_counter()
            report = calibrate(bench, "all", CalibrationStore(store), rounds=args.rounds, truths=bench.truths)
            wall = time.perf_counter() - t0
            truth = truth_errors(report, bench.truths, bench.config.light_path)
        sigma = tuple(float(report.measurements[f"{k}.lut"].crosstalk_sigma_px)
                      for k in ("encoding_slm", "decoding_slm"))
        generate(cfg, store, tmp / "after", args.frames)
        r_after = run_agreement(tmp / "after", cfg, sigma, report.measurements["alignment"][1])

    c = report.counters
    print(f"calibrate all on the {'hardware-timed (wall clock)' if args.wall else 'virtual-clock'} twin, "
          f"{args.rounds} LUT rounds")
    for key, value in truth.items():
        print(f"  {key:<40} {value}")
    for key, value in report.figures.items():
        print(f"  {key:<40} {value}")
    print(f"  patterns shown {c['patterns_shown']}, frames {c['frames_captured']}, pipelined retakes {c['retakes']}")
    print(f"  wall time {wall:.2f} s; patterns x (latency + settle) {c['pattern_time_s']:.2f} s; "
          f"ratio {wall / c['pattern_time_s']:.2f}")
    print(f"twin agreement, {args.frames} fresh seeds (Pearson r of registered image vs calibrated-model prediction)")
    print(f"  uncalibrated: mean {np.mean(r_before):.4f}  min {np.min(r_before):.4f}")
    print(f"  calibrated:   mean {np.mean(r_after):.4f}  min {np.min(r_after):.4f}")


if __name__ == "__main__":
    main()
