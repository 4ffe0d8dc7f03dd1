"""The laser rows of the fault matrix: `optgen run` and `optgen calibrate` processes lit by a
protocol-twin laser in a process of its own (simulators.protocol.serve), signalled at a random
moment while the laser emits. The laser's state is read from outside, so a process that died
cannot report itself as safe: the twin says whether, and when, its emission went off.

- SIGTERM / SIGINT during each calibration step: exit status 143 / 130, emission off at exit;
- SIGKILL during a run and during calibrate: emission off within WATCHDOG_S of the kill (the
  watchdog's doing), the run then resumed and judged (lost / doubled frames);
- SIGTERM at a random moment of a run: a clean stop (exit 143, summary "stopped"), never "complete".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from optgen.lab.bench.examples import external_laser_bench_text
from optgen.lab.runfile.reader import read_run_status
from optgen.simulators.protocol.serve import ExternalTwinLaser

__all__ = ["WATCHDOG_S", "calibrate_trials", "run_kill_trials", "run_sigterm_trials"]

ROOT = Path(__file__).parents[1]
WATCHDOG_S = 2.0


def _optgen(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "optgen.lab.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _signal_while_emitting(proc, laser: ExternalTwinLaser, rng, signum, window_s: float) -> float | None:
    """Signal the process at a random moment after its laser came on; the time of the signal
    (None if the laser never came on)."""
    if not laser.wait_for(True, 120.0):
        proc.kill()
        return None
    time.sleep(float(rng.uniform(0.0, window_s)))
    t = time.time()
    proc.send_signal(signum)
    return t


def _off_after(laser: ExternalTwinLaser, t_signal: float) -> float:
    """Seconds from the signal until the emission was off (0 if it was off already; inf if never)."""
    if not laser.wait_for(False, 10.0):
        return float("inf")
    off = laser.last_off_s()
    return max(0.0, off - t_signal) if off is not None else 0.0


def calibrate_trials(step: str, signum: int, trials: int, tmp: Path, rng, store_all: Path | None) -> dict:
    """``optgen calibrate STEP`` signalled while emitting; the earlier steps' files copied in."""
    totals = {"trials": 0, "laser_on": 0, "bad_exit": 0, "no_light": 0, "off_s_max": 0.0, "bad_codes": []}
    expected = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGKILL: -9}[signum]
    for t in range(trials):
        folder = tmp / f"cal-{step}-{signum}-{t}"
        folder.mkdir()
        laser = ExternalTwinLaser("obis", folder / "state.json", cwd=ROOT)
        try:
            bench = folder / "bench.toml"
            bench.write_text(external_laser_bench_text(laser.port))
            if store_all is not None and step != "camera":
                shutil.copytree(store_all, folder / "store")
            proc = _optgen(["calibrate", step, "--bench", str(bench), "--store", str(folder / "store")])
            t_sig = _signal_while_emitting(proc, laser, rng, signum, 0.3)
            proc.communicate(timeout=120)
            totals["trials"] += 1
            if t_sig is None:
                totals["no_light"] += 1
                continue
            off_s = _off_after(laser, t_sig)
            totals["off_s_max"] = max(totals["off_s_max"], off_s)
            totals["laser_on"] += laser.emission or (signum == signal.SIGKILL and off_s > WATCHDOG_S)
            if proc.returncode != expected:
                totals["bad_exit"] += 1
                totals["bad_codes"].append(proc.returncode)
        finally:
            laser.close()
    return totals


def make_store(tmp: Path) -> Path:
    """A calibration store after `optgen calibrate all` on the external-laser bench."""
    folder = tmp / "store-all"
    folder.mkdir()
    laser = ExternalTwinLaser("obis", folder / "state.json", cwd=ROOT)
    try:
        bench = folder / "bench.toml"
        bench.write_text(external_laser_bench_text(laser.port))
        proc = _optgen(["calibrate", "all", "--bench", str(bench), "--store", str(folder / "store")])
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"calibrate all failed: {err[-2000:]}")
    finally:
        laser.close()
    return folder / "store"


def run_kill_trials(trials: int, frames: int, tmp: Path, rng, judge) -> dict:
    """SIGKILL during a run; the watchdog turns the laser off; the run resumed to the end and judged."""
    totals = {"trials": 0, "laser_on": 0, "lost": 0, "doubled": 0, "off_s_max": 0.0, "watchdog_acted": 0}
    for t in range(trials):
        folder = tmp / f"kill-{t}"
        folder.mkdir()
        laser = ExternalTwinLaser("obis", folder / "state.json", cwd=ROOT)
        try:
            bench = folder / "bench.toml"
            bench.write_text(external_laser_bench_text(laser.port))
            out = folder / "run"
            proc = _optgen(["run", "--count", str(frames), "--out", str(out), "--bench", str(bench), "--no-progress",
                            "--seed", "7"])
            t_sig = _signal_while_emitting(proc, laser, rng, signal.SIGKILL, 1.0)
            proc.communicate(timeout=120)
            totals["trials"] += 1
            off_s = _off_after(laser, t_sig) if t_sig is not None else float("inf")
            totals["off_s_max"] = max(totals["off_s_max"], off_s)
            totals["laser_on"] += laser.emission or off_s > WATCHDOG_S
            totals["watchdog_acted"] += (out / "watchdog.json").exists()
            for _ in range(3):
                if read_run_status(out / "run.h5")["status"] == "complete":
                    break
                _optgen(["run", "--resume", str(out), "--no-progress"]).communicate(timeout=300)
            for key, value in judge(out).items():
                totals[key] += value
        finally:
            laser.close()
    return totals


def run_sigterm_trials(trials: int, frames: int, tmp: Path, rng) -> dict:
    """SIGTERM at a random moment of a run: a clean stop every time, never a complete run."""
    totals = {"trials": 0, "clean_stops": 0, "reported_complete": 0, "laser_on": 0, "tracebacks": 0}
    folder = tmp / "sigterm"
    folder.mkdir()
    laser = ExternalTwinLaser("obis", folder / "state.json", cwd=ROOT)
    try:
        bench = folder / "bench.toml"
        bench.write_text(external_laser_bench_text(laser.port))
        for t in range(trials):
            out = folder / f"run-{t}"
            proc = _optgen(["run", "--count", str(frames), "--out", str(out), "--bench", str(bench), "--no-progress"])
            _signal_while_emitting(proc, laser, rng, signal.SIGTERM, 1.5)
            _, err = proc.communicate(timeout=120)
            totals["trials"] += 1
            summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
            totals["reported_complete"] += summary.get("status") == "complete" or proc.returncode == 0
            totals["clean_stops"] += (proc.returncode == 143 and summary.get("status") == "stopped"
                                      and summary.get("laser_verified_off") is True)
            totals["laser_on"] += laser.emission
            totals["tracebacks"] += "Traceback" in err or "Exception ignored" in err
    finally:
        laser.close()
    return totals
