"""``optgen calibrate lut|alignment|camera|all|check``: run, report, and (for check) judge drift."""

from __future__ import annotations

import argparse
import json
import sys
import time

from optgen.drivers.errors import OptgenError
from optgen.lab.cli.checks import check_file_to_write, check_folder_to_make

__all__ = ["ConsoleProgress", "console_progress", "run_calibrate"]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_calibrate(args: argparse.Namespace) -> int:
    from optgen.lab.api import Bench
    from optgen.lab.bench.calibrations import store_folder
    from optgen.lab.bench.config import colour_bench
    from optgen.lab.bench.parse import load_bench

    if args.rounds < 1:
        raise OptgenError(f"--rounds {args.rounds}: expected at least 1")
    if args.json is not None:                 # before anything is measured: a report that cannot be written is lost
        check_file_to_write(args.json, "--json")
    if args.store is not None:
        check_folder_to_make(args.store, "--store")
    colour = getattr(args, "colour", None)
    if colour is not None and args.bench is None:   # the embedded three-colour twin, as optgen run --colours
        from optgen.lab.bench.examples import embedded_colour_bench

        cfg = embedded_colour_bench()
    else:
        cfg = load_bench(args.bench)
    if colour is not None:                           # one colour of a multi-colour bench: its laser, its LUTs
        cfg = colour_bench(cfg, colour)
    folder = store_folder(cfg, args.store)
    with Bench.open(cfg, store=folder) as bench:
        if args.what == "check":
            result = bench.check()
            for line in result.lines():
                print(line)
            _write_json(args.json, result.as_dict())
            return 0 if result.ok else 3
        report = bench.calibrate(args.what, rounds=args.rounds,
                                 progress=console_progress(getattr(args, "quiet", False)))
        out = report.as_dict()
        devices = bench.devices
        if devices.world is not None:
            from optgen.calibration.twin_truth import truth_errors

            out["twin_truth"] = truth_errors(report, devices.truths, cfg.light_path,
                                             decoder_corrected=cfg.calibration.correct_decoder_wavefront)
    print(f"optgen calibrate {args.what}: done ({cfg.name}); store {folder}")
    for key, path in report.files.items():
        print(f"  {key:<22} {path.name}  (picture {report.pictures[key].name})")
    for key, value in report.figures.items():
        print(f"  {key:<32} {_fmt(value)}")
    c = report.counters
    print(f"  {c['patterns_shown']} patterns, {c['frames_captured']} frames, {c['wall_time_s']:.2f} s wall "
          f"({c['pattern_time_s']:.2f} s of SLM latency + settle)")
    if "twin_truth" in out:
        print("  against the twin's planted truth:")
        for key, value in out["twin_truth"].items():
            print(f"    {key:<30} {_fmt(value)}")
    _write_json(args.json, out)
    return 0


class ConsoleProgress:
    """A progress printer for stderr (``stream``): on a terminal one line redrawn in place; elsewhere (a
    log file, CI) each stage's start and end and a count every ``every_s`` seconds. Lines are
    ``calibration.progress.ProgressLine``; any other line is printed as it is."""

    def __init__(self, stream=None, tty: bool | None = None, every_s: float = 10.0, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = every_s
        self.clock = clock
        self._last = 0.0
        self._drawn = False          # a redrawn line is on the terminal, without its newline

    def __call__(self, line: str) -> None:
        kind = getattr(line, "kind", "note")
        redrawn = kind in ("start", "count")
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("" if redrawn else "\n"))
            self._drawn = redrawn
        elif kind != "count" or self.clock() - self._last >= self.every_s:
            self._last = self.clock()
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Before other output on the terminal: take the line being redrawn away (the next count
        draws it again)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


def console_progress(quiet: bool = False) -> ConsoleProgress | None:
    """The progress printer of a command: None with ``--quiet``."""
    return None if quiet else ConsoleProgress()


def _write_json(path, data: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2, default=float) + "\n", encoding="utf-8")
        print(f"  report written to {path}")
