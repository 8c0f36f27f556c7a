"""Classification metrics with confidence intervals, and the tables that compare them.

Point estimates come from scikit-learn. Confidence intervals come from
``scipy.stats.bootstrap`` (percentile method, seeded): scipy resamples an array of
unit indices, where a unit is one image, or one group (patient) when ``groups`` is
given, so whole groups are resampled together (cluster bootstrap). Each resample is
turned into per-row weights (how often each row was drawn), and every metric of the
resample is computed from those weights at once: weighted confusion matrices for the
threshold metrics and a weighted Mann-Whitney statistic for AUC. That keeps 1000
resamples of a few hundred images well under a second.

The binary AUC without groups uses DeLong's variance (package ``confidenceinterval``)
instead of the bootstrap; ``ci_methods`` in the result records which method made
which interval.

Conventions follow scikit-learn: the predicted class is the arg-max probability, and
a ratio whose denominator is zero (e.g. precision of a class never predicted) is 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.stats
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from common.errors import DataError, ParameterError

SUMMARY_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "auc")
PER_CLASS_METRICS = ("precision", "recall", "specificity", "f1", "auc")
# Names the papers use for the metrics above.
METRIC_ALIASES = {
    "sensitivity": "recall",
    "tpr": "recall",
    "tnr": "specificity",
    "roc_auc": "auc",
    "auc_roc": "auc",
    "f1_score": "f1",
}
# Bound on resamples x rows held in memory at once by the bootstrap statistic.
_MAX_WEIGHTS_PER_BATCH = 2_000_000


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


def _units_of_rows(groups, n_rows: int) -> tuple[np.ndarray, int]:
    """Map each row to its bootstrap unit: its group, or itself when ungrouped.

    Rows whose group is missing (None/NaN) form a group of their own.
    """
    if groups is None:
        return np.arange(n_rows), n_rows
    group_values = pd.Series(np.asarray(groups, dtype=object))
    if len(group_values) != n_rows:
        raise DataError(f"groups has {len(group_values)} entries but y_true has {n_rows}.")
    unit_of_row, group_ids = pd.factorize(group_values)  # missing groups get code -1
    missing = unit_of_row < 0
    unit_of_row[missing] = group_ids.size + np.arange(missing.sum())
    n_units = group_ids.size + int(missing.sum())
    if n_units < 2:
        raise DataError("groups holds a single group: a cluster bootstrap needs at least two groups.")
    return unit_of_row, n_units


def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0)


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
        drawn_units = np.atleast_2d(np.moveaxis(drawn_units, axis, -1)).astype(int)
        n_resamples = drawn_units.shape[0]
        offsets = (np.arange(n_resamples) * n_units)[:, None]
        unit_counts = np.bincount((drawn_units + offsets).ravel(), minlength=n_resamples * n_units)
        weights = unit_counts.reshape(n_resamples, n_units)[:, unit_of_row].astype(float)

        cells = (weights @ cell_of_row).reshape(n_resamples, n_classes, n_classes)
        total = cells.sum(axis=(1, 2))
        true_pos = np.diagonal(cells, axis1=1, axis2=2).T  # (C, B)
        false_pos = cells.sum(axis=1).T - true_pos
        false_neg = cells.sum(axis=2).T - true_pos
        true_neg = total - true_pos - false_pos - false_neg

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

        per_class = {
            "precision": _ratio(true_pos, true_pos + false_pos),
            "recall": _ratio(true_pos, true_pos + false_neg),
            "specificity": _ratio(true_neg, true_neg + false_pos),
            "f1": _ratio(2 * true_pos, 2 * true_pos + false_pos + false_neg),
            "auc": auc,
        }
        accuracy = true_pos.sum(axis=0) / total
        return _flatten(accuracy, _summarise_classes(per_class, positive), per_class)

    return statistic


def _bootstrap_intervals(statistic, n_units, n_rows, seed, n_resamples, confidence):
    """Percentile intervals of every metric row from one ``scipy.stats.bootstrap`` run.

    Resamples where a metric is undefined (AUC of a resample holding one class) are
    left out of that metric's percentiles.
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


def _delong_interval(is_positive: np.ndarray, score: np.ndarray, auc: float, confidence: float):
    """DeLong interval around ``auc``, clipped to [0, 1]; None if the package is missing.

    Only the variance is taken from ``confidenceinterval`` (it computes its own AUC
    in float32); the interval is centred on scikit-learn's AUC.
    """
    try:
        from confidenceinterval.delong import delong_roc_variance
    except ImportError:
        return None
    _, variance = delong_roc_variance(is_positive.astype(int), score)
    half_width = scipy.stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(max(float(variance), 0.0))
    return [max(auc - half_width, 0.0), min(auc + half_width, 1.0)]


