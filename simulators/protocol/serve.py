"""A protocol-twin laser in a process of its own, for tests that kill the optgen process.

    python -m simulators.protocol.serve obis|cobolt|toptica-ibeam-smart|omicron-luxx --state FILE [--max-power-mw P]

prints the pseudo-terminal's path on its first line (the bench file's ``[laser.connection]
port``), then answers the laser's byte protocol there until its standard input closes or it is
sent SIGTERM. After every command it rewrites ``FILE`` (JSON, replaced atomically): the emission,
the setpoint, when the emission last changed (Unix time) and how many commands it has answered;
so a test can see the laser's state from outside, also after the process that drove it is gone.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

from optgen.simulators.protocol.cobolt import CoboltTwin
from optgen.simulators.protocol.ibeam_smart import IBeamSmartTwin
from optgen.simulators.protocol.obis import ObisTwin
from optgen.simulators.protocol.omicron_luxx import LuxxTwin

__all__ = ["ExternalTwinLaser", "main", "state_twin"]

# the OBIS and Cobolt drivers' twins, and those of the shipped command tables (by table name)
TWINS = {"obis": ObisTwin, "cobolt": CoboltTwin, "toptica-ibeam-smart": IBeamSmartTwin, "omicron-luxx": LuxxTwin}


def state_twin(kind: str, state_path: str, max_power_w: float):
    """A protocol twin of ``kind`` that writes its state to ``state_path`` after every command."""
    base = TWINS[kind]

    class StateTwin(base):
        emission_changes: list = []

        def _mirror(self) -> None:
            super()._mirror()
            last = self.emission_changes[-1][1] if self.emission_changes else None
            if last is None or last != self.emission:
                self.emission_changes = (self.emission_changes + [[time.time(), self.emission]])[-50:]
            state = {"emission": self.emission, "setpoint_w": self.setpoint_w, "commands": len(self.received),
                     "emission_changes": self.emission_changes, "last_command": self.received[-1:]}
            tmp = state_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(state, f)
            os.replace(tmp, state_path)

    return StateTwin(None, max_power_w=max_power_w)


class ExternalTwinLaser:
    """Start ``python -m simulators.protocol.serve KIND`` and read its state from outside."""

    def __init__(self, kind: str, state: str | os.PathLike, cwd: str | os.PathLike | None = None,
                 max_power_mw: float = 100.0):
        import subprocess

        self.state_path = os.fspath(state)
        self.proc = subprocess.Popen([sys.executable, "-m", "optgen.simulators.protocol.serve", kind, "--state",
                                      self.state_path, "--max-power-mw", f"{max_power_mw:g}"], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.port = self.proc.stdout.readline().strip()
        if not self.port.startswith("/dev/"):
            self.close()
            raise RuntimeError(f"the {kind} twin did not start: {self.port!r}")

    def state(self) -> dict:
        """What the twin last wrote (emission off and nothing answered before its first command)."""
        try:
            with open(self.state_path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {"emission": False, "emission_changes": [], "commands": 0}

    @property
    def emission(self) -> bool:
        return bool(self.state()["emission"])

    def last_off_s(self) -> float | None:
        """Unix time the emission last went off (None while it is on, or if it never was)."""
        changes = self.state()["emission_changes"]
        return changes[-1][0] if changes and not changes[-1][1] else None

    def wait_for(self, emission: bool, timeout_s: float) -> bool:
        """Poll until the emission is ``emission``; False if it is not within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.emission is emission:
                return True
            time.sleep(0.01)
        return self.emission is emission

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(5)
        except Exception:   # noqa: BLE001 - a twin that will not end is killed
            self.proc.kill()
            self.proc.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.protocol.serve")
    parser.add_argument("kind", choices=sorted(TWINS))
    parser.add_argument("--state", required=True, help="JSON file the twin rewrites after every command")
    parser.add_argument("--max-power-mw", type=float, default=100.0)
    args = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: done.set())
    twin = state_twin(args.kind, args.state, args.max_power_mw * 1e-3)
    print(twin.port, flush=True)

    def watch_stdin() -> None:
        try:
            while sys.stdin.read(1):
                pass
        finally:
            done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    finally:
        twin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
