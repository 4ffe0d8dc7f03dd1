"""The table-driven Poisson sampler's parts: Bernoulli successes by geometric gaps, the table itself."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from optgen.simulators import poisson_table


@pytest.mark.parametrize("n, p", [(1, 0.5), (37, 0.9), (5_000, 0.0155), (200_000, 0.0155)])
def test_the_successes_are_bernoulli_trials(n, p, rng):
    hits = np.zeros(n)
    rounds = min(2_000, max(1, 400_000 // n))
    for _ in range(rounds):
        successes = poisson_table._bernoulli_successes(n, p, rng)
        assert np.all(np.diff(successes) > 0) and (successes.size == 0 or 0 <= successes[0] <= successes[-1] < n)
        hits[successes] += 1
    total = rounds * n
    assert hits.sum() == pytest.approx(total * p, abs=6 * np.sqrt(total * p * (1 - p)))
    for half in (hits[: n // 2], hits[n // 2:]):                # no place favoured
        trials = rounds * half.size
        assert half.sum() == pytest.approx(trials * p, abs=6 * np.sqrt(trials * p * (1 - p)) + 1e-9)


def test_the_successes_survive_a_first_round_that_stays_inside(rng):
    # a first round whose gaps all land inside n (rare by chance) takes more rounds
    class FirstRoundInside:
        calls: list[int] = []

        def geometric(self, p, size):
            self.calls.append(size)
            return np.ones(size, dtype=np.int64) if len(self.calls) == 1 else rng.geometric(p, size)

    draws = FirstRoundInside()
    successes = poisson_table._bernoulli_successes(10_000, 0.01, draws)
    first = draws.calls[0]
    assert len(draws.calls) >= 2
    assert np.array_equal(successes[:first], np.arange(first))
    assert np.all(np.diff(successes) > 0) and successes[-1] < 10_000


def test_the_table_gives_each_cells_lower_quantile_and_marks_the_cells_with_a_step():
    quantiles, cdf, _ = poisson_table._get_tables()
    table = quantiles.reshape(-1, poisson_table._U_STEPS)
    cdf = cdf.reshape(table.shape[0], -1)
    for row in (0, 1, 64 * 7 + 13, table.shape[0] - 1):
        mean = row / poisson_table._MEAN_STEPS
        exact = scipy.special.pdtr(np.arange(cdf.shape[1] - 1), mean)
        np.testing.assert_allclose(cdf[row, :-1], exact, rtol=1e-12)
        for cell in (0, 100, 511, 1000, poisson_table._U_STEPS - 1):
            u_low, u_high = cell / poisson_table._U_STEPS, (cell + 1) / poisson_table._U_STEPS
            k_low = int(np.searchsorted(exact, u_low))
            k_high = int(np.searchsorted(exact, min(u_high, poisson_table._LARGEST_U)))
            entry = int(table[row, cell])
            assert entry & 127 == k_low
            assert bool(entry & 128) == (k_high != k_low)
