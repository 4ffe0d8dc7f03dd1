"""d1 and d2 from how gratings move a focus (calibration.distances), on the small twin: SLM2's own
defocus drops out of d1 (the pair of lenses on SLM2) and comes out as the power it plants."""

from __future__ import annotations

import math

import pytest

from optgen.calibration.procedure import calibrate
from optgen.calibration.store import CalibrationStore
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import add_to_bench_text, small_bench_text
from optgen.lab.bench.parse import parse_bench

WL, RADIUS_M, DEFOCUS_WAVES = 520e-9, 0.6e-3, -0.3
TRUE_D1_M, TRUE_D2_M = 40.5e-3, 29.7e-3


def measured(tmp_path, slm2_defocus_waves: float):
    planted = {"twin": [f"d1_mm = {TRUE_D1_M * 1e3}", f"d2_mm = {TRUE_D2_M * 1e3}"]}
    if slm2_defocus_waves:
        planted["twin.decoding_slm"] = [f"wavefront_waves = [0, 0, 0, {slm2_defocus_waves}]",
                                        f"wavefront_radius_mm = {RADIUS_M * 1e3}"]
    cfg = parse_bench(add_to_bench_text(small_bench_text(), planted), "distances")
    store = tmp_path / f"defocus{slm2_defocus_waves}"
    with build_bench(cfg, store) as bench:
        calibrate(bench, "lut", CalibrationStore(store))
        report = calibrate(bench, "distances", CalibrationStore(store))
        assert bench.world.laser_emission is False
    return report.measurements["distances"]


@pytest.fixture(scope="module")
def flat_and_defocused(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distances")
    return measured(folder, 0.0), measured(folder, DEFOCUS_WAVES)


def test_slm2_defocus_comes_out_as_its_analytic_power_and_leaves_d1_where_it_was(flat_and_defocused):
    flat, defocused = flat_and_defocused
    # Z4 = sqrt(3) (2 rho^2 - 1): c waves of it is a lens of power -4 sqrt(3) c lambda / R^2
    planted_power = -4.0 * math.sqrt(3.0) * DEFOCUS_WAVES * WL / RADIUS_M**2
    assert planted_power == pytest.approx(3.0, rel=0.01)
    gained = defocused.slm2_power_per_m - flat.slm2_power_per_m
    assert gained == pytest.approx(planted_power, rel=0.1)
    for axis in (0, 1):
        assert defocused.slm2_power_xy_per_m[axis] - flat.slm2_power_xy_per_m[axis] == pytest.approx(planted_power,
                                                                                                   rel=0.15)
    # SLM1's gratings alone would have read d1 + d2 - d1 d2 p: 3.6 mm shorter; the lens pair moves 0.16 mm
    assert TRUE_D1_M * TRUE_D2_M * planted_power > 3.5e-3
    assert abs(defocused.d1_m - flat.d1_m) <= 0.3e-3
    assert abs(defocused.d2_m - flat.d2_m) <= 0.05e-3


def test_both_distances_come_out_near_the_planted_ones(flat_and_defocused):
    for d in flat_and_defocused:
        assert abs(d.d2_m - TRUE_D2_M) <= 0.1e-3
        # the small twin reads d1 0.8 mm (2 %) short; the full-size one 0.01 mm, the realistic one 0.12 mm
        assert abs(d.d1_m - TRUE_D1_M) <= 1.2e-3
        assert d.nominal_d1_m == pytest.approx(0.040) and d.nominal_d2_m == pytest.approx(0.030)
        assert d.spots_px.shape == (12, 2)
