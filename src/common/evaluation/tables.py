"""Tables that compare metrics across models, folds and papers.

Every function here reads metric entries in any of three forms: an
:class:`~common.evaluation.estimate.Estimate`, its record
``{"value": v, "ci95": [low, high], ...}`` (as from
:func:`common.evaluation.classification.classification_metrics` or read back from
``metrics.json``), or a plain number (no interval).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from common.errors import DataError
from common.evaluation.classification import SUMMARY_METRICS
from common.evaluation.estimate import Estimate
from common.evaluation.intervals import t_interval

__all__ = [
    "METRIC_ALIASES",
    "SUMMARY_METRICS",  # the default columns, re-exported so a notebook needs one import
    "best_per_metric",
    "fold_estimate",
    "metrics_table",
    "paper_vs_run",
    "summarise_folds",
    "value_of",
]

# Names the papers use for the metrics of SUMMARY_METRICS.
METRIC_ALIASES = {
    "sensitivity": "recall",
    "tpr": "recall",
    "tnr": "specificity",
    "roc_auc": "auc",
    "auc_roc": "auc",
    "f1_score": "f1",
}


def value_of(entry: Any) -> float:
    """The number of a metric entry: an estimate, a {"value": ...} record or a plain number."""
    if isinstance(entry, Estimate):
        return float(entry.value)
    if isinstance(entry, Mapping):
        return float(entry["value"])
    return float(entry)


def _estimate_of(entry: Any) -> Estimate:
    """A metric entry as an estimate; a plain number has no interval (NaN bounds)."""
    if isinstance(entry, Estimate):
        return entry
    if isinstance(entry, Mapping):
        return Estimate.from_record(entry)
    return Estimate.without_interval(float(entry))


def fold_estimate(fold_values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean over folds with its t-distribution interval, clipped to [0, 1].

    Args:
        fold_values: One value per fold (at least two), each a proportion.
        confidence: Confidence level of the interval.

    Returns:
        The estimate, its ``folds`` the per-fold values. The interval is clipped to
        [0, 1] (the metrics are proportions; with few folds the t interval can reach
        far past them).
    """
    values = np.asarray(fold_values, dtype=float)
    low, high = t_interval(values, confidence)
    # Every summarised metric is a proportion: a t interval past [0, 1] says nothing more.
    return Estimate(float(values.mean()), max(low, 0.0), min(high, 1.0), confidence, folds=tuple(values.tolist()))


def summarise_folds(
    fold_metrics: Sequence[Mapping],
    names: Sequence[str] = ("accuracy", "precision", "recall", "f1"),
    confidence: float = 0.95,
) -> dict:
    """Mean and t-distribution confidence interval of metrics over cross-validation folds.

    Args:
        fold_metrics: One metrics dict per fold, each mapping a metric name to an
            entry (an estimate, its record as from
            :func:`~common.evaluation.classification.classification_metrics`, or a number).
        names: Metrics to summarise.
        confidence: Confidence level of the intervals (stored under "ci95").

    Returns:
        ``{name: {"value": mean, "ci95": [lo, hi], "folds": [per-fold values]}}``, the
        records of :func:`fold_estimate`.

    Raises:
        DataError: If fewer than two folds are given or a fold lacks a metric.
    """
    if len(fold_metrics) < 2:
        raise DataError(f"summarise_folds needs at least two folds; got {len(fold_metrics)}.")
    summary = {}
    for name in names:
        try:
            fold_values = [value_of(fold[name]) for fold in fold_metrics]
        except KeyError:
            raise DataError(f"A fold's metrics have no {name!r}: compute it for every fold.") from None
        summary[name] = fold_estimate(fold_values, confidence).to_record()
    return summary


def metrics_table(
    models: Mapping[str, Mapping], names: Sequence[str] = SUMMARY_METRICS, digits: int = 3
) -> pd.DataFrame:
    """Display table: one row per model, cells "value [lo, hi]" (empty if not computed).

    Args:
        models: Model name -> metrics dict (as from
            :func:`~common.evaluation.classification.classification_metrics` or
            :func:`summarise_folds`).
        names: Metric columns, in order.
        digits: Decimals shown.
    """

    def cell(entry) -> str:
        if entry is None:
            return ""
        estimate = _estimate_of(entry)
        return f"{estimate.value:.{digits}f} [{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"

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
            model: value_of(metrics[name])
            for model, metrics in models.items()
            if name in metrics and np.isfinite(value_of(metrics[name]))
        }
        if candidates:
            best[name] = max(candidates, key=candidates.__getitem__)
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
        run: Model -> metrics dict (as from
            :func:`~common.evaluation.classification.classification_metrics`). Models
            or metrics the run lacks give NaN numbers and ``paper_inside_ci`` False.

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
            estimate = Estimate.undefined() if entry is None else _estimate_of(entry)
            rows.append(
                {
                    "model": model,
                    "metric": metric,
                    "paper": paper_value,
                    "this_run": estimate.value,
                    "ci95_low": estimate.low,
                    "ci95_high": estimate.high,
                    "difference": estimate.value - paper_value,
                    "paper_inside_ci": estimate.contains(paper_value),
                }
            )
    columns = ["model", "metric", "paper", "this_run", "ci95_low", "ci95_high", "difference", "paper_inside_ci"]
    return pd.DataFrame(rows, columns=columns)
