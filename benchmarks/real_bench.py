"""The shipped model on the realistic twin (what real benches get wrong planted; decision 0012).

Columns, each a run of N frames of the shipped model judged as benchmarks/model.py judges them
(confident share, inception-style score, Frechet distance against the teacher) and against the
prediction from what the calibrations measured (Pearson r of each registered frame):

- ideal:        the default twin (nothing new planted) after ``optgen calibrate all``;
- uncalibrated: the realistic twin, no calibration;
- before:       the realistic twin after the calibrations of the last round (camera, LUTs, alignment);
- after:        the realistic twin after ``optgen calibrate all`` (wavefronts and distances too);
- refined:      as after, then ``optgen refine`` (decoder fine-tuned through the calibrated optics,
                then camera-in-the-loop rounds; ``--refine-frames`` captured frames), its model run;
- ideal_refined: the ideal twin after ``calibrate all`` and ``optgen refine`` (nothing to gain: no loss?).

Each column also shows the teacher's held-out noise (``--paired`` of the 250 pairs no refinement
saw) and reports the paired per-frame r of the captured images against the teacher's.

For ``after`` each calibration's error against the planted truth is printed, and with ``--wall``
the time of calibrate all on the hardware-timed realistic twin against its patterns x (latency +
settle).

``--without EFFECTS`` takes planted effects out of the realistic twin (unmodulated, beam, tilt,
camera, drift, distances, wavefronts); ``--paired-without EFFECTS`` first prints the shipped model's paired r
after one calibrate all with each taken out in turn (what each costs), e.g. with ``--only none``.

Usage:  python benchmarks/real_bench.py [--frames N] [--only COLUMN] [--wall] [--wall-steps]
        [--refine-frames N] [--paired N] [--second-twin] [--wall-refine] [--without EFFECTS]
        [--paired-without EFFECTS] [--model NAME_OR_FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from optgen.calibration.procedure import calibrate
from optgen.calibration.store import CalibrationStore
from optgen.calibration.twin_truth import truth_errors
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.calibrations import load_bench_calibrations
from optgen.lab.bench.examples import edit_bench_text, realistic_bench_text, second_realistic_bench_text
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.evaluate.prediction import calibrated_optics, pearson_r, run_agreement
from optgen.lab.evaluate.run import evaluate_run
from optgen.lab.model import SHIPPED_MODEL, load_model
from optgen.lab.run.generate import run_generation
from optgen.lab.run.sources import run_sources

COLUMNS = ("ideal", "uncalibrated", "before", "after", "refined", "ideal_refined")
STEPS = {"ideal": ("all",), "uncalibrated": (), "before": ("camera", "lut", "alignment"), "after": ("all",),
         "refined": ("all",), "ideal_refined": ("all",)}


# Planted effects of the realistic twin that --without takes out, as bench-file edits of its [twin] tables.
EFFECTS = {
    "unmodulated": {("twin.encoding_slm", "unmodulated_fraction"): "0.0",
                    ("twin.decoding_slm", "unmodulated_fraction"): "0.0"},
    "beam": {("twin.laser", "beam"): '"flat-top"'},
    "tilt": {("twin.laser", "tilt_urad"): "[0.0, 0.0]"},
    "camera": {("twin.camera", "hot_pixel_fraction"): "0.0", ("twin.camera", "prnu_rms"): "0.0",
               ("twin.camera", "dsnu_dn_rms"): "0.0", ("twin.camera", "background_w_per_m2"): "0.0"},
    "drift": {("twin.encoding_slm", "response_drift_per_h"): "0.0", ("twin.decoding_slm", "response_drift_per_h"): "0.0",
              ("twin.laser", "pointing_drift_urad_per_h"): "[0.0, 0.0]"},
    "distances": "the bench file's d1 and d2 as the true ones",
    "wavefronts": {("twin.encoding_slm", "wavefront_waves"): "[0.0]", ("twin.decoding_slm", "wavefront_waves"): "[0.0]"},
}


def without(text: str, effects: list[str]) -> str:
    """The realistic bench ``text`` with the planted ``effects`` (names of EFFECTS) taken out."""
    for effect in effects:
        if effect not in EFFECTS:
            raise SystemExit(f"--without {effect}: expected some of {', '.join(EFFECTS)}")
        if effect == "distances":
            g = parse_bench(text, "nominal").geometry
            changes = {("twin", "d1_mm"): repr(g.d1_m * 1e3), ("twin", "d2_mm"): repr(g.d2_m * 1e3)}
        else:
            changes = EFFECTS[effect]
        text = edit_bench_text(text, changes)
    return text


def paired_without(effects: list[str], paired: int, realistic_text=None, model_spec: str = SHIPPED_MODEL) -> None:
    """Calibrate the realistic twin once (``calibrate all``), then the shipped model's paired r on it
    and on the same twin with each of ``effects`` taken out (and all of them), the calibrations kept:
    what each planted effect costs the model as shipped."""
    text = realistic_text or realistic_bench_text()
    model = load_model(model_spec)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "calibrations"
        cfg = parse_bench(text, "realistic")
        with build_bench(cfg, store) as bench:
            calibrate(bench, "all", CalibrationStore(store))
        for label, taken in [("as planted", []), *[(e, [e]) for e in effects], ("all of them", effects)]:
            r = paired_r(parse_bench(without(text, taken), label), store, model, Path(tmp) / label, paired)
            print(f"  without {label:<40} paired r {r:.4f}", flush=True)


def column(name: str, frames: int, refine_frames: int = 1536, paired: int = 50, realistic_text=None,
           model_spec: str = SHIPPED_MODEL) -> dict:
    """One column: calibrate as the column says (and refine), run ``frames`` frames of ``model_spec`` (a
    shipped model's name or a model file), judge them."""
    ideal = name.startswith("ideal")
    cfg = parse_bench(default_bench_text() if ideal else (realistic_text or realistic_bench_text()), name)
    if model_spec != SHIPPED_MODEL:
        cfg = parse_bench(edit_bench_text(cfg.text, {("run", "model"): f'"{model_spec}"'}), name)
    with tempfile.TemporaryDirectory() as tmp:
        store, out = Path(tmp) / "calibrations", Path(tmp) / "run"
        truth, calibrate_s, refine = {}, 0.0, {}
        for step in STEPS[name]:
            with build_bench(cfg, store) as bench:
                t0 = time.perf_counter()
                report = calibrate(bench, step, CalibrationStore(store), truths=bench.truths)
                calibrate_s += time.perf_counter() - t0
                truth.update(truth_errors(report, bench.truths, bench.config.light_path))
        model = load_model(model_spec)
        if name.endswith("refined"):
            cfg, model, refine = refined(cfg, store, Path(tmp) / "refine", refine_frames, model)
        seeds, decoder, decoder_id = run_sources(cfg, None, random_seed=20261205)
        t0 = time.perf_counter()
        with build_bench(cfg, store) as bench:
            run_generation(bench, seeds, decoder, decoder_id, out, frames)
        wall = time.perf_counter() - t0
        calibrations = load_bench_calibrations(cfg, store)
        sigma = tuple(float(calibrations.lut_records[k].results["crosstalk_sigma_px"])
                      if k in calibrations.lut_records else 0.0 for k in ("encoding_slm", "decoding_slm"))
        r = run_agreement(out, cfg, sigma, calibrations.decoder_placement(), calibrated_optics(calibrations, cfg))
        ev = evaluate_run(out, model=load_model(model_spec))
        pr = paired_r(cfg, store, model, Path(tmp) / "paired", paired)
    return {"name": name, "frames_per_s": frames / wall, "calibrate_s": calibrate_s, "truth": truth,
            "agreement": (float(np.mean(r)), float(np.min(r))), "paired_r": pr, "refine": refine, **ev}


def refined(cfg, store: Path, folder: Path, refine_frames: int, model):
    """``optgen refine`` of ``model`` on the calibrated bench: (bench config running the refined
    model, the refined model, what it took)."""
    from optgen.lab.refine.loop import RefineSettings, refine_model
    from optgen.lab.refine.optics import measured_optics

    optics, record, sigma = measured_optics(cfg, model.geometry.grid_px, store)
    t0 = time.perf_counter()
    with build_bench(cfg, store) as bench:
        path = refine_model(bench, model, folder, optics, record, sigma, RefineSettings(frames=refine_frames),
                            log=lambda m: None)
    minutes = (time.perf_counter() - t0) / 60
    tuned = load_model(path)
    text = edit_bench_text(cfg.text, {("run", "model"): f'"{path}"'})
    info = tuned.info["refined"]
    return parse_bench(text, cfg.name), tuned, {"minutes": minutes, "frames": info["frames_captured"],
                                                "eval_before": info["eval_before"], "eval_after": info["eval_after"]}


def paired_r(cfg, store: Path, model, folder: Path, count: int) -> float:
    """Mean per-frame r of the captured images of ``count`` held-out teacher noises (the second half
    of the pairs the model file keeps) against the teacher's images for the same noise (NaN for none)."""
    if count <= 0:
        return float("nan")
    from optgen.lab.refine.noise_seeds import NoiseSeedSource
    from optgen.lab.runfile.reader import RunFile

    half = len(model.teacher_noise) // 2
    labels = list(range(half, half + count))
    seeds = NoiseSeedSource(model, model.teacher_noise[labels], labels, name="paired")
    decoder = model.decoder_phase[model.wavelengths_nm[0]]
    with build_bench(cfg, store) as bench:
        run_generation(bench, seeds, decoder, f"model:{model.id}", folder, count)
    with RunFile(folder / "run.h5") as f:
        images = f.images()[np.argsort(f.indices)]
    targets = model.teacher_samples[labels]
    return float(np.mean([pearson_r(i, t) for i, t in zip(images, targets)]))


def report(col: dict) -> None:
    g, t = col["generated"], col.get("teacher")
    print(f"{col['name']}: {g['count']} digits, {col['frames_per_s']:.1f} frames/s"
          + (f", calibrations {col['calibrate_s']:.0f} s" if col["calibrate_s"] else ""))
    print(f"  confident {g['confident_fraction']:.1%}, inception score {g['inception_score']:.2f}, "
          f"Frechet {g['frechet_distance']:.2f}"
          + (f" (teacher {t['frechet_distance']:.2f}, ratio {g['frechet_distance'] / t['frechet_distance']:.2f})"
             if t else ""))
    print(f"  frames vs the prediction from the calibrations: Pearson r mean {col['agreement'][0]:.3f}, "
          f"min {col['agreement'][1]:.3f}; paired r against the teacher (held-out noise) {col['paired_r']:.3f}")
    if col["refine"]:
        f = col["refine"]
        print(f"  refine: {f['minutes']:.1f} min, {f['frames']} frames captured; held-out paired r on the bench "
              f"{f['eval_before']['paired_r_mean']:.3f} -> {f['eval_after']['paired_r_mean']:.3f}")
    for key, value in col["truth"].items():
        print(f"    {key:<44} {value}")


def wall_clock_calibration(repeats: int = 1) -> None:
    """calibrate all on the hardware-timed realistic twin: wall time against patterns x (latency + settle),
    ``repeats`` times (a shared 2-core machine's speed changes by tens of per cent from one minute to the
    next: the median is the figure)."""
    text = realistic_bench_text().replace('timing = "virtual"', 'timing = "wall"')
    cfg = parse_bench(text, "realistic, hardware-timed")
    ratios = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp, build_bench(cfg, Path(tmp)) as bench:
            t0 = time.perf_counter()
            rep = calibrate(bench, "all", CalibrationStore(Path(tmp)))
            wall = time.perf_counter() - t0
        c = rep.counters
        ratios.append(wall / c["pattern_time_s"])
        print(f"calibrate all, hardware-timed realistic twin: {wall:.1f} s for {c['patterns_shown']} patterns, "
              f"{c['frames_captured']} frames; patterns x (latency + settle) {c['pattern_time_s']:.1f} s; "
              f"ratio {ratios[-1]:.2f}", flush=True)
    if repeats > 1:
        print(f"calibrate all, hardware-timed realistic twin, {repeats} runs: median ratio {float(np.median(ratios)):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f})")


def wall_clock_refine(refine_frames: int, model_spec: str = SHIPPED_MODEL) -> None:
    """calibrate all, then optgen refine, on the hardware-timed realistic twin: the wall time of each."""
    text = realistic_bench_text().replace('timing = "virtual"', 'timing = "wall"')
    cfg = parse_bench(text, "realistic, hardware-timed")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "calibrations"
        t0 = time.perf_counter()
        with build_bench(cfg, store) as bench:
            calibrate(bench, "all", CalibrationStore(store))
        calibrate_s = time.perf_counter() - t0
        _, _, done = refined(cfg, store, Path(tmp) / "refine", refine_frames, load_model(model_spec))
    print(f"hardware-timed realistic twin: calibrate all {calibrate_s:.0f} s, then refine {done['minutes']:.1f} min "
          f"for {done['frames']} frames; held-out paired r {done['eval_before']['paired_r_mean']:.3f} -> "
          f"{done['eval_after']['paired_r_mean']:.3f}")


def wall_clock_steps() -> None:
    """Each step of calibrate all on its own, on the hardware-timed realistic twin: where the time goes."""
    text = realistic_bench_text().replace('timing = "virtual"', 'timing = "wall"')
    cfg = parse_bench(text, "realistic, hardware-timed")
    with tempfile.TemporaryDirectory() as tmp:
        for step in ("camera", "lut", "wavefront", "alignment"):
            with build_bench(cfg, Path(tmp)) as bench:
                t0 = time.perf_counter()
                c = calibrate(bench, step, CalibrationStore(Path(tmp))).counters
                wall = time.perf_counter() - t0
            print(f"  {step:<10} {wall:5.1f} s, {c['patterns_shown']} patterns, {c['frames_captured']} frames, "
                  f"latency + settle {c['pattern_time_s']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--only", choices=(*COLUMNS, "none"), default=None, help="one column, or none")
    parser.add_argument("--wall", action="store_true", help="also time calibrate all on the hardware-timed twin")
    parser.add_argument("--wall-repeats", type=int, default=3, help="runs of calibrate all for --wall (the median)")
    parser.add_argument("--wall-steps", action="store_true", help="also time each step alone on the hardware-timed twin")
    parser.add_argument("--refine-frames", type=int, default=1536, help="frames the refined column captures")
    parser.add_argument("--wall-refine", action="store_true", help="also time refine on the hardware-timed twin")
    parser.add_argument("--paired", type=int, default=50, help="held-out teacher noises shown per column")
    parser.add_argument("--second-twin", action="store_true",
                        help="the realistic columns on a second realistic twin with other planted values")
    parser.add_argument("--without", default="", help="comma-separated planted effects to take out of the "
                                                      f"realistic twin ({', '.join(EFFECTS)})")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a bench-file setting of the realistic twin, e.g. calibration.correct_decoder_wavefront=true")
    parser.add_argument("--paired-without", default="", metavar="EFFECTS",
                        help="the shipped model's paired r with each of these effects taken out, then the columns")
    parser.add_argument("--model", default=SHIPPED_MODEL, help="the model to run (default: the shipped one)")
    args = parser.parse_args()
    text = second_realistic_bench_text() if args.second_twin else None
    taken = [e for e in args.without.split(",") if e] if args.without else []
    if taken:
        text = without(text or realistic_bench_text(), taken)
    if args.set:
        changes = {}
        for item in args.set:
            key, _, value = item.partition("=")
            section, _, name = key.rpartition(".")
            if not (section and name and value):
                raise SystemExit(f"--set {item!r}: expected SECTION.KEY=VALUE (a TOML value)")
            changes[(section, name)] = value
        text = edit_bench_text(text or realistic_bench_text(), changes)
    if args.paired_without:
        print("the shipped model on the realistic twin after calibrate all, planted effects taken out "
              f"(the calibrations kept; {args.paired} held-out teacher noises):")
        paired_without([e for e in args.paired_without.split(",") if e], args.paired, text, args.model)
    for name in COLUMNS:
        if args.only in (None, name):
            report(column(name, args.frames, args.refine_frames, args.paired, text, args.model))
    if args.wall:
        wall_clock_calibration(args.wall_repeats)
    if args.wall_steps:
        wall_clock_steps()
    if args.wall_refine:
        wall_clock_refine(args.refine_frames, args.model)
    print(f"\ncommand: python benchmarks/real_bench.py --frames {args.frames}"
          + (f" --only {args.only}" if args.only else "") + (f" --wall --wall-repeats {args.wall_repeats}" if args.wall else "")
          + (" --wall-steps" if args.wall_steps else "") + (" --second-twin" if args.second_twin else "")
          + (" --wall-refine" if args.wall_refine else "")
          + (f" --without {args.without}" if args.without else "")
          + (f" --paired-without {args.paired_without}" if args.paired_without else "")
          + "".join(f" --set {item}" for item in args.set)
          + (f" --refine-frames {args.refine_frames}" if args.refine_frames != 1536 else "")
          + (f" --model {args.model}" if args.model != SHIPPED_MODEL else ""))


if __name__ == "__main__":
    main()