def _entry(value, low, high) -> dict:
    """One metric in the result shape: {"value": v, "ci95": [lo, hi]}."""
    return {"value": float(value), "ci95": [float(low), float(high)]}


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
    """Compute classification metrics with bootstrap confidence intervals.

    Args:
        y_true: (N,) integer class indices into ``class_names``.
        y_prob: (N, C) class probabilities; for two classes also a 1-D array of the
            probability of the second class.
        class_names: Names of the C classes, in index order.
        positive: Positive class name for binary metrics (default: the last class).
        groups: Optional (N,) group id per row (e.g. patient); when given, whole
            groups are resampled. Rows with a missing group are their own group.
        seed: Seed of the bootstrap's random generator.
        n_resamples: Number of bootstrap resamples.
        confidence: Confidence level of the intervals (stored under "ci95").

    Returns:
        ``{"accuracy"|"precision"|"recall"|"specificity"|"f1"|"auc": {"value", "ci95"},
        "confusion_matrix": [[int]] (rows true, columns predicted), "per_class":
        {name: {"precision"|"recall"|"specificity"|"f1"|"auc": {"value", "ci95"}}},
        "n": N, "ci_methods": {what: method}}``. Binary: metrics of the positive
        class. Three or more classes: macro averages; AUC is one-vs-rest, macro
        over the classes present. An undefined value (AUC of a class absent from
        ``y_true``) is NaN.

    Raises:
        DataError: If the arrays do not fit each other or hold a single class.
        ParameterError: If ``positive``, ``n_resamples`` or ``confidence`` is invalid.
    """
    class_names = [str(name) for name in class_names]
    if len(class_names) < 2:
        raise ParameterError(f"class_names needs at least two classes; got {class_names}.")
    if int(n_resamples) < 1:
        raise ParameterError(f"n_resamples must be a positive integer; got {n_resamples}.")
    if not 0 < confidence < 1:
        raise ParameterError(f"confidence must lie strictly between 0 and 1; got {confidence}.")
    labels = _labels_array(y_true, len(class_names))
    probs = class_probabilities(y_prob, len(class_names))
    if probs.shape[0] != labels.size:
        raise DataError(f"y_prob has {probs.shape[0]} rows but y_true has {labels.size} labels.")
    positive_class = positive_index(class_names, positive)
    unit_of_row, n_units = _units_of_rows(groups, labels.size)

    values = _point_estimates(labels, probs, positive_class)
    statistic = _weighted_statistic(labels, probs, positive_class, unit_of_row, n_units)
    low, high = _bootstrap_intervals(statistic, n_units, labels.size, seed, int(n_resamples), confidence)

    unit = "images" if groups is None else f"{n_units} groups (cluster bootstrap)"
    bootstrap_method = f"percentile bootstrap, {int(n_resamples)} resamples of {unit}, seed {seed}"
    result: dict = {}
    for row, name in enumerate(SUMMARY_METRICS):
        result[name] = _entry(values[row], low[row], high[row])
    ci_methods = {name: bootstrap_method for name in SUMMARY_METRICS}
    if len(class_names) == 2 and groups is None:
        auc_value = result["auc"]["value"]
        delong = _delong_interval(labels == positive_class, probs[:, positive_class], auc_value, confidence)
        if delong is not None:
            result["auc"]["ci95"] = delong
            ci_methods["auc"] = "DeLong (confidenceinterval package)"

    result["confusion_matrix"] = confusion_matrix(
        labels, probs.argmax(axis=1), labels=list(range(len(class_names)))
    ).tolist()
    row = len(SUMMARY_METRICS)
    result["per_class"] = {}
    for name in class_names:
        result["per_class"][name] = {}
        for metric in PER_CLASS_METRICS:
            result["per_class"][name][metric] = _entry(values[row], low[row], high[row])
            row += 1
    ci_methods["per_class"] = bootstrap_method
    result["n"] = int(labels.size)
    result["ci_methods"] = ci_methods
    return result


def _value_of(entry) -> float:
    """The number of a metric entry: a {"value": ...} dict or a plain number."""
    if isinstance(entry, Mapping):
        return float(entry["value"])
    return float(entry)


