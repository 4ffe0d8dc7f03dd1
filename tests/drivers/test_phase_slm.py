"""drivers.slm.PhaseSLM: gray levels take a table-lookup path that must match slmsuite's own."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.drivers._slmsuite import SlmsuiteSLM
from optgen.drivers.errors import PhaseInputError
from optgen.drivers.identity import DeviceIdentity, SLMTiming
from optgen.drivers.slm import PhaseSLM


class RecordingSLM(PhaseSLM):
    """A PhaseSLM that keeps what reached the 'hardware'."""

    def __init__(self, bitdepth: int = 8):
        self.sent: list[np.ndarray] = []
        super().__init__((48, 32), timing=SLMTiming(60.0, 1, 0.0), bitdepth=bitdepth, name="test-slm")

    @property
    def identity(self) -> DeviceIdentity:
        return DeviceIdentity("optgen", "recording SLM", serial="0", firmware="test")

    def close(self) -> None:
        """Nothing to release."""

    def _set_phase_hw(self, display) -> None:
        self.sent.append(np.array(display, copy=True))


def slmsuite_path(slm: PhaseSLM, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What slmsuite's own set_phase sends and records for the same gray levels."""
    display = SlmsuiteSLM.set_phase(slm, gray)
    return np.array(display, copy=True), np.array(slm.phase, copy=True)


@pytest.mark.parametrize("bitdepth", [8, 10])
@pytest.mark.parametrize("measured_lut", [False, True])
def test_gray_levels_reach_the_device_and_record_the_phase_as_slmsuite_does(bitdepth, measured_lut, rng):
    slm = RecordingSLM(bitdepth)
    if measured_lut:   # a nonlinear response, as calibration.lut loads it
        slm.set_gamma(np.sqrt(np.linspace(0.0, 1.0, slm.bitresolution)))
    gray = rng.integers(0, slm.bitresolution, slm.shape).astype(slm.dtype)
    before = len(slm.sent)
    display = slm.set_phase(gray)
    fast_sent, fast_phase = slm.sent[-1], np.array(slm.phase, copy=True)
    assert np.array_equal(display, gray) and np.array_equal(fast_sent, gray)
    ref_display, ref_phase = slmsuite_path(slm, gray)
    assert np.array_equal(ref_display, fast_sent)
    assert np.allclose(np.mod(fast_phase - ref_phase + np.pi, 2 * np.pi) - np.pi, 0.0, atol=1e-5)
    assert len(slm.sent) == before + 2


def test_bad_gray_levels_are_refused_before_the_device(rng):
    slm = RecordingSLM(8)
    before = len(slm.sent)
    with pytest.raises(PhaseInputError, match="integer gray levels must be uint8"):
        slm.set_phase(np.zeros(slm.shape, dtype=np.int32))
    with pytest.raises(PhaseInputError, match="shape"):
        slm.set_phase(np.zeros((4, 4), dtype=np.uint8))
    assert len(slm.sent) == before


@pytest.mark.parametrize("measured_lut", [False, True])
def test_phase_to_gray_gives_the_bytes_set_phase_sends_and_shows_nothing(measured_lut, rng):
    slm = RecordingSLM(8)
    if measured_lut:
        slm.set_gamma(np.sqrt(np.linspace(0.0, 1.0, slm.bitresolution)))
    phase = rng.uniform(-7.0, 7.0, slm.shape).astype(np.float32)
    kept = phase.copy()
    before = len(slm.sent)
    gray = slm.phase_to_gray(phase)
    assert len(slm.sent) == before and gray.dtype == slm.dtype
    assert np.array_equal(phase, kept)                      # the caller's array is not touched
    slm.set_phase(phase)
    assert np.array_equal(slm.sent[-1], gray)
    with pytest.raises(PhaseInputError, match="NaN"):
        slm.phase_to_gray(np.full(slm.shape, np.nan, np.float32))


# --- wavefront corrections: the vendor's file and the measured one ---------------------------------
def _write_image(path, array, mode=None):
    from PIL import Image

    Image.fromarray(array, mode=mode).save(path)
    return path


def test_a_vendor_correction_file_adds_its_gray_levels_and_the_measured_correction_adds_on_top(tmp_path):
    slm = RecordingSLM()
    gray = np.zeros((32, 48), np.uint8)
    gray[:, 24:] = 64                                    # a quarter of the gray range on the right half
    zero = np.zeros(slm.shape, np.float32)
    plain = slm.phase_to_gray(zero).astype(int)
    slm.load_vendor_correction(_write_image(tmp_path / "panel.bmp", gray))
    shown = slm.phase_to_gray(zero).astype(int)
    assert not np.array_equal(shown, plain)
    np.testing.assert_array_equal(np.mod(shown[:, 24:] - shown[:, :24], 256), 64)   # the file's levels, added
    quarter = np.full(slm.shape, np.pi / 2, np.float32)
    slm.set_wavefront_correction(quarter)
    np.testing.assert_array_equal(slm.phase_to_gray(zero), slm.phase_to_gray(zero))
    fresh = RecordingSLM()
    fresh.load_vendor_correction(tmp_path / "panel.bmp")
    np.testing.assert_array_equal(slm.phase_to_gray(zero), fresh.phase_to_gray(quarter))
    assert slm.describe()["wavefront_correction"] == {"vendor": True, "measured": True}
    slm.set_wavefront_correction(None)
    np.testing.assert_array_equal(slm.phase_to_gray(zero), shown)
    assert not slm.sent                                  # nothing reached the device


