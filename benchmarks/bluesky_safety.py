"""Laser safety in the RunEngine (issue 23): the laser is off after every way a plan can be stopped.

20 trials (``--trials``) of each: a pause then an abort, an abort, a halt, a failing plan (a camera
that stops delivering) and Ctrl-C (once: a deferred pause; twice: a pause at once) then an abort,
each while a generate plan runs on the small twin and a frame is in flight (a random frame, held a
random 0-50 ms of wall time as a long exposure). After each, the laser's own read-back (not the
driver's bookkeeping) must say emission off, and the driver must have verified it. Prints the count
of trials with the laser left on per kind; 0 expected everywhere (exit status 1 otherwise).

Usage:  python benchmarks/bluesky_safety.py [--trials N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time

import numpy as np
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

import optgen
import optgen.bluesky
from optgen.drivers.errors import DeviceError
from optgen.lab.bench.examples import small_bench_text
from optgen.lab.bench.parse import parse_bench

KINDS = ("pause+abort", "abort", "halt", "failing plan", "ctrl-c once", "ctrl-c twice")
FRAMES = 10
WAIT_S = 30.0


def interrupt_in_flight(camera, at: int, hold_s: float, action) -> threading.Thread:
    """Run ``action`` on a thread while the camera's ``at``-th capture is held ``hold_s``."""
    reached, done = threading.Event(), threading.Event()
    real = type(camera)._get_image_hw
    count = [0]

    def hooked(timeout_s):
        count[0] += 1
        if count[0] == at:
            reached.set()
            done.wait(hold_s)
        return real(camera, timeout_s)

    def act():
        if reached.wait(WAIT_S):
            action()
        done.set()

    camera._get_image_hw = hooked
    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def ctrl_c(presses: int) -> None:
    for press in range(presses):
        if press:
            time.sleep(0.15)        # the RunEngine counts presses at least 0.1 s apart
        os.kill(os.getpid(), signal.SIGINT)


def one_trial(RE, bench, devices, kind: str, rng) -> bool:
    """Whether the laser was left on after one interrupted generate plan."""
    camera = bench.devices.camera
    at = int(rng.integers(3, FRAMES + 2))          # capture 1 is the dark frame
    hold_s = float(rng.uniform(0.0, 0.05))
    failing = None
    if kind == "failing plan":
        def fail():
            raise DeviceError("camera", "no frame (planted)")
        action, failing = None, fail
    elif kind == "pause+abort":
        action = RE.request_pause
    elif kind in ("abort", "halt"):
        action = getattr(RE, kind)
    else:
        presses = 1 if kind == "ctrl-c once" else 2
        action, hold_s = (lambda: ctrl_c(presses)), 0.5
    thread = None
    if failing is None:
        thread = interrupt_in_flight(camera, at, hold_s, action)
    else:                                          # the camera fails at that capture instead
        real = type(camera)._get_image_hw
        calls = [0]

        def capture(timeout_s):
            calls[0] += 1
            if calls[0] == at:
                time.sleep(hold_s)
                failing()
            return real(camera, timeout_s)
        camera._get_image_hw = capture
    try:
        RE(optgen.bluesky.plans.generate(devices, FRAMES, seed=int(rng.integers(1000))))
    except (RunEngineInterrupted, Exception):    # noqa: BLE001 - every way the plan may end
        pass
    finally:
        if thread is not None:
            thread.join(WAIT_S)
        del camera._get_image_hw
    if RE.state == "paused":
        RE.abort()
    laser = bench.devices.laser
    return bool(bench.devices.world.laser_emission or laser.emission or not laser.verified_off)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    RE = RunEngine()
    RE.log.disabled = True
    left_on = {kind: 0 for kind in KINDS}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, \
            optgen.open_bench(parse_bench(small_bench_text(), "small-twin.toml")) as bench:
        devices = optgen.bluesky.devices(bench, os.path.join(tmp, "frames"))
        try:
            for kind in KINDS:
                for _ in range(args.trials):
                    left_on[kind] += one_trial(RE, bench, devices, kind, rng)
        finally:
            devices.close()
    print(f"\n{'interruption':<14} {'trials':>6} {'laser left on':>14}")
    for kind in KINDS:
        print(f"{kind:<14} {args.trials:>6} {left_on[kind]:>14}")
    print(f"laser left on in {sum(left_on.values())} of {args.trials * len(KINDS)} trials "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0 if not any(left_on.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
