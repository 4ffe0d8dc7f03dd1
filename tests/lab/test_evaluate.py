"""The digits judge separates real digits from noise."""

from __future__ import annotations

import numpy as np
import pytest

from lab.model.data import load_digits_images, resize_images
from lab.model.evaluate import DigitsJudge, normalize_images


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
