"""The optgen side of the laser watchdog (:mod:`optgen.drivers.watchdog_process`).

A :class:`LaserWatchdog` is started by :meth:`drivers.laser.Laser.set_emission` before a laser
that can be reached from another process is first turned on, and lives until the laser is
closed. A thread sends a heartbeat every quarter of ``heartbeat_s`` while the main thread makes
progress (:func:`drivers.stop.pet`, at every bounded wait) and no stop now has gone unheeded
for half of :data:`drivers.stop.EXIT_GRACE_S`; the pipe to the watchdog closes by itself when
this process dies. A watchdog that cannot start refuses the emission.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from optgen.drivers import stop
from optgen.drivers.errors import LaserSafetyError

__all__ = ["CHILD_SCRIPT", "LaserWatchdog", "STALL_S"]

log = logging.getLogger("optgen.run")

CHILD_SCRIPT = Path(__file__).with_name("watchdog_process.py")
START_TIMEOUT_S = 10.0
STALL_S = 30.0        # the main thread may go this long without reaching a bounded wait (a long fit)


class LaserWatchdog:
    """One watchdog process for one laser."""

    def __init__(self, laser_name: str, spec: dict, heartbeat_s: float = 2.0):
        self.laser_name = laser_name
        self.spec = {**spec, "laser": laser_name, "heartbeat_s": float(heartbeat_s), "parent_pid": os.getpid()}
        self.heartbeat_s = float(heartbeat_s)
        self.reports: list[dict] = []
        self.acted: dict | None = None        # what the watchdog did, if it took over
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- life cycle ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the process and wait until it says it is ready; LaserSafetyError if it does not."""
        if self.running:
            return
        self.acted = None
        self._done.clear()
        try:
            proc = subprocess.Popen([sys.executable, "-u", str(CHILD_SCRIPT)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=None, bufsize=0, start_new_session=True,
                                    close_fds=True)
        except OSError as exc:
            raise LaserSafetyError(self.laser_name, f"the laser watchdog process could not start ({exc}); "
                                                    f"emission stays off") from exc
        self._proc = proc
        try:
            self._send(json.dumps({**self.spec, "reports": self.reports}))
            reply = self._read_line(START_TIMEOUT_S)
        except OSError as exc:
            reply = f"error {exc}"
        if reply != "ready":
            self._kill()
            raise LaserSafetyError(self.laser_name, f"the laser watchdog process did not start "
                                                    f"({reply or 'no answer within ' + str(START_TIMEOUT_S) + ' s'}); "
                                                    f"emission stays off")
        self._threads = [threading.Thread(target=self._beat, name="optgen-watchdog-beat", daemon=True),
                         threading.Thread(target=self._listen, name="optgen-watchdog-listen", daemon=True)]
        for thread in self._threads:
            thread.start()
        log.info("laser watchdog for %s started (pid %d, heartbeat %.3g s)", self.laser_name, proc.pid,
                 self.heartbeat_s)

    def close(self) -> None:
        """Say goodbye (the laser was verified off and closed); the process ends without acting."""
        proc = self._proc
        if proc is None:
            return
        self._done.set()
        try:
            self._send("bye")
            proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self._kill()
        for thread in self._threads:
            thread.join(1.0)
        self._proc = None

    # --- events ----------------------------------------------------------------------------
    def state(self, emission: str) -> None:
        """Tell the watchdog the emission was asked on (``"on"``) or verified off (``"off"``)."""
        self._send_quietly(f"state {emission}")

    def report_to(self, reports: list[dict]) -> None:
        """Where the watchdog writes what it did: ``[{"folder": ..., "kind": "run" | "calibration"}]``."""
        self.reports = list(reports)
        self._send_quietly("report " + json.dumps(self.reports))

    # --- machinery -------------------------------------------------------------------------
    def _beat(self) -> None:
        period = self.heartbeat_s / 4.0
        while not self._done.wait(period):
            if not self._main_thread_alive():
                continue                          # no beat: the watchdog takes over
            if not self._send_quietly("beat"):
                if not self._done.is_set():
                    log.critical("the laser watchdog for %s ended (exit %s)", self.laser_name,
                                 self._proc.poll() if self._proc else None)
                return

    @staticmethod
    def _main_thread_alive() -> bool:
        control = stop.active()
        if control is None:
            return True
        now = time.monotonic()
        if control.now_since_s is not None and now - control.now_since_s > stop.EXIT_GRACE_S / 2:
            return False                          # a stop now went unheeded: let the watchdog act
        return now - control.last_pet_s < STALL_S

    def _listen(self) -> None:
        while not self._done.is_set():
            line = self._read_line(0.5)
            if line is None:
                return
            if line.startswith("acted "):
                self.acted = json.loads(line[len("acted "):])
                log.critical("laser watchdog: %s", self.acted.get("message"))

    def _send(self, line: str) -> None:
        with self._lock:
            self._proc.stdin.write((line + "\n").encode("utf-8"))
            self._proc.stdin.flush()

    def _send_quietly(self, line: str) -> bool:
        if self._proc is None:
            return False
        try:
            self._send(line)
            return True
        except (OSError, ValueError):
            return False

    def _read_line(self, timeout_s: float) -> str | None:
        """One line from the process ('' on a timeout, None once it closed its output)."""
        out = self._proc.stdout
        ready, _, _ = select.select([out], [], [], timeout_s)
        if not ready:
            return ""
        raw = out.readline()
        return raw.decode("utf-8", "replace").strip() if raw else None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(2.0)
