"""Figures of the foundation: propagation step, twin frame, `optgen run` throughput.

Each figure is printed with a baseline measured in the same run (the machines are noisy,
so ratios are the figures to compare across machines):

- propagation: optgen's step (scipy.fft, cached complex64 transfer function) against a
  plain numpy.fft step with the transfer function built on the fly, 1080 x 1920 complex64;
- twin frame: encoding-SLM upload -> SLM1 -> d1 -> SLM2 -> d2 -> camera with noise, at the
  published 800 x 800 grid and the full 1080 x 1920 grid, against a naive frame
  (np.exp(1j*phi), numpy.fft, transfer functions rebuilt, exact Poisson noise);
- run: frames/s of the run loop on the embedded simulated bench (virtual clock), the median of
  ``--runs`` runs, against the twin-frame rate alone; then with ``[run] readout = "window"``
  against whole frames (runs of each alternating).

Then optgen's figures today beside the last release's (benchmarks/last_release.toml), or those
of the commit given by --against, with the ratio: a regression of the project against itself
shows there. Both are measured in this run by this same script, kept running in two processes,
one on the checkout and one on that commit's source (benchmarks/_release.py), asked in turn
figure by figure, a few samples at a time (today, then, then, today, --turns times), and each
side's figure is the median of all its samples: both see the same load on a shared machine.

Usage:  python benchmarks/foundation.py [--repeats N] [--frames N] [--runs N] [--against REV | --no-release] [--turns N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from _figures import PITCH, WL, propagation_step, run_rate, twin_frame
from _timing import median_ms, samples_in_turn_ms, samples_ms

# (key, unit, lower is better)
FIGURES = {
    "propagation_ms": ("propagation step 1080x1920 complex64", "ms", True),
    "frame_800_ms": ("twin frame, grid 800x800", "ms", True),
    "frame_1080x1920_ms": ("twin frame, grid 1080x1920", "ms", True),
    "run_fps": ("optgen run on the twin (800x800)", "frames/s", False),
}


def numpy_step(field: np.ndarray, z: float) -> np.ndarray:
    """The baseline: numpy.fft with a transfer function built for the call."""
    rows, cols = field.shape
    fy = np.fft.fftfreq(rows, PITCH)[:, None]
    fx = np.fft.fftfreq(cols, PITCH)[None, :]
    h = np.exp(2j * np.pi * z * np.sqrt(np.maximum(1 / WL**2 - fx**2 - fy**2, 0)))
    return np.fft.ifft2(np.fft.fft2(field) * h)


def bench_propagation(repeats: int, baselines: bool = True) -> float:
    ours = median_ms(propagation_step((1080, 1920)), repeats)
    if baselines:
        from optgen.simulators.optics import transfer_function

        rng = np.random.default_rng(0)
        field = np.exp(1j * rng.uniform(0, 2 * np.pi, (1080, 1920))).astype(np.complex64)
        h = transfer_function(field.shape, WL, 0.1201, PITCH, True)
        plain = median_ms(lambda: np.fft.ifft2(np.fft.fft2(field) * h), repeats)
        rebuilt = median_ms(lambda: numpy_step(field, 0.1201), repeats)
        print(f"propagation step 1080x1920 complex64: optgen {ours:.1f} ms | plain numpy.fft step (same cached H) "
              f"{plain:.1f} ms, ratio {plain / ours:.1f}x | numpy.fft with H rebuilt {rebuilt:.1f} ms, "
              f"ratio {rebuilt / ours:.1f}x", flush=True)
    return ours


def naive_frame(bench, display1: np.ndarray, display2: np.ndarray) -> np.ndarray:
    """What a straightforward twin frame costs: exp(1j*phi), numpy.fft, H rebuilt, exact Poisson."""
    from optgen.simulators.noise import photon_energy_j

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


def bench_twin_frame(grid: tuple[int, int], repeats: int, baselines: bool = True) -> float:
    with twin_frame(grid) as (frame, bench, cfg):
        if not baselines:
            return median_ms(frame, repeats)
        d1 = bench.encoding_slm.display.copy()
        d2 = bench.decoding_slm.display.copy()
        ours_ms, naive_ms = samples_in_turn_ms(frame, lambda: naive_frame(bench, d1, d2), repeats,
                                               max(5, repeats // 2))
        ours, base = statistics.median(ours_ms), statistics.median(naive_ms)
        print(f"twin frame, grid {grid[0]}x{grid[1]} (camera {cfg.camera.resolution[0]}x"
              f"{cfg.camera.resolution[1]}): optgen {ours:.1f} ms ({1e3 / ours:.1f} frames/s) | naive baseline "
              f"{base:.1f} ms (measured in turn with it) | speed-up {base / ours:.1f}x", flush=True)
    return ours


def bench_run(frames: int, frame_ms: float, runs: int = 3) -> float:
    """`optgen run`'s rate: the median of ``runs`` runs of ``frames`` frames (one run's rate moves with
    the machine's minute), whole frames and windowed read-outs alternating."""
    whole, windowed = [], []
    for _ in range(runs):
        whole.append(run_rate(frames))
        windowed.append(run_rate(frames, readout="window"))
    fps = statistics.median(r["frames_per_s"] for r in whole)
    window = statistics.median(r["frames_per_s"] for r in windowed)
    _, width, _, height = windowed[-1]["readout_window"]
    print(f"optgen run on the twin (800x800 grid, {frames} frames, storage included): {fps:.1f} frames/s "
          f"(median of {runs} runs: {_rates(whole)}) | twin frame alone {1e3 / frame_ms:.1f} frames/s | "
          f"run/twin-frame rate {fps * frame_ms / 1e3:.2f}", flush=True)
    print(f"optgen run on the twin, [run] readout = \"window\" ({width} x {height} pixels of the sensor under the "
          f"output window): {window:.1f} frames/s (median of {runs} runs: {_rates(windowed)}) | whole frames "
          f"(baseline, above) {fps:.1f} frames/s | ratio {window / fps:.2f}", flush=True)
    return fps


