"""One student training step (forward + backward) on the default bench's geometry, with glibc's
default allocator settings (the baseline) and inside ``heap_kept`` as ``optgen train`` runs it.

The (batch, 512, 512) complex64 tensors of a step are 33.5 MB at batch 16, above glibc's
largest mmap threshold: with the defaults each is a fresh, kernel-zeroed mapping.

Usage:  python benchmarks/train_step.py [--batch 16] [--steps 15]   (needs the train extra)
"""

from __future__ import annotations

import argparse
import resource

import numpy as np
import torch
from _timing import median_ms

from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.model import OpticalGeometry
from optgen.lab.model.memory import heap_kept
from optgen.lab.model.student import OpticalStudent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--grid", type=int, default=512)
    args = parser.parse_args()

    geom = OpticalGeometry.from_bench(parse_bench(default_bench_text(), "default"), args.grid)
    torch.manual_seed(0)
    student = OpticalStudent(geom, noise_dim=64)
    noise = torch.randn(args.batch, 64)
    target = torch.rand(args.batch, 1, geom.output_pixels, geom.output_pixels)
    losses = []

    def step() -> None:
        loss = torch.mean((student(noise, shift=(1, -1)) - target) ** 2)
        student.zero_grad()
        loss.backward()
        losses.append(loss.item())

    baseline = median_ms(step, args.steps)
    with heap_kept() as active:
        kept = median_ms(step, args.steps)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert np.isfinite(losses).all() and len(set(losses)) == 1, "the same step must give the same loss"
    print(f"student step, batch {args.batch}, grid {geom.grid_px}, {torch.get_num_threads()} threads: "
          f"glibc defaults {baseline:.0f} ms | heap kept {kept:.0f} ms ({'on' if active else 'not available here'}) "
          f"| ratio {baseline / kept:.2f}x | peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
