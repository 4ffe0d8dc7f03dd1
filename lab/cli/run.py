"""The run commands: optgen run (new, --resume, --colours) and optgen status."""

from __future__ import annotations

import argparse
import sys

from optgen.drivers.errors import OptgenError
from optgen.lab.run.sources import bench_model

__all__ = ["cmd_run", "cmd_status", "say_calibrations"]


def say_calibrations(calibrations) -> None:
    """Which calibrations a command uses and how old they are, or UNCALIBRATED (on stderr, beside
    the progress bar)."""
    lines = calibrations.describe() if calibrations is not None else ["UNCALIBRATED: no calibration store"]
    for line in lines:
        print(line, file=sys.stderr)


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


def cmd_run_colours(args: argparse.Namespace) -> int:
    """``optgen run --colours``: every colour of the bench's [colours] table, one at a time, then RGB."""
    class_index = getattr(args, "class_index", None)
    if args.resume is not None and class_index is not None:
        raise OptgenError("--resume DIR continues that run with the class it recorded: leave out --class")

    from tqdm import tqdm

    from optgen.lab.run.colour_run import run_colours

    if args.resume is None and args.bench is None:   # the embedded three-colour twin and its shipped model
        from optgen.lab.bench.examples import embedded_colour_bench

        _new_run_checks(args)
        cfg = embedded_colour_bench()
        base_dir, seed, count, calibrations, out = None, _seed(args), args.count, args.calibrations, args.out
    else:
        cfg, base_dir, seed, count, calibrations, out = _run_settings(args)
    model = bench_model(cfg, base_dir)
    bar = None

    def progress(colour_nm: float, done: int, total: int) -> None:
        nonlocal bar
        if bar is None and not (args.no_progress or args.quiet):   # after each colour's calibrations are said
            bar = tqdm(total=count, unit="frame", file=sys.stderr, smoothing=0.1)
        if bar is not None:
            bar.set_description(f"optgen run {colour_nm:g} nm")
            bar.n = done
            bar.refresh()

    try:
        result = run_colours(cfg, model, out, count, random_seed=seed, calibrations=calibrations,
                             resume=args.resume is not None, sync=args.sync, max_retries=args.retries,
                             bench_dir=base_dir, progress=progress, class_index=class_index,
                             report=None if args.quiet else lambda line: print(line, file=sys.stderr))
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


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from optgen.lab.api import Bench
    from optgen.lab.run.colour_run import is_colour_run
    from optgen.lab.run.folder import prepare_run_folder
    from optgen.lab.run.sources import RunSources

    if args.retries < 0:
        raise OptgenError(f"--retries {args.retries}: expected 0 or more")
    if args.colours or (args.resume is not None and is_colour_run(args.resume)):
        return cmd_run_colours(args)
    # Everything is validated before any device is opened: the bench file, the model and seed
    # files, the frame count, the run folder.
    cfg, base_dir, random_seed, count, calibrations, out = _run_settings(args)
    sources = RunSources(cfg, base_dir)
    if args.resume is not None and args.class_index is not None:
        raise OptgenError("--resume DIR continues that run with the class it recorded: leave out --class")
    seeds = sources.seeds(random_seed, args.class_index)
    if count > len(seeds):
        raise OptgenError(f"--count {count}: the seed source {seeds.name} holds only {len(seeds)} seeds")
    resume = args.resume is not None
    if not resume:
        prepare_run_folder(out)
    bar = None

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.n = done
            bar.refresh()

    with Bench.open(cfg, sources, calibrations) as bench:
        if not args.quiet:
            say_calibrations(bench.devices.calibrations)
        if not (args.no_progress or args.quiet):                # drawn once the bench is open (an error stays the last line)
            bar = tqdm(total=count, unit="frame", desc="optgen run", file=sys.stderr, smoothing=0.1)
        try:
            if resume:
                run = bench.resume(out, sync=args.sync, retries=args.retries, progress=progress)
            else:
                run = bench.generate(count, random_seed, out, sync=args.sync, retries=args.retries, progress=progress,
                                     label=args.class_index)
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


def cmd_status_colours(folder) -> int:
    """``optgen status`` of a multi-colour run: each colour's run, then whether the RGB images exist."""
    from optgen.lab.run.colour_run import colour_folder
    from optgen.lab.run.folder import _colour_settings
    from optgen.lab.runfile.reader import read_run_status

    stored = _colour_settings(folder)
    colours = [float(wl) for wl in stored.get("colours_nm") or []]
    done = 0
    print(f"{folder}: a multi-colour run of {len(colours)} colours, {stored.get('count', '?')} frames each"
          + (f", class {stored['class']} requested" if stored.get("class") is not None else ""))
    for wl in colours:
        path = colour_folder(folder, wl) / "run.h5"
        if not path.is_file():
            print(f"  {wl:g} nm: not started")
            continue
        st = read_run_status(path)
        done += st["status"] == "complete"
        print(f"  {wl:g} nm: {st['status']}{' (' + st['stop_reason'] + ')' if st.get('stop_reason') else ''}, "
              f"frames stored {st['frames_written']} of {st['frames_requested']}")
    rgb = (folder / "rgb.npy").is_file()
    complete = done == len(colours) and rgb
    print(f"  RGB images: {'rgb.npy' if rgb else 'not yet combined'}")
    if not complete:
        print(f"  continue with: optgen run --resume {folder}")
    return 0 if complete else 1


def cmd_status(args: argparse.Namespace) -> int:
    from optgen.lab.run.colour_run import is_colour_run
    from optgen.lab.runfile.reader import read_run_status

    if is_colour_run(args.run):
        return cmd_status_colours(args.run)
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
