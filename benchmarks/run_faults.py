"""Fault matrix of `optgen run` on the twin: a fault at each stage and each signal, at a random
moment, N trials each; after the run (and as many resumes as it takes, at most 3) every frame
must be stored exactly once with its own seed's light, and the laser off after every process.

Stages (in process, virtual clock, :mod:`optgen.lab.run.faults`): upload, settle, capture, store,
laser, link. Signals (an `optgen run` process on the wall clock): SIGINT once, SIGINT twice,
SIGTERM, SIGKILL; then `optgen run --resume`.

"Its own light": each stored registered image correlates best with the image of the same
seed from a clean reference run (Pearson r), so a frame stored under the wrong index, or a
frame of the next pattern, counts as lost; an index stored twice counts as doubled.

``--sync trigger`` runs the same matrix with the SLM's frame-shown output triggering the camera
(a camera that overlaps exposure and readout).

``--only laser``: the laser rows (benchmarks/_laser_trials.py), with the laser a protocol twin in a
process of its own whose emission is read from outside: SIGTERM and SIGINT during each calibration
step, SIGKILL during a run and during calibrate (off within 2 s: the watchdog), and
``--sigterm-trials`` SIGTERMs at random moments of runs (each a clean stop, none "complete").

Usage:  python benchmarks/run_faults.py [--trials N] [--frames F] [--only stages|signals|laser] [--sync MODE]
                                        [--sigterm-trials N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import small_bench_text
from optgen.lab.bench.parse import parse_bench
from optgen.lab.run import faults
from optgen.lab.run.decoder import load_decoder_phase
from optgen.lab.run.generate import run_generation
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder
from optgen.lab.runfile.reader import read_run_status

ROOT = Path(__file__).parents[1]
SIGNALS = ("SIGINT", "SIGINTx2", "SIGTERM", "SIGKILL")
SYNC = "pipelined"                  # set from --sync
TWIN = {("twin.camera", "trigger_overlap"): '"readout"'}


def _run(cfg, out: Path, frames: int, resume: bool = False, stage: str | None = None, at: int = 0) -> bool:
    """One run (or resume) on a fresh twin; returns whether the laser was off afterwards."""
    n = cfg.geometry.seed_superpixels
    seeds = EncoderSeedSource(PlaceholderEncoder(n * n), n, 7)
    phase, decoder_id = load_decoder_phase("flat", cfg.geometry.decoder_px)
    with build_bench(cfg) as bench:
        if stage is not None:
            faults.plant(bench, stage, at)
        try:
            run_generation(bench, seeds, phase, decoder_id, out, frames, resume=resume, sync=SYNC)
        except Exception:
            pass
        finally:
            faults.clear(bench)
        return bench.world.laser_emission is False


def _images(out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(out / "run.h5", "r") as f:
        return f["meta/written"][:], f["seed/index"][:], f["images"][...]


def judge(out: Path, reference: np.ndarray) -> dict:
    """Frames lost (missing, or not their own seed's light) and doubled (an index twice)."""
    written, index, images = _images(out)
    flat = images.reshape(len(images), -1).astype(np.float64)
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    lost, own = int(np.count_nonzero(~written)), []
    for i in np.flatnonzero(written):
        r = [np.corrcoef(flat[i], ref[j])[0, 1] for j in range(len(ref))]
        own.append(int(np.argmax(r)) == i and index[i] == i)
    lost += own.count(False)
    doubled = len(index[written]) - len(set(index[written].tolist()))
    return {"lost": lost, "doubled": doubled}


def finish(cfg, out: Path, frames: int, reference: np.ndarray, totals: dict) -> None:
    """Resume until complete (at most 3 times), then add resumes, laser-on count, lost and
    doubled frames to ``totals``."""
    resumes = 0
    while read_run_status(out / "run.h5")["status"] != "complete" and resumes < 3:
        resumes += 1
        totals["laser_on"] += not _run(cfg, out, frames, resume=True)
    totals["resumes"] += resumes
    for key, value in judge(out, reference).items():
        totals[key] += value


def stage_trials(stage: str, trials: int, frames: int, reference: np.ndarray, tmp: Path, rng) -> dict:
    cfg = parse_bench(small_bench_text(TWIN), "fault matrix")
    totals = {"lost": 0, "doubled": 0, "laser_on": 0, "resumes": 0}
    for t in range(trials):
        out = tmp / f"{stage}-{t}"
        at = int(rng.integers(2, frames))
        totals["laser_on"] += not _run(cfg, out, frames, stage=stage, at=at)
        finish(cfg, out, frames, reference, totals)
    return totals


def signal_trials(kind: str, trials: int, frames: int, reference: np.ndarray, tmp: Path, rng) -> dict:
    bench = tmp / "wall.toml"
    bench.write_text(small_bench_text({**TWIN, ("run", "timing"): '"wall"'}))
    cfg = parse_bench(bench.read_text(), str(bench))
    totals = {"lost": 0, "doubled": 0, "laser_on": 0, "resumes": 0}
    for t in range(trials):
        out = tmp / f"{kind}-{t}"
        proc = subprocess.Popen([sys.executable, "-m", "optgen.lab.cli", "run", "--count", str(frames), "--out", str(out),
                                 "--bench", str(bench), "--no-progress", "--seed", "7", "--sync", SYNC], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if read_run_status(out / "run.h5")["frames_written"] >= 1:
                    break
            except Exception:
                pass
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.4)))
        sig = {"SIGINT": signal.SIGINT, "SIGINTx2": signal.SIGINT, "SIGTERM": signal.SIGTERM,
               "SIGKILL": signal.SIGKILL}[kind]
        proc.send_signal(sig)
        if kind == "SIGINTx2":
            time.sleep(0.03 + float(rng.uniform(0.0, 0.05)))   # two presses, not one merged signal
            proc.send_signal(signal.SIGINT)
        proc.wait(60)
        if kind != "SIGKILL":   # a killed process cannot report; the twin's laser died with it
            summary = json.loads((out / "summary.json").read_text())
            totals["laser_on"] += not summary["laser_verified_off"]
        finish(cfg, out, frames, reference, totals)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--only", choices=("stages", "signals", "laser"), default=None)
    parser.add_argument("--sync", choices=("pipelined", "wait", "trigger"), default="pipelined")
    parser.add_argument("--sigterm-trials", type=int, default=200)
    args = parser.parse_args()
    global SYNC
    SYNC = args.sync
    rng = np.random.default_rng(20261124)
    if args.only == "laser":
        laser_rows(args, rng)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        here = os.getcwd()
        os.chdir(tmp)
        os.environ["OPTGEN_DATA_DIR"] = str(tmp)  # nor a store in the user data folder
        try:
            cfg = parse_bench(small_bench_text(TWIN), "reference")
            _run(cfg, tmp / "reference", args.frames)
            reference = _images(tmp / "reference")[2]
            rows = []
            if args.only != "signals":
                rows += [(s, stage_trials(s, args.trials, args.frames, reference, tmp, rng)) for s in faults.STAGES]
            if args.only != "stages":
                rows += [(k, signal_trials(k, args.trials, args.frames, reference, tmp, rng)) for k in SIGNALS]
        finally:
            os.chdir(here)
    print(f"fault matrix: {args.trials} trials each, {args.frames} frames per run, fault at a random frame, "
          f"sync {args.sync}")
    print(f"  {'fault':<10} {'lost':>5} {'doubled':>8} {'laser left on':>14} {'resumes':>8}")
    for name, t in rows:
        print(f"  {name:<10} {t['lost']:>5} {t['doubled']:>8} {t['laser_on']:>14} {t['resumes']:>8}")
    print(f"\ncommand: python benchmarks/run_faults.py --trials {args.trials} --frames {args.frames}"
          f"{' --only ' + args.only if args.only else ''} --sync {args.sync} ({os.cpu_count()} CPUs)")


