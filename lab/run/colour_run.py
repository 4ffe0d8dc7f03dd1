"""Multi-colour runs: one colour at a time, then the frames combined into RGB images.

For each colour of the bench's ``[colours]`` table, in RGB order, the bench is opened as it
runs at that colour (:func:`optgen.lab.bench.config.colour_bench`: that colour's laser, the LUTs and
alignment calibrated at that wavelength, the model's decoder phase for it) and an ordinary
run (:func:`lab.run.run_generation`) stores that colour's frames in ``<out>/<nm>nm/``, with
every guarantee of a run: laser off on every exit, resume at the first missing frame. The
seeds of all colours come from the same noise vectors, so frame i of every colour belongs to
one generated image.

The frames are then put back into the units the model was trained in: a registered image is
counts above dark per sensor pixel, so counts x photon energy / (gain x QE x exposure x laser
power x sensor pixel area) is the irradiance per watt of beam, and the model's own per-colour
intensity scale for that seed multiplies it. ``rgb.npy`` (N, h, w, 3) holds the result and
``rgb_contact_sheet.png`` shows it (channels in the bench's ``order_nm`` order: red, green, blue;
a bench with other than three colours gets a grey sheet of the channel sum).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from optgen.drivers.errors import OptgenError
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.calibrations import BenchCalibrations, load_bench_calibrations
from optgen.lab.bench.config import BenchConfig, colour_bench
from optgen.lab.model import OpticalGeometry, OpticalModel
from optgen.lab.run.colour_calibrations import colour_calibration_lines, colour_calibration_record
from optgen.lab.run.folder import COLOUR_RUN_FILE, check_same_colour_run, prepare_run_folder, recorded
from optgen.lab.run.generate import run_generation
from optgen.lab.run.model_seeds import ModelSeedSource
from optgen.lab.runfile.contact_sheet import write_contact_sheet
from optgen.lab.runfile.reader import RunFile, read_run_status
from optgen.simulators.noise import photon_energy_j

__all__ = ["ColourRunResult", "colour_folder", "combine_rgb", "is_colour_run", "run_colours",
           "COLOUR_RUN_FILE"]


@dataclass
class ColourRunResult:
    folder: Path
    status: str                 # "complete", or the status of the colour run that stopped
    colours_done: list[float]
    summary: dict


def colour_folder(out: Path, wavelength_nm: float) -> Path:
    return Path(out) / f"{wavelength_nm:g}nm"


def is_colour_run(folder: Path) -> bool:
    return (Path(folder) / COLOUR_RUN_FILE).is_file()


def _check(config: BenchConfig, model: OpticalModel) -> list[BenchConfig]:
    """Per-colour bench configs, after checking the model has each colour for this geometry."""
    if config.colours is None or len(config.colours.order_nm) < 2:
        raise OptgenError(f"{config.source}: a multi-colour run needs a [colours] table with two or more colours")
    configs = []
    for wl in config.colours.order_nm:
        cfg = colour_bench(config, wl)
        model.check_bench(OpticalGeometry.from_bench(cfg), wl)   # names a missing colour or geometry
        configs.append(cfg)
    return configs


def _check_calibrations(configs: list[BenchConfig], calibrations: Path | None) -> dict[float, BenchCalibrations]:
    """Load every colour's calibrations now: a bad file for the last colour stops the run before the first."""
    return {cfg.wavelength_nm: load_bench_calibrations(cfg, calibrations) for cfg in configs}


def _pass_done(sub: Path) -> bool:
    """Every frame of a colour's pass is stored (also if the process died just after the last one)."""
    return (sub / "run.h5").is_file() and read_run_status(sub / "run.h5")["first_missing"] is None


