"""Classification metrics with confidence intervals.

Point estimates come from scikit-learn. The interval of each metric depends on
what the metric is, and ``ci_methods`` in the result records which method made
which interval:

- A proportion of images (accuracy; precision, recall and specificity of one
  class, so also the binary summary) gets an interval that stays informative at
  0 and 1, where a bootstrap collapses to a point: Wilson's score interval on its
  own counts (precision: true positives of the predicted positives), and with
  ``groups`` the cluster-aware Wilson interval, whose effective sample size is the
  count over the design effect the cluster bootstrap measures
  (:func:`common.evaluation.intervals.proportion_intervals`).
- F1, AUC and the macro averages of three or more classes get a percentile
  bootstrap over units (:func:`common.evaluation.intervals.percentile_intervals`):
  a unit is one image, or one group (patient) when ``groups`` is given. A macro
  average of precision, recall or specificity whose bootstrap interval has no
  width at 0 or 1 is widened to the mean of its classes' Wilson limits.
- The binary AUC without groups uses DeLong's variance (package
  ``confidenceinterval``) instead of the bootstrap.

Each bootstrap resample is turned into per-row weights (how often each row was
drawn), and every metric of the resample is computed from those weights at once:
weighted confusion matrices for the threshold metrics and a weighted Mann-Whitney
statistic for AUC. That keeps 1000 resamples of a few hundred images well under a
second.

Conventions follow scikit-learn: the predicted class is the arg-max probability, and
a ratio whose denominator is zero (e.g. precision of a class never predicted) is 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from common.errors import DataError, ParameterError
from common.evaluation.estimate import Estimate
from common.evaluation.intervals import (
    bootstrap_units,
    delong_interval,
    percentile_intervals,
    proportion_intervals,
    resample_counts,
)

SUMMARY_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "auc")
PER_CLASS_METRICS = ("precision", "recall", "specificity", "f1", "auc")
# The metrics that are a share of images, with what a zero denominator means for one class.
PROPORTION_METRICS = {
    "precision": "no image predicted as {name}",
    "recall": "no image of {name}",
    "specificity": "no image outside {name}",
}


def class_probabilities(y_prob, n_classes: int) -> np.ndarray:
    """Return class probabilities as an (N, C) float array.

    Args:
        y_prob: (N, C) probabilities, or for two classes a 1-D array holding the
            probability of the second (index 1) class.
        n_classes: Number of classes C.

    Raises:
        DataError: If the shape does not fit ``n_classes`` or values are not finite.
    """
    probs = np.asarray(y_prob, dtype=float)
    if probs.ndim == 1 and n_classes == 2:
        probs = np.column_stack([1.0 - probs, probs])
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise DataError(
            f"y_prob has shape {np.shape(y_prob)} but {n_classes} classes were named: pass an "
            f"(N, {n_classes}) probability array (or a 1-D positive-class probability for 2 classes)."
        )
    if not np.all(np.isfinite(probs)):
        raise DataError("y_prob contains NaN or infinite values: check the model outputs.")
    return probs


def positive_index(class_names: Sequence[str], positive: str | None = None) -> int:
    """Return the index of the positive class (default: the last class).

    Raises:
        ParameterError: If ``positive`` is not one of ``class_names``.
    """
    names = list(class_names)
    if positive is None:
        return len(names) - 1
    if positive not in names:
        raise ParameterError(f"positive={positive!r} is not one of the class names {names}.")
    return names.index(positive)


def roc_points(is_positive, score) -> tuple[np.ndarray, np.ndarray, float]:
    """Return the ROC curve (false-positive rates, true-positive rates) and its AUC.

    Args:
        is_positive: Boolean (or 0/1) array, True for the positive class.
        score: Score of the positive class, higher meaning more likely positive.

    Raises:
        DataError: If ``is_positive`` does not hold both classes.
    """
    is_positive = np.asarray(is_positive).astype(bool)
    if is_positive.all() or not is_positive.any():
        raise DataError("A ROC curve needs both positive and negative samples; only one kind was given.")
    fpr, tpr, _ = roc_curve(is_positive, np.asarray(score, dtype=float))
    return fpr, tpr, float(roc_auc_score(is_positive, score))


def _labels_array(y_true, n_classes: int) -> np.ndarray:
    """Validate integer labels in [0, n_classes)."""
    labels = np.asarray(y_true)
    if labels.ndim != 1 or labels.size == 0:
        raise DataError(f"y_true must be a non-empty 1-D array of class indices; got shape {labels.shape}.")
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)):
        if not np.issubdtype(labels.dtype, np.number) or np.any(labels != np.round(labels)):
            raise DataError("y_true must hold integer class indices (not names or one-hot rows).")
    labels = labels.astype(int)
    if labels.min() < 0 or labels.max() >= n_classes:
        raise DataError(f"y_true holds class indices outside 0..{n_classes - 1}: check class_names.")
    if np.unique(labels).size < 2:
        raise DataError("y_true holds a single class: metrics such as AUC and specificity need at least two.")
    return labels


def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0)


def confusion_rates(cells: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Accuracy and per-class rates of a stack of (weighted) confusion matrices.

    Args:
        cells: (B, C, C) confusion matrices, rows true and columns predicted classes.

    Returns:
        ``(accuracy (B,), {"precision"|"recall"|"specificity"|"f1": (C, B)})``; a rate
        whose denominator is zero is 0 (scikit-learn's ``zero_division=0``).
    """
    total = cells.sum(axis=(1, 2))
    true_pos = np.diagonal(cells, axis1=1, axis2=2).T  # (C, B)
    false_pos = cells.sum(axis=1).T - true_pos
    false_neg = cells.sum(axis=2).T - true_pos
    true_neg = total - true_pos - false_pos - false_neg
    per_class = {
        "precision": _ratio(true_pos, true_pos + false_pos),
        "recall": _ratio(true_pos, true_pos + false_neg),
        "specificity": _ratio(true_neg, true_neg + false_pos),
        "f1": _ratio(2 * true_pos, 2 * true_pos + false_pos + false_neg),
    }
    return true_pos.sum(axis=0) / total, per_class


