"""Loading measured phase responses into the SLM's LUT."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.calibration.lut import (
    LUTError,
    PhaseResponse,
    apply_response,
    load_response,
    one_turn_lut,
)
from optgen.drivers.identity import SLMTiming
from optgen.simulators import (
    ENCODING,
    LaserTruth,
    OpticalWorld,
    SensorTruth,
    SimulatedPhaseSLM,
    SLMTruth,
    VirtualClock,
    planted_response,
)


def make_slm():
    truth = planted_response(8, 6.5, 1.3, 0.3)
    world = OpticalWorld(wavelength_m=520e-9, pitch_m=8e-6, grid_shape=(32, 32), d1_m=0.01, d2_m=0.01,
                         encoding=SLMTruth(truth), decoding=SLMTruth(truth),
                         sensor=SensorTruth(resolution=(32, 32), pitch_m=8e-6), laser=LaserTruth(),
                         clock=VirtualClock())
    return SimulatedPhaseSLM(world, ENCODING, (32, 32), timing=SLMTiming(60, 0, 0)), world, truth


def test_npy_and_csv_responses_load_with_an_id_and_correct_the_slm(tmp_path):
    slm, world, truth = make_slm()
    np.save(tmp_path / "resp.npy", truth)
    response = load_response("resp.npy", 8, tmp_path)
    assert response.id.startswith("file:resp.npy:") and len(response.id) > len("file:resp.npy:")
    apply_response(slm, response)
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, (32, 32)).astype(np.float32)
    slm.set_phase(phase)
    err = np.angle(np.exp(1j * (world.retardance(ENCODING, 0.0) - phase)))
    assert np.max(np.abs(err)) < 0.03
    levels = np.arange(0, 256, 17)
    np.savetxt(tmp_path / "resp.csv", np.c_[levels, truth[levels]], delimiter=",", header="gray,phase_rad")
    apply_response(slm, load_response(str(tmp_path / "resp.csv"), 8))
    slm.set_phase(phase)
    err = np.angle(np.exp(1j * (world.retardance(ENCODING, 0.0) - phase)))
    assert np.sqrt(np.mean(err**2)) < 0.05
    apply_response(slm, load_response("linear", 8))
    assert slm.lut is None


def test_bad_response_files_are_refused_with_the_reason(tmp_path):
    np.save(tmp_path / "short.npy", np.linspace(0, 6, 100))
    with pytest.raises(LUTError, match="100 values; expected one per gray level \\(256\\)"):
        load_response("short.npy", 8, tmp_path)
    np.save(tmp_path / "nan.npy", np.full(256, np.nan))
    with pytest.raises(LUTError, match="finite"):
        load_response("nan.npy", 8, tmp_path)
    with pytest.raises(LUTError, match="not found"):
        load_response("missing.npy", 8, tmp_path)
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(LUTError, match="unknown LUT file type"):
        load_response("x.txt", 8, tmp_path)
    (tmp_path / "bad.csv").write_text("0,1\n300,2\n")
    with pytest.raises(LUTError, match="gray levels must lie in 0..255"):
        load_response("bad.csv", 8, tmp_path)


def test_a_response_within_one_turn_keeps_slmsuites_own_table():
    slm, _, truth = make_slm()                       # 6.5 rad at the top: the last levels pass 2 pi
    within = truth * (6.2 / truth[-1])
    slm.set_gamma(within / (2 * np.pi))
    np.testing.assert_array_equal(one_turn_lut(np.asarray(slm.gamma), slm._gamma_sign, slm.lut.size),
                                  np.asarray(slm.lut))


def test_more_than_2pi_of_stroke_is_driven_on_the_first_turn_only():
    """slmsuite alone takes the nearest level modulo 2 pi over the whole stroke, so some phases go
    to levels a turn up (neighbouring pixels then differ by a turn, which crosstalk smears: the
    calibration test on an 8 rad twin shows what that costs); the table keeps to the first turn."""
    slm, world, _ = make_slm()
    truth = planted_response(8, 8.0, 1.3, 0.3)
    world._slms[ENCODING].truth = SLMTruth(truth)
    first_beyond = int(np.argmax(truth - truth[0] >= 2 * np.pi))
    slm.set_gamma(truth / (2 * np.pi))
    assert np.asarray(slm.lut).max() >= first_beyond            # slmsuite's table uses the second turn
    apply_response(slm, PhaseResponse("test", np.arange(256.0), truth))
    used = np.unique(np.asarray(slm.lut))
    assert used.max() < first_beyond and used.size == first_beyond   # every level of the first turn
    phase = np.random.default_rng(2).uniform(0, 2 * np.pi, (32, 32)).astype(np.float32)
    slm.set_phase(phase)
    err = np.angle(np.exp(1j * (world.retardance(ENCODING, 0.0) - phase)))
    assert np.max(np.abs(err)) < 0.03


@pytest.mark.parametrize("name, content, fragment", [
    ("reversed.npy", lambda p: np.save(p, np.linspace(6.5, 0, 256)), "reversed LUT"),
    ("zeros.npy", lambda p: np.save(p, np.zeros(256)), "constant"),
    ("seven.npy", lambda p: np.save(p, np.linspace(0, 6.5, 7)), "7 values; expected one per gray level (256)"),
    ("text.npy", lambda p: np.save(p, np.array(["a"] * 256)), "expected one phase"),
    ("object.npy", lambda p: np.save(p, np.array([{}, {}], dtype=object), allow_pickle=True), "not a readable .npy"),
    ("torn.npy", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'"), "not a readable .npy"),
    ("garbage.npy", lambda p: p.write_bytes(b"\xff" * 100), "not a readable .npy"),
    ("latin1.csv", lambda p: p.write_bytes(b"0,0\n\xff\xfe,1\n"), "not a gray,phase_rad CSV"),
    ("ragged.csv", lambda p: p.write_text("0,0\n1,2,3\n"), "not a gray,phase_rad CSV"),
    ("falling.csv", lambda p: p.write_text("0,6\n255,0\n"), "reversed LUT"),
    ("repeated.csv", lambda p: p.write_text("0,0\n0,1\n255,6\n"), "must increase"),
    ("nan.csv", lambda p: p.write_text("0,0\n255,nan\n"), "finite"),
    ("flat.csv", lambda p: p.write_text("0,0\n255,0.1\n"), "span 0.1 rad"),
])
def test_a_bad_response_file_is_refused_with_a_lut_error_naming_it(tmp_path, name, content, fragment):
    content(tmp_path / name)
    with pytest.raises(LUTError) as info:
        load_response(name, 8, tmp_path)
    assert name in str(info.value) and fragment in str(info.value), str(info.value)
