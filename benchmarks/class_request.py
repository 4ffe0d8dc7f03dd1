"""Generation on request: `optgen run --class K` on the twin, judged by the digits classifier.

On the embedded twin after `calibrate all` (a fresh store), the shipped model generates N frames
for each class 0-9 (``Bench.generate(..., label=K)``); the judge classifies every frame. The
figure is the share judged as the class requested (issue 24: >= 90 %); the baseline, measured in
the same run, is an unconditioned run of 10 N frames: the share of its frames judged as any one
class (what asking would give if the request did nothing, about 10 %).

Usage:  python benchmarks/class_request.py [--frames N] [--bench FILE]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from optgen import open_bench
from optgen.lab.model.evaluate import DigitsJudge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per class")
    parser.add_argument("--bench", type=Path, default=None, help="bench file (default: the embedded twin)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, open_bench(args.bench, calibrations=Path(tmp)) as bench:
        bench.calibrate("all")
        plain = bench.generate(10 * args.frames, seed=1)
        judge = DigitsJudge(image_size=plain.images.shape[-1])
        labels, _ = judge.classify(plain.images)
        baseline = np.bincount(labels, minlength=10) / len(labels)
        rows = []
        for k in range(10):
            run = bench.generate(args.frames, seed=100 + k, label=k)
            judged, confidence = judge.classify(run.images)
            rows.append((k, float(np.mean(judged == k)), float(np.mean((judged == k) & (confidence >= 0.9)))))
    for k, share, confident in rows:
        print(f"class {k}: {share:6.1%} judged as requested ({confident:6.1%} confidently) | unconditioned run: "
              f"{baseline[k]:6.1%} of frames judged {k}")
    overall = float(np.mean([share for _, share, _ in rows]))
    print(f"all classes, {args.frames} frames each: {overall:.1%} judged as requested | unconditioned "
          f"baseline {float(np.mean(baseline)):.1%} | ratio {overall / float(np.mean(baseline)):.1f}x")
    print(f"\ncommand: python benchmarks/class_request.py --frames {args.frames}"
          + (f" --bench {args.bench}" if args.bench else ""))


if __name__ == "__main__":
    main()
