"""The other commands: optgen config, devices, evaluate and train."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from optgen.drivers.errors import OptgenError
from optgen.lab.cli.checks import check_file_to_read, check_file_to_write, check_folder_to_make
from optgen.lab.run.sources import bench_model

__all__ = ["cmd_config", "cmd_devices", "cmd_evaluate", "cmd_train"]


def cmd_config(args: argparse.Namespace) -> int:
    from optgen.lab.bench.parse import default_bench_text, load_bench

    if args.check is not None:
        cfg = load_bench(args.check)
        named = _check_what_the_bench_names(cfg, Path(args.check).parent)
        print(f"{cfg.source}: OK: {cfg.name!r} at {cfg.wavelength_nm:g} nm, laser {cfg.laser.driver}, "
              f"SLMs {cfg.encoding_slm.driver}/{cfg.decoding_slm.driver}, camera {cfg.camera.driver}")
        if cfg.panel is not None:
            p = cfg.panel
            print(f"  one panel: {p.resolution[0]} x {p.resolution[1]}, encoding region {list(p.encoding_region)}, "
                  f"decoding region {list(p.decoding_region)} ([x, y, width, height])")
        if cfg.colours is not None:
            print("  colours: " + ", ".join(f"{wl:g} nm (laser {cfg.colours.lasers[wl].driver}, "
                                            f"QE {cfg.colours.camera_qe[wl]:g})" for wl in cfg.colours.order_nm))
        for line in named:
            print(f"  {line}")
        return 0
    if args.dump is None:
        raise OptgenError("say --dump [FILE] or --check FILE")
    if args.colours and args.realistic:
        raise OptgenError("--colours and --realistic: choose one")
    if args.dump != "-":
        check_file_to_write(Path(args.dump), "--dump", overwrite=False)
    if args.colours:
        from optgen.lab.bench.examples import rgb_bench_text

        text = rgb_bench_text()
    elif args.realistic:
        from optgen.lab.bench.examples import realistic_bench_text

        text = realistic_bench_text()
    else:
        text = default_bench_text()
    if args.one_panel:
        from optgen.lab.bench.examples import one_panel_bench_text

        text = one_panel_bench_text(text)
    if args.dump == "-":
        sys.stdout.write(text)
        return 0
    target = Path(args.dump)
    with open(target, "x", encoding="utf-8") as out:         # "x": never over a file made meanwhile
        out.write(text)
    print(f"wrote {target}")
    return 0


def _check_what_the_bench_names(cfg, base_dir: Path) -> list[str]:
    """What ``optgen run`` reads before any device opens, read now (an error stops the check): the
    model (against the bench's geometry and colour), the decoder phase and seed file of [run], and the
    calibration store's files. Lines saying what was found."""
    from optgen.lab.bench.calibrations import load_bench_calibrations
    from optgen.lab.run.sources import RunSources

    sources = RunSources(cfg, base_dir)
    model = f"model {sources.model.id} fits the geometry" if sources.model is not None else "no model"
    return [f"run: {model}; seeds {cfg.run.seed_source}, decoder {sources.decoder_id}",
            *load_bench_calibrations(cfg).describe()]


def cmd_devices(args: argparse.Namespace) -> int:
    from optgen.lab.bench.devices import describe_bench, probe

    if args.probe:
        for cti in args.cti:
            check_gentl_producer(cti)
        print("\n".join(probe(args.cti)))
        return 0
    from optgen.lab.bench.assemble import build_bench
    from optgen.lab.bench.parse import load_bench

    cfg = load_bench(args.bench)
    with build_bench(cfg) as bench:
        print(f"{cfg.source}: {cfg.name}")
        print("\n".join(describe_bench(bench)))
    return 0


def check_gentl_producer(path: Path) -> None:
    """A --cti file exists and loads as a shared library (harvesters would log a traceback instead)."""
    import ctypes

    check_file_to_read(path, "--cti")
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        raise OptgenError(f"--cti {path}: not a GenTL producer (a .cti shared library): {exc}") from None


def _evaluate_progress(args: argparse.Namespace):
    """The progress of ``optgen evaluate``, drawn on stderr (none with --quiet)."""
    from optgen.calibration.progress import StageProgress
    from optgen.lab.cli.calibrate import console_progress

    return StageProgress("evaluate", show=console_progress(getattr(args, "quiet", False)))


def evaluate_colour_run_cmd(args: argparse.Namespace) -> int:
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
    evaluation = evaluate_colour_run(args.run, model=model, progress=_evaluate_progress(args))
    gen = evaluation["generated_rgb"]
    print(f"{args.run}: {gen['count']} RGB images (judged on their channel sum): {gen['confident_fraction']:.0%} "
          f"confidently classified, inception score {gen['inception_score']:.2f}, "
          f"Frechet distance {gen['frechet_distance']:.2f}")
    if "requested_class" in evaluation:
        req = evaluation["requested_class"]
        print(f"  class {req['class']} requested: {req['as_requested']:.0%} of the RGB images judged as it")
    for colour, ev in evaluation["per_colour"].items():
        agreement = ev.get("twin_agreement")
        print(f"  {colour}: inception score {ev['generated']['inception_score']:.2f}"
              + (f", frames vs twin prediction r = {agreement['mean']:.3f}" if agreement else ""))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.evaluate.run import evaluate_run
    from optgen.lab.run.colour_run import is_colour_run
    from optgen.lab.runfile.reader import read_run_attrs

    if is_colour_run(args.run):
        return evaluate_colour_run_cmd(args)
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
    evaluation = evaluate_run(args.run, model=model, progress=_evaluate_progress(args))
    gen = evaluation["generated"]
    print(f"{args.run}: {gen['count']} images: {gen['confident_fraction']:.0%} confidently classified, "
          f"inception score {gen['inception_score']:.2f}, Frechet distance {gen['frechet_distance']:.2f} "
          f"(as many real digits: {gen['frechet_floor']:.2f})")
    if "teacher" in evaluation:
        t = evaluation["teacher"]
        print(f"  teacher, {t['count']} samples: {t['confident_fraction']:.0%} confident, inception score "
              f"{t['inception_score']:.2f}, Frechet distance {t['frechet_distance']:.2f}")
    if "requested_class" in evaluation:
        req = evaluation["requested_class"]
        print(f"  class {req['class']} requested: {req['as_requested']:.0%} judged as it")
    for line in evaluation.get("calibrations_changed", []):
        print(f"  note: calibration changed since the run ({line}); the prediction uses today's")
    if "twin_agreement" in evaluation:
        a = evaluation["twin_agreement"]
        print(f"  frames vs the twin's noiseless prediction: Pearson r mean {a['mean']:.3f}, min {a['min']:.3f}")
    print(f"  written to {args.run / 'summary.json'}")
    return 0


def _measured_optics(cfg, grid_px: int):
    """(BenchOptics, where they come from) of the calibrations in ``cfg``'s store (lab.refine.optics)."""
    from optgen.lab.refine.optics import measured_optics

    optics, record, _ = measured_optics(cfg, grid_px)
    return optics, record


def _fine_tune(args: argparse.Namespace, cfg) -> int:
    """``optgen train --from MODEL --measured-optics``: the model's decoder fine-tuned through the
    bench's measured optics (lab.model.fine_tune)."""
    from optgen.lab.model import OpticalGeometry, load_model
    from optgen.lab.model.fine_tune import FINE_TUNE_STEPS, fine_tune_model
    from optgen.lab.refine.optics import measured_optics

    if not args.measured_optics:
        raise OptgenError("--from fine-tunes a model through the bench's measured optics: add --measured-optics")
    if args.device != "cpu":
        raise OptgenError(f"--device {args.device}: fine-tuning (--from) runs on the CPU")
    other = [flag for flag, value in (("--colours", args.colours), ("--pairs", args.pairs), ("--batch", args.batch),
                                      ("--data", args.data), ("--teacher-size", args.teacher_size),
                                      ("--encoder-hidden", args.encoder_hidden), ("--encoder-layers", args.encoder_layers),
                                      ("--minutes", args.minutes)) if value]
    if other:
        raise OptgenError(f"--from fine-tunes an existing model's decoder: {', '.join(other)} do not apply")
    model = load_model(args.base_model)
    model.check_bench(OpticalGeometry.from_bench(cfg), wavelength_nm=cfg.wavelength_nm)
    optics, record, sigma = measured_optics(cfg, model.geometry.grid_px)
    progress, log = _train_console(args)
    try:
        path = fine_tune_model(model, optics, record, args.out, sigma, steps=args.steps or FINE_TUNE_STEPS,
                               name=args.name, log=log, progress=progress)
    except (ValueError, FileExistsError) as exc:
        raise OptgenError(str(exc)) from None
    print(f"model written to {path} (fine-tuned from {model.id} through the measured optics of {cfg.name!r}); "
          f"run it with [run] model = \"{path}\"")
    return 0


def _train_console(args: argparse.Namespace):
    """(the progress of ``optgen train``, drawn on stderr; its log of losses, on stdout): neither with --quiet."""
    from optgen.calibration.progress import StageProgress
    from optgen.lab.cli.calibrate import console_progress

    printer = console_progress(getattr(args, "quiet", False))

    def log(message: str) -> None:
        if printer is not None:
            printer.clear()                  # not after the progress line being redrawn
            print(message, flush=True)

    return StageProgress("train", show=printer), log


def cmd_train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise OptgenError("training needs torch: pip install -e '.[train]' (torch 2.13.0, CPU)") from None
    from optgen.lab.bench.parse import load_bench
    from optgen.lab.model.geometry import OpticalGeometry
    from optgen.lab.model.shipped import check_model_name
    from optgen.lab.model.train import RGB_RECIPE, TrainSettings, train_model, training_device

    check_folder_to_make(args.out, "--out")
    try:
        training_device(args.device)                  # before any work: a missing GPU is said at once
    except ValueError as exc:
        raise OptgenError(str(exc)) from None
    cfg = load_bench(args.bench)
    if getattr(args, "base_model", None) is not None:
        return _fine_tune(args, cfg)
    settings = TrainSettings(**(RGB_RECIPE if args.colours else {}))
    if args.data is not None:
        from optgen.lab.model.datasets import load_image_data

        data = load_image_data(args.data)             # checked whole before any training
        settings.data = str(args.data.resolve())
        settings.class_one_hot = bool(data.classes)   # the class as one-hot inputs (lab.model.class_input)
        print(f"data: {args.data}: {len(data.images)} images of {data.images.shape[3]} x {data.images.shape[2]}, "
              f"{'colour' if data.channels == 3 else 'grey'}, "
              + (f"{data.classes} classes ({', '.join(data.class_names[:10])}{', ...' if data.classes > 10 else ''})"
                 if data.classes else "no labels"), flush=True)
    if args.teacher_size is not None:
        settings.teacher_size = args.teacher_size
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
        try:
            check_model_name(args.name)
        except ValueError as exc:
            raise OptgenError(f"--{exc}") from None
        settings.name = args.name
    if args.colours:
        if cfg.colours is None or len(cfg.colours.order_nm) != 3:
            raise OptgenError(f"{cfg.source}: --colours trains on red, green and blue digits: it needs a [colours] "
                              f"table with three colours (RGB order)")
        settings.colours_nm = cfg.colours.order_nm
    geometry = OpticalGeometry.from_bench(cfg, args.grid)
    optics, record = _measured_optics(cfg, geometry.grid_px) if getattr(args, "measured_optics", False) else (None, None)
    progress, log = _train_console(args)
    path = train_model(args.out, geometry, settings, max_minutes=args.minutes, log=log, optics=optics,
                       optics_record=record, progress=progress, device=args.device)
    if path is None:
        print(f"training paused; run the same command again to resume ({args.out})")
    else:
        print(f"model written to {path}; loss curve {args.out / 'loss_curve.png'}")
    return 0