@pytest.mark.parametrize("make, expected", [
    (lambda p: _write_image(p / "small.png", np.zeros((16, 48), np.uint8)), r"48 x 16 pixels; expected the panel's 48 x 32"),
    (lambda p: _write_image(p / "deep.png", np.zeros((32, 48), np.uint16)), "8-bit grayscale"),
    (lambda p: _write_image(p / "colour.png", np.zeros((32, 48, 3), np.uint8)), "8-bit grayscale"),
    (lambda p: (p / "notes.bmp").write_text("not an image") and p / "notes.bmp", "cannot read it as an image"),
    (lambda p: p / "missing.bmp", "cannot read it as an image"),
])
def test_a_wrong_vendor_file_is_refused_naming_the_file_and_what_was_expected(tmp_path, make, expected):
    slm = RecordingSLM()
    path = make(tmp_path)
    with pytest.raises(PhaseInputError, match=expected) as err:
        slm.load_vendor_correction(path)
    assert str(path) in str(err.value) and "phase" not in slm.source and not slm.sent


def test_a_measured_correction_of_the_wrong_shape_or_with_nan_is_refused():
    slm = RecordingSLM()
    with pytest.raises(PhaseInputError, match="shape"):
        slm.set_wavefront_correction(np.zeros((10, 10), np.float32))
    bad = np.zeros(slm.shape, np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(PhaseInputError, match="NaN"):
        slm.set_wavefront_correction(bad)
    assert slm.measured_correction_rad is None


# --- a window of a pattern converted alone --------------------------------------------------------
@pytest.mark.parametrize("setup", ["linear", "measured lut", "corrections", "aperture", "phase scaling"])
def test_a_window_converts_to_the_gray_levels_of_the_same_pixels_in_the_whole_pattern(setup, tmp_path, rng):
    slm = RecordingSLM(8)
    if setup == "measured lut":
        slm.set_gamma(np.sqrt(np.linspace(0.0, 1.0, slm.bitresolution)))
    if setup in ("corrections", "aperture"):
        slm.load_vendor_correction(_write_image(tmp_path / "panel.bmp", rng.integers(0, 256, (32, 48)).astype(np.uint8)))
        slm.set_wavefront_correction(rng.uniform(-3.0, 3.0, slm.shape).astype(np.float32))
    if setup == "aperture":
        slm.set_aperture("circular")
        assert slm.aperture.crops                    # the correction is masked off outside the disc
    if setup == "phase scaling":
        slm.wav_design_um = slm.wav_um / 1.25       # phase scaling 1.25: slmsuite converts the whole pattern at once
    block = rng.uniform(-7.0, 7.0, (13, 21)).astype(np.float32)
    kept = block.copy()
    for top_left in [(0, 0), (5, 9), (32 - 13, 48 - 21)]:
        pattern = np.zeros(slm.shape, np.float32)
        pattern[top_left[0]:top_left[0] + 13, top_left[1]:top_left[1] + 21] = block
        whole = slm.phase_to_gray(pattern)[top_left[0]:top_left[0] + 13, top_left[1]:top_left[1] + 21]
        window = slm.phase_to_gray_window(block, top_left)
        assert window.dtype == slm.dtype and window.shape == block.shape
        np.testing.assert_array_equal(window, whole)
    assert np.array_equal(block, kept) and not slm.sent
    # and the whole pattern's conversion is what slmsuite's own set_phase sends (its source phase and
    # aperture mask applied by slmsuite), so the window is checked against slmsuite, not against itself
    slm.set_phase(pattern)
    np.testing.assert_array_equal(slm.sent[-1], slm.phase_to_gray(pattern))


def test_a_window_that_does_not_fit_or_holds_nan_is_refused_naming_the_slm():
    slm = RecordingSLM(8)
    with pytest.raises(PhaseInputError, match=r"test-slm.*a 4x4 phase window at row 30, column 0 does not fit on the 32x48"):
        slm.phase_to_gray_window(np.zeros((4, 4), np.float32), (30, 0))
    with pytest.raises(PhaseInputError, match="does not fit"):
        slm.phase_to_gray_window(np.zeros((4, 4), np.float32), (0, -1))
    bad = np.zeros((4, 4), np.float32)
    bad[1, 2] = np.inf
    with pytest.raises(PhaseInputError, match="1 NaN or infinite"):
        slm.phase_to_gray_window(bad, (0, 0))
    with pytest.raises(PhaseInputError, match="2-D"):
        slm.phase_to_gray_window(np.zeros(4, np.float32), (0, 0))


def test_the_conversion_state_changes_with_the_lut_the_correction_and_the_aperture():
    from optgen.drivers.slm import same_conversion

    slm = RecordingSLM(8)
    first = slm.conversion_state()
    assert same_conversion(first, slm.conversion_state())
    slm.set_gamma(np.sqrt(np.linspace(0.0, 1.0, slm.bitresolution)))
    with_lut = slm.conversion_state()
    assert not same_conversion(first, with_lut)
    slm.set_wavefront_correction(np.full(slm.shape, 0.5, np.float32))
    corrected = slm.conversion_state()
    assert not same_conversion(with_lut, corrected)
    slm.set_aperture("circular")
    assert not same_conversion(corrected, slm.conversion_state())
