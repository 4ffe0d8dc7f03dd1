"""Each SLM's unmodulated fraction: the grating model against its analytic limits, then the
measurement on a full-size twin with fractions and fringing planted here."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.calibration.session import CalibrationError, CalibrationSession
from optgen.calibration.unmodulated import (
    diagonal_grating,
    fraction_from_ratios,
    grating_zero_order,
    measure_unmodulated,
    unmodulated_room,
)
from optgen.drivers.common.roles import DECODING, ENCODING
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import edit_bench_text
from optgen.lab.bench.parse import default_bench_text, parse_bench
from tests.conftest import small_bench_text


def test_a_sharp_blazed_grating_has_no_zero_order_and_blurred_wraps_leak_at_least_as_one_over_the_period_squared():
    assert grating_zero_order(16, 0.0) < 2e-3
    assert grating_zero_order(8, 0.0) < 2e-3
    leaks = [grating_zero_order(16, s) for s in (0.3, 0.6, 0.9)]
    assert leaks[0] < leaks[1] < leaks[2]
    # each wrap leaks a fixed amount of amplitude: 1 / P^2 in power, more where the ramp is steep
    assert 4.0 <= grating_zero_order(8, 0.5) / grating_zero_order(16, 0.5) < 8.0
    assert 4.0 <= grating_zero_order(16, 0.5) / grating_zero_order(32, 0.5) < 8.0
    g = diagonal_grating((64, 64), 16)
    assert g.min() >= 0 and g.max() < 2 * np.pi
    assert g[0, 1] - g[0, 0] == pytest.approx(2 * np.pi / (16 * np.sqrt(2)), rel=1e-5)   # along the diagonal


@pytest.mark.parametrize("u, sigma", [(0.0, 0.5), (0.04, 0.7), (0.12, 0.3), (0.02, 1.2)])
def test_the_fraction_and_the_wraps_blur_come_back_from_the_two_focus_ratios(u, sigma):
    ratios = {p: u + (1 - u) * grating_zero_order(p, sigma) for p in (16, 8)}
    got_u, got_sigma = fraction_from_ratios(ratios)
    assert got_u == pytest.approx(u, abs=1e-4)
    assert got_sigma == pytest.approx(sigma, abs=0.01)


def test_a_geometry_without_room_between_the_focus_and_the_first_order_says_so():
    small = parse_bench(small_bench_text(), "small").light_path
    assert "leaves no room" in unmodulated_room(small, (small.d1_m, small.d2_m))
    full = parse_bench(default_bench_text(), "full").light_path
    assert unmodulated_room(full, (full.d1_m, full.d2_m)) is None


PLANTED = {("twin.encoding_slm", k): v for k, v in (("response_max_rad", "6.2586"), ("response_exponent", "1.0"),
                                                    ("response_wobble_rad", "0.0"), ("crosstalk_sigma_px", "0.8"))}
PLANTED.update({("twin.decoding_slm", k): v for k, v in (("response_max_rad", "6.2586"), ("response_exponent", "1.0"),
                                                         ("response_wobble_rad", "0.0"), ("crosstalk_sigma_px", "0.4"))})


def test_the_unmodulated_fraction_of_each_slm_is_measured_to_a_percent():
    """Linear responses planted, so the nominal LUT is right; SLM2 sits off by a fraction of a pixel."""
    text = edit_bench_text(default_bench_text(), PLANTED)
    text = text.replace("crosstalk_sigma_px = 0.8", "crosstalk_sigma_px = 0.8\nunmodulated_fraction = 0.05", 1)
    text = text.replace("crosstalk_sigma_px = 0.4", "crosstalk_sigma_px = 0.4\nunmodulated_fraction = 0.02", 1)
    with build_bench(parse_bench(text, "unmodulated")) as bench:
        assert bench.truths.unmodulated_fraction == {ENCODING: 0.05, DECODING: 0.02}
        g = bench.config.geometry
        u = measure_unmodulated(CalibrationSession(bench), (g.d1_m, g.d2_m))
        assert bench.world.laser_emission is False
    assert u.fraction[ENCODING] == pytest.approx(0.05, abs=0.01)
    assert u.fraction[DECODING] == pytest.approx(0.02, abs=0.01)
    assert u.blur_px[ENCODING] == pytest.approx(0.8, abs=0.15)      # the planted fringing, seen in the wraps
    assert all(r[8] > r[16] for r in u.focus_ratio.values())       # the finer grating leaks more


def test_no_focus_light_stops_with_the_reason_and_the_laser_off(monkeypatch):
    with build_bench(parse_bench(default_bench_text(), "dark")) as bench:
        session = CalibrationSession(bench)
        monkeypatch.setattr(session, "auto_exposure_dimming", lambda **kw: None)
        monkeypatch.setattr(session, "capture", lambda frames=1: np.zeros(bench.camera.shape, np.float32))
        g = bench.config.geometry
        with pytest.raises(CalibrationError, match="unmodulated light of the encoding slm"):
            measure_unmodulated(session, (g.d1_m, g.d2_m))
        assert bench.world.laser_emission is False


def test_calibrate_check_compares_the_unmodulated_light_with_what_was_measured():
    from optgen.calibration.check import DriftCheck, _check_unmodulated
    from optgen.calibration.wavefront import WavefrontCalibration

    text = edit_bench_text(default_bench_text(), PLANTED)
    text = text.replace("crosstalk_sigma_px = 0.8", "crosstalk_sigma_px = 0.8\nunmodulated_fraction = 0.05", 1)
    text = text.replace("crosstalk_sigma_px = 0.4", "crosstalk_sigma_px = 0.4\nunmodulated_fraction = 0.02", 1)
    with build_bench(parse_bench(text, "unmodulated")) as bench:
        base = dict(kind="wavefront", wavelength_nm=520.0, optical_path="d1=120.1mm;d2=96.4mm", bench_name="t",
                    bench_text="", device_identity={})
        for key, stored_u in ((ENCODING, 0.05), (DECODING, 0.05)):       # SLM2's light changed since: 5 -> 2 %
            cal = WavefrontCalibration(key, (2, 3, 4), np.zeros(3), 1e-3, 0.01, 0.1, (0.0, 0.0), 0.0)
            cal = cal.with_unmodulated(stored_u, "measured: the focus with diagonal gratings", 0.6)
            bench.calibrations.wavefronts[key] = cal.to_record({**base, "device": key})
        result = DriftCheck()
        _check_unmodulated(bench, CalibrationSession(bench), result, None)
        assert bench.world.laser_emission is False
    assert result.items[f"{ENCODING} unmodulated"]["ok"]
    assert result.items[f"{DECODING} unmodulated"]["drift"] == pytest.approx(-0.03, abs=0.01)
    assert not result.items[f"{DECODING} unmodulated"]["ok"] and not result.ok