def laser_rows(args, rng) -> None:
    """The laser rows: calibrate and run processes signalled while an external twin laser emits."""
    import signal as sig

    from _laser_trials import WATCHDOG_S, calibrate_trials, make_store, run_kill_trials, run_sigterm_trials

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = make_store(tmp)
        ref = tmp / "reference"
        ref.mkdir()
        from optgen.lab.bench.examples import external_laser_bench_text
        from optgen.simulators.protocol.serve import ExternalTwinLaser

        laser = ExternalTwinLaser("obis", ref / "state.json", cwd=ROOT)
        try:
            (ref / "bench.toml").write_text(external_laser_bench_text(laser.port))
            subprocess.run([sys.executable, "-m", "optgen.lab.cli", "run", "--count", str(args.frames), "--out",
                            str(ref / "run"), "--bench", str(ref / "bench.toml"), "--no-progress", "--seed", "7"],
                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        finally:
            laser.close()
        reference = _images(ref / "run")[2]
        cal_rows = [(f"calibrate {step} {name}", calibrate_trials(step, signum, args.trials, tmp, rng, store))
                    for step in ("camera", "lut", "alignment")
                    for name, signum in (("SIGTERM", sig.SIGTERM), ("SIGINT", sig.SIGINT))]
        cal_rows.append(("calibrate all SIGKILL", calibrate_trials("all", sig.SIGKILL, args.trials, tmp, rng, None)))
        kill = run_kill_trials(args.trials, args.frames, tmp, rng, lambda out: judge(out, reference))
        term = run_sigterm_trials(args.sigterm_trials, 200, tmp, rng)
    print(f"laser rows: a protocol-twin OBIS laser in a process of its own, {args.trials} trials each, the signal "
          f"at a random moment while it emits")
    print(f"  {'case':<26} {'trials':>6} {'laser left on':>14} {'bad exit':>9} {'no light':>9} {'off after (max)':>16}")
    for name, t in cal_rows:
        print(f"  {name:<26} {t['trials']:>6} {t['laser_on']:>14} {t['bad_exit']:>9} {t['no_light']:>9} "
              f"{t['off_s_max']:>14.3f} s" + (f"   (exit statuses {t['bad_codes']})" if t["bad_codes"] else ""))
    print(f"  {'run SIGKILL':<26} {kill['trials']:>6} {kill['laser_on']:>14} {'':>9} {'':>9} {kill['off_s_max']:>14.3f} s"
          f"   lost {kill['lost']}, doubled {kill['doubled']} after resume; watchdog acted {kill['watchdog_acted']}")
    print(f"  {'run SIGTERM':<26} {term['trials']:>6} {term['laser_on']:>14}   clean stops {term['clean_stops']}, "
          f"reported complete {term['reported_complete']}, tracebacks {term['tracebacks']}")
    print(f"  (laser left on: still on after the process ended, or for SIGKILL off later than {WATCHDOG_S:g} s)")
    print(f"\ncommand: python benchmarks/run_faults.py --only laser --trials {args.trials} --frames {args.frames} "
          f"--sigterm-trials {args.sigterm_trials} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
