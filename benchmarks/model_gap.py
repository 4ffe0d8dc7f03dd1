"""Where a model's figures go on the twin: the same uncalibrated run with the twin's
differences from the training model removed one after another.

Rows: the default twin; + SLM responses linear over 0-2 pi (the nominal LUT then exact); + SLM2
not misplaced; + the sensor not misplaced; + the training grid (512). Each row is ``optgen run``
of N frames and ``optgen evaluate`` (confident share, inception-style score, Frechet distance).

Usage:  python benchmarks/model_gap.py [--model FILE] [--frames N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from optgen.lab.bench.examples import edit_bench_text
from optgen.lab.bench.parse import default_bench_text
from optgen.lab.cli import main as optgen
from optgen.lab.model import SHIPPED_MODEL

LINEAR_SLMS = {(slm, key): value for slm in ("twin.encoding_slm", "twin.decoding_slm")
               for key, value in (("response_max_rad", "6.283185307179586"), ("response_exponent", "1.0"),
                                  ("response_wobble_rad", "0.0"))}
SLM2_IN_PLACE = {("twin.decoding_slm", "shift_um"): "[0.0, 0.0]", ("twin.decoding_slm", "rotation_deg"): "0.0"}
SENSOR_IN_PLACE = {("twin.camera", "offset_um"): "[0.0, 0.0]", ("twin.camera", "rotation_deg"): "0.0"}
TRAINING_GRID = {("twin", "grid_px"): "[512, 512]"}


def rows() -> list[tuple[str, dict]]:
    steps = [("default twin", {}), ("+ SLM responses linear 0-2 pi", LINEAR_SLMS),
             ("+ SLM2 not misplaced", SLM2_IN_PLACE), ("+ sensor not misplaced", SENSOR_IN_PLACE),
             ("+ training grid 512", TRAINING_GRID)]
    out, changes = [], {}
    for name, more in steps:
        changes = {**changes, **more}
        out.append((name, dict(changes)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=SHIPPED_MODEL)
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    spec = str(Path(args.model).resolve()) if Path(args.model).is_file() else args.model
    print(f"model {args.model}, {args.frames} frames a row, uncalibrated runs")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, changes) in enumerate(rows()):
            bench = Path(tmp) / f"bench{k}.toml"
            bench.write_text(edit_bench_text(default_bench_text(), {("run", "model"): f'"{spec}"', **changes}))
            out = Path(tmp) / f"run{k}"
            assert optgen(["run", "--bench", str(bench), "--out", str(out), "--count", str(args.frames),
                           "--no-progress"]) == 0
            assert optgen(["evaluate", str(out)]) == 0
            g = json.loads((out / "summary.json").read_text())["evaluation"]["generated"]
            print(f"  {name:32s} confident {g['confident_fraction']:6.1%}  inception {g['inception_score']:5.2f}  "
                  f"Frechet {g['frechet_distance']:6.2f}", flush=True)


if __name__ == "__main__":
    main()
