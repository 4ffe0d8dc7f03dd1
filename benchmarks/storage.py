"""Run-file write throughput: uint16 1080 x 1920 frames stored the way the run loop stores them.

Prints, for N frames (each with its 32 x 32 image, seed and metadata):

- the run writer (lab.storage.RunWriter, durable against kill -9: data flushed to the OS, then
  its ``written`` mark flushed): MB/s of frame data, mean and p99 time per frame;
- the same with ``fsync=True`` (durable against a power loss), unless ``--no-fsync``;
- baselines measured in the same run on the same disk: raw ``ndarray.tofile`` into one file,
  and the previous writer (h5py chunks allocated as written, one flush per frame);
- creating a run file (every dataset allocated, the blocks reserved) for N and for 1000 frames;
- resuming a run with half its frames missing (open, read the marks, re-reserve, log it).

After writing, every frame is read back and checked to be present exactly once (frame i is
filled with i + 1). Usage:  python benchmarks/storage.py [--frames N] [--rounds R] [--dir DIR] [--no-fsync]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from optgen.lab.runfile.storage import RunWriter

SHAPE = (1080, 1920)
FRAME_MB = SHAPE[0] * SHAPE[1] * 2 / 1e6


def _meta(i: int) -> dict:
    return {"timestamp_s": time.time(), "exposure_s": 1e-3, "laser_power_w": 1e-3, "saturated_pixels": 0}


def _extras(i: int) -> tuple:
    n = np.full((32, 32), i, np.float32)
    return n, n, n.astype(np.uint16), i, f"bench/rs0/i{i}", _meta(i)


def _report(name: str, runs: list[list[float]], baseline_mb_s: float | None) -> float:
    """MB/s over all rounds (and the slowest round); mean, p99 and max time per frame."""
    t = np.concatenate(runs)
    mb_s = len(t) * FRAME_MB / t.sum()
    slowest = min(len(r) * FRAME_MB / sum(r) for r in runs)
    ratio = f", {mb_s / baseline_mb_s:.2f}x tofile" if baseline_mb_s else ""
    print(f"  {name:<42} {mb_s:6.0f} MB/s (slowest round {slowest:5.0f})  {1e3 * t.mean():5.2f} ms/frame  "
          f"p99 {1e3 * np.percentile(t, 99):5.2f} ms  max {1e3 * t.max():5.1f} ms{ratio}")
    return mb_s


def bench_tofile(folder: Path, n: int, frame: np.ndarray) -> list[float]:
    times = []
    with open(folder / "raw.bin", "wb") as fh:
        for i in range(n):
            frame.fill(i + 1)
            t0 = time.perf_counter()
            frame.tofile(fh)
            times.append(time.perf_counter() - t0)
    (folder / "raw.bin").unlink()
    return times


def bench_plain_h5py(folder: Path, n: int, frame: np.ndarray) -> list[float]:
    """The previous writer: chunks allocated as they are written, one flush per frame."""
    times = []
    with h5py.File(folder / "plain.h5", "w") as f:
        frames = f.create_dataset("frames", (n, *SHAPE), np.uint16, chunks=(1, *SHAPE))
        written = f.create_dataset("written", (n,), bool)
        for i in range(n):
            frame.fill(i + 1)
            t0 = time.perf_counter()
            frames[i] = frame
            written[i] = True
            f.flush()
            times.append(time.perf_counter() - t0)
    (folder / "plain.h5").unlink()
    return times


def bench_run_writer(path: Path, n: int, frame: np.ndarray, fsync: bool) -> list[float]:
    writer = RunWriter(path, n, SHAPE, (32, 32), (32, 32), {"benchmark": "storage"}, fsync=fsync)
    times = []
    for i in range(n):
        frame.fill(i + 1)
        extras = _extras(i)
        t0 = time.perf_counter()
        writer.write(i, frame, *extras)
        times.append(time.perf_counter() - t0)
    writer.close("complete")
    return times


def verify(path: Path, n: int) -> None:
    """Every frame present exactly once: marked, and holding its own index."""
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "complete" and f["meta/written"][:].all()
        seen = np.zeros(n, int)
        for i in range(n):
            frame = f["frames"][i]
            value = int(frame[0, 0])
            assert (frame == value).all(), f"frame {i} is mixed"
            seen[value - 1] += 1
        assert (seen == 1).all() and (f["seed/index"][:] == np.arange(n)).all()


def bench_create(folder: Path, n: int) -> float:
    t0 = time.perf_counter()
    writer = RunWriter(folder / f"create{n}.h5", n, SHAPE, (32, 32), (32, 32), {})
    elapsed = time.perf_counter() - t0
    reserved = writer.reserved
    writer.close("failed", "benchmark")
    size = (folder / f"create{n}.h5").stat().st_size
    (folder / f"create{n}.h5").unlink()
    print(f"  create a run file for {n:5d} frames ({size / 1e9:6.2f} GB, reserved on disk: {reserved})"
          f"  {1e3 * elapsed:8.1f} ms")
    return elapsed


def bench_resume(path: Path, n: int) -> str:
    """Half the frames of the finished run marked missing again, then resumed."""
    with h5py.File(path, "r+") as f:
        f["meta/written"][n // 2:] = False
        f.attrs["status"] = "stopped"
    t0 = time.perf_counter()
    writer = RunWriter.resume(path)
    elapsed = time.perf_counter() - t0
    missing = len(writer.missing())
    writer.close("stopped", "benchmark")
    return f"  resume: a run of {n} frames, {missing} missing, opened for writing (no copy) in {1e3 * elapsed:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="the variants take turns this many times")
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure (default: a temp folder)")
    parser.add_argument("--no-fsync", action="store_true", help="skip the fsync (power-loss) variant")
    args = parser.parse_args()
    print("command: python " + " ".join(sys.argv))
    folder = Path(tempfile.mkdtemp(prefix="optgen-storage-", dir=args.dir))
    n = args.frames
    try:
        st = os.statvfs(folder)
        print(f"{n} frames of {SHAPE[0]}x{SHAPE[1]} uint16 ({FRAME_MB:.2f} MB each, {n * FRAME_MB / 1e3:.1f} GB) "
              f"into {folder} ({st.f_bavail * st.f_frsize / 1e9:.0f} GB free), {args.rounds} rounds taking turns; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"  (at 400 MB/s a frame comes every {FRAME_MB / 400 * 1e3:.1f} ms)")
        frame = np.empty(SHAPE, np.uint16)
        path = folder / "run.h5"
        variants = {"baseline: ndarray.tofile, one raw file": lambda: bench_tofile(folder, n, frame),
                    "baseline: h5py, chunks as written, flush": lambda: bench_plain_h5py(folder, n, frame),
                    "RunWriter (kill -9 safe: flush to the OS)": lambda: bench_run_writer(path, n, frame, False)}
        if not args.no_fsync:
            variants["RunWriter fsync=True (power-loss safe)"] = lambda: bench_run_writer(path, n, frame, True)
        rounds: dict[str, list[list[float]]] = {name: [] for name in variants}
        bench_tofile(folder, n, frame)   # warm-up, not counted: a process's first writes are slower
        for r in range(args.rounds):
            for name, run in variants.items():
                rounds[name].append(run())
                if name.startswith("RunWriter"):
                    verify(path, n)
                    if r == args.rounds - 1 and "fsync" not in name:
                        resumed = bench_resume(path, n)
                    path.unlink()
        print(f"  verified after every RunWriter round: {n} frames, each present exactly once")
        base = None
        for name, runs in rounds.items():
            mb_s = _report(name, runs, base)
            base = base or mb_s
        print(resumed)
        bench_create(folder, n)
        bench_create(folder, 1000)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
