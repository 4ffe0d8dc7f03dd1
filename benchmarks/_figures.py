"""The project's key figures as workloads, shared by benchmarks/foundation.py and the asv suite
(benchmarks/asv/suite), so that both measure the same thing.

Each builder imports optgen's names when called, not when this module loads: the same code
then runs against the checkout, against an older commit's import tree (benchmarks/_release.py)
and in asv's environment of any commit, and a commit that lacks a name fails only the figures
that need it (with ImportError, which the asv suite turns into a skip).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

WL, PITCH = 520e-9, 8e-6
D_M = 0.1201


def propagation_step(shape: tuple[int, int]) -> Callable[[], np.ndarray]:
    """optgen's propagation step of one complex64 field of ``shape`` over 0.12 m (the transfer
    function cached, as the twin uses it); returns the call to time."""
    from optgen.simulators.optics import propagate

    rng = np.random.default_rng(0)
    field = np.exp(1j * rng.uniform(0, 2 * np.pi, shape)).astype(np.complex64)
    propagate(field, WL, D_M, PITCH)            # fills the transfer-function cache
    return lambda: propagate(field, WL, D_M, PITCH)


def bench_text_for_grid(grid: tuple[int, int]) -> str:
    """The embedded bench with its simulation grid set to ``grid`` (rows, columns)."""
    from optgen.lab.bench.parse import default_bench_text

    text = default_bench_text()
    if "grid_px = [800, 800]" not in text:
        raise ImportError("the embedded bench file has no 'grid_px = [800, 800]' line to change")
    return text.replace("grid_px = [800, 800]", f"grid_px = [{grid[1]}, {grid[0]}]")


@contextlib.contextmanager
def twin_frame(grid: tuple[int, int]) -> Iterator[tuple[Callable[[], np.ndarray], object, object]]:
    """A twin frame at ``grid``: a fresh seed pattern uploaded to the encoding SLM, the SLM's wait,
    one camera capture (SLM1 -> d1 -> SLM2 -> d2 -> camera with noise). Yields (the call to time,
    the open bench, its config); the bench closes on leaving."""
    from optgen.lab.bench.assemble import build_bench
    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.run.patterns import seed_to_slm_phase
    from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder

    cfg = parse_bench(bench_text_for_grid(grid), f"benchmark grid {grid}")
    with build_bench(cfg) as bench:
        n = cfg.geometry.seed_superpixels
        seeds = EncoderSeedSource(PlaceholderEncoder(n * n), n)
        pattern = np.zeros(bench.encoding_slm.shape, dtype=np.float32)
        bench.laser.set_power(cfg.laser.power_w)
        bench.laser.set_emission(True)
        bench.decoding_slm.set_phase(np.zeros(bench.decoding_slm.shape, np.float32))
        bench.clock.sleep(1.0)
        k = iter(range(10**9))

        def frame() -> np.ndarray:
            seed_to_slm_phase(seeds.seed(next(k)).phase, cfg.geometry.superpixel_px, pattern.shape, out=pattern)
            bench.encoding_slm.set_phase(pattern)
            bench.clock.sleep(bench.encoding_slm.timing.wait_s)
            return bench.camera.capture()

        yield frame, bench, cfg


@contextlib.contextmanager
def run_setup(grid: tuple[int, int] | None = None, readout: str = "full") -> Iterator[Callable[[int, Path], dict]]:
    """`optgen run` on the embedded twin (virtual clock, flat decoder, placeholder seeds, storage
    included), at the embedded 800 x 800 grid or ``grid``, with ``[run] readout`` = ``readout``.
    Yields ``run(frames, out_dir)``, which runs ``frames`` frames into ``out_dir`` on a bench
    opened for it and returns {"frames": written, "seconds": wall time of the run loop,
    "frames_per_s": ...}."""
    from optgen.lab.bench.assemble import build_bench
    from optgen.lab.bench.parse import default_bench_text, parse_bench
    from optgen.lab.run.decoder import load_decoder_phase
    from optgen.lab.run.generate import run_generation
    from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder

    text = default_bench_text() if grid is None else bench_text_for_grid(grid)
    if readout != "full":
        text = text.replace('readout = "full"', f'readout = "{readout}"', 1)
    cfg = parse_bench(text, "embedded default bench")
    if getattr(cfg.run, "readout", "full") != readout:     # (an older optgen, measured beside today's, has no key)
        raise ValueError(f"readout {readout!r}: this bench text has no [run] readout key to set")
    n = cfg.geometry.seed_superpixels
    decoder, decoder_id = load_decoder_phase("flat", cfg.geometry.decoder_px)

    def run(frames: int, out_dir: Path) -> dict:
        with build_bench(cfg) as bench:
            t0 = time.perf_counter()
            result = run_generation(bench, EncoderSeedSource(PlaceholderEncoder(n * n), n), decoder, decoder_id,
                                    out_dir, frames)
            wall = time.perf_counter() - t0
        out = {"frames": result.frames_written, "seconds": wall, "frames_per_s": result.frames_written / wall}
        if readout != "full":               # what the camera read out: (x, width, y, height)
            from optgen.lab.runfile.reader import read_run_attrs

            out["readout_window"] = read_run_attrs(Path(out_dir) / "run.h5").get("readout_window")
        return out

    yield run


def run_rate(frames: int, grid: tuple[int, int] | None = None, readout: str = "full") -> dict:
    """One short run (see :func:`run_setup`) into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp, run_setup(grid, readout) as run:
        return run(frames, Path(tmp) / "run")
