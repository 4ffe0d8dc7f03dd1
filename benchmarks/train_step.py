"""One student training step (forward + backward) on the default bench's geometry: the band-limited
optics (``OpticalStudent.intensity``, issue 24) against the previous full-grid code
(``OpticalStudent.intensity_full_grid``, the same field to float32 precision), inside ``heap_kept``
as ``optgen train`` runs it; then the loss of each after the same optimizer steps from the same start.

The two paths alternate step by step, so a load that comes and goes on the machine reaches both;
the CPU time of the process (all threads) is printed beside the wall time, as it moves less with
the load (on a busy 2-core machine, two threads' every parallel operation waits for the other
thread's core: the medians then say more about the load than the code; the fastest steps less so).
``--allocators`` adds the earlier comparison of glibc's default allocator settings
with ``heap_kept`` (the (batch, 512, 512) complex64 tensors of the full-grid step are 33.5 MB at
batch 16, above glibc's largest mmap threshold: with the defaults each is a fresh, kernel-zeroed
mapping).

Usage:  python benchmarks/train_step.py [--batch 16] [--grid 512] [--steps 15] [--colours 1]
                                        [--train-steps 20] [--allocators] [--threads N]   (needs the train extra)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np
import torch
from _timing import median_ms

from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.model import OpticalGeometry
from optgen.lab.model.memory import heap_kept
from optgen.lab.model.student import OpticalStudent

COLOURS_NM = (638.0, 520.0, 450.0)
SHIFT, ROTATION_DEG = (0.6, -1.3), 0.05          # a training step's subpixel misplacement


def _student(geom: OpticalGeometry, colours: int, seed: int = 0) -> OpticalStudent:
    torch.manual_seed(seed)
    return OpticalStudent(geom, noise_dim=64, wavelengths_nm=COLOURS_NM if colours == 3 else None)


def _timed(fn) -> tuple[float, float]:
    """(wall ms, process CPU ms) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def _step_times(student: OpticalStudent, batch: int, repeats: int) -> dict[bool, list[tuple[float, float]]]:
    """Wall and CPU ms of ``repeats`` steps of each path (full_grid True / False), alternating."""
    noise = torch.randn(batch, 64)
    target = torch.rand(batch, len(student.wavelengths_nm), student.geom.output_pixels, student.geom.output_pixels)

    def step(full_grid: bool) -> None:
        loss = torch.mean((student(noise, shift=SHIFT, rotation_deg=ROTATION_DEG, full_grid=full_grid) - target) ** 2)
        student.zero_grad()
        loss.backward()

    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    step(True), step(False)
    for _ in range(repeats):
        for full_grid in (True, False):
            times[full_grid].append(_timed(lambda: step(full_grid)))
    return times


def _trained_loss(geom: OpticalGeometry, colours: int, batch: int, steps: int, full_grid: bool) -> float:
    """The batch loss after ``steps`` optimizer steps (AdamW as ``lab.model.train``: its learning rates and
    betas, the scale started at the targets' mean) from the same start on the same batches."""
    student = _student(geom, colours)
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(4 * batch, 64, generator=gen)
    targets = torch.rand(4 * batch, len(student.wavelengths_nm), geom.output_pixels, geom.output_pixels,
                         generator=gen)
    with torch.no_grad():
        first = student(noise[:batch], realistic=False, full_grid=full_grid)
        student.log_scale_offset.fill_(float(np.log(targets.mean().item() / first.mean().item())))
    opt = torch.optim.AdamW([{"params": student.encoder.parameters(), "lr": 5e-4},
                             {"params": [student.decoder_logits], "lr": 2e-2}], betas=(0.5, 0.999), weight_decay=0.0)
    loss = torch.zeros(())
    for k in range(steps + 1):
        part = slice((k % 4) * batch, (k % 4 + 1) * batch)
        loss = torch.mean((student(noise[part], shift=SHIFT, rotation_deg=ROTATION_DEG, full_grid=full_grid)
                           - targets[part]) ** 2)
        if k == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.item())


def _allocators(student: OpticalStudent, batch: int, repeats: int) -> str:
    """The full-grid step with glibc's defaults against ``heap_kept`` (the earlier comparison)."""
    noise = torch.randn(batch, 64)
    target = torch.rand(batch, len(student.wavelengths_nm), student.geom.output_pixels, student.geom.output_pixels)

    def step() -> None:
        loss = torch.mean((student(noise, shift=(1, -1), full_grid=True) - target) ** 2)
        student.zero_grad()
        loss.backward()

    baseline = median_ms(step, repeats)
    with heap_kept() as active:
        kept = median_ms(step, repeats)
    return (f"full-grid step: glibc defaults {baseline:.0f} ms | heap kept {kept:.0f} ms "
            f"({'on' if active else 'not available here'}) | ratio {baseline / kept:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=15, help="timed steps of each path")
    parser.add_argument("--grid", type=int, default=512)
    parser.add_argument("--colours", type=int, choices=(1, 3), default=1)
    parser.add_argument("--train-steps", type=int, default=20, help="optimizer steps before the losses are compared")
    parser.add_argument("--allocators", action="store_true", help="also glibc's defaults against heap_kept")
    parser.add_argument("--threads", type=int, default=None, help="torch's threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    geom = OpticalGeometry.from_bench(parse_bench(default_bench_text(), "default"), args.grid)
    student = _student(geom, args.colours)
    load = os.getloadavg()[0]
    with heap_kept():
        times = _step_times(student, args.batch, args.steps)
        losses = {full: _trained_loss(geom, args.colours, args.batch, args.train_steps, full) for full in (True, False)}
    wall = {k: statistics.median(t for t, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"student step, batch {args.batch}, grid {geom.grid_px}, {args.colours} colour(s), "
          f"{torch.get_num_threads()} threads, load {load:.1f} at the start, median of {args.steps}:")
    print(f"  full grid (before) {wall[True]:.0f} ms wall, {cpu[True]:.0f} ms CPU | band-limited {wall[False]:.0f} ms "
          f"wall, {cpu[False]:.0f} ms CPU | ratio {wall[True] / wall[False]:.2f}x wall, {cpu[True] / cpu[False]:.2f}x CPU "
          f"(fastest steps {min(t for t, _ in times[True]):.0f} / {min(t for t, _ in times[False]):.0f} ms)")
    diff = abs(losses[False] - losses[True]) / losses[True]
    print(f"  loss after {args.train_steps} AdamW steps from the same start: full grid {losses[True]:.6g} | "
          f"band-limited {losses[False]:.6g} | relative difference {diff:.2e} | peak RSS {peak_mb:.0f} MB")
    if args.allocators:
        print("  " + _allocators(student, args.batch, args.steps))


if __name__ == "__main__":
    main()
