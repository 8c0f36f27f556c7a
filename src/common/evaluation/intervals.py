"""Confidence intervals: bootstrap over units (images or groups), DeLong, Wilson and t.

The bootstrap intervals come from ``scipy.stats.bootstrap`` (percentile method,
seeded). A unit is one image, or one group (patient) when groups are given, so
whole groups are resampled together (cluster bootstrap); an image whose group is
missing (None/NaN) is a group of its own. Every group-aware resampling in the
package goes through :func:`bootstrap_units` (which rows form a unit),
:func:`resample_counts` (how often each unit was drawn) and :func:`percentile_intervals`
or :func:`bootstrap_variances` (one ``scipy.stats.bootstrap`` call).

A proportion (a share of images, e.g. accuracy or recall) gets an interval that
stays informative at 0 and 1, where a percentile bootstrap collapses to a point
(135 right of 135 is not certainty): Wilson's score interval on independent
images, and on grouped images the cluster-aware Wilson interval of
:func:`effective_wilson_interval`, whose effective sample size is the number of
images divided by the design effect that the cluster bootstrap measures.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
from statsmodels.stats.proportion import proportion_confint

from common.errors import DataError
from common.evaluation.estimate import Estimate

# Bound on resamples x rows held in memory at once by a vectorised bootstrap statistic.
_MAX_WEIGHTS_PER_BATCH = 2_000_000
# A bootstrap interval narrower than this (floating-point noise) has no spread.
_NO_SPREAD = 1e-12


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


def resample_batch(n_resamples: int, n_columns: int) -> int:
    """How many resamples a vectorised statistic takes at once, bounding resamples x columns in memory.

    Args:
        n_resamples: Number of resamples in all.
        n_columns: Numbers a statistic holds per resample (rows, or rows x classes).
    """
    return int(max(1, min(n_resamples, _MAX_WEIGHTS_PER_BATCH // max(n_columns, 1))))


def resample_counts(drawn_units: np.ndarray, n_units: int, axis: int = -1) -> np.ndarray:
    """How often each unit was drawn in each resample.

    Args:
        drawn_units: Drawn unit indices, resamples along all but ``axis`` (as
            ``scipy.stats.bootstrap`` hands them to a vectorised statistic).
        n_units: Number of units.
        axis: The axis of the draws within one resample.

    Returns:
        A (B, n_units) integer array: row b counts each unit's draws in resample b.
    """
    drawn = np.atleast_2d(np.moveaxis(np.asarray(drawn_units), axis, -1)).astype(int)
    drawn = drawn.reshape(-1, drawn.shape[-1])
    n_resamples = drawn.shape[0]
    offsets = (np.arange(n_resamples) * n_units)[:, None]
    counts = np.bincount((drawn + offsets).ravel(), minlength=n_resamples * n_units)
    return counts.reshape(n_resamples, n_units)


def _bootstrap(
    statistic: Callable[..., np.ndarray], n_units: int, n_rows: int, seed: int, n_resamples: int, confidence: float
) -> Any:
    """One seeded percentile ``scipy.stats.bootstrap`` of a vectorised statistic over unit indices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        return scipy.stats.bootstrap(
            (np.arange(n_units),),
            statistic,
            vectorized=True,
            n_resamples=n_resamples,
            batch=resample_batch(n_resamples, n_rows),
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )


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
    result = _bootstrap(statistic, n_units, n_rows, seed, n_resamples, confidence)
    low = np.array(result.confidence_interval.low, dtype=float)
    high = np.array(result.confidence_interval.high, dtype=float)
    undefined = np.isnan(low) | np.isnan(high)
    tail = (1 - confidence) / 2
    for row in np.flatnonzero(undefined):
        defined = result.bootstrap_distribution[row][np.isfinite(result.bootstrap_distribution[row])]
        if defined.size:
            low[row], high[row] = np.quantile(defined, [tail, 1 - tail])
    return low, high


