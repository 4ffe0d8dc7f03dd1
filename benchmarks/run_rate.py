"""Frame rate of `optgen run` on the hardware-timed twin against the rate the hardware allows.

The twin runs on the wall clock: SLMs of 2 frames latency and 10 ms settle at 60 Hz and at
500 Hz, a camera of 100 frames/s (exposure 0.1 ms + readout 9.9 ms). The grid and camera are
the test suite's small bench (256 x 256 grid, 320 x 256 camera) so that the twin's own computation (it draws every frame) stays
well inside a frame period on this 2-core machine: the loop is measured, not the simulator.
Storage, registration and laser checks run as in any run (worker thread, HDF5, per-frame
durability).

Rates come from the stored frames' own timestamps (first to last frame of the run), the
ideal from the same timing:
- ``wait`` / ``trigger`` (one pattern at a time): an upload is latched at the SLM's next
  refresh edge, then latency + settle + exposure + readout pass before the frame is in, so one
  frame per ``frame_s * ceil((latency + settle + exposure + readout) / frame_s)``;
- ``pipelined`` (upload ahead): a pattern must be held from its settle to the end of its
  exposure before the next may move, and the camera needs exposure + readout per frame, so one
  frame per ``max(frame_s * ceil((settle + exposure) / frame_s), exposure + readout)``;
- ``trigger`` (the SLM's frame-shown output triggers the camera after the settle time, uploads
  ahead): the next pattern may move once the exposure has ended, and its trigger must find the
  camera armed: a camera that overlaps exposure and readout (``trigger_overlap = "readout"``)
  is armed when the exposure ends, one that does not after the readout, so one frame per
  ``frame_s * ceil(max(settle + exposure [+ readout], readout) / frame_s)``. Measured with both
  cameras.

Usage:  python benchmarks/run_rate.py [--frames N]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import small_bench_text
from optgen.lab.bench.parse import parse_bench
from optgen.lab.run.decoder import load_decoder_phase
from optgen.lab.run.generate import run_generation
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder

MODES = (("pipelined", "off"), ("wait", "off"), ("trigger", "off"), ("trigger", "readout"))


def bench_text(refresh_hz: float, overlap: str = "off") -> str:
    """The test suite's small bench (256 x 256 grid, 320 x 256 camera) on the wall clock."""
    return small_bench_text({("encoding_slm", "refresh_hz"): str(refresh_hz),
                             ("decoding_slm", "refresh_hz"): str(refresh_hz),
                             ("camera", "readout_ms"): "9.9", ("run", "timing"): '"wall"',
                             ("twin.camera", "trigger_overlap"): f'"{overlap}"'})


def ideal_period_s(sync: str, slm, exposure_s: float, readout_s: float, overlap: str = "off") -> float:
    frames = lambda seconds: slm.frame_s * math.ceil(seconds / slm.frame_s - 1e-9)   # noqa: E731
    if sync == "pipelined":
        return max(frames(slm.settle_s + exposure_s), exposure_s + readout_s)
    if sync == "trigger":
        hold = slm.settle_s + exposure_s + (0.0 if overlap == "readout" else readout_s)
        return frames(max(hold, readout_s))
    return frames(slm.latency_s + slm.settle_s + exposure_s + readout_s)


def measure(refresh_hz: float, sync: str, frames: int, out: Path, overlap: str = "off") -> dict:
    cfg = parse_bench(bench_text(refresh_hz, overlap), f"run rate {refresh_hz:g} Hz")
    n = cfg.geometry.seed_superpixels
    seeds = EncoderSeedSource(PlaceholderEncoder(n * n), n)
    phase, decoder_id = load_decoder_phase("flat", cfg.geometry.decoder_px)
    with build_bench(cfg) as bench:
        slm_timing, cam = bench.encoding_slm.timing, bench.camera
        ideal = ideal_period_s(sync, slm_timing, cam.exposure_s, cam.readout_s, overlap)
        result = run_generation(bench, seeds, phase, decoder_id, out, frames, sync=sync)
    with h5py.File(out / "run.h5", "r") as f:
        stamps = np.sort(f["meta/timestamp_s"][:])
        written = int(f["meta/written"][:].sum())
    period = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    s = result.summary
    return {"refresh_hz": refresh_hz, "sync": sync, "overlap": overlap, "fps": 1 / period, "ideal_fps": 1 / ideal, "ratio": ideal / period,
            "written": written, "frames": frames, "retakes": s["retakes"], "overhead": s["critical_path_overhead_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        here = os.getcwd()
        os.chdir(tmp)  # an empty calibration store: nominal LUTs (timing does not depend on them)
        os.environ["OPTGEN_DATA_DIR"] = str(tmp)  # nor a store in the user data folder
        try:
            for refresh_hz in (60.0, 500.0):
                for sync, overlap in MODES:
                    folder = Path(tmp) / f"{refresh_hz:g}-{sync}-{overlap}"
                    r = measure(refresh_hz, sync, args.frames, folder, overlap)
                    mode = sync + (" (camera overlaps readout)" if overlap == "readout" else "")
                    print(f"SLM {refresh_hz:g} Hz (2 frames latency, 10 ms settle), camera 100 frames/s, {mode:34s}: "
                          f"{r['fps']:6.2f} frames/s | ideal {r['ideal_fps']:6.2f} | ratio {r['ratio']:.3f} | "
                          f"stored {r['written']}/{r['frames']} | retakes {r['retakes']} | loop overhead per frame "
                          f"median {r['overhead'].get('median')} ms, p99 {r['overhead'].get('p99')} ms", flush=True)
        finally:
            os.chdir(here)
    print(f"\ncommand: python benchmarks/run_rate.py --frames {args.frames} "
          f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
