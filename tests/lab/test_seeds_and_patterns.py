"""Seed sources, decoder phases and full-SLM patterns."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.drivers.common.patterns import embed_centered
from optgen.lab.run.decoder import load_decoder_phase
from optgen.lab.run.patterns import SeedGrayLevels, seed_to_slm_phase
from optgen.lab.run.seeds import FileSeedSource, values_to_phase


def test_seed_mapping_follows_the_published_formula():
    values = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(values_to_phase(values), [0, 0, np.pi, 1.5 * np.pi, 2 * np.pi, 2 * np.pi], atol=1e-6)


def test_seed_superpixels_are_centred_blocks():
    seed = np.arange(4, dtype=np.float32).reshape(2, 2)
    full = seed_to_slm_phase(seed, 3, (10, 12))
    assert full.shape == (10, 12) and full.dtype == np.float32
    np.testing.assert_array_equal(full[2:5, 3:6], 0.0)
    np.testing.assert_array_equal(full[2:5, 6:9], 1.0)
    np.testing.assert_array_equal(full[5:8, 3:6], 2.0)
    np.testing.assert_array_equal(full[5:8, 6:9], 3.0)
    assert full.sum() == 9 * (0 + 1 + 2 + 3)
    with pytest.raises(ValueError, match="does not fit"):
        embed_centered(np.zeros((11, 2)), (10, 12))


def test_seed_gray_levels_are_the_whole_pattern_s_and_follow_a_new_lut_correction_or_aperture(small_bench, rng):
    slm, superpixel = small_bench.encoding_slm, 3
    convert = SeedGrayLevels(slm, superpixel)
    whole = lambda seed: slm.phase_to_gray(seed_to_slm_phase(seed, superpixel, slm.shape))   # noqa: E731
    changes = [lambda: None,
               lambda: slm.set_wavefront_correction(rng.uniform(-3.0, 3.0, slm.shape).astype(np.float32)),
               lambda: slm.set_gamma(np.sqrt(np.linspace(0.0, 1.0, slm.bitresolution))),
               lambda: slm.set_aperture("circular")]
    shown = []
    for change in changes:           # each change alters the gray levels outside the seed's window too
        change()
        seed = rng.uniform(0.0, 2 * np.pi, (8, 8)).astype(np.float32)
        gray = convert(seed)
        np.testing.assert_array_equal(gray, whole(seed))
        assert gray.dtype == slm.dtype and gray.shape == slm.shape
        shown.append(whole(np.zeros((8, 8), np.float32)))
    assert all(not np.array_equal(a, b) for a, b in zip(shown, shown[1:]))
    with pytest.raises(ValueError, match="does not fit"):
        convert(np.zeros((400, 400), np.float32))


def test_file_seed_source_reads_seeds_and_refuses_bad_files(tmp_path):
    seeds = np.random.default_rng(0).uniform(0, 6, (3, 4, 4)).astype(np.float32)
    np.save(tmp_path / "s.npy", seeds)
    source = FileSeedSource(tmp_path / "s.npy", 4)
    assert len(source) == 3
    np.testing.assert_array_equal(source.seed(2).phase, seeds[2])
    with pytest.raises(IndexError, match="holds 3"):
        source.seed(3)
    bad = seeds.copy()
    bad[1, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="NaN"):
        FileSeedSource(tmp_path / "nan.npy", 4)
    with pytest.raises(ValueError, match=r"expected \(N, 5, 5\)"):
        FileSeedSource(tmp_path / "s.npy", 5)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="not a .npy"):
        FileSeedSource(tmp_path / "junk.npy", 4)
    with pytest.raises(ValueError, match="not found"):
        FileSeedSource(tmp_path / "missing.npy", 4)


def test_decoder_phase_files_are_checked(tmp_path):
    phase, ident = load_decoder_phase("flat", 8)
    assert ident == "flat-placeholder" and not phase.any()
    np.save(tmp_path / "d.npy", np.ones((8, 8)))
    phase, ident = load_decoder_phase("d.npy", 8, tmp_path)
    assert ident == "file:d.npy" and phase.dtype == np.float32
    with pytest.raises(ValueError, match=r"shape \(8, 8\), expected \(9, 9\)"):
        load_decoder_phase("d.npy", 9, tmp_path)
    np.save(tmp_path / "inf.npy", np.full((8, 8), np.inf))
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_decoder_phase("inf.npy", 8, tmp_path)
