"""The twin's small-mean Poisson draws against numpy's sampler, on a twin run frame's dim pixels.

One frame of the embedded twin at the published 800 x 800 grid (the twin-frame figure of
``foundation.py``) gives each sensor pixel's mean photo-electrons; the pixels below 50 electrons
(drawn exactly; the normal approximation above) are drawn by ``simulators/poisson_table.py`` and, as
the baseline, by ``numpy.random.Generator.poisson``, in turn, from the same generator. Then one
sensor model pass over the whole frame (``simulators.noise.expose``, its bands on the sensor's
threads) for scale.

Usage:  python benchmarks/poisson_sampler.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from _figures import twin_frame
from _timing import median_ms, samples_in_turn_ms

from optgen.simulators.noise import POISSON_EXACT_BELOW_E, expose, photon_energy_j
from optgen.simulators.poisson_table import poisson_table_draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    with twin_frame((800, 800)) as (frame, bench, cfg):
        frame()
        world = bench.world
        power = world.unit_sensor_power(bench.clock.now()) * np.float32(cfg.laser.power_w)
        exposure_s = bench.camera.exposure_s
        sensor = world.sensor
        mean_e = power * np.float32(sensor.qe * exposure_s / photon_energy_j(world.wavelength_m))
        dim = mean_e[mean_e < POISSON_EXACT_BELOW_E].astype(np.float32)
        rng = np.random.default_rng(0)
        table, numpy_ms = samples_in_turn_ms(lambda: poisson_table_draw(dim, rng), lambda: rng.poisson(dim),
                                             args.repeats, args.repeats)
        ours, base = statistics.median(table), statistics.median(numpy_ms)
        print(f"Poisson draws for a twin run frame's {dim.size:,} dim pixels (of {mean_e.size:,}; means "
              f"{np.percentile(dim, 10):.1f}-{np.percentile(dim, 90):.1f} e-, 10th-90th percentile): table "
              f"{ours:.2f} ms | numpy's sampler (baseline, in turn) {base:.2f} ms | ratio {base / ours:.2f}x")
        whole = median_ms(lambda: expose(power, exposure_s, world.wavelength_m, sensor, rng), args.repeats)
        print(f"the sensor model on the whole {mean_e.shape[1]} x {mean_e.shape[0]} frame (expose, its bands on "
              f"the sensor's threads): {whole:.1f} ms")


if __name__ == "__main__":
    main()