def _summarise_classes(per_class: dict[str, np.ndarray], positive: int) -> dict[str, np.ndarray]:
    """Summary metrics from per-class arrays of shape (C, ...).

    Binary: the positive class's values. Three or more classes: macro averages,
    AUC averaged over the classes where it is defined.
    """
    n_classes = per_class["precision"].shape[0]
    if n_classes == 2:
        return {name: values[positive] for name, values in per_class.items()}
    summary = {name: values.mean(axis=0) for name, values in per_class.items() if name != "auc"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN AUC stays NaN
        summary["auc"] = np.nanmean(per_class["auc"], axis=0)
    return summary


def _flatten(accuracy, summary: dict, per_class: dict) -> np.ndarray:
    """Stack metrics in a fixed row order: summary metrics, then per class metrics."""
    rows = [accuracy] + [summary[name] for name in SUMMARY_METRICS[1:]]
    n_classes = per_class["precision"].shape[0]
    rows += [per_class[name][k] for k in range(n_classes) for name in PER_CLASS_METRICS]
    return np.stack([np.asarray(row, dtype=float) for row in rows])


def _point_estimates(labels: np.ndarray, probs: np.ndarray, positive: int) -> np.ndarray:
    """All metrics of the full sample with scikit-learn, flattened as in :func:`_flatten`."""
    n_classes = probs.shape[1]
    predicted = probs.argmax(axis=1)
    class_range = list(range(n_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=class_range, average=None, zero_division=0
    )
    one_vs_rest = multilabel_confusion_matrix(labels, predicted, labels=class_range)
    true_negatives, false_positives = one_vs_rest[:, 0, 0], one_vs_rest[:, 0, 1]
    auc = np.array(
        [
            roc_auc_score(labels == k, probs[:, k]) if 0 < np.sum(labels == k) < labels.size else np.nan
            for k in class_range
        ]
    )
    per_class = {
        "precision": precision,
        "recall": recall,
        "specificity": _ratio(true_negatives, true_negatives + false_positives),
        "f1": f1,
        "auc": auc,
    }
    summary = _summarise_classes(per_class, positive)
    return _flatten(accuracy_score(labels, predicted), summary, per_class)


def _weighted_statistic(labels, probs, positive, unit_of_row, n_units):
    """Build the vectorised bootstrap statistic over resampled unit indices.

    The returned function takes an (B, n_units) array of drawn unit indices and
    returns the (n_metrics, B) metrics of the B resamples, in :func:`_flatten` order.
    """
    n_rows, n_classes = probs.shape
    predicted = probs.argmax(axis=1)
    # One-hot of each row's (true, predicted) cell: weights @ this = confusion matrices.
    cell_of_row = np.zeros((n_rows, n_classes * n_classes))
    cell_of_row[np.arange(n_rows), labels * n_classes + predicted] = 1.0
    # Rows sorted by each class's score, and where each run of tied scores starts.
    auc_layouts = []
    for k in range(n_classes):
        order = np.argsort(probs[:, k], kind="stable")
        sorted_scores = probs[order, k]
        tie_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        auc_layouts.append((order, tie_starts, labels[order] == k))

    def statistic(drawn_units: np.ndarray, axis: int = -1) -> np.ndarray:
        weights = resample_counts(drawn_units, n_units, axis)[:, unit_of_row].astype(float)
        n_resamples = weights.shape[0]

        accuracy, per_class = confusion_rates((weights @ cell_of_row).reshape(n_resamples, n_classes, n_classes))

        auc = np.empty((n_classes, n_resamples))
        for k, (order, tie_starts, is_positive) in enumerate(auc_layouts):
            sorted_weights = weights[:, order]
            positives = np.add.reduceat(sorted_weights * is_positive, tie_starts, axis=1)
            negatives = np.add.reduceat(sorted_weights * ~is_positive, tie_starts, axis=1)
            # Mann-Whitney: each positive beats the negatives below it and ties with half of its own.
            negatives_below = np.cumsum(negatives, axis=1) - negatives
            wins = np.sum(positives * (negatives_below + 0.5 * negatives), axis=1)
            pairs = positives.sum(axis=1) * negatives.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                auc[k] = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)

        per_class["auc"] = auc
        return _flatten(accuracy, _summarise_classes(per_class, positive), per_class)

    return statistic


def _check_parameters(class_names: list[str], n_resamples: int, confidence: float) -> None:
    """Raise ParameterError for too few classes, no resamples or a level outside (0, 1)."""
    if len(class_names) < 2:
        raise ParameterError(f"class_names needs at least two classes; got {class_names}.")
    if int(n_resamples) < 1:
        raise ParameterError(f"n_resamples must be a positive integer; got {n_resamples}.")
    if not 0 < confidence < 1:
        raise ParameterError(f"confidence must lie strictly between 0 and 1; got {confidence}.")


def _validated(
    y_true, y_prob, class_names: Sequence[str], positive: str | None, n_resamples: int, confidence: float
) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Checked inputs: class names as strings, labels, (N, C) probabilities, positive index."""
    names = [str(name) for name in class_names]
    _check_parameters(names, n_resamples, confidence)
    labels = _labels_array(y_true, len(names))
    probs = class_probabilities(y_prob, len(names))
    if probs.shape[0] != labels.size:
        raise DataError(f"y_prob has {probs.shape[0]} rows but y_true has {labels.size} labels.")
    return names, labels, probs, positive_index(names, positive)


def _proportion_estimates(
    class_names: list[str],
    labels: np.ndarray,
    predicted: np.ndarray,
    groups,
    seed: int,
    n_resamples: int,
    confidence: float,
) -> tuple[Estimate, dict[str, dict[str, Estimate]]]:
    """Accuracy and each class's precision, recall and specificity with their (cluster-aware) Wilson intervals.

    A class rate whose denominator is zero is 0 (as its point estimate) with no interval.
    """
    successes, counted = [predicted == labels], [np.ones(labels.size, dtype=bool)]
    for k in range(len(class_names)):
        is_class, called_class = labels == k, predicted == k
        successes += [is_class, called_class, ~called_class]
        counted += [called_class, is_class, ~is_class]
    shares = proportion_intervals(np.array(successes), np.array(counted), groups, seed, n_resamples, confidence)
    estimates = iter(shares)
    accuracy = next(estimates)
    per_class: dict[str, dict[str, Estimate]] = {}
    for name in class_names:
        per_class[name] = {}
        for metric, empty in PROPORTION_METRICS.items():
            estimate = next(estimates)
            if estimate.n == 0:
                estimate = Estimate.without_interval(0.0, confidence, n=0, method=f"none ({empty.format(name=name)})")
            per_class[name][metric] = estimate
    return accuracy, per_class


def _widened_macro(bootstrap: Estimate, class_estimates: list[Estimate], method: str) -> tuple[Estimate, str]:
    """A macro average's bootstrap interval, widened to the mean of its classes' limits if it has no width at 0 or 1."""
    if bootstrap.value not in (0.0, 1.0) or bootstrap.high - bootstrap.low > 0:
        return bootstrap, method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no class with an interval: the interval stays NaN
        low = float(np.nanmean([estimate.low for estimate in class_estimates]))
        high = float(np.nanmean([estimate.high for estimate in class_estimates]))
    widened = Estimate(bootstrap.value, min(low, bootstrap.value), max(high, bootstrap.value), bootstrap.confidence)
    return widened, f"{method}; no width at {bootstrap.value:g}, widened to the mean of the classes' Wilson limits"


def _estimates(
    class_names: list[str],
    labels: np.ndarray,
    probs: np.ndarray,
    positive_class: int,
    groups,
    seed: int,
    n_resamples: int,
    confidence: float,
) -> tuple[dict[str, Estimate], dict[str, dict[str, Estimate]], dict]:
    """Every metric of :func:`classification_metrics` as an :class:`Estimate`, from checked inputs."""
    unit_of_row, n_units = bootstrap_units(groups, labels.size)
    values = _point_estimates(labels, probs, positive_class)
    statistic = _weighted_statistic(labels, probs, positive_class, unit_of_row, n_units)
    low, high = percentile_intervals(statistic, n_units, labels.size, seed, int(n_resamples), confidence)
    estimates = [Estimate(float(v), float(lo), float(hi), confidence) for v, lo, hi in zip(values, low, high)]

    unit = "images" if groups is None else f"{n_units} groups (cluster bootstrap)"
    bootstrap_method = f"percentile bootstrap, {int(n_resamples)} resamples of {unit}, seed {seed}"
    summary = dict(zip(SUMMARY_METRICS, estimates))
    per_class_rows = iter(estimates[len(SUMMARY_METRICS) :])
    per_class = {name: {metric: next(per_class_rows) for metric in PER_CLASS_METRICS} for name in class_names}
    class_methods = {name: dict.fromkeys(PER_CLASS_METRICS, bootstrap_method) for name in class_names}
    ci_methods: dict = dict.fromkeys(SUMMARY_METRICS, bootstrap_method)

    accuracy, proportions = _proportion_estimates(
        class_names, labels, probs.argmax(axis=1), groups, seed, int(n_resamples), confidence
    )
    summary["accuracy"], ci_methods["accuracy"] = _bare(accuracy, summary["accuracy"].value), str(accuracy.method)
    for name in class_names:
        for metric, estimate in proportions[name].items():
            per_class[name][metric] = _bare(estimate, per_class[name][metric].value)
            class_methods[name][metric] = str(estimate.method)
    positive_name = class_names[positive_class]
    for metric in PROPORTION_METRICS:
        if len(class_names) == 2:
            summary[metric], ci_methods[metric] = per_class[positive_name][metric], class_methods[positive_name][metric]
        else:
            classes = [per_class[name][metric] for name in class_names]
            summary[metric], ci_methods[metric] = _widened_macro(summary[metric], classes, bootstrap_method)

    if len(class_names) == 2 and groups is None:
        auc = summary["auc"]
        delong = delong_interval(labels == positive_class, probs[:, positive_class], auc.value, confidence)
        if delong is not None:
            summary["auc"] = Estimate(auc.value, delong[0], delong[1], confidence)
            ci_methods["auc"] = "DeLong (confidenceinterval package)"
    ci_methods["per_class"] = class_methods
    return summary, per_class, ci_methods


def _bare(estimate: Estimate, value: float) -> Estimate:
    """The estimate's interval around scikit-learn's ``value``, without count and method (they go to ``ci_methods``)."""
    return Estimate(float(value), estimate.low, estimate.high, estimate.confidence)


def classification_metrics(
    y_true,
    y_prob,
    class_names: Sequence[str],
    positive: str | None = None,
    groups=None,
    seed: int = 0,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> dict:
    """Compute classification metrics with their confidence intervals (see the module for the methods).

    Args:
        y_true: (N,) integer class indices into ``class_names``.
        y_prob: (N, C) class probabilities; for two classes also a 1-D array of the
            probability of the second class.
        class_names: Names of the C classes, in index order.
        positive: Positive class name for binary metrics (default: the last class).
        groups: Optional (N,) group id per row (e.g. patient); when given, whole
            groups are resampled. Rows with a missing group are their own group.
        seed: Seed of the bootstrap's random generator.
        n_resamples: Number of bootstrap resamples (also those measuring the design
            effect of the cluster-aware Wilson intervals).
        confidence: Confidence level of the intervals (stored under "ci95").

    Returns:
        ``{"accuracy"|"precision"|"recall"|"specificity"|"f1"|"auc": {"value", "ci95"},
        "confusion_matrix": [[int]] (rows true, columns predicted), "per_class":
        {name: {"precision"|"recall"|"specificity"|"f1"|"auc": {"value", "ci95"}}},
        "n": N, "ci_methods": {metric: method, "per_class": {name: {metric: method}}}}``,
        each ``{"value", "ci95"}`` the record of an
        :class:`~common.evaluation.estimate.Estimate`. Binary: metrics of the
        positive class. Three or more classes: macro averages; AUC is one-vs-rest,
        macro over the classes present. An undefined value (AUC of a class absent
        from ``y_true``) is NaN; a rate with a zero denominator (precision of a class
        never predicted) is 0 with a NaN interval, its method saying why.

    Raises:
        DataError: If the arrays do not fit each other or hold a single class.
        ParameterError: If ``positive``, ``n_resamples`` or ``confidence`` is invalid.
    """
    names, labels, probs, positive_class = _validated(y_true, y_prob, class_names, positive, n_resamples, confidence)
    summary, per_class, ci_methods = _estimates(
        names, labels, probs, positive_class, groups, seed, n_resamples, confidence
    )
    result: dict = {name: estimate.to_record() for name, estimate in summary.items()}
    result["confusion_matrix"] = confusion_matrix(labels, probs.argmax(axis=1), labels=list(range(len(names)))).tolist()
    result["per_class"] = {
        name: {metric: estimate.to_record() for metric, estimate in metrics.items()}
        for name, metrics in per_class.items()
    }
    result["n"] = int(labels.size)
    result["ci_methods"] = ci_methods
    return result
