"""One panel for both SLMs against two panels, on the twin (issue 25, item 1).

The embedded twin (two panels) and the same twin with its two SLMs made the two halves of one panel
(`optgen config --dump --one-panel`: one liquid crystal, one refresh, the decoder re-sent with every
seed) are each calibrated from a fresh store (`calibrate all`), checked against the planted truths,
and run with the shipped model (N frames, the same seeds); the digits judge scores the frames. The
figure: the one-panel bench's confident share within 2 points of the two-panel bench's; its frame
rate beside the two-panel rate measured in the same run (the baseline).

Usage:  python benchmarks/one_panel.py [--frames N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from optgen import open_bench
from optgen.calibration.twin_truth import truth_errors
from optgen.lab.bench.examples import one_panel_bench_text
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.model.evaluate import DigitsJudge


def measure(text: str, name: str, frames: int) -> dict:
    config = parse_bench(text, name)
    with tempfile.TemporaryDirectory() as tmp, open_bench(config, calibrations=Path(tmp)) as bench:
        t0 = time.perf_counter()
        report = bench.calibrate("all")
        calibrate_s = time.perf_counter() - t0
        errors = truth_errors(report, bench.devices.truths, config.light_path)
        t0 = time.perf_counter()
        run = bench.generate(frames, seed=7)
        run_s = time.perf_counter() - t0
    judge = DigitsJudge(image_size=run.images.shape[-1])
    _, confidence = judge.classify(run.images)
    return {"confident": float(np.mean(confidence >= 0.9)), "frames_per_s": frames / run_s,
            "calibrate_s": calibrate_s, "truth": errors}


def _truth_line(errors: dict) -> str:
    parts = []
    for key, value in sorted(_flatten(errors).items()):
        if isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
    return ", ".join(parts)


def _flatten(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    two = measure(default_bench_text(), "two panels", args.frames)
    one = measure(one_panel_bench_text(), "one panel", args.frames)
    for name, r in (("two panels (baseline)", two), ("one panel", one)):
        print(f"{name:22s}: {r['confident']:6.1%} confidently classified, {r['frames_per_s']:5.1f} frames/s "
              f"(run on the wall clock), calibrate all {r['calibrate_s']:.1f} s")
        print(f"{'':22s}  against the planted truths: {_truth_line(r['truth'])}")
    print(f"one panel - two panels: {100 * (one['confident'] - two['confident']):+.1f} points confident "
          f"(target within 2); frame rate ratio {one['frames_per_s'] / two['frames_per_s']:.2f}")
    print(f"\ncommand: python benchmarks/one_panel.py --frames {args.frames}")


if __name__ == "__main__":
    main()
