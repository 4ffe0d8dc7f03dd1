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
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from optgen.lab.bench.examples import external_laser_bench_text
from optgen.simulators.protocol.serve import ExternalTwinLaser

ROOT = Path(__file__).parents[1]
OFF_WITHIN_S = 10.0
START_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def redis(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    if not wait_for(answers, 20.0):
        proc.kill()
        raise RuntimeError("redis-server did not answer")
    return proc, port


def trial(folder: Path, redis_port: int, rng: random.Random) -> float | None:
    """Seconds from the kill to the laser off; None if it stayed on."""
    from bluesky_queueserver_api import BPlan
    from bluesky_queueserver_api.zmq import REManagerAPI

    laser = ExternalTwinLaser("obis", folder / "laser-state.json", cwd=ROOT)
    manager = api = None
    try:
        bench = folder / "bench.toml"
        bench.write_text(external_laser_bench_text(laser.port))
        control, info = free_port(), free_port()
        manager = subprocess.Popen(
            [sys.executable, "-m", "optgen.lab.cli", "queue-server", "--bench", str(bench), "--redis",
             f"127.0.0.1:{redis_port}", "--redis-prefix", folder.name, "--control-port", str(control),
             "--info-port", str(info), "--frames-dir", str(folder / "frames"), "--state-dir", str(folder / "state")],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        api = REManagerAPI(zmq_control_addr=f"tcp://127.0.0.1:{control}", zmq_info_addr=f"tcp://127.0.0.1:{info}",
                           timeout_recv=5.0, timeout_send=5.0)

        def idle() -> bool:
            try:
                return api.status()["manager_state"] == "idle"
            except Exception:
                return False

        if not wait_for(idle, START_S):
            raise RuntimeError("the RE Manager did not answer")
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
        server, port = redis(Path(tmp))
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
            server.kill()
            server.wait(10)
    print(f"SIGKILL to the queue server's process group mid-plan: the laser left on in {left_on} of "
          f"{args.trials} trials; off after the kill: median {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s" if times else f"left on in {left_on} of {args.trials}")
    return 1 if left_on else 0


if __name__ == "__main__":
    sys.exit(main())