def bootstrap_variances(
    statistic: Callable[..., np.ndarray], n_units: int, n_rows: int, seed: int, n_resamples: int
) -> np.ndarray:
    """Variance over resampled units of every row of a vectorised statistic.

    Args:
        statistic: As for :func:`percentile_intervals`.
        n_units: Number of units resampled.
        n_rows: Number of rows the units cover (bounds the batch size in memory).
        seed: Seed of the random generator.
        n_resamples: Number of resamples (at least two).

    Returns:
        One variance per statistic row, over the resamples where the row is defined
        (NaN when fewer than two are).
    """
    # Only the distribution is read: the level of scipy's interval does not matter here.
    result = _bootstrap(statistic, n_units, n_rows, seed, n_resamples, confidence=0.95)
    distribution = np.atleast_2d(result.bootstrap_distribution)
    defined = np.isfinite(distribution)
    n_defined = defined.sum(axis=1)
    filled = np.where(defined, distribution, 0.0)
    mean = filled.sum(axis=1) / np.maximum(n_defined, 1)
    squares = np.where(defined, (distribution - mean[:, None]) ** 2, 0.0).sum(axis=1)
    return np.where(n_defined > 1, squares / np.maximum(n_defined - 1, 1), np.nan)


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


def effective_wilson_interval(
    successes: int, n: int, variance: float, n_groups: int, confidence: float = 0.95
) -> tuple[float, float, str]:
    """Cluster-aware Wilson interval of ``successes / n`` images that come in groups.

    The images of a group are not independent, so the proportion varies more than
    ``p(1 - p) / n`` says. The design effect is the cluster-bootstrap variance of the
    proportion over that binomial variance (at least 1), and Wilson's interval is
    taken on the effective sample size ``n / design effect``. When the bootstrap
    variance is zero (every resample gives the same share: the proportion is 0 or 1,
    or one group holds every image) the effective sample size is the number of
    groups holding the images, the conservative choice. When every image is its own
    group there is no clustering and the interval is Wilson's on ``n``.

    Args:
        successes: Number of successes among the ``n`` images.
        n: Number of images counted (at least one).
        variance: Cluster-bootstrap variance of the proportion (see :func:`bootstrap_variances`).
        n_groups: Number of groups holding the ``n`` images.
        confidence: Confidence level.

    Returns:
        ``(low, high, method)``, the method naming the effective sample size.
    """
    p = successes / n
    if n_groups >= n:
        return (*wilson_interval(successes, n, confidence), "Wilson (every image its own group)")
    binomial_variance = p * (1 - p) / n
    if not variance > 0 or binomial_variance == 0:
        n_effective, method = float(n_groups), f"Wilson, effective n = {n_groups} groups (no spread between groups)"
    else:
        design_effect = max(1.0, variance / binomial_variance)
        n_effective = n / design_effect
        method = f"Wilson, effective n from {n_groups} groups (design effect {design_effect:.1f})"
    low, high = proportion_confint(p * n_effective, n_effective, alpha=1 - confidence, method="wilson")
    # Wilson's interval holds p; this keeps rounding (an upper end of 0.9999999999999998 at p = 1) from leaving it.
    return min(float(low), p), max(float(high), p), method


def _share_statistic(successes_per_unit: np.ndarray, trials_per_unit: np.ndarray) -> Callable[..., np.ndarray]:
    """Vectorised statistic: the (P, B) shares of P proportions in B resamples of units, NaN where none is counted."""
    n_units = successes_per_unit.shape[1]

    def statistic(drawn_units: np.ndarray, axis: int = -1) -> np.ndarray:
        counts = resample_counts(drawn_units, n_units, axis).astype(float)
        successes, trials = successes_per_unit @ counts.T, trials_per_unit @ counts.T
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(trials > 0, successes / np.where(trials > 0, trials, 1), np.nan)

    return statistic


def _per_unit(rows: np.ndarray, unit_of_row: np.ndarray, n_units: int) -> np.ndarray:
    """(P, n_units) sums over each unit's rows of a (P, N) array."""
    return np.stack([np.bincount(unit_of_row, weights=row, minlength=n_units) for row in rows.astype(float)])


