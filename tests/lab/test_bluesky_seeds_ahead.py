"""Seeds prepared ahead for the bluesky plans: taken when still valid, computed again when not."""
# ruff: noqa: F811 - the fixtures RE, docs and twin come from tests.lab.bluesky_twin

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bluesky", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")
pytest.importorskip("ophyd_async", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")

import optgen  # noqa: E402
from optgen.calibration.lut import PhaseResponse, apply_response  # noqa: E402
from optgen.lab.bluesky import plans  # noqa: E402
from optgen.lab.bluesky.seeds_ahead import SeedsAhead  # noqa: E402
from optgen.lab.run.patterns import seed_to_slm_phase  # noqa: E402
from tests.lab.bluesky_twin import RE, bench_config, docs, twin  # noqa: E402,F401


def seed_gray(slm, seeds, index: int, superpixel_px: int) -> np.ndarray:
    """Seed ``index`` as the gray levels ``slm`` is sent, the whole pattern converted (the reference)."""
    return slm.phase_to_gray(seed_to_slm_phase(seeds.seed(index).phase, superpixel_px, slm.shape))


@pytest.fixture
def slm_and_seeds():
    with optgen.open_bench(bench_config()) as bench:
        yield bench.devices.encoding_slm, bench._sources.seeds(3), bench.config.geometry.superpixel_px


def test_a_generate_plan_shows_prepared_seeds_and_the_frames_stay_those_of_the_seeds(RE, twin, docs):
    bench, devices = twin
    RE(plans.generate(devices, 6, seed=4))
    assert docs.exit_status() == "success"
    # every seed after the first came prepared; the first was computed when it was shown
    assert devices.patterns.ahead.taken == 5
    slm = bench.devices.encoding_slm
    last = seed_gray(slm, devices.patterns.seeds(4), 5, bench.config.geometry.superpixel_px)
    assert np.array_equal(slm.display, last)


def test_prepared_gray_levels_equal_those_computed_on_the_spot(slm_and_seeds):
    slm, seeds, superpixel = slm_and_seeds
    ahead = SeedsAhead(ahead=3)
    try:
        got = [ahead.gray(slm, seeds, i, superpixel) for i in range(5)]
    finally:
        ahead.close()
    assert ahead.taken == 4
    for i, gray in enumerate(got):
        assert np.array_equal(gray, seed_gray(slm, seeds, i, superpixel))
    assert not np.array_equal(got[0], got[1])


def test_a_new_lut_or_wavefront_correction_makes_the_prepared_seed_computed_again(slm_and_seeds):
    slm, seeds, superpixel = slm_and_seeds
    ahead = SeedsAhead(ahead=1)
    try:
        ahead.gray(slm, seeds, 0, superpixel)            # seed 1 is prepared with the linear response
        levels = np.arange(256)
        apply_response(slm, PhaseResponse("test", levels, 2.2 * np.pi * (levels / 255.0) ** 1.3))
        after_lut = ahead.gray(slm, seeds, 1, superpixel)
        assert ahead.taken == 0
        assert np.array_equal(after_lut, seed_gray(slm, seeds, 1, superpixel))
        slm.set_wavefront_correction(np.full(slm.shape, 0.9, np.float32))
        after_correction = ahead.gray(slm, seeds, 2, superpixel)
        assert ahead.taken == 0
        assert np.array_equal(after_correction, seed_gray(slm, seeds, 2, superpixel))
        assert ahead.gray(slm, seeds, 3, superpixel) is not None and ahead.taken == 1   # unchanged: taken
    finally:
        ahead.close()


def test_a_skipped_seed_or_another_source_drops_what_was_prepared(slm_and_seeds):
    slm, seeds, superpixel = slm_and_seeds
    with optgen.open_bench(bench_config()) as other_bench:
        other = other_bench._sources.seeds(9)
    ahead = SeedsAhead(ahead=2)
    try:
        ahead.gray(slm, seeds, 0, superpixel)
        ahead.gray(slm, seeds, 5, superpixel)            # 1 and 2 were prepared; 5 was not
        assert ahead.taken == 0
        assert sorted(k[2] for k in ahead._pending) == [6, 7]
        gray = ahead.gray(slm, other, 6, superpixel)     # same index, another source: not taken
        assert ahead.taken == 0 and np.array_equal(gray, seed_gray(slm, other, 6, superpixel))
    finally:
        ahead.close()


def test_a_preparation_that_failed_is_computed_again_and_raises_its_own_error(slm_and_seeds, mocker):
    slm, seeds, superpixel = slm_and_seeds
    real_seed = seeds.seed
    calls = []

    def seed(index):
        calls.append(index)
        if len(calls) > 1:
            raise RuntimeError("the encoder is gone")
        return real_seed(index)

    mocker.patch.object(seeds, "seed", side_effect=seed)
    ahead = SeedsAhead(ahead=1)
    try:
        ahead.gray(slm, seeds, 0, superpixel)            # computed here; seed 1's preparation fails
        with pytest.raises(RuntimeError, match="the encoder is gone"):
            ahead.gray(slm, seeds, 1, superpixel)
        assert calls == [0, 1, 1] and ahead.taken == 0   # prepared (failed), then computed again here
    finally:
        ahead.close()


def test_after_close_seeds_are_computed_on_the_spot_and_nothing_is_prepared(slm_and_seeds):
    slm, seeds, superpixel = slm_and_seeds
    ahead = SeedsAhead(ahead=2)
    ahead.close()
    gray = ahead.gray(slm, seeds, 0, superpixel)
    assert np.array_equal(gray, seed_gray(slm, seeds, 0, superpixel))
    assert not ahead._pending and ahead.taken == 0
