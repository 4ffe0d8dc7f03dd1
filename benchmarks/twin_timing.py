"""Frame rate of the hardware-timed twin (wall clock) against the rate its timing allows.

The loop is the run loop's timing-critical path: upload a seed pattern to the encoding SLM,
wait latency + settle (``--sync wait``) or let the SLM's frame-shown output trigger the camera
after the settle time (``--sync trigger``), capture. The twin is the embedded bench (published
800 x 800 grid, 1280 x 1024 camera) on a wall clock, with a camera at 100 frames/s (exposure
0.1 ms + readout 9.9 ms) and SLMs of 2 frames latency and 10 ms settle at 60 Hz and at 500 Hz.

The ideal, computed from the same timing: an upload is latched at the SLM's next refresh
edge; from that edge, latency + settle + exposure + readout pass before the frame is in; the
next upload then waits for the following edge. So one frame per
``frame_s * ceil((latency + settle + exposure + readout) / frame_s)``: no loop on this SLM and
camera can be faster. At 500 Hz that cycle (24 ms) is a whole number of SLM frames, so any
time spent between the end of a capture and the next upload costs a whole frame (2 ms, 8 %).

Usage:  python benchmarks/twin_timing.py [--frames N] [--grid PX]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import numpy as np

from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.run.patterns import seed_to_slm_phase
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder


def _replace(text: str, old: str, new: str, count: int = 1) -> str:
    if text.count(old) != count:
        raise RuntimeError(f"bench text: expected {count} x {old!r}")
    return text.replace(old, new)


def bench_text(refresh_hz: float, grid_px: int) -> str:
    text = default_bench_text()
    text = _replace(text, "refresh_hz = 60.0", f"refresh_hz = {refresh_hz}", 2)
    text = _replace(text, "readout_ms = 10.0", "readout_ms = 9.9")
    text = _replace(text, 'timing = "virtual"', 'timing = "wall"')
    text = _replace(text, "grid_px = [800, 800]", f"grid_px = [{grid_px}, {grid_px}]")
    return text


def ideal_period_s(slm_timing, exposure_s: float, readout_s: float, delay_s: float) -> float:
    cycle = slm_timing.latency_s + delay_s + exposure_s + readout_s
    return slm_timing.frame_s * math.ceil(cycle / slm_timing.frame_s - 1e-9)


def measure(refresh_hz: float, sync: str, frames: int, grid_px: int) -> dict:
    cfg = parse_bench(bench_text(refresh_hz, grid_px), f"twin timing {refresh_hz:g} Hz")
    with build_bench(cfg) as bench:
        slm, camera, clock = bench.encoding_slm, bench.camera, bench.clock
        n = cfg.geometry.seed_superpixels
        seeds = EncoderSeedSource(PlaceholderEncoder(n * n), n)
        patterns = [seed_to_slm_phase(seeds.seed(k).phase, cfg.geometry.superpixel_px, slm.shape)
                    for k in range(8)]
        bench.decoding_slm.set_phase(np.zeros(bench.decoding_slm.shape, np.float32))
        clock.sleep(bench.decoding_slm.timing.wait_s)
        bench.laser.set_power(cfg.laser.power_w)
        bench.laser.set_emission(True)
        delay = slm.timing.settle_s
        if sync == "trigger":
            camera.trigger_from(slm, delay_s=delay)
        ends = []
        for k in range(frames + 1):
            slm.set_phase(patterns[k % len(patterns)])
            if sync == "wait":
                clock.sleep(slm.timing.wait_s)
            camera.capture()
            ends.append(time.monotonic())
        period = (ends[-1] - ends[0]) / frames  # the first frame aligns the loop to the SLM's frames
        ideal = ideal_period_s(slm.timing, camera.exposure_s, camera.readout_s, delay)
        periods = np.diff(ends)
        return {"refresh_hz": refresh_hz, "sync": sync, "fps": 1 / period, "ideal_fps": 1 / ideal,
                "ratio": ideal / period, "late_frames": int(np.sum(periods > ideal * 1.02)),
                "frame_ahead": camera.frame_ahead_hits, "frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--grid", type=int, default=800)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        here = os.getcwd()
        os.chdir(tmp)  # an empty calibration store: nominal LUTs (timing does not depend on them)
        os.environ["OPTGEN_DATA_DIR"] = str(tmp)  # nor a store in the user data folder
        try:
            for refresh_hz in (60.0, 500.0):
                for sync in ("wait", "trigger"):
                    r = measure(refresh_hz, sync, args.frames, args.grid)
                    rows.append(r)
                    print(f"SLM {refresh_hz:g} Hz (2 frames latency, 10 ms settle), camera 100 frames/s, "
                          f"{sync:7s}: {r['fps']:.2f} frames/s | ideal {r['ideal_fps']:.2f} frames/s | "
                          f"ratio {r['ratio']:.3f} | frames later than ideal: {r['late_frames']}/{r['frames']} | "
                          f"computed ahead: {r['frame_ahead']}/{r['frames'] + 1}", flush=True)
        finally:
            os.chdir(here)
    print(f"\ncommand: python benchmarks/twin_timing.py --frames {args.frames} --grid {args.grid} "
          f"(grid {args.grid}x{args.grid}, camera 1280x1024, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
