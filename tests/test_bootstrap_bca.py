"""The BCa interval against scipy's reference implementation, and its edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from segrob.errors import SegrobError
from segrob.metrics import bootstrap_ci, paired_bootstrap_ci


@pytest.mark.parametrize("n", [8, 20, 50])
def test_bca_matches_scipy_on_skewed_dice_like_values(n):
    values = 1.0 - np.random.default_rng(n).beta(1.0, 8.0, size=n)
    ours = bootstrap_ci(values, n_resamples=40_000, seed=1)
    reference = stats.bootstrap(
        (values,), np.mean, n_resamples=40_000, method="BCa", random_state=2
    ).confidence_interval
    # Two independent Monte Carlo draws of 40 000 resamples: their quantiles differ by ~1e-3.
    assert ours == pytest.approx((reference.low, reference.high), abs=3e-3)


def test_bca_shifts_the_interval_of_skewed_values_away_from_the_percentile_one():
    values = 1.0 - np.random.default_rng(0).beta(1.0, 8.0, size=12)
    bca = bootstrap_ci(values, n_resamples=20_000)
    percentile = bootstrap_ci(values, n_resamples=20_000, method="percentile")
    # Left-skewed values: BCa reaches further down than the percentile interval does.
    assert bca[0] < percentile[0] - 0.005


def test_degenerate_and_constant_values_give_a_point_interval():
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_paired_interval_is_the_interval_of_the_differences():
    clean = np.random.default_rng(3).uniform(0.7, 0.95, size=15)
    changed = clean - np.random.default_rng(4).uniform(0.0, 0.2, size=15)
    assert paired_bootstrap_ci(clean, changed, seed=5) == bootstrap_ci(changed - clean, seed=5)
    high = paired_bootstrap_ci(clean, changed)[1]
    assert high < 0


def test_unknown_interval_method_is_refused():
    with pytest.raises(SegrobError, match="unknown interval"):
        bootstrap_ci([1.0, 2.0], method="basic")
