"""Generation on request: `optgen run --class K` on the twin, judged by the digits classifier.

On the embedded twin after `calibrate all` (a fresh store), the shipped model generates N frames
for each class 0-9 (``Bench.generate(..., label=K)``); the judge classifies every frame. The
figure is the share judged as the class requested (issue 24: >= 90 %); the baseline, measured in
the same run, is an unconditioned run of 10 N frames: the share of its frames judged as any one
class (what asking would give if the request did nothing, about 10 %).

``--colours``: the shipped three-colour model on the embedded three-colour twin after ``optgen
calibrate all --colour NM`` for each colour (``run_colours(..., class_index=K)``, what ``optgen run
--colours --class K`` runs), each RGB image judged on its channel sum.

Usage:  python benchmarks/class_request.py [--frames N] [--bench FILE | --colours]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from optgen import open_bench
from optgen.lab.model.evaluate import DigitsJudge


def _one_colour(bench_file: Path | None, frames: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(the unconditioned run's images, each class's images) on the calibrated one-colour twin."""
    with tempfile.TemporaryDirectory() as tmp, open_bench(bench_file, calibrations=Path(tmp)) as bench:
        bench.calibrate("all")
        plain = bench.generate(10 * frames, seed=1).images
        return plain, {k: bench.generate(frames, seed=100 + k, label=k).images for k in range(10)}


def _colours(frames: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The same on the embedded three-colour twin, each colour calibrated: RGB images' channel sums."""
    from optgen.lab.bench.examples import rgb_bench_text
    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.cli import main as optgen
    from optgen.lab.run.colour_run import run_colours
    from optgen.lab.run.sources import bench_model

    with tempfile.TemporaryDirectory() as tmp:
        bench_file, store = Path(tmp) / "rgb.toml", Path(tmp) / "calibrations"
        bench_file.write_text(rgb_bench_text())
        cfg = parse_bench(bench_file.read_text(), str(bench_file))
        model = bench_model(cfg, bench_file.parent)
        for nm in model.wavelengths_nm:
            assert optgen(["calibrate", "all", "--colour", f"{nm:g}", "--bench", str(bench_file), "--store",
                           str(store), "--quiet"]) == 0

        def images(name: str, count: int, seed: int, class_index: int | None) -> np.ndarray:
            out = Path(tmp) / name
            assert run_colours(cfg, model, out, count, random_seed=seed, calibrations=store,
                               bench_dir=bench_file.parent, class_index=class_index).status == "complete"
            return np.load(out / "rgb.npy").sum(axis=-1)

        return images("plain", 10 * frames, 1, None), {k: images(f"class{k}", frames, 100 + k, k) for k in range(10)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per class")
    parser.add_argument("--bench", type=Path, default=None, help="bench file (default: the embedded twin)")
    parser.add_argument("--colours", action="store_true", help="the three-colour model on the three-colour twin")
    args = parser.parse_args()
    if args.colours and args.bench is not None:
        parser.error("--colours runs the embedded three-colour twin: not with --bench")
    plain, per_class = _colours(args.frames) if args.colours else _one_colour(args.bench, args.frames)
    judge = DigitsJudge(image_size=plain.shape[-1])
    labels, _ = judge.classify(plain)
    baseline = np.bincount(labels, minlength=10) / len(labels)
    rows = []
    for k, images in per_class.items():
        judged, confidence = judge.classify(images)
        rows.append((k, float(np.mean(judged == k)), float(np.mean((judged == k) & (confidence >= 0.9)))))
    for k, share, confident in rows:
        print(f"class {k}: {share:6.1%} judged as requested ({confident:6.1%} confidently) | unconditioned run: "
              f"{baseline[k]:6.1%} of frames judged {k}")
    overall = float(np.mean([share for _, share, _ in rows]))
    print(f"all classes, {args.frames} frames each: {overall:.1%} judged as requested | unconditioned "
          f"baseline {float(np.mean(baseline)):.1%} | ratio {overall / float(np.mean(baseline)):.1f}x")
    print(f"\ncommand: python benchmarks/class_request.py --frames {args.frames}"
          + (f" --bench {args.bench}" if args.bench else "") + (" --colours" if args.colours else ""))


if __name__ == "__main__":
    main()
