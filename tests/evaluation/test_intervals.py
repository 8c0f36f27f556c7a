"""Tests of common.evaluation.intervals on inputs whose intervals are known."""

import math

import numpy as np
import pytest
import scipy.stats

from common.errors import DataError
from common.evaluation.intervals import (
    bootstrap_units,
    bootstrap_variances,
    delong_interval,
    effective_wilson_interval,
    group_codes,
    mean_estimate,
    percentile_intervals,
    proportion_estimate,
    proportion_intervals,
    resample_counts,
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


def test_wilson_interval_at_all_right_reaches_below_one():
    low, high = wilson_interval(135, 135)
    assert low == pytest.approx(0.9723, abs=1e-4) and low < 1
    assert high == pytest.approx(1.0)


def test_effective_wilson_interval_divides_n_by_the_design_effect():
    # 30 of 60, bootstrap variance twice the binomial one: design effect 2, effective n 30, so Wilson's 15 of 30.
    binomial = 0.5 * 0.5 / 60
    low, high, method = effective_wilson_interval(30, 60, 2 * binomial, n_groups=12)
    assert (low, high) == pytest.approx(wilson_interval(15, 30))
    assert method == "Wilson, effective n from 12 groups (design effect 2.0)"
    # A variance below the binomial one is no reason to narrow: the design effect is at least 1.
    assert effective_wilson_interval(30, 60, binomial / 2, n_groups=12)[:2] == pytest.approx(wilson_interval(30, 60))
    # No spread (all right): the groups holding the images are the sample.
    low, high, method = effective_wilson_interval(60, 60, 0.0, n_groups=12)
    assert (low, high) == pytest.approx(wilson_interval(12, 12)) and high == 1.0
    assert method == "Wilson, effective n = 12 groups (no spread between groups)"
    # Every image its own group: plain Wilson whatever the bootstrap's noise says.
    assert effective_wilson_interval(30, 60, 3 * binomial, n_groups=60)[:2] == wilson_interval(30, 60)


def clustered(n_groups=20, size=10, n_right=14):
    """Whole groups right or wrong: ``n_right`` of ``n_groups`` groups of ``size`` images."""
    correct = np.repeat(np.arange(n_groups) < n_right, size)
    return correct, np.repeat(np.arange(n_groups), size)


def test_proportion_intervals_are_wilson_and_cluster_aware():
    correct, groups = clustered()
    everything = np.ones_like(correct)
    [plain] = proportion_intervals(correct, everything)
    assert plain.value == 0.7 and plain.n == 200 and plain.method == "Wilson"
    assert plain.interval == pytest.approx(wilson_interval(140, 200))
    [grouped] = proportion_intervals(correct, everything, groups, seed=1, n_resamples=2000)
    # Groups all right or all wrong: ten images count as one, so about Wilson's 14 of 20.
    assert grouped.high - grouped.low > 2 * (plain.high - plain.low)
    assert grouped.interval == pytest.approx(wilson_interval(14, 20), abs=0.02)
    assert grouped.method.startswith("Wilson, effective n from 20 groups (design effect")
    [singletons] = proportion_intervals(correct, everything, np.arange(200), seed=1)
    assert singletons.interval == plain.interval
    # Several proportions at once; one over no images is undefined.
    first_half = np.arange(200) < 100
    shares = proportion_intervals(np.stack([correct, correct]), np.stack([first_half, np.zeros(200, bool)]), groups)
    assert shares[0].value == 1.0 and shares[0].interval == pytest.approx(wilson_interval(10, 10))
    assert shares[1].n == 0 and math.isnan(shares[1].value) and math.isnan(shares[1].low)
    with pytest.raises(DataError, match="shape"):
        proportion_intervals(correct, everything[:10])


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


def test_grouped_proportion_estimate_does_not_collapse_at_one():
    all_right = np.ones(12, dtype=bool)
    estimate = proportion_estimate(all_right, groups=np.arange(12) // 3)
    # The bootstrap of four all-right groups is the point 1; Wilson on the 4 groups is not.
    assert estimate.interval == pytest.approx(wilson_interval(4, 4)) and estimate.low < 0.6
    assert estimate.method == "Wilson, effective n = 4 groups (no spread between groups)"
    all_wrong = proportion_estimate(~all_right, groups=np.arange(12) // 3)
    assert all_wrong.interval == pytest.approx(wilson_interval(0, 4))


def test_resample_counts_and_bootstrap_variances():
    drawn = np.array([[0, 0, 2], [1, 2, 2]])
    assert resample_counts(drawn, 4).tolist() == [[2, 0, 1, 0], [0, 1, 2, 0]]
    # The bootstrap variance of a mean of 100 values half 0, half 1 is 0.25 / 100.
    values = np.repeat([0.0, 1.0], 50)

    def mean(drawn_units, axis=-1):
        return np.atleast_2d(values[np.atleast_2d(drawn_units)].mean(axis=-1))

    [variance] = bootstrap_variances(mean, 100, 100, seed=0, n_resamples=4000)
    assert variance == pytest.approx(0.25 / 100, rel=0.1)


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
