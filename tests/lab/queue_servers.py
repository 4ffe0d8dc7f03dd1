"""A throwaway Redis and `optgen queue-server` processes, for the queue server's tests and
benchmarks/queue_server_kill.py. Every wait is bounded; a failure raises RuntimeError saying what."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.lab.tiled_server import free_port

REDIS = shutil.which("redis-server")
START_S = 60.0


def wait_until(check, timeout_s: float) -> bool:
    """Poll ``check`` every 0.1 s; True once it holds, False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


class RedisServer:
    """redis-server on a free port of 127.0.0.1, nothing saved to disk."""

    def __init__(self, folder: Path):
        if REDIS is None:
            raise RuntimeError("redis-server is not installed")
        self.folder, self.port = Path(folder), free_port()
        self.process: subprocess.Popen | None = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(self.folder)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self._answers, 20.0):
            self.stop()
            raise RuntimeError("redis-server did not answer within 20 s")
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_queue_server(folder: Path, bench_file: Path, redis_port: int, *options: str, **popen) -> tuple:
    """`optgen queue-server` for ``bench_file`` on free ZeroMQ ports, once its manager answers idle:
    (the process, a bluesky_queueserver_api REManagerAPI on it)."""
    from bluesky_queueserver_api.zmq import REManagerAPI

    control, info = free_port(), free_port()
    manager = subprocess.Popen(
        [sys.executable, "-m", "optgen.lab.cli", "queue-server", "--bench", str(bench_file),
         "--redis", f"127.0.0.1:{redis_port}", "--control-port", str(control), "--info-port", str(info),
         "--frames-dir", str(folder / "frames"), "--state-dir", str(folder / "state"), *options],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    api = REManagerAPI(zmq_control_addr=f"tcp://127.0.0.1:{control}", zmq_info_addr=f"tcp://127.0.0.1:{info}",
                       timeout_recv=5.0, timeout_send=5.0)

    def manager_answers() -> bool:
        try:
            return api.status()["manager_state"] == "idle"
        except Exception:
            return manager.poll() is not None

    if not wait_until(manager_answers, START_S) or manager.poll() is not None:
        manager.kill()
        manager.wait(30)
        api.close()
        raise RuntimeError(f"the queue server did not answer within {START_S:g} s (exit {manager.poll()})")
    return manager, api
