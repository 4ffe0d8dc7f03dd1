"""The ``optgen`` command line: run (and --resume), status, calibrate, train, evaluate, devices, config."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from optgen.drivers.errors import OptgenError
from optgen.lab.run.sources import bench_model

__all__ = ["main"]

log = logging.getLogger("optgen")


def _build_parser() -> argparse.ArgumentParser:
    from optgen.lab.model.shipped import SHIPPED_MODEL

    parser = argparse.ArgumentParser(
        prog="optgen",
        description="Run an optical generative model bench (real or simulated).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

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
    run.add_argument("--retries", type=int, default=3, help="attempts beyond the first for a missed frame (default 3)")
    run.add_argument("--bench", type=Path, default=None, help="bench file (TOML); default: the simulated bench")
    run.add_argument("--seed", type=int, default=None,
                     help="random seed of the encoder's noise, a whole number >= 0 (default 0; a resumed run "
                          "keeps its own)")
    run.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    run.add_argument("--colours", action="store_true",
                     help="run every colour of the bench's [colours] table, one at a time (its laser, LUT and "
                          "decoder phase), and combine the frames into RGB images (needs a multi-colour model); "
                          "without --bench: the embedded three-colour twin with the shipped model digits-rgb-v2")
    run.add_argument("--calibrations", type=Path, default=None,
                     help="calibration store (default: the bench file's [calibration] store)")
    run.set_defaults(func=_cmd_run)

    status = sub.add_parser("status", help="say how far a run got and why it stopped",
                            description="Read a run folder (also one whose process was killed, or one still "
                                        "running) and print its status, frames stored, first missing frame, stop "
                                        "reason and logged events. Exit 0 complete, 1 otherwise.")
    status.add_argument("run", type=Path, help="run folder (from optgen run)")
    status.set_defaults(func=_cmd_status)

    calibrate = sub.add_parser(
        "calibrate", help="calibrate the SLM LUTs, the alignment and the camera; check for drift",
        description="Measure on the bench (laser on only while measuring) and write versioned calibration "
                    "files with PNGs into the calibration store; later runs use the newest ones. 'all' runs "
                    "camera, lut (both SLMs, alternating rounds) and alignment in that order. 'check' re-measures "
                    "a few points and reports drift against the stored calibrations (exit 3 when beyond tolerance).")
    calibrate.add_argument("what", choices=("lut", "alignment", "camera", "all", "check"))
    calibrate.add_argument("--bench", type=Path, default=None, help="bench file (default: the simulated bench)")
    calibrate.add_argument("--store", type=Path, default=None,
                           help="calibration store (default: the bench file's [calibration] store)")
    calibrate.add_argument("--colour", type=float, default=None, metavar="NM",
                           help="calibrate at this colour of the bench's [colours] table (default: [bench] "
                                "wavelength_nm); LUTs and alignment are stored per wavelength")
    calibrate.add_argument("--rounds", type=int, default=2, help="alternating LUT rounds over the two SLMs (>= 1)")
    calibrate.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    calibrate.set_defaults(func=_cmd_calibrate)

    train = sub.add_parser("train", help="train the optical generative model in the twin (needs the train extra)",
                           description="Train encoder + decoder phase by distillation from a digits diffusion "
                                       "model, through the bench's optics. Resumable: run it again with the same "
                                       "--out to continue. Needs torch: pip install -e '.[train]'.")
    train.add_argument("--out", type=Path, required=True, help="training folder (checkpoints, model, loss curve)")
    train.add_argument("--bench", type=Path, default=None, help="bench file whose geometry to train for")
    train.add_argument("--grid", type=int, default=512, help="simulation grid for training (pixels, default 512)")
    train.add_argument("--steps", type=int, default=None, help="student steps (default 15000; 5500 with --colours)")
    train.add_argument("--batch", type=int, default=None, help="batch size (default 16)")
    train.add_argument("--pairs", type=int, default=None, help="teacher (noise, image) pairs (default 60000)")
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
    train.add_argument("--name", default=None, help=f"the model's name (default {SHIPPED_MODEL}; digits-rgb-v2 with --colours)")
    train.add_argument("--minutes", type=float, default=None, help="stop (resumably) after this many minutes")
    train.add_argument("--colours", action="store_true",
                       help="train a multi-colour model for the bench's [colours] (a seed, scale and decoder phase "
                            "per colour, on colour digits)")
    train.set_defaults(func=_cmd_train)

    devices = sub.add_parser("devices", help="identify each device of the bench file, or probe what is attached",
                             description="Open every device of the bench file and print its identity and state "
                                         "(the laser stays off). --probe lists serial ports with VID:PID, VISA "
                                         "resources, GenTL devices and screens, to help write a bench file.")
    devices.add_argument("--bench", type=Path, default=None, help="bench file (default: the simulated bench)")
    devices.add_argument("--probe", action="store_true", help="list attached hardware instead")
    devices.add_argument("--cti", type=Path, action="append", default=[], help="GenTL producer file to probe")
    devices.set_defaults(func=_cmd_devices)

    evaluate = sub.add_parser("evaluate", help="score a run's images and compare them with the twin",
                              description="Judge the run's output images with a digits classifier trained now on "
                                          "the offline data set (confidence, inception-style score, Frechet "
                                          "distance), compare with the model's teacher samples, and correlate "
                                          "each frame with the twin's noiseless prediction. Writes the result "
                                          "into the run's summary.json.")
    evaluate.add_argument("run", type=Path, help="run folder (from optgen run)")
    evaluate.add_argument("--model", default=None, help="model file the run used (default: the run's own)")
    evaluate.set_defaults(func=_cmd_evaluate)

    config = sub.add_parser("config", help="show or write the bench file",
                            description="Bench-file helpers. --dump writes the embedded simulated bench, "
                                        "a starting point for a real bench file.")
    config.add_argument("--dump", nargs="?", const="-", metavar="FILE",
                        help="write the default bench file to FILE (or stdout); never overwrites")
    config.add_argument("--check", type=Path, metavar="FILE", help="validate a bench file and say what it holds")
    config.add_argument("--colours", action="store_true",
                        help="with --dump: the embedded three-colour bench (638/520/450 nm, for optgen run --colours)")
    config.set_defaults(func=_cmd_config)
    return parser


def _cmd_config(args: argparse.Namespace) -> int:
    from optgen.lab.bench.parse import default_bench_text, load_bench

    if args.check is not None:
        cfg = load_bench(args.check)
        print(f"{cfg.source}: OK: {cfg.name!r} at {cfg.wavelength_nm:g} nm, laser {cfg.laser.driver}, "
              f"SLMs {cfg.encoding_slm.driver}/{cfg.decoding_slm.driver}, camera {cfg.camera.driver}")
        if cfg.colours is not None:
            print("  colours: " + ", ".join(f"{wl:g} nm (laser {cfg.colours.lasers[wl].driver}, "
                                            f"QE {cfg.colours.camera_qe[wl]:g})" for wl in cfg.colours.order_nm))
        return 0
    if args.dump is None:
        print("optgen config: say --dump [FILE] or --check FILE", file=sys.stderr)
        return 2
    if args.colours:
        from optgen.lab.bench.examples import rgb_bench_text

        text = rgb_bench_text()
    else:
        text = default_bench_text()
    if args.dump == "-":
        sys.stdout.write(text)
        return 0
    target = Path(args.dump)
    if target.exists():
        print(f"optgen config: {target} already exists; not overwriting it", file=sys.stderr)
        return 1
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from optgen.lab.bench.devices import describe_bench, probe

    if args.probe:
        print("\n".join(probe(args.cti)))
        return 0
    from optgen.lab.bench.assemble import build_bench
    from optgen.lab.bench.parse import load_bench

    cfg = load_bench(args.bench)
    with build_bench(cfg) as bench:
        print(f"{cfg.source}: {cfg.name}")
        print("\n".join(describe_bench(bench)))
    return 0


def _evaluate_colour_run(args: argparse.Namespace) -> int:
    import json

    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.evaluate.colour import evaluate_colour_run
    from optgen.lab.model import load_model
    from optgen.lab.run.folder import COLOUR_RUN_FILE

    if args.model is not None:
        model = load_model(args.model)
    else:   # the model the run's bench file names, found as the run found it
        stored = json.loads((args.run / COLOUR_RUN_FILE).read_text())
        cfg = parse_bench(stored["bench_file"], str(args.run / COLOUR_RUN_FILE))
        model = bench_model(cfg, Path(stored["bench_dir"]) if stored.get("bench_dir") else None)
    evaluation = evaluate_colour_run(args.run, model=model)
    gen = evaluation["generated_rgb"]
    print(f"{args.run}: {gen['count']} RGB images (judged on their channel sum): {gen['confident_fraction']:.0%} "
          f"confidently classified, inception score {gen['inception_score']:.2f}, "
          f"Frechet distance {gen['frechet_distance']:.2f}")
    for colour, ev in evaluation["per_colour"].items():
        agreement = ev.get("twin_agreement")
        print(f"  {colour}: inception score {ev['generated']['inception_score']:.2f}"
              + (f", frames vs twin prediction r = {agreement['mean']:.3f}" if agreement else ""))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.evaluate.run import evaluate_run
    from optgen.lab.run.colour_run import is_colour_run
    from optgen.lab.runfile.reader import read_run_attrs

    if is_colour_run(args.run):
        return _evaluate_colour_run(args)
    model = None
    run_file = args.run / "run.h5"
    spec = args.model
    if spec is None and run_file.is_file():
        attrs = read_run_attrs(run_file)
        if str(attrs.get("decoder_phase", "")).startswith("model:"):
            spec = parse_bench(attrs["bench_file"], str(run_file)).run.model
    if spec is not None:
        from optgen.lab.model import load_model

        model = load_model(spec)
    evaluation = evaluate_run(args.run, model=model)
    gen = evaluation["generated"]
    print(f"{args.run}: {gen['count']} images: {gen['confident_fraction']:.0%} confidently classified, "
          f"inception score {gen['inception_score']:.2f}, Frechet distance {gen['frechet_distance']:.2f} "
          f"(as many real digits: {gen['frechet_floor']:.2f})")
    if "teacher" in evaluation:
        t = evaluation["teacher"]
        print(f"  teacher, {t['count']} samples: {t['confident_fraction']:.0%} confident, inception score "
              f"{t['inception_score']:.2f}, Frechet distance {t['frechet_distance']:.2f}")
    if "twin_agreement" in evaluation:
        a = evaluation["twin_agreement"]
        print(f"  frames vs the twin's noiseless prediction: Pearson r mean {a['mean']:.3f}, min {a['min']:.3f}")
    print(f"  written to {args.run / 'summary.json'}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise OptgenError("training needs torch: pip install -e '.[train]' (torch 2.13.0, CPU)") from None
    from optgen.lab.bench.parse import load_bench
    from optgen.lab.model.geometry import OpticalGeometry
    from optgen.lab.model.train import RGB_RECIPE, TrainSettings, train_model

    cfg = load_bench(args.bench)
    settings = TrainSettings(**(RGB_RECIPE if args.colours else {}))
    if args.steps is not None:
        settings.student_steps = args.steps
    if args.batch is not None:
        settings.batch = args.batch
    if args.pairs is not None:
        if args.pairs < settings.batch:
            raise OptgenError(f"--pairs {args.pairs}: expected at least one batch ({settings.batch}) of pairs")
        settings.pairs = args.pairs
    if args.encoder_hidden is not None:
        if not 8 <= args.encoder_hidden <= 8192:
            raise OptgenError(f"--encoder-hidden {args.encoder_hidden}: expected 8 to 8192 units")
        settings.encoder_hidden = args.encoder_hidden
    if args.encoder_layers is not None:
        if not 1 <= args.encoder_layers <= 16:
            raise OptgenError(f"--encoder-layers {args.encoder_layers}: expected 1 to 16 hidden layers")
        settings.encoder_layers = args.encoder_layers
    if args.max_rotation is not None:
        if args.whole_pixel_shifts:
            raise OptgenError("--max-rotation turns the decoder by fractions of a pixel: not with --whole-pixel-shifts")
        if not 0.0 <= args.max_rotation <= 5.0:
            raise OptgenError(f"--max-rotation {args.max_rotation}: expected 0 to 5 degrees")
        settings.max_rotation_deg = args.max_rotation
    if args.whole_pixel_shifts:
        settings.subpixel_shifts, settings.max_rotation_deg = False, 0.0
    if args.name is not None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.name):
            raise OptgenError(f"--name {args.name!r}: expected letters, digits, '.', '_' or '-' (it names the "
                              f"model file)")
        settings.name = args.name
    if args.colours:
        if cfg.colours is None or len(cfg.colours.order_nm) != 3:
            raise OptgenError(f"{cfg.source}: --colours trains on red, green and blue digits: it needs a [colours] "
                              f"table with three colours (RGB order)")
        settings.colours_nm = cfg.colours.order_nm
    geometry = OpticalGeometry.from_bench(cfg, args.grid)
    path = train_model(args.out, geometry, settings, max_minutes=args.minutes, log=lambda m: print(m, flush=True))
    if path is None:
        print(f"training paused; run the same command again to resume ({args.out})")
    else:
        print(f"model written to {path}; loss curve {args.out / 'loss_curve.png'}")
    return 0


def _run_settings(args: argparse.Namespace):
    """(bench config, bench folder, random seed, count, calibration store, out folder) for a new run
    or, with --resume, as the run recorded them (optgen.lab.run.folder has the rules)."""
    from optgen.lab.bench.parse import load_bench
    from optgen.lab.run.folder import resume_settings

    if args.resume is None:
        _new_run_checks(args)
        cfg = load_bench(args.bench)
        base_dir = args.bench.parent if args.bench is not None else None
        return cfg, base_dir, _seed(args), args.count, args.calibrations, args.out
    if args.out is not None or args.count is not None:
        raise OptgenError("--resume DIR continues that run: leave out --out and --count")
    cfg, base_dir, seed, count, calibrations = resume_settings(args.resume, bench=args.bench, seed=args.seed,
                                                               calibrations=args.calibrations)
    return cfg, base_dir, seed, count, calibrations, args.resume


def _new_run_checks(args: argparse.Namespace) -> None:
    if args.count is None or args.out is None:
        raise OptgenError("optgen run needs --count N and --out DIR (or --resume DIR)")
    if args.count < 1:
        raise OptgenError(f"--count {args.count}: expected a positive number of frames")
    _seed(args)


MAX_SEED = 2**63 - 1


def _seed(args: argparse.Namespace) -> int:
    """--seed, checked: a whole number in [0, 2**63 - 1] (0 when not given)."""
    seed = 0 if args.seed is None else args.seed
    if not 0 <= seed <= MAX_SEED:
        raise OptgenError(f"--seed {seed}: expected a whole number from 0 to {MAX_SEED}")
    return seed


def _cmd_run_colours(args: argparse.Namespace) -> int:
    """``optgen run --colours``: every colour of the bench's [colours] table, one at a time, then RGB."""

    from tqdm import tqdm

    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.run.colour_run import run_colours

    if args.resume is None and args.bench is None:   # the embedded three-colour twin and its shipped model
        from optgen.lab.bench.examples import rgb_bench_text

        _new_run_checks(args)
        cfg = parse_bench(rgb_bench_text(), "<embedded three-colour bench>")
        base_dir, seed, count, calibrations, out = None, _seed(args), args.count, args.calibrations, args.out
    else:
        cfg, base_dir, seed, count, calibrations, out = _run_settings(args)
    model = bench_model(cfg, base_dir)
    bar = None if args.no_progress else tqdm(total=count, unit="frame", file=sys.stderr, smoothing=0.1)

    def progress(colour_nm: float, done: int, total: int) -> None:
        if bar is not None:
            bar.set_description(f"optgen run {colour_nm:g} nm")
            bar.n = done
            bar.refresh()

    try:
        result = run_colours(cfg, model, out, count, random_seed=seed, calibrations=calibrations,
                             resume=args.resume is not None, sync=args.sync, max_retries=args.retries,
                             bench_dir=base_dir, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    done = ", ".join(f"{wl:g} nm" for wl in result.colours_done) or "none"
    print(f"{result.status}: colours finished: {done} -> {result.folder}")
    if result.status != "complete":
        print(f"  continue with: optgen run --resume {result.folder}")
        return 1
    print(f"  RGB images    {result.folder / 'rgb.npy'}")
    print(f"  contact sheet {result.folder / 'rgb_contact_sheet.png'}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from optgen.lab.api import Bench
    from optgen.lab.run.colour_run import is_colour_run
    from optgen.lab.run.folder import prepare_run_folder
    from optgen.lab.run.sources import RunSources

    if args.retries < 0:
        raise OptgenError(f"--retries {args.retries}: expected 0 or more")
    if args.colours or (args.resume is not None and is_colour_run(args.resume)):
        return _cmd_run_colours(args)
    # Everything is validated before any device is opened: the bench file, the model and seed
    # files, the frame count, the run folder.
    cfg, base_dir, random_seed, count, calibrations, out = _run_settings(args)
    sources = RunSources(cfg, base_dir)
    seeds = sources.seeds(random_seed)
    if count > len(seeds):
        raise OptgenError(f"--count {count}: the seed source {seeds.name} holds only {len(seeds)} seeds")
    resume = args.resume is not None
    if not resume:
        prepare_run_folder(out)
    bar = None if args.no_progress else tqdm(total=count, unit="frame", desc="optgen run", file=sys.stderr,
                                             smoothing=0.1)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.n = done
            bar.refresh()

    with Bench.open(cfg, sources, calibrations) as bench:
        try:
            if resume:
                run = bench.resume(out, sync=args.sync, retries=args.retries, progress=progress)
            else:
                run = bench.generate(count, random_seed, out, sync=args.sync, retries=args.retries, progress=progress)
        finally:
            if bar is not None:
                bar.close()
    _say_run(run)
    return 0 if run.status["status"] == "complete" else 1


def _say_run(run) -> None:
    """What `optgen run` prints of a finished or stopped run."""
    st, s, folder = run.status, run.summary, run.folder
    reason = st.get("stop_reason") or ""
    timing = (f" ({s['frames_this_session']} in {s['wall_time_s']:.2f} s, {s['frames_per_s']:.1f} frames/s)"
              if {"frames_this_session", "wall_time_s", "frames_per_s"} <= set(s) else "")
    print(f"{st['status']}{': ' + reason if reason else ''}: {st['frames_written']} of {st['frames_requested']} "
          f"frames stored{timing} -> {folder}")
    print(f"  run file      {folder / 'run.h5'}")
    print(f"  log           {folder / 'run.log'}")
    print(f"  contact sheet {folder / 'contact_sheet.png'}")
    print(f"  summary       {folder / 'summary.json'}")
    if st["status"] != "complete":
        print(f"  continue with: optgen run --resume {folder}")


def _cmd_status(args: argparse.Namespace) -> int:
    from optgen.lab.runfile.reader import read_run_status

    path = args.run / "run.h5"
    if not path.is_file():
        raise OptgenError(f"{args.run}: no run.h5 here; not a run folder")
    st = read_run_status(path)
    print(f"{args.run}: {st['status']}{' (' + st['stop_reason'] + ')' if st.get('stop_reason') else ''}")
    print(f"  frames stored {st['frames_written']} of {st['frames_requested']}"
          + (f"; first missing {st['first_missing']}" if st.get("first_missing") is not None else ""))
    for key in ("created_utc", "last_write_utc"):
        if st.get(key):
            print(f"  {key.replace('_', ' ')}: {st[key]}")
    for event in st.get("events", [])[-10:]:
        print(f"  {event}")
    if st["status"] != "complete":
        print(f"  continue with: optgen run --resume {args.run}")
    return 0 if st["status"] == "complete" else 1


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from optgen.lab.cli.calibrate import run_calibrate

    return run_calibrate(args)


# Commands that can turn light on: their signal handlers only record a stop (drivers.stop)
LIGHT_COMMANDS = ("run", "calibrate", "devices")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:    # the console says warnings; run.log gets everything
        handler.setLevel(logging.WARNING)
    parser = _build_parser()
    args = parser.parse_args(argv)
    code = _run_command(args)
    _exit_past_hung_storage(code)
    return code


def _run_command(args: argparse.Namespace) -> int:
    from optgen.drivers.stop import StopControl

    control = StopControl() if args.command in LIGHT_COMMANDS else None
    try:
        if control is None:
            return args.func(args)
        with control.signals():
            return args.func(args)
    except (OptgenError, ValueError, NotImplementedError) as exc:
        print(f"optgen {args.command}: error: {exc}", file=sys.stderr)
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
