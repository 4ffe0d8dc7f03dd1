"""``optgen refine``: a model's decoder refined on the bench, camera in the loop (lab.refine)."""

from __future__ import annotations

import argparse
from pathlib import Path

from optgen.drivers.errors import OptgenError
from optgen.lab.cli.checks import check_folder_to_make, positive_number, whole_number

__all__ = ["add_refine_parser", "cmd_refine"]


def add_refine_parser(sub) -> None:
    refine = sub.add_parser(
        "refine", help="refine a model's decoder on the bench, camera in the loop (needs the train extra)",
        description="Fine-tune the model's decoder through the bench's calibrated optics, then show batches of "
                    "its seeds on the bench and move the decoder so the captured images approach the teacher's "
                    "(physics-aware training: the bench's images forward, the calibrated model's gradient). "
                    "Needs optgen calibrate all first. Every capture is a run in --out/rounds; run the same "
                    "command again to resume. Writes a new model file in --out.")
    refine.add_argument("--out", type=Path, required=True, help="refinement folder (checkpoint, runs, model, pictures)")
    refine.add_argument("--bench", type=Path, default=None, help="bench file (default: the simulated bench)")
    refine.add_argument("--model", default=None, help="model to refine (default: the bench file's [run] model)")
    refine.add_argument("--frames", type=whole_number(1), default=None, help="frames captured for the rounds (default 1536)")
    refine.add_argument("--batch", type=whole_number(1), default=None, help="frames per round (default 32)")
    refine.add_argument("--pretune-steps", type=whole_number(0), default=None, metavar="N",
                        help="decoder steps through the calibrated model first (default 600; 0: none)")
    refine.add_argument("--steps-per-round", type=whole_number(1), default=None, metavar="N",
                        help="gradient steps on each round's captures (default 4)")
    refine.add_argument("--keep-scale", action="store_true",
                        help="refine the decoder phase only (by default the rounds also refine the encoder's output "
                             "scale, its per-seed intensity; the seeds shown never change)")
    refine.add_argument("--name", default=None, help="the refined model's name (default <model>-refined)")
    refine.add_argument("--minutes", type=positive_number, default=None, help="stop (resumably) after this many minutes")
    refine.set_defaults(func=cmd_refine)


def cmd_refine(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise OptgenError("refine needs torch: pip install -e '.[train]' (torch 2.13.0, CPU)") from None
    from optgen.lab.bench.assemble import build_bench
    from optgen.lab.bench.calibrations import load_bench_calibrations
    from optgen.lab.bench.parse import load_bench
    from optgen.lab.model import OpticalGeometry
    from optgen.lab.refine.loop import RefineSettings, refine_model
    from optgen.lab.refine.optics import measured_optics
    from optgen.lab.run.sources import bench_model

    check_folder_to_make(args.out, "--out")
    if args.name is not None:
        from optgen.lab.model.shipped import check_model_name

        try:
            check_model_name(args.name)
        except ValueError as exc:
            raise OptgenError(f"--{exc}") from None
    cfg = load_bench(args.bench)
    base_dir = args.bench.parent if args.bench is not None else None
    if args.model is not None:
        from optgen.lab.model import load_model

        model = load_model(args.model)
    else:
        model = bench_model(cfg, base_dir)
    model.check_bench(OpticalGeometry.from_bench(cfg), wavelength_nm=cfg.wavelength_nm)
    if len(model.wavelengths_nm) != 1:
        raise OptgenError(f"{model.name}: refine is for one-colour models (this one has {len(model.wavelengths_nm)})")
    optics, record, sigma = measured_optics(cfg, model.geometry.grid_px,
                                            why="refine needs a calibrated bench: its gradient comes from the "
                                                "calibrated model")
    settings = RefineSettings(name=args.name, scale=not args.keep_scale)
    for key, value in (("frames", args.frames), ("batch", args.batch), ("pretune_steps", args.pretune_steps),
                       ("steps_per_round", args.steps_per_round)):
        if value is not None:
            setattr(settings, key, value)
    if model.teacher_noise is None or model.teacher_samples is None:
        raise OptgenError(f"{model.name}: the model file keeps no teacher pairs to refine toward")
    settings.check(len(model.teacher_noise))
    cals = load_bench_calibrations(cfg)                  # checked before any device opens
    missing = [f"{key} LUT" for key in ("encoding_slm", "decoding_slm") if key not in cals.lut_records]
    missing += ["alignment"] if cals.alignment is None else []
    if missing:
        raise OptgenError(f"refine needs a calibrated bench: no {', '.join(missing)} calibration in force; "
                          f"run optgen calibrate all first")
    with build_bench(cfg) as bench:
        path = refine_model(bench, model, args.out, optics, record, sigma, settings, minutes=args.minutes,
                            log=lambda m: print(m, flush=True))
    if path is None:
        print(f"refine paused; run the same command again to resume ({args.out})")
        return 0
    print(f"refined model written to {path}; pictures {args.out / 'sheet_before.png'}, "
          f"{args.out / 'sheet_after.png'}, {args.out / 'rounds.png'}")
    return 0
