"""The digits judge separates real digits from noise."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.lab.model.data import load_digits_images, resize_images
from optgen.lab.model.evaluate import DigitsJudge, normalize_images


@pytest.fixture(scope="module")
def judge():
    return DigitsJudge()


def test_real_digits_at_output_size_score_as_digits(judge):
    images, labels = load_digits_images(8)
    big = resize_images(images[:500], 32) * 3000.0 + 100.0  # as counts on a sensor
    s = judge.scores(big)
    assert s["confident_fraction"] > 0.9
    assert s["inception_score"] > 8.0
    assert min(s["class_histogram"]) > 20
    assert s["frechet_distance"] < 5.0  # the 8 -> 32 -> 8 round trip blurs a little (same subsets: ~0.6)


def test_a_judge_made_for_the_output_grid_scores_resized_real_digits_as_real_digits(judge):
    """The round trip 8 -> 32 -> 8 blurs: the plain judge charges that to the images, the aligned one does not."""
    images, _ = load_digits_images(8)
    big = resize_images(images[:500], 32) * 3000.0 + 100.0
    aligned = DigitsJudge(image_size=32)
    plain_scores, aligned_scores = judge.scores(big), aligned.scores(big)
    assert aligned_scores["confident_fraction"] > 0.97
    assert aligned_scores["frechet_distance"] < 0.5 * plain_scores["frechet_distance"]
    assert aligned_scores["confident_fraction"] > plain_scores["confident_fraction"]
    with pytest.raises(ValueError, match="32 x 32"):
        aligned.scores(images[:10])


def test_noise_and_one_repeated_digit_score_badly(judge):
    noise = np.random.default_rng(0).uniform(size=(300, 32, 32))
    images, _ = load_digits_images(8)
    ones = np.repeat(images[1:2], 300, axis=0)
    s_noise, s_ones = judge.scores(noise), judge.scores(ones)
    real = judge.scores(images[:300])
    assert s_noise["frechet_distance"] > 10 * max(real["frechet_distance"], 0.1)
    assert s_ones["inception_score"] < 1.5  # one class only
    assert s_noise["confident_fraction"] < real["confident_fraction"]


def test_normalize_images_scales_and_pools():
    x = np.zeros((1, 16, 16))
    x[0, :8, :8] = 5.0
    x[0, 8:, 8:] = 1.0
    out = normalize_images(x + 7.0, size=2)
    np.testing.assert_allclose(out[0], [[1.0, 0.0], [0.0, 0.2]])


def test_a_hot_pixel_does_not_dim_the_digit():
    """Min-max scaling let one bright pixel (a hot pixel, a speckle peak) dim the whole digit."""
    images, _ = load_digits_images(8)
    big = resize_images(images[:50], 32) * 3000.0 + 100.0
    hot = big.copy()
    hot[:, 3, 5] = 50 * big.max()
    dead = big.copy()
    dead[:, 20, 20] = -5000.0
    plain = normalize_images(big)
    for bad, block in ((hot, (0, 1)), (dead, (5, 5))):
        diff = np.abs(normalize_images(bad) - plain)
        assert diff[:, block[0], block[1]].max() <= 1 / 16 + 1e-6   # the bad pixel itself: one of 16 in its block
        diff[:, block[0], block[1]] = 0.0
        assert diff.max() < 0.02                                      # the rest of the digit as it was
    judge = DigitsJudge(image_size=32)
    assert judge.scores(hot)["frechet_distance"] < 1.1 * judge.scores(big)["frechet_distance"] + 0.05


def test_frechet_floor_is_the_small_sample_bias_of_real_digits():
    judge = DigitsJudge(image_size=32)
    f100, f200, f500 = (judge.frechet_floor(n) for n in (100, 200, 500))
    assert f100 > f200 > f500 > 0.0
    assert f200 > 1.5 * f500      # 64 features: the bias falls roughly as 1 / count
    assert judge.frechet_floor(len(judge.real_features)) == 0.0
    images, _ = load_digits_images(8)
    pick = np.random.default_rng(7).choice(len(images), 200, replace=False)   # the data set is ordered by writer
    s = judge.scores(resize_images(images[pick], 32))
    assert s["frechet_floor"] == f200
    assert s["frechet_distance"] < 3 * f200      # real digits score near the floor at their count


def test_teacher_is_judged_at_the_generated_count():
    from optgen.lab.model.evaluate import teacher_scores

    judge = DigitsJudge(image_size=32)
    images, _ = load_digits_images(8)
    samples = resize_images(images[:500], 32)
    assert teacher_scores(judge, samples, 120)["count"] == 120
    assert teacher_scores(judge, samples, 900)["count"] == 500
    assert teacher_scores(judge, samples, 120)["frechet_distance"] > judge.scores(samples)["frechet_distance"]
