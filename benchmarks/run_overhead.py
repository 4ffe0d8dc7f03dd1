"""Software overhead per frame on the run loop's critical path at 1080 x 1920 (instrumented).

The small twin bench with a 1920 x 1080 encoding SLM and a 1920 x 1080 camera, on the virtual
clock, so waits cost nothing; the loop times itself and subtracts the time spent inside device
calls (upload, capture), waits and the storage queue (a full queue is storage's time). What is
left is the loop's own work per frame: taking the prepared pattern, the scheduling, the
clean-frame check, handing the frame on. Seed patterns (seed -> phase -> LUT -> gray levels,
1920 x 1080) are prepared ahead on their own thread; their cost is printed beside, as is the
storage worker's time per frame (registration, laser check, HDF5 write). Baselines in the same
run: one ``np.copyto`` of a 1080 x 1920 uint16 frame (what handing a frame on cannot beat), and
for the preparation, the whole panel's conversion (what it did before it converted the seed's
window only), measured in turn with the window's.

Usage:  python benchmarks/run_overhead.py [--frames N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import small_bench_text
from optgen.lab.bench.parse import parse_bench
from optgen.lab.run.capture_loop import PatternPreparer
from optgen.lab.run.decoder import load_decoder_phase
from optgen.lab.run.generate import run_generation
from optgen.lab.run.patterns import SeedGrayLevels, seed_to_slm_phase
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder


def conversion_ms(slm, seeds, superpixel_px: int, repeats: int = 40) -> tuple[float, float]:
    """Median ms of a seed's gray levels by ``SeedGrayLevels`` (its window) and by converting the
    whole pattern, in turn (the same seeds; the equality is a test's)."""
    window, whole = [], []
    convert = SeedGrayLevels(slm, superpixel_px)
    convert(seeds.seed(0).phase)                       # the zero pattern's gray levels, once
    for i in range(repeats):
        seed = seeds.seed(i).phase
        t0 = time.perf_counter()
        convert(seed)
        t1 = time.perf_counter()
        slm.phase_to_gray(seed_to_slm_phase(seed, superpixel_px, slm.shape))
        t2 = time.perf_counter()
        window.append(t1 - t0)
        whole.append(t2 - t1)
    return float(np.median(window)) * 1e3, float(np.median(whole)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    text = small_bench_text({("encoding_slm", "resolution"): "[1920, 1080]", ("camera", "resolution"): "[1920, 1080]",
                             ("laser", "power_mw"): "0.001"})
    cfg = parse_bench(text, "overhead 1080x1920")
    n = cfg.geometry.seed_superpixels
    seeds = EncoderSeedSource(PlaceholderEncoder(n * n), n)
    phase, decoder_id = load_decoder_phase("flat", cfg.geometry.decoder_px)
    with tempfile.TemporaryDirectory() as tmp:
        here = os.getcwd()
        os.chdir(tmp)
        os.environ["OPTGEN_DATA_DIR"] = str(tmp)  # nor a store in the user data folder
        try:
            with build_bench(cfg) as bench:
                prep = PatternPreparer(bench.encoding_slm, seeds, cfg.geometry.superpixel_px, range(20), ahead=1)
                t0 = time.perf_counter()
                for _ in range(20):
                    prep.next()
                prepare_ms = (time.perf_counter() - t0) / 20 * 1e3
                prep.close()
                window_ms, whole_ms = conversion_ms(bench.encoding_slm, seeds, cfg.geometry.superpixel_px)
                result = run_generation(bench, seeds, phase, decoder_id, Path(tmp) / "run", args.frames)
        finally:
            os.chdir(here)
    frame, dst = np.zeros((1080, 1920), np.uint16), np.empty((1080, 1920), np.uint16)
    t0 = time.perf_counter()
    for _ in range(200):
        np.copyto(dst, frame)
    copy_ms = (time.perf_counter() - t0) / 200 * 1e3
    o = result.summary["critical_path_overhead_ms"]
    print(f"run loop at 1080x1920, {args.frames} frames (pipelined): own work per frame median {o['median']:.3f} ms, "
          f"p99 {o['p99']:.3f} ms, max {o['max']:.3f} ms (target <= 1 ms)")
    print(f"  baseline: copying one 1080x1920 uint16 frame {copy_ms:.3f} ms; ratio median/copy "
          f"{o['median'] / copy_ms:.2f}")
    print(f"  off the critical path: preparing a pattern {prepare_ms:.1f} ms (thread), storage "
          f"{result.summary.get('store_ms_per_frame', float('nan')):.2f} ms per frame (worker)")
    print(f"  a seed's gray levels: its window converted {window_ms:.2f} ms | the whole 1080x1920 pattern "
          f"converted (baseline, in turn) {whole_ms:.2f} ms | speed-up {whole_ms / window_ms:.1f}x")
    print(f"\ncommand: python benchmarks/run_overhead.py --frames {args.frames} ({os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
