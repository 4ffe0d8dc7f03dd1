"""Starting bluesky-queueserver's RE Manager with optgen's worker environment (``optgen queue-server``).

The manager runs the worker (``optgen.lab.bluesky.queue_startup``: the bench, its devices, the
plans) in a process of its own; clients submit plans over ZeroMQ (bluesky-queueserver-api,
``qserver``). The manager keeps its queue in Redis (``redis-server``, which the lab runs).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from optgen.drivers.errors import OptgenError

__all__ = ["QueueServerSettings", "manager_command", "manager_environment"]

STARTUP_MODULE = "optgen.lab.bluesky.queue_startup"


@dataclass(frozen=True)
class QueueServerSettings:
    """Where the manager listens and what its worker opens."""

    bench: Path | None = None               # None: the embedded simulated bench
    calibrations: Path | None = None
    frames_dir: Path = Path("bluesky-frames")
    redis: str = "localhost:6379"
    redis_prefix: str = "qs_default"         # one per bench sharing a Redis
    control_port: int = 60615                # ZeroMQ control address tcp://127.0.0.1:PORT
    info_port: int = 60625                   # ZeroMQ console/info publishing
    state_dir: Path = Path("queue-server")   # the manager's list of plans and devices
    tiled_uri: str | None = None             # every run also into this Tiled server
    tiled_api_key: str | None = None

    @property
    def control_address(self) -> str:
        return f"tcp://127.0.0.1:{self.control_port}"

    @property
    def info_address(self) -> str:
        return f"tcp://127.0.0.1:{self.info_port}"


def _manager_executable() -> str:
    found = shutil.which("start-re-manager", path=os.path.dirname(sys.executable) + os.pathsep
                         + os.environ.get("PATH", ""))
    if found is None:
        raise OptgenError("start-re-manager not found: install the extra: pip install -e '.[bluesky]'")
    return found


def manager_command(settings: QueueServerSettings) -> list[str]:
    """The ``start-re-manager`` command line for ``settings`` (the state folder is created)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    permissions = resources.files("optgen.lab.bluesky").joinpath("queue_permissions.yaml")
    return [_manager_executable(), "--startup-module", STARTUP_MODULE,
            "--redis-addr", settings.redis, "--redis-name-prefix", settings.redis_prefix,
            "--zmq-control-addr", f"tcp://127.0.0.1:{settings.control_port}",
            "--zmq-info-addr", f"tcp://127.0.0.1:{settings.info_port}",
            "--zmq-publish-console", "ON",
            "--existing-plans-devices", str(settings.state_dir / "existing_plans_and_devices.yaml"),
            "--update-existing-plans-devices", "ENVIRONMENT_OPEN",
            "--user-group-permissions", str(permissions),
            "--keep-re"]


def manager_environment(settings: QueueServerSettings) -> dict[str, str]:
    """The environment the worker reads (queue_startup's ``OPTGEN_*`` variables) on top of this one."""
    env = dict(os.environ)
    env["OPTGEN_BENCH"] = str(settings.bench.resolve()) if settings.bench is not None else ""
    env["OPTGEN_CALIBRATIONS"] = str(settings.calibrations.resolve()) if settings.calibrations is not None else ""
    env["OPTGEN_FRAMES_DIR"] = str(settings.frames_dir.resolve())
    if settings.tiled_uri:
        env["OPTGEN_TILED_URI"] = settings.tiled_uri
        env["OPTGEN_TILED_DOCUMENTS"] = str((settings.state_dir / "documents").resolve())
    if settings.tiled_api_key:
        env["TILED_API_KEY"] = settings.tiled_api_key
    return env
