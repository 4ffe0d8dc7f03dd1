"""Kill of the queue server (issue 23): the laser off after every kill of the RE Manager mid-plan.

Each trial: a throwaway Redis, an OBIS protocol-twin laser in a process of its own (its state read
from outside, so a dead process cannot report itself safe), `optgen queue-server` on a bench lit by
it, the environment opened and `generate(400)` queued and started; once the laser emits, at a random
moment (0-300 ms), SIGKILL to the queue server's whole process group (the command, the RE Manager
and its worker). The laser watchdog, a process of its own, must switch the laser off: the trial
counts the laser left on (not off within 10 s of the kill) and the time to off. Prints the counts;
0 left on expected (exit status 1 otherwise).

Usage:  python benchmarks/queue_server_kill.py [--trials N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from optgen.lab.bench.examples import external_laser_bench_text
from optgen.simulators.protocol.serve import ExternalTwinLaser

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from tests.lab.queue_servers import START_S, RedisServer, start_queue_server  # noqa: E402

OFF_WITHIN_S = 10.0


def trial(folder: Path, redis_port: int, rng: random.Random) -> float | None:
    """Seconds from the kill to the laser off; None if it stayed on."""
    from bluesky_queueserver_api import BPlan

    laser = ExternalTwinLaser("obis", folder / "laser-state.json", cwd=ROOT)
    manager = api = None
    try:
        bench = folder / "bench.toml"
        bench.write_text(external_laser_bench_text(laser.port))
        manager, api = start_queue_server(folder, bench, redis_port, "--redis-prefix", folder.name,
                                          start_new_session=True)
        api.environment_open()
        api.wait_for_idle(timeout=START_S)
        api.item_add(BPlan("generate", count=400, seed=rng.randrange(1000)))
        api.queue_start()
        if not laser.wait_for(True, START_S):
            raise RuntimeError("the laser never came on")
        time.sleep(rng.uniform(0.0, 0.3))
        t_kill = time.time()
        os.killpg(manager.pid, signal.SIGKILL)
        manager.wait(30)
        if not laser.wait_for(False, OFF_WITHIN_S):
            return None
        off = laser.last_off_s()
        return (off - t_kill) if off is not None else float("nan")
    finally:
        if manager is not None and manager.poll() is None:
            os.killpg(manager.pid, signal.SIGKILL)
            manager.wait(30)
        if api is not None:
            api.close()
        laser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    left_on, times = 0, []
    with tempfile.TemporaryDirectory(prefix="optgen-qs-kill-") as tmp:
        server = RedisServer(Path(tmp)).start()
        port = server.port
        try:
            for k in range(args.trials):
                folder = Path(tmp) / f"trial{k}"
                folder.mkdir()
                took = trial(folder, port, rng)
                if took is None:
                    left_on += 1
                else:
                    times.append(took)
                print(f"trial {k + 1}: " + ("LASER LEFT ON" if took is None else f"off {took:.2f} s after the kill"),
                      flush=True)
        finally:
            server.stop()
    print(f"SIGKILL to the queue server's process group mid-plan: the laser left on in {left_on} of "
          f"{args.trials} trials; off after the kill: median {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s" if times else f"left on in {left_on} of {args.trials}")
    return 1 if left_on else 0


if __name__ == "__main__":
    sys.exit(main())
