"""Frames/s into Tiled (issue 23): ``optgen run`` against bluesky + Tiled on the same twin, same run.

Alternating rounds on the small twin, ``--frames`` frames each: ``Bench.generate(N, out=folder)``
(what ``optgen run`` does: run.h5 written), then the bluesky generate plan alone, then the plan with
its runs written into Tiled (``send_runs_to_tiled``, batches of 20 on the writer thread): the plan's
own frames/s and the frames/s until every frame is in Tiled. Prints the medians and the ratios to
``optgen run``; the issue asks >= 80 %.

A Tiled server is started on 127.0.0.1 (tests/lab/tiled_server.py), or give ``--uri`` and
``--api-key`` of one that may read this script's temporary folder.

Usage:  python benchmarks/bluesky_tiled.py [--frames N] [--rounds R] [--batch B ...] [--uri URI --api-key KEY]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bluesky import RunEngine

import optgen
import optgen.bluesky
from optgen.lab.bench.examples import small_bench_text
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.bluesky import plans
from optgen.lab.bluesky.tiled_data import send_runs_to_tiled, tiled_client

WAIT_S = 300.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uri")
    parser.add_argument("--api-key")
    parser.add_argument("--twin", choices=("small", "embedded"), default="small",
                        help="the small twin (320 x 256, ~100 frames/s) or the embedded one (1280 x 1024, what "
                             "optgen run uses without --bench)")
    parser.add_argument("--batch", type=int, nargs="+", default=[20],
                        help="frames per write to the server; several: each measured in the same rounds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="optgen-tiled-bench-") as tmp:
        tmp = Path(tmp)
        server = None
        if args.uri is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.lab.tiled_server import TiledServer

            server = TiledServer(tmp / "tiled", readable=[tmp]).start()
            uri, key = server.uri, server.api_key
        else:
            uri, key = args.uri, args.api_key
        try:
            return run(tmp, uri, key, args.frames, args.rounds, args.batch, args.twin)
        finally:
            if server is not None:
                server.stop()


def run(tmp: Path, uri: str, key: str, frames: int, rounds: int, batches: list[int], twin: str = "small") -> int:
    config = parse_bench(small_bench_text() if twin == "small" else default_bench_text(), "x.toml")
    RE = RunEngine()
    client = tiled_client(uri, key)
    rates: dict[str, list[float]] = {"optgen run": [], "bluesky": []}
    for b in batches:
        rates[f"bluesky+Tiled (plan, batch {b})"] = []
        rates[f"bluesky+Tiled (all in Tiled, batch {b})"] = []
    with optgen.open_bench(config) as bench:
        devices = optgen.bluesky.devices(bench, tmp / "frames")
        try:
            bench.generate(3, out=tmp / "warm")
            RE(plans.generate(devices, 3))
            for r in range(rounds):
                t = time.perf_counter()
                bench.generate(frames, seed=r, out=tmp / f"run{r}")
                rates["optgen run"].append(frames / (time.perf_counter() - t))

                t = time.perf_counter()
                RE(plans.generate(devices, frames, seed=r))
                rates["bluesky"].append(frames / (time.perf_counter() - t))

                for b in batches:
                    link = send_runs_to_tiled(RE, devices, client, documents_dir=tmp / "documents", batch_size=b)
                    t = time.perf_counter()
                    RE(plans.generate(devices, frames, seed=r))
                    rates[f"bluesky+Tiled (plan, batch {b})"].append(frames / (time.perf_counter() - t))
                    if not link.detach(WAIT_S):
                        print(f"round {r}: the writer did not finish within {WAIT_S:g} s")
                        return 1
                    rates[f"bluesky+Tiled (all in Tiled, batch {b})"].append(frames / (time.perf_counter() - t))
                    if not link.last.complete:
                        print(f"round {r}: {link.last.summary()}")
                        return 1
        finally:
            devices.close()
    base = statistics.median(rates["optgen run"])
    print(f"{frames} frames, {rounds} rounds, {twin} twin, Tiled at {uri}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"  {name:42s} {median:7.1f} frames/s   {median / base:6.0%} of optgen run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
