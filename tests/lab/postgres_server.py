"""A throwaway PostgreSQL server for a test (Debian's postgresql, which .ci/run installs): a cluster in a
temporary folder on a free port of 127.0.0.1, trust authentication, one database; stopped afterwards.
PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user (runuser)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.lab.tiled_server import free_port

STEP_TIMEOUT_S = 60


def postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl, or None where PostgreSQL is not installed."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))      # Debian's: every tool in one folder
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and (Path(found).parent / "createdb").exists() else None


class PostgresServer:
    """Its cluster lives in a folder of its own under the system's temporary folder (the ``postgres``
    user must reach it, which it cannot under pytest's root-only folders); removed by :meth:`stop`."""

    def __init__(self, database: str = "tiled"):
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL (initdb, pg_ctl) is not installed")
        self.folder = Path(tempfile.mkdtemp(prefix="optgen-postgres-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.database = database
        self.as_root = os.geteuid() == 0

    @property
    def uri(self) -> str:
        return f"postgresql://optgen@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, timeout=STEP_TIMEOUT_S, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def start(self) -> "PostgresServer":
        if self.as_root:
            shutil.chown(self.folder, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "optgen")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", str(STEP_TIMEOUT_S), "-l",
                  str(self.folder / "server.log"), "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "optgen",
                  self.database)
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
