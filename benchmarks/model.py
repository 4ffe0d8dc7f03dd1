"""Figures of the optical generative model: encoder speed, and digits generated on the twin.

- encoder inference per seed in numpy (batch of one, as the run loop calls it), against the
  published MNIST encoder's size (1024 -> 1024 -> 1024 -> 1025 MLP) timed in the same run;
- N frames generated on the embedded simulated bench with the model, judged by the digits
  classifier (confident share, inception-style score, class spread, Frechet distance) next to
  the model's teacher samples judged the same way, and each frame's agreement with the twin's
  noiseless prediction.

Usage:  python benchmarks/model.py [--model FILE] [--frames N] [--lut-from-twin]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import median_ms

from lab.bench import build_bench
from lab.bench_file import default_bench_text, parse_bench
from lab.evaluate_run import evaluate_run
from lab.model import ModelSeedSource, OpticalGeometry, load_model
from lab.run import run_generation


def bench_encoder(model) -> None:
    source = ModelSeedSource(model, model.wavelengths_nm[0])
    k = iter(range(10**7))
    ours = median_ms(lambda: source.seed(next(k)), 300)
    rng = np.random.default_rng(0)
    dims = [1024, 1024, 1024, 1025]
    published = [(rng.standard_normal((a, b)).astype(np.float32), np.zeros(b, np.float32))
                 for a, b in zip(dims[:-1], dims[1:])]

    def paper_size():
        x = rng.standard_normal((1, 1024)).astype(np.float32)
        for w, b in published:
            x = np.maximum(x @ w + b, 0.2 * (x @ w + b))
        return x

    base = median_ms(paper_size, 300)
    print(f"encoder inference per seed (numpy, incl. noise draw and phase mapping): {ours:.3f} ms | "
          f"published-size MLP {base:.3f} ms | ratio {base / ours:.1f}x")


def bench_generation(model_spec: str, frames: int, lut_from_twin: bool) -> None:
    text = default_bench_text()
    text = text.replace('seed_source = "placeholder-encoder"', 'seed_source = "model"')
    text = text.replace('decoder_phase = "flat"', 'decoder_phase = "model"')
    text = text.replace('model = "digits-v1"', f'model = "{model_spec}"')
    cfg = parse_bench(text, "benchmark bench")
    model = load_model(model_spec)
    model.check_bench(OpticalGeometry.from_bench(cfg), cfg.wavelength_nm)
    with tempfile.TemporaryDirectory() as tmp, build_bench(cfg) as bench:
        if lut_from_twin:  # what a perfect LUT calibration would give
            for slm, key in ((bench.encoding_slm, "encoding_slm"), (bench.decoding_slm, "decoding_slm")):
                slm.set_gamma(bench.world._slms[key].truth.response_rad / (2 * np.pi))
        source = ModelSeedSource(model, cfg.wavelength_nm)
        decoder = model.decoder_phase[model.wavelengths_nm[0]]
        t0 = time.perf_counter()
        run_generation(bench, source, decoder, f"model:{model.id}", Path(tmp) / "run", frames)
        wall = time.perf_counter() - t0
        ev = evaluate_run(Path(tmp) / "run", model=model)
    g, t, a = ev["generated"], ev.get("teacher"), ev["twin_agreement"]
    lut = "LUT = planted response (ideal calibration)" if lut_from_twin else "nominal linear LUT (uncalibrated)"
    print(f"{frames} digits on the twin, {lut}, {frames / wall:.1f} frames/s:")
    print(f"  generated: confident {g['confident_fraction']:.1%}, inception score {g['inception_score']:.2f}, "
          f"Frechet {g['frechet_distance']:.2f}, classes {g['class_histogram']}")
    if t is not None:
        print(f"  teacher:   confident {t['confident_fraction']:.1%}, inception score {t['inception_score']:.2f}, "
              f"Frechet {t['frechet_distance']:.2f} | Frechet ratio generated/teacher "
              f"{g['frechet_distance'] / t['frechet_distance']:.2f}")
    print(f"  frame vs twin noiseless prediction: Pearson r mean {a['mean']:.3f}, min {a['min']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits-v1")
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    model = load_model(args.model)
    bench_encoder(model)
    bench_generation(args.model, args.frames, lut_from_twin=True)
    bench_generation(args.model, args.frames, lut_from_twin=False)


if __name__ == "__main__":
    main()
