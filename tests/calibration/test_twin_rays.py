"""Where the planted tilts and panel curvature put the light: analytic cases, then the alignment
measured on a twin against it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from optgen.calibration.alignment import measure_decoder_placement, measure_sensor_registration
from optgen.calibration.compare import affine_distance_px
from optgen.calibration.session import CalibrationSession
from optgen.calibration.twin_rays import light_truths, panel_optics
from optgen.drivers.common.patterns import grid_coordinates, lens_phase
from optgen.drivers.common.roles import DECODING, ENCODING
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import add_to_bench_text
from optgen.lab.bench.parse import parse_bench
from tests.conftest import small_bench_text

PLACED = {("twin.decoding_slm", "shift_um"): "[9.0, -6.0]", ("twin.decoding_slm", "rotation_deg"): "0.1"}


@pytest.fixture(scope="module")
def ideal():
    config = parse_bench(small_bench_text(PLACED), "placed")
    bench = build_bench(config)
    truths = bench.world.planted_truths()
    bench.close()
    return config.light_path, truths


def test_panel_optics_reads_a_lens_and_a_tilt():
    shape, pitch, lam = (200, 240), 8e-6, 520e-9
    y, x = grid_coordinates(shape, pitch)
    tilt = 2.0 * np.pi / lam * (150e-6 * x - 60e-6 * y)
    phase = lens_phase(shape, pitch, lam, 0.25).astype(np.float64) + tilt
    optics = panel_optics(phase, pitch, lam, np.ones(shape))
    assert optics.tilt_rad == pytest.approx([150e-6, -60e-6], abs=1e-9)
    assert optics.power_per_m == pytest.approx(-np.eye(2) / 0.25, abs=1e-6)


def test_nothing_planted_leaves_the_mechanical_truths(ideal):
    light_path, truths = ideal
    light = light_truths(truths, light_path)
    assert np.allclose(light.output_to_sensor, truths.output_to_sensor, atol=1e-9 * abs(truths.output_to_sensor).max())
    assert light.decoder_shift_m == pytest.approx(truths.decoder_shift_m, abs=1e-12)
    assert light.decoder_rotation_deg == pytest.approx(truths.decoder_rotation_deg, abs=1e-9)


def test_a_tilted_beam_walks_the_spots_by_its_angle_times_the_distances(ideal):
    light_path, truths = ideal
    theta = np.array([200e-6, -120e-6])
    tilted = dataclasses.replace(truths, beam={**truths.beam, "tilt_rad": tuple(theta)})
    light = light_truths(tilted, light_path)
    # the sensor: every aimed point lands theta * (d1 + d2) further on
    moved = truths.output_to_sensor[:, :2] @ (theta * (truths.d1_m + truths.d2_m))
    assert light.output_to_sensor[:, 2] - truths.output_to_sensor[:, 2] == pytest.approx(moved, rel=1e-6)
    assert light.output_to_sensor[:, :2] == pytest.approx(truths.output_to_sensor[:, :2], rel=1e-9)
    # SLM2: lenses of focal d2 focus theta * d2 further on, read through a registration that expects
    # theta * (d1 + d2): SLM2 seems theta * d1 back along the beam
    assert np.subtract(light.decoder_shift_m, truths.decoder_shift_m) == pytest.approx(-theta * truths.d1_m, rel=1e-6)


def test_slm2_tilt_moves_the_sensor_only(ideal):
    light_path, truths = ideal
    shape = truths.wavefront_rad[ENCODING].shape
    y, x = grid_coordinates(shape, light_path.pitch_m)
    angle = 80e-6
    panel = np.broadcast_to(2.0 * np.pi / light_path.wavelength_m * angle * x, shape)
    light = light_truths(dataclasses.replace(truths, wavefront_rad={**truths.wavefront_rad, DECODING: panel}),
                         light_path)
    a = np.deg2rad(truths.decoder_rotation_deg)                 # the panel's x, turned into the beam
    moved = truths.output_to_sensor[:, :2] @ (angle * truths.d2_m * np.array([np.cos(a), np.sin(a)]))
    assert light.output_to_sensor[:, 2] - truths.output_to_sensor[:, 2] == pytest.approx(moved, rel=1e-3)
    # the same panel tilt deflects SLM2's lenses and the registration alike: no apparent shift
    assert light.decoder_shift_m == pytest.approx(truths.decoder_shift_m, abs=1e-9)


def test_a_correction_in_force_is_taken_with_the_panel(ideal):
    light_path, truths = ideal
    shape = truths.wavefront_rad[ENCODING].shape
    y, x = grid_coordinates(shape, light_path.pitch_m)
    panel = np.broadcast_to(2.0 * np.pi / light_path.wavelength_m * 100e-6 * y, shape)
    tilted = dataclasses.replace(truths, wavefront_rad={**truths.wavefront_rad, ENCODING: panel})
    cancelled = light_truths(tilted, light_path, {ENCODING: -panel})
    assert cancelled.output_to_sensor == pytest.approx(truths.output_to_sensor, rel=1e-9, abs=1e-9)
    assert light_truths(tilted, light_path).decoder_shift_m[1] == pytest.approx(
        truths.decoder_shift_m[1] - 100e-6 * truths.d1_m, rel=1e-3)


def test_the_alignment_finds_where_the_light_goes_not_where_the_parts_sit():
    """A tilted, off-centre Gaussian beam and tilted panels: the measured registration and SLM2
    placement are off the mechanical truths by pixels, and on the light's truths."""
    plant = {**PLACED, ("twin.laser", "beam"): '"gaussian"', ("twin.laser", "waist_mm"): "1.0"}
    text = add_to_bench_text(small_bench_text(plant), {
        "twin.laser": ["tilt_urad = [300.0, -200.0]", "centre_um = [30.0, -20.0]"],
        "twin.encoding_slm": ["wavefront_waves = [0.0, 0.1, -0.05]", "wavefront_radius_mm = 0.8"],
        "twin.decoding_slm": ["wavefront_waves = [0.0, -0.08, 0.06]", "wavefront_radius_mm = 0.8"]})
    config = parse_bench(text, "tilted")
    bench = build_bench(config)
    try:
        session = CalibrationSession(bench)
        sensor = measure_sensor_registration(session)
        placement = measure_decoder_placement(session, sensor)
        truths = bench.world.planted_truths()
    finally:
        bench.close()
    b = config.light_path
    light = light_truths(truths, b)
    assert affine_distance_px(sensor.output_to_sensor, truths.output_to_sensor, b.window_m) > 3.0
    assert affine_distance_px(sensor.output_to_sensor, light.output_to_sensor, b.window_m) < 0.2
    mechanical = np.subtract(placement.shift_m, truths.decoder_shift_m) / b.pitch_m
    seen = np.subtract(placement.shift_m, light.decoder_shift_m) / b.pitch_m
    assert np.abs(mechanical).max() > 1.0
    assert np.abs(seen).max() < 0.1
    assert placement.rotation_deg == pytest.approx(light.decoder_rotation_deg, abs=0.03)


def test_the_similarity_limit_is_the_part_of_an_astigmatic_map_a_similarity_cannot_hold():
    from optgen.calibration.twin_truth import similarity_limit_px

    window, a, e = 2.56e-3, 2.0e5, 0.004
    similar = np.array([[a * np.cos(0.01), a * np.sin(0.01), 640.0], [-a * np.sin(0.01), a * np.cos(0.01), 512.0]])
    assert similarity_limit_px(similar, window) == pytest.approx(0.0, abs=1e-6)
    astigmatic = np.array([[a * (1 + e), 0.0, 640.0], [0.0, a * (1 - e), 512.0]])
    assert similarity_limit_px(astigmatic, window) == pytest.approx(a * e * window / 2 * np.sqrt(2), rel=1e-6)
