"""Confidence intervals: bootstrap over units (images or groups), DeLong, Wilson and t.

The bootstrap intervals come from ``scipy.stats.bootstrap`` (percentile method,
seeded). A unit is one image, or one group (patient) when groups are given, so
whole groups are resampled together (cluster bootstrap); an image whose group is
missing (None/NaN) is a group of its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.stats

from common.errors import DataError
from common.evaluation.estimate import Estimate

# Bound on resamples x rows held in memory at once by a vectorised bootstrap statistic.
_MAX_WEIGHTS_PER_BATCH = 2_000_000


def group_codes(groups) -> tuple[np.ndarray, int]:
    """Number the groups 0..G-1, in order of first appearance.

    Args:
        groups: One group id per row; a missing id (None/NaN) makes a group of its own.

    Returns:
        ``(code of each row, G)``.
    """
    codes, group_ids = pd.factorize(pd.Series(np.asarray(groups, dtype=object)))  # missing ids get -1
    missing = codes < 0
    codes[missing] = group_ids.size + np.arange(missing.sum())
    return codes, group_ids.size + int(missing.sum())


def bootstrap_units(groups, n_rows: int) -> tuple[np.ndarray, int]:
    """Map each row to its bootstrap unit: its group, or itself when ungrouped.

    Args:
        groups: None (every row is a unit) or one group id per row.
        n_rows: Number of rows (labels).

    Returns:
        ``(unit of each row, number of units)``.

    Raises:
        DataError: If ``groups`` does not have one entry per row or holds one group.
    """
    if groups is None:
        return np.arange(n_rows), n_rows
    n_groups_given = len(np.asarray(groups, dtype=object))
    if n_groups_given != n_rows:
        raise DataError(f"groups has {n_groups_given} entries but y_true has {n_rows}.")
    unit_of_row, n_units = group_codes(groups)
    if n_units < 2:
        raise DataError("groups holds a single group: a cluster bootstrap needs at least two groups.")
    return unit_of_row, n_units


def percentile_intervals(
    statistic: Callable[..., np.ndarray],
    n_units: int,
    n_rows: int,
    seed: int,
    n_resamples: int,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of every row of a vectorised statistic over resampled units.

    Resamples where a row is undefined (e.g. the AUC of a resample holding one
    class) are left out of that row's percentiles.

    Args:
        statistic: Takes a (B, n_units) array of drawn unit indices and returns the
            (n_statistics, B) statistics of the B resamples.
        n_units: Number of units resampled.
        n_rows: Number of rows the units cover (bounds the batch size in memory).
        seed: Seed of the random generator.
        n_resamples: Number of resamples.
        confidence: Confidence level.

    Returns:
        ``(low, high)`` arrays, one entry per statistic row.
    """
    batch = int(max(1, min(n_resamples, _MAX_WEIGHTS_PER_BATCH // max(n_rows, 1))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        result = scipy.stats.bootstrap(
            (np.arange(n_units),),
            statistic,
            vectorized=True,
            n_resamples=n_resamples,
            batch=batch,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low = np.array(result.confidence_interval.low, dtype=float)
    high = np.array(result.confidence_interval.high, dtype=float)
    undefined = np.isnan(low) | np.isnan(high)
    tail = (1 - confidence) / 2
    for row in np.flatnonzero(undefined):
        defined = result.bootstrap_distribution[row][np.isfinite(result.bootstrap_distribution[row])]
        if defined.size:
            low[row], high[row] = np.quantile(defined, [tail, 1 - tail])
    return low, high


def delong_interval(is_positive: np.ndarray, score: np.ndarray, auc: float, confidence: float) -> list | None:
    """DeLong interval around ``auc``, clipped to [0, 1]; None if the package is missing.

    Only the variance is taken from ``confidenceinterval`` (it computes its own AUC
    in float32); the interval is centred on the given (scikit-learn's) AUC.

    Args:
        is_positive: Boolean array, True for the positive class.
        score: Score of the positive class.
        auc: The AUC to centre the interval on.
        confidence: Confidence level.

    Returns:
        ``[low, high]``, or None when ``confidenceinterval`` is not installed.
    """
    try:
        from confidenceinterval.delong import delong_roc_variance
    except ImportError:
        return None
    # With fewer than two positives or negatives the variance is undefined (NaN interval): np.cov of one
    # value warns about degrees of freedom and divides by zero; the NaN says it already.
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Degrees of freedom <= 0 for slice", category=RuntimeWarning)
        _, variance = delong_roc_variance(is_positive.astype(int), score)
    half_width = scipy.stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(max(float(variance), 0.0))
    return [max(auc - half_width, 0.0), min(auc + half_width, 1.0)]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (scipy's binomtest).

    Args:
        successes: Number of successes.
        n: Number of trials (at least one).
        confidence: Confidence level.
    """
    interval = scipy.stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def _group_bootstrap_interval(
    correct: np.ndarray, groups, seed: int, n_resamples: int, confidence: float
) -> tuple[tuple[float, float] | None, int]:
    """Percentile interval of a proportion resampling whole groups; None for one group."""
    codes, n_groups = group_codes(groups)
    if codes.size != correct.size:
        raise DataError(f"groups has {codes.size} entries but there are {correct.size} images.")
    if n_groups < 2:
        return None, n_groups
    hits = np.bincount(codes, weights=correct, minlength=n_groups)
    sizes = np.bincount(codes, minlength=n_groups)
    result = scipy.stats.bootstrap(
        (hits, sizes),
        lambda h, s, axis=-1: h.sum(axis=axis) / s.sum(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high)), n_groups


def proportion_estimate(
    correct, groups=None, seed: int = 0, n_resamples: int = 1000, confidence: float = 0.95
) -> Estimate:
    """Share of True values with its confidence interval, its count and its method.

    Without groups the interval is Wilson's; with groups, a percentile bootstrap
    resampling whole groups.

    Args:
        correct: Boolean array, one entry per image.
        groups: Optional group id per image; when given, whole groups are resampled.
        seed: Seed of the group bootstrap.
        n_resamples: Resamples of the group bootstrap.
        confidence: Confidence level.

    Returns:
        The estimate with ``n`` images and its ``method``; NaN value and interval
        for no images, a NaN interval for a single group.

    Raises:
        DataError: If ``groups`` does not have one entry per image.
    """
    correct = np.asarray(correct, dtype=bool).ravel()
    n = int(correct.size)
    if n == 0:
        return Estimate.undefined(confidence, n=0, method="none (no images)")
    value = float(correct.mean())
    if groups is None:
        low, high = wilson_interval(int(correct.sum()), n, confidence)
        return Estimate(value, low, high, confidence, n=n, method="Wilson")
    interval, n_groups = _group_bootstrap_interval(correct, groups, seed, n_resamples, confidence)
    if interval is None:
        return Estimate.without_interval(value, confidence, n=n, method="none (one group)")
    method = f"percentile bootstrap of {n_groups} groups, {n_resamples} resamples"
    return Estimate(value, *interval, confidence, n=n, method=method)


def mean_estimate(values, seed: int = 0, n_resamples: int = 1000, confidence: float = 0.95) -> Estimate:
    """Mean of ``values`` with its percentile-bootstrap interval (seeded).

    Args:
        values: 1-D array of numbers (e.g. one score per image).
        seed: Seed of the bootstrap.
        n_resamples: Number of resamples.
        confidence: Confidence level.

    Returns:
        The estimate; NaN for no values, a NaN interval for a single value.
    """
    values = np.asarray(values)
    if len(values) == 0:
        return Estimate.undefined(confidence)
    value = float(np.mean(values))
    if len(values) < 2:
        return Estimate.without_interval(value, confidence)
    result = scipy.stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return Estimate(value, float(result.confidence_interval.low), float(result.confidence_interval.high), confidence)


def t_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (at least two).

    Identical values give the degenerate interval ``(mean, mean)``.
    """
    mean = float(values.mean())
    spread = float(values.std(ddof=1))
    if spread == 0.0:
        return mean, mean
    low, high = scipy.stats.t.interval(confidence, df=values.size - 1, loc=mean, scale=spread / np.sqrt(values.size))
    return float(low), float(high)