def summarise_folds(
    fold_metrics: Sequence[Mapping],
    names: Sequence[str] = ("accuracy", "precision", "recall", "f1"),
    confidence: float = 0.95,
) -> dict:
    """Mean and t-distribution confidence interval of metrics over cross-validation folds.

    Args:
        fold_metrics: One metrics dict per fold, each mapping a metric name to a
            ``{"value": ...}`` entry (as from :func:`classification_metrics`) or a number.
        names: Metrics to summarise.
        confidence: Confidence level of the intervals (stored under "ci95").

    Returns:
        ``{name: {"value": mean, "ci95": [lo, hi], "folds": [per-fold values]}}``;
        the interval is clipped to [0, 1] (the metrics are proportions; with few
        folds the t interval can reach far past them).

    Raises:
        DataError: If fewer than two folds are given or a fold lacks a metric.
    """
    if len(fold_metrics) < 2:
        raise DataError(f"summarise_folds needs at least two folds; got {len(fold_metrics)}.")
    summary = {}
    for name in names:
        try:
            fold_values = np.array([_value_of(fold[name]) for fold in fold_metrics])
        except KeyError:
            raise DataError(f"A fold's metrics have no {name!r}: compute it for every fold.") from None
        mean = float(fold_values.mean())
        spread = float(fold_values.std(ddof=1))
        if spread == 0.0:  # identical folds: the t interval degenerates to the mean
            low, high = mean, mean
        else:
            low, high = scipy.stats.t.interval(
                confidence, df=fold_values.size - 1, loc=mean, scale=spread / np.sqrt(fold_values.size)
            )
        # Every summarised metric is a proportion: a t interval past [0, 1] says nothing more.
        low, high = max(float(low), 0.0), min(float(high), 1.0)
        summary[name] = {"value": mean, "ci95": [low, high], "folds": fold_values.tolist()}
    return summary


def metrics_table(
    models: Mapping[str, Mapping], names: Sequence[str] = SUMMARY_METRICS, digits: int = 3
) -> pd.DataFrame:
    """Display table: one row per model, cells "value [lo, hi]" (empty if not computed).

    Args:
        models: Model name -> metrics dict (as from :func:`classification_metrics` or
            :func:`summarise_folds`).
        names: Metric columns, in order.
        digits: Decimals shown.
    """
    def cell(entry) -> str:
        if entry is None:
            return ""
        low, high = entry["ci95"]
        return f"{entry['value']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    rows = {model: {name: cell(metrics.get(name)) for name in names} for model, metrics in models.items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(names))
    table.index.name = "model"
    return table


def best_per_metric(models: Mapping[str, Mapping], names: Sequence[str] = SUMMARY_METRICS) -> dict[str, str]:
    """Model with the highest value of each metric (the first one on ties).

    Metrics no model has a defined value for are left out.
    """
    best = {}
    for name in names:
        candidates = {
            model: _value_of(metrics[name])
            for model, metrics in models.items()
            if name in metrics and np.isfinite(_value_of(metrics[name]))
        }
        if candidates:
            best[name] = max(candidates, key=candidates.get)
    return best


def _as_fraction(value, model: str, metric: str) -> float:
    """A paper's number as a fraction: values above 1 are read as percent."""
    number = float(value)
    if not 0 <= number <= 100:
        raise DataError(f"Paper value {number} for {model}/{metric} is neither a fraction nor a percent.")
    return number / 100 if number > 1 else number


def paper_vs_run(paper: Mapping[str, Mapping], run: Mapping[str, Mapping]) -> pd.DataFrame:
    """Compare a paper's reported metrics with this run's, metric by metric.

    Args:
        paper: Model -> {metric: value}; values in [0, 1] or percent (above 1).
            Metric names may use the papers' aliases (e.g. "sensitivity").
        run: Model -> metrics dict (as from :func:`classification_metrics`). Models or
            metrics the run lacks give NaN numbers and ``paper_inside_ci`` False.

    Returns:
        DataFrame with columns model, metric, paper, this_run, ci95_low, ci95_high,
        difference (this_run - paper), paper_inside_ci.
    """
    rows = []
    for model, claims in paper.items():
        for claimed_metric, claimed_value in claims.items():
            metric = METRIC_ALIASES.get(claimed_metric.lower(), claimed_metric.lower())
            paper_value = _as_fraction(claimed_value, model, metric)
            entry = run.get(model, {}).get(metric)
            if entry is None:
                this_run, low, high = np.nan, np.nan, np.nan
            else:
                this_run = _value_of(entry)
                low, high = entry["ci95"] if isinstance(entry, Mapping) else (np.nan, np.nan)
            rows.append(
                {
                    "model": model,
                    "metric": metric,
                    "paper": paper_value,
                    "this_run": this_run,
                    "ci95_low": float(low),
                    "ci95_high": float(high),
                    "difference": this_run - paper_value,
                    "paper_inside_ci": bool(low <= paper_value <= high),
                }
            )
    columns = ["model", "metric", "paper", "this_run", "ci95_low", "ci95_high", "difference", "paper_inside_ci"]
    return pd.DataFrame(rows, columns=columns)
