"""A real `tiled serve` on 127.0.0.1 for the tests: a free port, an API key, a writable catalog under
a test's folder, and the folder of the camera's frames readable (external HDF5 resources).

    server = TiledServer(tmp_path / "tiled", readable=[frames_dir]).start()
    ... server.uri, server.api_key ...
    server.stop()

Every wait is bounded: the start polls the port for at most START_TIMEOUT_S (and fails at once if
the process ends), the stop terminates, waits STOP_TIMEOUT_S, then kills.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiled_command() -> str:
    """The `tiled` script of the interpreter running the tests (then any on PATH)."""
    beside = Path(sys.executable).with_name("tiled")
    return str(beside) if beside.exists() else (shutil.which("tiled") or "tiled")


class TiledServer:
    def __init__(self, folder: Path, readable: list[Path] = (), port: int | None = None,
                 api_key: str | None = None, tables: str | None = None):
        self.folder = Path(folder)
        self.readable = [Path(p).resolve() for p in readable]
        self.port = port or free_port()
        self.api_key = api_key or secrets.token_hex(16)     # the server takes letters and digits only
        self.process: subprocess.Popen | None = None
        self.log_path = self.folder / "server.log"
        # where the event tables go: a DuckDB file (the default), or a database URI (PostgreSQL for
        # several writers at once: Tiled 0.2.20's DuckDB store lost or doubled rows then)
        self.tables = tables or f"duckdb:///{self.folder / 'tables.duckdb'}"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        command = [tiled_command(), "serve", "catalog", str(self.folder / "catalog.db"), "--init",
                   "-w", str(data), "-w", self.tables,   # arrays, event tables
                   "--api-key", self.api_key, "--host", "127.0.0.1", "--port", str(self.port)]
        for path in self.readable:
            path.mkdir(parents=True, exist_ok=True)
            command += ["-r", str(path)]
        return command

    def start(self) -> "TiledServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        catalog = self.folder / "catalog.db"
        command = self.command()
        if catalog.exists():                     # a restart keeps the catalog: no --init
            command.remove("--init")
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"tiled serve ended with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.uri}/healthz", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tiled serve did not answer within {START_TIMEOUT_S:g} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def camera_frames(run, stream: str = "primary", camera: str = "bench-camera") -> np.ndarray:
    """The run's frames as (frames, rows, cols). The camera's data key is (1, rows, cols) per event (ophyd-async's
    frames-per-event axis): bluesky-tiled-plugins' TiledWriter stacks events (events, 1, rows, cols), bluesky <
    1.16's joined them (events, rows, cols); both hold the same frames in the same order."""
    frames = run[stream][camera].read()
    assert frames.ndim in (3, 4) and (frames.ndim == 3 or frames.shape[1] == 1), frames.shape
    return frames.reshape(-1, *frames.shape[-2:])