def proportion_intervals(
    successes, counted, groups=None, seed: int = 0, n_resamples: int = 1000, confidence: float = 0.95
) -> list[Estimate]:
    """Several proportions over the same images, each with an interval that stays informative at 0 and 1.

    Proportion k is the share of ``successes[k]`` among the images ``counted[k]``
    marks (e.g. recall of a class: the images of that class, those predicted as it).
    Without groups the interval is Wilson's; with groups it is the cluster-aware
    Wilson interval of :func:`effective_wilson_interval`, its design effect from one
    cluster bootstrap (seeded) shared by all the proportions.

    Args:
        successes: (P, N) or (N,) booleans, True where an image is a success.
            Only counted images count.
        counted: Booleans of the same shape, True for the images proportion k is taken over.
        groups: Optional group id per image (N); a missing id is a group of its own.
        seed: Seed of the cluster bootstrap.
        n_resamples: Resamples of the cluster bootstrap.
        confidence: Confidence level.

    Returns:
        One estimate per proportion with its ``n`` (images counted) and ``method``;
        a proportion over no images is undefined (NaN) with ``n`` 0.

    Raises:
        DataError: If the shapes differ or ``groups`` does not fit the images or holds one group.
    """
    counted = np.atleast_2d(np.asarray(counted, dtype=bool))
    hits = np.atleast_2d(np.asarray(successes, dtype=bool))
    if hits.shape != counted.shape:
        raise DataError(f"successes has shape {hits.shape} but counted has {counted.shape}.")
    hits = hits & counted
    n_successes, n_counted = hits.sum(axis=1), counted.sum(axis=1)
    if groups is None:
        variances, groups_holding = None, n_counted
    else:
        unit_of_row, n_units = bootstrap_units(groups, counted.shape[1])
        successes_per_unit = _per_unit(hits, unit_of_row, n_units)
        trials_per_unit = _per_unit(counted, unit_of_row, n_units)
        statistic = _share_statistic(successes_per_unit, trials_per_unit)
        variances = bootstrap_variances(statistic, n_units, n_units, seed, int(n_resamples))
        groups_holding = (trials_per_unit > 0).sum(axis=1)
    estimates = []
    for k, (n_hit, n) in enumerate(zip(n_successes.tolist(), n_counted.tolist())):
        if n == 0:
            estimates.append(Estimate.undefined(confidence, n=0, method="none (no images counted)"))
        elif variances is None:
            estimates.append(Estimate(n_hit / n, *wilson_interval(n_hit, n, confidence), confidence, n, "Wilson"))
        else:
            low, high, method = effective_wilson_interval(
                n_hit, n, float(variances[k]), int(groups_holding[k]), confidence
            )
            estimates.append(Estimate(n_hit / n, low, high, confidence, n, method))
    return estimates


def proportion_estimate(
    correct, groups=None, seed: int = 0, n_resamples: int = 1000, confidence: float = 0.95
) -> Estimate:
    """Share of True values with its confidence interval, its count and its method.

    Without groups the interval is Wilson's; with groups, a percentile bootstrap
    resampling whole groups. Where that bootstrap has no spread (every group right,
    or every group wrong, or every resample giving the same share) it would be a
    single point, so the interval is then the cluster-aware Wilson interval of
    :func:`effective_wilson_interval` on the number of groups.

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
    n_given = len(np.asarray(groups, dtype=object).ravel())
    if n_given != n:
        raise DataError(f"groups has {n_given} entries but there are {n} images.")
    if group_codes(groups)[1] < 2:
        return Estimate.without_interval(value, confidence, n=n, method="none (one group)")
    unit_of_row, n_units = bootstrap_units(groups, n)
    statistic = _share_statistic(
        _per_unit(correct[None, :], unit_of_row, n_units), _per_unit(np.ones((1, n)), unit_of_row, n_units)
    )
    lows, highs = percentile_intervals(statistic, n_units, n_units, seed, int(n_resamples), confidence)
    if highs[0] - lows[0] > _NO_SPREAD:
        method = f"percentile bootstrap of {n_units} groups, {n_resamples} resamples"
        return Estimate(value, float(lows[0]), float(highs[0]), confidence, n=n, method=method)
    low, high, method = effective_wilson_interval(int(correct.sum()), n, 0.0, n_units, confidence)
    return Estimate(value, low, high, confidence, n=n, method=method)


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
