"""Figures of the foundation: propagation step, twin frame, `optgen run` throughput.

Each figure is printed with a baseline measured in the same run (the machines are noisy,
so ratios are the figures to compare across machines):

- propagation: optgen's step (scipy.fft, cached complex64 transfer function) against a
  plain numpy.fft step with the transfer function built on the fly, 1080 x 1920 complex64;
- twin frame: encoding-SLM upload -> SLM1 -> d1 -> SLM2 -> d2 -> camera with noise, at the
  published 800 x 800 grid and the full 1080 x 1920 grid, against a naive frame
  (np.exp(1j*phi), numpy.fft, transfer functions rebuilt, exact Poisson noise);
- run: frames/s of the run loop on the embedded simulated bench (virtual clock), against
  the twin-frame rate alone.

Usage:  python benchmarks/foundation.py [--repeats N] [--frames N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import median_ms

from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.run.decoder import load_decoder_phase
from optgen.lab.run.generate import run_generation
from optgen.lab.run.patterns import seed_to_slm_phase
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder
from optgen.simulators.noise import photon_energy_j
from optgen.simulators.optics import propagate, transfer_function

WL, PITCH = 520e-9, 8e-6


def numpy_step(field: np.ndarray, z: float) -> np.ndarray:
    """The baseline: numpy.fft with a transfer function built for the call."""
    rows, cols = field.shape
    fy = np.fft.fftfreq(rows, PITCH)[:, None]
    fx = np.fft.fftfreq(cols, PITCH)[None, :]
    h = np.exp(2j * np.pi * z * np.sqrt(np.maximum(1 / WL**2 - fx**2 - fy**2, 0)))
    return np.fft.ifft2(np.fft.fft2(field) * h)


def bench_propagation(repeats: int) -> None:
    rng = np.random.default_rng(0)
    field = np.exp(1j * rng.uniform(0, 2 * np.pi, (1080, 1920))).astype(np.complex64)
    h = transfer_function(field.shape, WL, 0.1201, PITCH, True)
    ours = median_ms(lambda: propagate(field, WL, 0.1201, PITCH), repeats)
    plain = median_ms(lambda: np.fft.ifft2(np.fft.fft2(field) * h), repeats)
    rebuilt = median_ms(lambda: numpy_step(field, 0.1201), repeats)
    print(f"propagation step 1080x1920 complex64: optgen {ours:.1f} ms | plain numpy.fft step (same cached H) "
          f"{plain:.1f} ms, ratio {plain / ours:.1f}x | numpy.fft with H rebuilt {rebuilt:.1f} ms, "
          f"ratio {rebuilt / ours:.1f}x")


def naive_frame(bench, display1: np.ndarray, display2: np.ndarray) -> np.ndarray:
    """What a straightforward twin frame costs: exp(1j*phi), numpy.fft, H rebuilt, exact Poisson."""
    world = bench.world
    rows, cols = world.grid_shape
    r0, c0 = (display1.shape[0] - rows) // 2, (display1.shape[1] - cols) // 2
    resp1 = world.planted_truths().response_rad["encoding_slm"]
    resp2 = world.planted_truths().response_rad["decoding_slm"]
    phi1 = -resp1[display1[r0:r0 + rows, c0:c0 + cols]]
    phi2 = -resp2[display2[r0:r0 + rows, c0:c0 + cols]]
    field = world.beam_amplitude * np.sqrt(world.laser_setpoint_w) * np.exp(1j * phi1)
    field = numpy_step(field, world.d1_m) * np.exp(1j * phi2)
    irradiance = np.abs(numpy_step(field, world.d2_m)) ** 2
    s = world.sensor
    mean_e = irradiance * PITCH**2 * s.qe * bench.camera.exposure_s / photon_energy_j(WL)
    electrons = world.rng.poisson(mean_e) + s.read_noise_e * world.rng.standard_normal(mean_e.shape)
    return np.clip(np.rint(electrons * s.gain_dn_per_e + s.dark_offset_dn), 0, 4095).astype(np.uint16)


def bench_twin_frame(grid: tuple[int, int], repeats: int) -> float:
    text = default_bench_text().replace("grid_px = [800, 800]", f"grid_px = [{grid[1]}, {grid[0]}]")
    cfg = parse_bench(text, f"benchmark grid {grid}")
    with build_bench(cfg) as bench:
        n = cfg.geometry.seed_superpixels
        seeds = EncoderSeedSource(PlaceholderEncoder(n * n), n)
        pattern = np.zeros(bench.encoding_slm.shape, dtype=np.float32)
        bench.laser.set_power(cfg.laser.power_w)
        bench.laser.set_emission(True)
        bench.decoding_slm.set_phase(np.zeros(bench.decoding_slm.shape, np.float32))
        bench.clock.sleep(1.0)
        k = iter(range(10**6))

        def frame():
            seed_to_slm_phase(seeds.seed(next(k)).phase, cfg.geometry.superpixel_px, pattern.shape, out=pattern)
            bench.encoding_slm.set_phase(pattern)
            bench.clock.sleep(bench.encoding_slm.timing.wait_s)
            return bench.camera.capture()

        ours = median_ms(frame, repeats)
        d1 = bench.encoding_slm.display.copy()
        d2 = bench.decoding_slm.display.copy()
        base = median_ms(lambda: naive_frame(bench, d1, d2), max(3, repeats // 3))
    print(f"twin frame, grid {grid[0]}x{grid[1]} (camera {cfg.camera.resolution[0]}x{cfg.camera.resolution[1]}): "
          f"optgen {ours:.1f} ms ({1e3 / ours:.1f} frames/s) | naive baseline {base:.1f} ms | "
          f"speed-up {base / ours:.1f}x")
    return ours


def bench_run(frames: int, frame_ms: float) -> None:
    cfg = parse_bench(default_bench_text(), "embedded default bench")
    n = cfg.geometry.seed_superpixels
    with tempfile.TemporaryDirectory() as tmp, build_bench(cfg) as bench:
        decoder, decoder_id = load_decoder_phase("flat", cfg.geometry.decoder_px)
        t0 = time.perf_counter()
        result = run_generation(bench, EncoderSeedSource(PlaceholderEncoder(n * n), n), decoder, decoder_id,
                                Path(tmp) / "run", frames)
        wall = time.perf_counter() - t0
    fps = result.frames_written / wall
    print(f"optgen run on the twin (800x800 grid, {frames} frames, storage included): {fps:.1f} frames/s | "
          f"twin frame alone {1e3 / frame_ms:.1f} frames/s | run/twin-frame rate {fps * frame_ms / 1e3:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    bench_propagation(args.repeats)
    frame_ms = bench_twin_frame((800, 800), args.repeats)
    bench_twin_frame((1080, 1920), max(5, args.repeats // 2))
    bench_run(args.frames, frame_ms)


if __name__ == "__main__":
    main()
