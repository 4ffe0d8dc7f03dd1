"""The ``optgen`` command line: run (and --resume), status, calibrate, train, refine, evaluate, devices, config,
live and show."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from optgen.drivers.errors import OptgenError
from optgen.lab.cli.checks import positive_number, whole_number
from optgen.lab.cli.commands import cmd_config, cmd_devices, cmd_evaluate, cmd_train
from optgen.lab.cli.live import add_live_parsers
from optgen.lab.cli.queue_server import add_queue_server_parser
from optgen.lab.cli.refine import add_refine_parser
from optgen.lab.cli.run import cmd_run, cmd_status

__all__ = ["main"]

log = logging.getLogger("optgen")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("optgen")
    except PackageNotFoundError:
        return "(not installed)"


def _build_parser() -> argparse.ArgumentParser:
    from optgen.lab.model.shipped import SHIPPED_MODEL

    parser = argparse.ArgumentParser(
        prog="optgen",
        description="Run an optical generative model bench (real or simulated).")
    parser.add_argument("--version", action="version", version=f"optgen {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true",
                        help="print only results and errors (no progress, no calibration summary)")
    common.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="warning",
                        help="what the console shows of optgen's log (default warning; run.log keeps everything)")
    add_parser = sub.add_parser

    def add_with_common(*a, **k):
        return add_parser(*a, parents=[common], **k)

    sub.add_parser = add_with_common

    run = sub.add_parser("run", help="generate N frames on the bench into a new run folder",
                         description="Generate frames: encoder seeds on the encoding SLM, the decoder phase "
                                     "on the decoding SLM, one camera frame per seed. Without --bench, "
                                     "the embedded simulated bench is used.")
    run.add_argument("--count", type=int, default=None, help="number of frames to generate (>= 1)")
    run.add_argument("--out", type=Path, default=None, help="new run folder (must not hold files yet)")
    run.add_argument("--resume", type=Path, default=None, metavar="DIR",
                     help="continue the run in DIR at its first missing frame (same bench, seeds, calibrations)")
    run.add_argument("--sync", choices=("pipelined", "wait", "trigger"), default="pipelined",
                     help="pipelined: upload the next pattern while the last settles (default); wait: upload, wait "
                          "latency + settle, capture; trigger: the SLM's frame-shown output triggers the camera")
    run.add_argument("--retries", type=whole_number(0), default=3, help="attempts beyond the first for a missed frame (default 3)")
    run.add_argument("--bench", type=Path, default=None, help="bench file (TOML); default: the simulated bench")
    run.add_argument("--seed", type=int, default=None,
                     help="random seed of the encoder's noise, a whole number >= 0 (default 0; a resumed run "
                          "keeps its own)")
    run.add_argument("--class", dest="class_index", type=whole_number(0), default=None, metavar="K",
                     help="generate class K only (a digit, for the digits models; with --colours too): the model "
                          "reads the class from its noise, so the noise is drawn for K")
    run.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    run.add_argument("--colours", action="store_true",
                     help="run every colour of the bench's [colours] table, one at a time (its laser, LUT and "
                          "decoder phase), and combine the frames into RGB images (needs a multi-colour model); "
                          "without --bench: the embedded three-colour twin with the shipped model digits-rgb-v3")
    run.add_argument("--calibrations", type=Path, default=None,
                     help="calibration store (default: the bench file's [calibration] store)")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="say how far a run got and why it stopped",
                            description="Read a run folder (also one whose process was killed, or one still "
                                        "running) and print its status, frames stored, first missing frame, stop "
                                        "reason and logged events. Exit 0 complete, 1 otherwise.")
    status.add_argument("run", type=Path, help="run folder (from optgen run)")
    status.set_defaults(func=cmd_status)

    calibrate = sub.add_parser(
        "calibrate", help="calibrate the camera, the SLM LUTs and wavefronts, the distances, the alignment; check for drift",
        description="Measure on the bench (laser on only while measuring) and write versioned calibration "
                    "files with PNGs into the calibration store; later runs use the newest ones. 'all' runs "
                    "camera, lut (both SLMs, alternating rounds), wavefront (with the distances and each SLM's "
                    "unmodulated light) and alignment in that order. 'check' re-measures "
                    "a few points and reports drift against the stored calibrations (exit 3 when beyond tolerance).")
    calibrate.add_argument("what", choices=("camera", "lut", "wavefront", "distances", "alignment", "all", "check"))
    calibrate.add_argument("--bench", type=Path, default=None, help="bench file (default: the simulated bench)")
    calibrate.add_argument("--store", type=Path, default=None,
                           help="calibration store (default: the bench file's [calibration] store)")
    calibrate.add_argument("--colour", type=float, default=None, metavar="NM",
                           help="calibrate at this colour of the bench's [colours] table (default: [bench] "
                                "wavelength_nm); LUTs and alignment are stored per wavelength")
    calibrate.add_argument("--rounds", type=whole_number(1), default=2, help="alternating LUT rounds over the two SLMs (>= 1)")
    calibrate.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    calibrate.set_defaults(func=_cmd_calibrate)

    train = sub.add_parser("train", help="train the optical generative model in the twin (needs the train extra)",
                           description="Train encoder + decoder phase by distillation from a digits diffusion "
                                       "model, through the bench's optics. Resumable: run it again with the same "
                                       "--out to continue. Needs torch: pip install -e '.[train]'.")
    train.add_argument("--out", type=Path, required=True, help="training folder (checkpoints, model, loss curve)")
    train.add_argument("--bench", type=Path, default=None, help="bench file whose geometry to train for")
    train.add_argument("--grid", type=whole_number(32), default=512, help="simulation grid for training (pixels, default 512)")  # = train.DEFAULT_GRID_PX
    train.add_argument("--data", type=Path, default=None, metavar="PATH",
                       help="train on these images instead of scikit-learn's digits: a folder of PNG/JPEG images "
                            "(one sub-folder per class for a class-conditional model), a .npy/.npz array (with "
                            "'labels' for classes) or MNIST-format IDX files; resized to the teacher's size")
    train.add_argument("--teacher-size", type=whole_number(4), default=None, metavar="N",
                       help="the teacher's image size, N x N (default 8; the model's output grid is the bench's)")
    train.add_argument("--steps", type=whole_number(1), default=None, help="student steps (default 12000; 5500 with --colours)")
    train.add_argument("--batch", type=whole_number(1), default=None, help="batch size (default 16)")
    train.add_argument("--pairs", type=whole_number(1), default=None, help="teacher (noise, image) pairs (default 60000)")
    train.add_argument("--encoder-hidden", type=int, default=None, metavar="N",
                       help="width of the encoder's hidden layers (default 1024)")
    train.add_argument("--encoder-layers", type=int, default=None, metavar="N",
                       help="how many hidden layers the encoder has (default 6)")
    train.add_argument("--whole-pixel-shifts", action="store_true",
                       help="train with whole-pixel decoder shifts only, as digits-v2 was (default: shifts of any "
                            "fraction of a pixel and small rotations, resampled as the twin resamples a misplaced "
                            "SLM2)")
    train.add_argument("--max-rotation", type=float, default=None, metavar="DEG",
                       help="decoder rotations drawn in +-DEG (default 0.1)")
    train.add_argument("--name", default=None, help=f"the model's name (default {SHIPPED_MODEL}; digits-rgb-v3 with --colours)")
    train.add_argument("--minutes", type=positive_number, default=None, help="stop (resumably) after this many minutes")
    train.add_argument("--measured-optics", action="store_true",
                       help="train through what the bench's calibrations measured (true d1/d2, the Gaussian beam, "
                            "SLM2's wavefront, unmodulated light; optgen calibrate all first) instead of the bench "
                            "file's nominal optics")
    train.add_argument("--from", dest="base_model", default=None, metavar="MODEL",
                       help="with --measured-optics: fine-tune this model's decoder (a model file, or the shipped "
                            "model's name) through the bench's measured optics instead of training from scratch "
                            "(--steps default 600, about 2.5 min); writes a new model file in --out")
    train.add_argument("--colours", action="store_true",
                       help="train a multi-colour model for the bench's [colours] (a seed, scale and decoder phase "
                            "per colour, on colour digits)")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="where the student's steps run: cpu (default) or cuda, the first CUDA GPU (needs a CUDA "
                            "build of torch); the teacher and its pairs stay on the CPU")
    train.set_defaults(func=cmd_train)
    add_refine_parser(sub)
    add_live_parsers(sub)
    add_queue_server_parser(sub)

    devices = sub.add_parser("devices", help="identify each device of the bench file, or probe what is attached",
                             description="Open every device of the bench file and print its identity and state "
                                         "(the laser stays off). --probe lists serial ports with VID:PID, VISA "
                                         "resources, GenTL devices and screens, to help write a bench file.")
    devices.add_argument("--bench", type=Path, default=None, help="bench file (default: the simulated bench)")
    devices.add_argument("--probe", action="store_true", help="list attached hardware instead")
    devices.add_argument("--cti", type=Path, action="append", default=[], help="GenTL producer file to probe")
    devices.set_defaults(func=cmd_devices)

    evaluate = sub.add_parser("evaluate", help="score a run's images and compare them with the twin",
                              description="Judge the run's output images with a digits classifier trained now on "
                                          "the offline data set (confidence, inception-style score, Frechet "
                                          "distance), compare with the model's teacher samples, and correlate "
                                          "each frame with the twin's noiseless prediction. Writes the result "
                                          "into the run's summary.json.")
    evaluate.add_argument("run", type=Path, help="run folder (from optgen run)")
    evaluate.add_argument("--model", default=None, help="model file the run used (default: the run's own)")
    evaluate.set_defaults(func=cmd_evaluate)

    config = sub.add_parser("config", help="show or write the bench file",
                            description="Bench-file helpers. --dump writes the embedded simulated bench, "
                                        "a starting point for a real bench file.")
    config.add_argument("--dump", nargs="?", const="-", metavar="FILE",
                        help="write the default bench file to FILE (or stdout); never overwrites")
    config.add_argument("--check", type=Path, metavar="FILE", help="validate a bench file and say what it holds")
    config.add_argument("--colours", action="store_true",
                        help="with --dump: the embedded three-colour bench (638/520/450 nm, for optgen run --colours)")
    config.add_argument("--realistic", action="store_true",
                        help="with --dump: the embedded realistic twin (wavefront errors, unmodulated light, a tilted "
                             "Gaussian beam, distances off, drift, camera defects; decision 0012)")
    config.add_argument("--one-panel", action="store_true",
                        help="with --dump: one SLM panel for both patterns, each SLM a half of it ([panel]; "
                             "combines with --colours or --realistic)")
    config.set_defaults(func=cmd_config)
    return parser


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from optgen.lab.cli.calibrate import run_calibrate

    return run_calibrate(args)


# Commands that can turn light on: their signal handlers only record a stop (drivers.stop)
LIGHT_COMMANDS = ("run", "calibrate", "devices", "live")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:    # the console says warnings; run.log gets everything
        handler.setLevel(logging.WARNING)
    try:
        parser = _build_parser()
        args = parser.parse_args(argv)
        _console_log_level(args.log_level)
        code = _run_command(args)
    except KeyboardInterrupt:                       # Ctrl-C while starting, before any device opened
        print("optgen: interrupted while starting; nothing was started", file=sys.stderr)
        return 130
    except BrokenPipeError:                         # optgen ... | head: the reader left
        return _reader_left()
    _exit_past_hung_storage(code)
    return code


def _console_log_level(level: str) -> None:
    """The console handler shows ``level`` and above (run.log's handler is its own)."""
    value = getattr(logging, level.upper())
    logging.getLogger().setLevel(min(value, logging.WARNING))
    for handler in logging.getLogger().handlers:
        handler.setLevel(value)


def _reader_left() -> int:
    """The console's reader closed the pipe: stop writing quietly (no second error at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 1


def _run_command(args: argparse.Namespace) -> int:
    from optgen.drivers.stop import StopControl

    control = StopControl() if args.command in LIGHT_COMMANDS else None
    try:
        if control is None:
            return args.func(args)
        with control.signals():
            return args.func(args)
    except BrokenPipeError:
        raise
    except (OptgenError, ValueError, NotImplementedError) as exc:
        print(f"optgen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:                          # a path the checks could not foresee (permissions, a full disk)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"optgen {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"optgen {args.command}: interrupted; {_laser_words(args.command)}", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if control is None or not control.now:
            raise
        print(f"optgen {args.command}: {control.reason}; {_laser_words(args.command)}", file=sys.stderr)
        return exc.code if isinstance(exc.code, int) else 1


def _laser_words(command: str) -> str:
    """What an interrupted command says of the light, as the laser registry knows it."""
    from optgen.drivers.laser import all_lasers_safe

    said = "the laser is off" if all_lasers_safe() else "the laser could NOT be verified off: switch it off by hand"
    return said + (" and the run file records the stop" if command == "run" else "")


def _exit_past_hung_storage(code: int) -> None:
    """A storage thread that never returned from a write (a hung disk) may hold locks the
    interpreter's exit would wait on: end the process now (the laser is already verified off)."""
    from optgen.lab.run.frame_store import storage_hung

    if storage_hung():
        print("optgen: storage is hung; exiting without waiting for it (the laser is off; the frames "
              "stored before the stall are in the run file)", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
