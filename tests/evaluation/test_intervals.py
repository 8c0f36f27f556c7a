"""Tests of common.evaluation.intervals on inputs whose intervals are known."""

import math

import numpy as np
import pytest
import scipy.stats

from common.errors import DataError
from common.evaluation.intervals import (
    bootstrap_units,
    delong_interval,
    group_codes,
    mean_estimate,
    percentile_intervals,
    proportion_estimate,
    t_interval,
    wilson_interval,
)


def test_group_codes_number_groups_and_give_missing_ids_their_own():
    codes, n_groups = group_codes(["p1", "p2", "p1", None, np.nan, "p2"])
    assert codes.tolist() == [0, 1, 0, 2, 3, 1]
    assert n_groups == 4


def test_bootstrap_units_are_rows_or_groups():
    units, n_units = bootstrap_units(None, 4)
    assert units.tolist() == [0, 1, 2, 3] and n_units == 4
    units, n_units = bootstrap_units(["a", "b", "a", "b"], 4)
    assert units.tolist() == [0, 1, 0, 1] and n_units == 2
    with pytest.raises(DataError, match="groups has 3 entries"):
        bootstrap_units([1, 1, 2], 4)
    with pytest.raises(DataError, match="single group"):
        bootstrap_units([1, 1, 1, 1], 4)


def test_wilson_interval_matches_the_textbook_formula():
    # Wilson score interval of 8/10 at 95%: centre (p + z^2/2n) / (1 + z^2/n).
    z, n, p = scipy.stats.norm.ppf(0.975), 10, 0.8
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert wilson_interval(8, 10) == pytest.approx((centre - half, centre + half), abs=1e-9)
    low, high = wilson_interval(8, 10, confidence=0.5)
    assert centre - half < low < high < centre + half


def test_proportion_estimate_records_count_and_method():
    correct = np.array([True] * 8 + [False] * 2)
    plain = proportion_estimate(correct)
    assert plain.value == 0.8 and plain.n == 10 and plain.method == "Wilson"
    assert plain.interval == pytest.approx(wilson_interval(8, 10))
    grouped = proportion_estimate(correct, groups=np.arange(10) // 2, n_resamples=200)
    assert grouped.method == "percentile bootstrap of 5 groups, 200 resamples"
    assert grouped.low <= grouped.value <= grouped.high
    one_group = proportion_estimate(correct, groups=np.zeros(10))
    assert one_group.method == "none (one group)" and math.isnan(one_group.low)
    empty = proportion_estimate([])
    assert empty.to_record()["n"] == 0 and empty.method == "none (no images)" and math.isnan(empty.value)
    with pytest.raises(DataError, match="groups has 3 entries but there are 10 images"):
        proportion_estimate(correct, groups=[1, 2, 3])


def test_mean_estimate_is_seeded_and_undefined_for_too_few_values():
    values = np.random.default_rng(0).random(50)
    first = mean_estimate(values, seed=1, n_resamples=300)
    assert first == mean_estimate(values, seed=1, n_resamples=300)
    assert first.value == pytest.approx(values.mean())
    assert first.low < first.value < first.high
    assert math.isnan(mean_estimate(np.array([0.4])).low) and mean_estimate(np.array([0.4])).value == 0.4
    empty = mean_estimate(np.empty(0))
    assert math.isnan(empty.value) and math.isnan(empty.low) and empty.n is None


def test_t_interval_known_width_and_degenerate_case():
    # mean 0.7, sd 0.1, t(0.975, df=2) = 4.3027 -> half width 0.24841
    assert t_interval(np.array([0.6, 0.7, 0.8]), 0.95) == pytest.approx((0.7 - 0.248414, 0.7 + 0.248414), abs=1e-5)
    assert t_interval(np.array([0.5, 0.5]), 0.95) == (0.5, 0.5)


def test_percentile_intervals_skip_undefined_resamples():
    values = np.array([0.0, 0.0, 1.0, 1.0, 0.5])

    def statistic(drawn, axis=-1):
        drawn = np.atleast_2d(drawn)
        mean = values[drawn].mean(axis=1)
        # Undefined (NaN) whenever the resample holds no 0.5.
        only_defined = np.where((values[drawn] == 0.5).any(axis=1), mean, np.nan)
        return np.stack([mean, only_defined])

    low, high = percentile_intervals(statistic, 5, 5, seed=0, n_resamples=500, confidence=0.9)
    assert 0 <= low[0] < 0.5 < high[0] <= 1
    assert np.isfinite(low[1]) and np.isfinite(high[1]) and low[1] <= high[1]


def test_delong_interval_is_centred_and_clipped():
    pytest.importorskip("confidenceinterval")
    rng = np.random.default_rng(3)
    is_positive = rng.random(200) < 0.5
    score = is_positive * 0.4 + rng.random(200) * 0.6
    auc = 0.9
    low, high = delong_interval(is_positive, score, auc, 0.95)
    assert low < auc < high and high - auc == pytest.approx(auc - low)
    perfect = delong_interval(is_positive, is_positive.astype(float), 1.0, 0.95)
    assert perfect[1] == 1.0