def _rates(runs: list[dict]) -> str:
    return ", ".join(f"{r['frames_per_s']:.1f}" for r in runs)


def measure(repeats: int, frames: int, runs: int = 3) -> dict:
    """optgen's figures (FIGURES), each printed with its baselines."""
    figures = {"propagation_ms": bench_propagation(repeats)}
    figures["frame_800_ms"] = bench_twin_frame((800, 800), repeats)
    figures["frame_1080x1920_ms"] = bench_twin_frame((1080, 1920), max(5, repeats // 2))
    figures["run_fps"] = bench_run(frames, figures["frame_800_ms"], runs=runs)
    return figures


def samples_of(key: str, repeats: int, frames: int) -> list[float]:
    """Samples of one of optgen's figures, without baselines (a worker's side of the comparison):
    ``repeats`` timings in ms, or the rate of one run of ``frames`` frames."""
    if key == "propagation_ms":
        return samples_ms(propagation_step((1080, 1920)), repeats)
    if key in ("frame_800_ms", "frame_1080x1920_ms"):
        with twin_frame((800, 800) if key == "frame_800_ms" else (1080, 1920)) as (frame, _, _):
            return samples_ms(frame, repeats)
    if key == "run_fps":
        return [run_rate(frames)["frames_per_s"]]
    raise KeyError(key)


def serve() -> None:
    """Answer requests {"figure", "repeats", "frames"}, one JSON line each, until stdin ends; a
    figure this commit cannot measure (a name it lacks) answers {"error": ...}."""
    import optgen

    source = str(Path(optgen.__file__).parent)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"samples": samples_of(request["figure"], request["repeats"], request["frames"])}
        except Exception as exc:                  # reported, the comparison goes on without it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({**reply, "optgen": source}), flush=True)


def compare(rev: str, repeats: int, frames: int, turns: int = 3) -> tuple[dict, dict, dict]:
    """optgen's figures today and at ``rev``: two worker processes asked in turn (today, then, then,
    today; ``turns`` times), each time for a share of the repeats (or a run of a share of the
    frames, at least 10); each side's figure the median of all its samples. Also why a figure is
    missing."""
    import _release

    argv = [sys.executable, str(Path(__file__).resolve()), "--serve"]
    share = {"repeats": max(2, -(-repeats // (2 * turns))), "frames": max(10, -(-frames // (2 * turns)))}
    today, then, errors = {}, {}, {}
    with _release.materialised(rev) as tree, _release.Worker(argv) as now, _release.Worker(argv, tree) as old:
        for key in FIGURES:
            pooled = {id(now): [], id(old): []}
            for worker in (now, old, old, now) * turns:
                reply = worker.ask({"figure": key, **share})
                if "error" in reply:
                    errors[key] = reply["error"]
                    break
                pooled[id(worker)] += reply["samples"]
            else:
                today[key] = statistics.median(pooled[id(now)])
                then[key] = statistics.median(pooled[id(old)])
    return today, then, errors


def print_comparison(today: dict, other: dict, label: str, errors: dict | None = None) -> None:
    """Today's figures beside ``other``'s, with the ratio and which way it went (noise on this
    2-core machine is some 10 %: a change within that says nothing)."""
    print(f"\ntoday against {label}, both measured in this run, in turn:")
    print(f"  {'figure':<42}{'today':>12}{'then':>12}   today/then")
    for key, (name, unit, lower_better) in FIGURES.items():
        now, then = today.get(key), other.get(key)
        if now is None or then is None:
            why = (errors or {}).get(key)
            print(f"  {name + ' (' + unit + ')':<42}{'-' if now is None else f'{now:.1f}':>12}"
                  f"{'-' if then is None else f'{then:.1f}':>12}   not measured" + (f": {why}" if why else ""))
            continue
        ratio = now / then
        worse = ratio > 1 if lower_better else ratio < 1
        verdict = "about the same" if abs(ratio - 1) < 0.10 else ("WORSE" if worse else "better")
        print(f"  {name + ' (' + unit + ')':<42}{now:>12.1f}{then:>12.1f}   {ratio:.2f} ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="runs of --frames frames each for the run's rate (the median)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--against", metavar="REV", help="compare with this commit instead of the last release")
    group.add_argument("--no-release", action="store_true", help="today's figures only")
    parser.add_argument("--turns", type=int, default=3, help="rounds of today, then, then, today (default 3)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)   # a worker of the comparison
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    import _release

    _release.exit_cleanly_on_sigterm()
    if args.against:
        rev, label = args.against, f"commit {args.against}"
    elif not args.no_release:
        release = _release.last_release()
        rev, label = release.commit, f"the last release {release.version} ({release.commit[:7]})"
    measure(args.repeats, args.frames, args.runs)
    if args.no_release:
        return
    print(f"\nmeasuring today and {label} in turn (its source, this script) ...", flush=True)
    try:
        now, then, errors = compare(rev, args.repeats, args.frames, args.turns)
    except _release.ReleaseUnavailable as exc:
        print(f"{label} not measured: {exc}")
        return
    print_comparison(now, then, label, errors)
    print(f"  (each side: the median of its samples from {2 * args.turns} turns in alternation; the run's rate "
          f"from runs of {max(10, -(-args.frames // (2 * args.turns)))} frames)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:           # Ctrl-C or SIGTERM: the workers and the commit's tree are gone
        print("interrupted", file=sys.stderr)
        sys.exit(130)