def _say_calibrations(record: Path, config: BenchConfig, configs: list[BenchConfig],
                      cals: dict[float, BenchCalibrations], store: Path | None,
                      report: Callable[[str], None] | None) -> None:
    """Say (``report``, a line at a time) and record in colour_run.json which calibrations each colour
    of ``configs`` runs with, or that it is UNCALIBRATED (lab.run.colour_calibrations)."""
    now = datetime.now(timezone.utc)
    stored = json.loads(record.read_text())
    entries = stored.setdefault("colour_calibrations", {})
    for cfg in configs:
        wl = cfg.wavelength_nm
        entries[f"{wl:g}nm"] = colour_calibration_record(cals[wl], now)
        for line in colour_calibration_lines(config, wl, cals[wl], store, now) if report is not None else ():
            report(line)
    partial = record.with_name(record.name + ".partial")      # the run's record is never left half written
    partial.write_text(json.dumps(stored, indent=2) + "\n")
    os.replace(partial, record)


def run_colours(config: BenchConfig, model: OpticalModel, out: str | Path, count: int, *, random_seed: int = 0,
                calibrations: Path | None = None, resume: bool = False, sync: str = "pipelined",
                max_retries: int = 3, bench_dir: Path | None = None,
                progress: Callable[[float, int, int], None] | None = None,
                report: Callable[[str], None] | None = None, noise: np.ndarray | None = None,
                class_index: int | None = None) -> ColourRunResult:
    """Run every colour of ``config`` into ``out`` (or, with ``resume``, finish what is missing).

    ``noise``: the encoder's noise vectors (N >= ``count``, for example the teacher's own) instead of
    those drawn from ``random_seed``. ``class_index``: images of that class only (a model trained on
    labelled images, as ``optgen run --class``); a resumed run keeps the class it recorded.

    Everything is checked before any device opens: the model's colours and geometry, and every
    colour's calibration files. ``progress(colour_nm, done, total)``. ``report``: called, before
    any device opens, with each line saying which calibrations each colour still to run uses and
    their age, or that it is UNCALIBRATED (recorded in colour_run.json too).
    """
    out = Path(out)
    configs = _check(config, model)
    cals = _check_calibrations(configs, calibrations)
    record = out / COLOUR_RUN_FILE
    if resume and class_index is None and record.is_file():
        class_index = recorded(out).class_index      # a run of one class goes on with it
    # the noise and the class checked against the model (a class needs a model that knows classes)
    given = ModelSeedSource(model, model.wavelengths_nm[0], random_seed, class_index, noise=noise)
    if noise is not None and len(given.given) < count:
        raise OptgenError(f"given noise: {len(given.given)} vectors for {count} images; give at least as many")
    settings = {"colours_nm": list(config.colours.order_nm), "count": int(count), "seed": int(random_seed),
                "model": model.id, "bench_file": config.text,
                "bench_dir": str(bench_dir.resolve()) if bench_dir is not None else None,
                "calibrations": str(calibrations.resolve()) if calibrations is not None else None}
    if noise is not None:
        settings["noise"] = given.describe()["noise"]
    if class_index is not None:
        settings["class"] = int(class_index)
    if resume:
        check_same_colour_run(out, settings)
    else:
        prepare_run_folder(out)
        record.write_text(json.dumps(settings, indent=2) + "\n")
    _say_calibrations(record, config, [cfg for cfg in configs if not _pass_done(colour_folder(out, cfg.wavelength_nm))],
                      cals, calibrations, report)
    done: list[float] = []
    started = time.monotonic()
    for cfg in configs:
        wl = cfg.wavelength_nm
        sub = colour_folder(out, wl)
        sub_resume = (sub / "run.h5").is_file()
        if _pass_done(sub):
            done.append(wl)
            continue
        if not sub_resume:
            if resume and sub.exists() and any(sub.iterdir()):
                raise OptgenError(f"{sub}: files but no run.h5 (a pass killed while it was created); delete "
                                  f"this folder and resume again")
            prepare_run_folder(sub)
        seeds = ModelSeedSource(model, wl, random_seed, class_index, noise=noise)
        run_args = {"seed": random_seed, "colour_nm": wl, "bench_dir": settings["bench_dir"],
                    "calibrations": settings["calibrations"], "class": class_index}
        report = (lambda d, t, wl=wl: progress(wl, d, t)) if progress is not None else None
        with build_bench(cfg, calibrations) as bench:
            result = run_generation(bench, seeds, model.decoder_phase[model.wavelengths_nm[model.colour_index(wl)]],
                                    f"model:{model.id}", sub, count, report, resume=sub_resume, sync=sync,
                                    max_retries=max_retries, run_args=run_args)
        if result.status != "complete":
            summary = {**{k: v for k, v in settings.items() if k != "bench_file"}, "status": result.status,
                       "stopped_at_nm": wl, "colours_done": done}
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            return ColourRunResult(out, result.status, done, summary)
        done.append(wl)
    rgb = combine_rgb(out, configs, model, random_seed, noise, class_index)
    np.save(out / "rgb.npy", rgb)
    write_contact_sheet(out / "rgb_contact_sheet.png", rgb if rgb.shape[-1] == 3 else rgb.sum(axis=-1))
    summary = {**{k: v for k, v in settings.items() if k != "bench_file"}, "status": "complete",
               "colours_done": done, "wall_time_s": time.monotonic() - started, "rgb": "rgb.npy",
               "rgb_shape": list(rgb.shape), "energy_per_rgb_image": _energy(out, done)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return ColourRunResult(out, "complete", done, summary)


def _energy(out: Path, colours: list[float]) -> dict:
    """Energy per RGB image: each term summed over the colour passes, and each pass's own terms."""
    per_colour = {}
    for wl in colours:
        summary_path = colour_folder(out, wl) / "summary.json"   # absent if the pass was killed after its frames
        per_colour[f"{wl:g}nm"] = (json.loads(summary_path.read_text()).get("energy_per_image", {})
                                   if summary_path.is_file() else {})
    total: dict = {}
    for terms in per_colour.values():
        for key, value in terms.items():
            if isinstance(value, dict):
                inner = total.setdefault(key, {})
                for device, joules in value.items():
                    inner[device] = inner.get(device, 0.0) + joules
            else:
                total[key] = total.get(key, 0.0) + value
    return {**total, "per_colour": per_colour}


def _unit_irradiance(folder: Path, cfg: BenchConfig) -> np.ndarray:
    """A colour run's registered images as irradiance per watt of beam (W/m^2 per W), (N, h, w)."""
    with RunFile(folder / "run.h5") as run:
        if not run.written.all():
            raise OptgenError(f"{folder}: {int((~run.written).sum())} frames missing; resume the run first")
        images = run.images().astype(np.float64)
        power = run.meta("laser_power_w")
        exposure = run.meta("exposure_s")
    cam = cfg.camera
    per_count = photon_energy_j(cfg.wavelength_m) / (cam.gain_dn_per_e * cam.qe * (cam.pitch_um * 1e-6) ** 2)
    return images * per_count / (power * exposure)[:, None, None]


def combine_rgb(out: Path, configs: list[BenchConfig], model: OpticalModel, random_seed: int = 0,
                noise: np.ndarray | None = None, class_index: int | None = None) -> np.ndarray:
    """The RGB images (N, h, w, colours) of a finished colour run, in the model's trained units
    (``random_seed``, ``noise``, ``class_index``: as the run was given them)."""
    channels = []
    for cfg in configs:
        wl = cfg.wavelength_nm
        irradiance = _unit_irradiance(colour_folder(out, wl), cfg)
        seeds = ModelSeedSource(model, wl, random_seed, class_index, noise=noise)
        scale = np.array([seeds.scale(i) for i in range(len(irradiance))])
        channels.append(irradiance * scale[:, None, None])
    return np.stack(channels, axis=-1).astype(np.float32)
