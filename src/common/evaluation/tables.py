"""Tables that compare metrics across models, folds and papers.

Every function here reads metric entries in any of three forms: an
:class:`~common.evaluation.estimate.Estimate`, its record
``{"value": v, "ci95": [low, high], ...}`` (as from
:func:`common.evaluation.classification.classification_metrics` or read back from
``metrics.json``), or a plain number (no interval).

Every value shown with its interval, here, in the notebooks' tables and in the
book's overview, is written by :func:`format_estimate`, one rule for all:
``0.909 (0.82–0.98)``. The value has three decimals; the interval's ends have
two and are rounded outward (the lower end down, the upper end up), so the
interval shown always contains the value shown and never looks narrower than
the one computed; an en dash joins them. A value without an interval is shown
alone, and a value that is missing or undefined (NaN) as a dash. A table about
one test set carries its size ``n`` (:func:`sample_size`) beside the values.
"""

from __future__ import annotations

import math
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
    "format_estimate",
    "inside_ci_text",
    "metrics_table",
    "paper_beside_run",
    "paper_vs_run",
    "sample_size",
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
# format_estimate's rule: decimals of a value and of its interval's ends, and the text of a missing value.
VALUE_DIGITS = 3
CI_DIGITS = 2
MISSING = "–"
# The paper-vs-run tables' column of whether a claim lies inside this run's interval, and its text for a run
# that cannot be compared with the paper (a phantom run, or not the paper's settings).
INSIDE_CI = "inside CI"
NOT_COMPARABLE = "not comparable"
# The paper-vs-run tables' columns of the paper's name of a row (where it is not this run's model name) and of
# the data a model was tested on (where a run tests some models on other data than its own).
PAPER_MODEL = "paper's model"
DATA = "tested on"
# Guards outward rounding against binary fractions: 0.82 is stored as 0.81999..., and stays 0.82.
_ROUNDING_SLACK = 1e-9


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


def _outward(low: float, high: float, digits: int) -> tuple[str, str]:
    """An interval's ends with ``digits`` decimals, the lower rounded down and the upper up."""
    scale = 10**digits
    down = math.floor(low * scale + _ROUNDING_SLACK) / scale
    up = math.ceil(high * scale - _ROUNDING_SLACK) / scale
    # Adding 0.0 turns a -0.0 into 0.0.
    return f"{down + 0.0:.{digits}f}", f"{up + 0.0:.{digits}f}"


def format_estimate(entry: Any, digits: int = VALUE_DIGITS, ci_digits: int = CI_DIGITS, with_n: bool = False) -> str:
    """A value with its interval as compact text, e.g. ``"0.909 (0.82–0.98)"`` (the module's rule).

    Args:
        entry: An estimate, its ``{"value", "ci95"}`` record, a plain number, or None.
        digits: Decimals of the value.
        ci_digits: Decimals of the interval's ends, rounded outward.
        with_n: Append the number of units the estimate was made from (``", n = 120"``),
            when the entry records it.

    Returns:
        The text; a dash for a missing (None) or undefined (NaN) value; the value alone
        when it has no interval.
    """
    if entry is None:
        return MISSING
    estimate = _estimate_of(entry)
    text = f"{estimate.value:.{digits}f}" if estimate.is_defined else MISSING
    if estimate.is_defined and math.isfinite(estimate.low) and math.isfinite(estimate.high):
        low, high = _outward(estimate.low, estimate.high, ci_digits)
        text += f" ({low}–{high})"
    if with_n and estimate.n is not None:
        text += f", n = {estimate.n}"
    return text


def join_words(names: Sequence[str]) -> str:
    """Names in a sentence: ``A``, ``A and B``, ``A, B and C``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def sample_size(metrics: Mapping) -> str | None:
    """How many units a model's metrics were measured on, as a table shows it.

    Args:
        metrics: A model's metrics dict: with ``"n"`` (the test set's size, as from
            :func:`~common.evaluation.classification.classification_metrics`), or with
            entries averaged over folds (as from :func:`summarise_folds`).

    Returns:
        ``"120"`` (the test set's size), ``"5 folds"`` (a mean over folds), or None when
        the metrics record neither.
    """
    if isinstance(metrics.get("n"), int):
        return str(metrics["n"])
    for entry in metrics.values():
        folds = entry.get("folds") if isinstance(entry, Mapping) else getattr(entry, "folds", None)
        if folds:
            return f"{len(folds)} folds"
    return None


def metrics_table(
    models: Mapping[str, Mapping], names: Sequence[str] = SUMMARY_METRICS, digits: int = VALUE_DIGITS
) -> pd.DataFrame:
    """Display table: one row per model, cells as :func:`format_estimate` writes them.

    When the models' metrics record the number of units they were measured on,
    a first column ``n`` gives it (:func:`sample_size`): a value's resolution is
    part of the value.

    Args:
        models: Model name -> metrics dict (as from
            :func:`~common.evaluation.classification.classification_metrics` or
            :func:`summarise_folds`).
        names: Metric columns, in order.
        digits: Decimals of the values (the intervals have :data:`CI_DIGITS`).
    """
    rows = {
        model: {name: format_estimate(metrics.get(name), digits) for name in names} for model, metrics in models.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(names))
    sizes = [sample_size(metrics) for metrics in models.values()]
    if any(size is not None for size in sizes):
        table.insert(0, "n", [MISSING if size is None else size for size in sizes])
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


def paper_vs_run(
    paper: Mapping[str, Mapping], run: Mapping[str, Mapping], *, comparable: bool, reason: str | None = None
) -> pd.DataFrame:
    """Set a paper's reported metrics beside this run's, metric by metric.

    Whether the paper's number lies inside this run's interval is asked only of a
    run that is comparable with the paper (the paper's settings on its real data,
    :func:`common.report.labels.comparability`): a phantom accuracy and a real-data
    claim are different quantities, so for any other run ``paper_inside_ci`` is None.

    Args:
        paper: Model -> {metric: value}; values in [0, 1] or percent (above 1).
            Metric names may use the papers' aliases (e.g. "sensitivity").
        run: Model -> metrics dict (as from
            :func:`~common.evaluation.classification.classification_metrics`). Models
            or metrics the run lacks give NaN numbers (and, in a comparable run,
            ``paper_inside_ci`` False).
        comparable: Whether the run can be compared with the paper.
        reason: Why not, in short (``"phantoms"``), when it cannot.

    Returns:
        DataFrame with columns model, metric, paper, this_run, ci95_low, ci95_high,
        difference (this_run - paper), paper_inside_ci (bool, or None when not
        comparable), comparable, reason.
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
                    "paper_inside_ci": estimate.contains(paper_value) if comparable else None,
                    "comparable": comparable,
                    "reason": None if comparable else reason,
                }
            )
    columns = [
        "model",
        "metric",
        "paper",
        "this_run",
        "ci95_low",
        "ci95_high",
        "difference",
        "paper_inside_ci",
        "comparable",
        "reason",
    ]
    return pd.DataFrame(rows, columns=columns).astype({"paper_inside_ci": object})


def inside_ci_text(row: Mapping) -> str:
    """A paper-vs-run row's "inside CI" cell: ``"yes"`` / ``"no"`` for a comparable run, else why not.

    Args:
        row: A paper-vs-run record (``paper``, ``this_run``, ``paper_inside_ci``, ``comparable``, ``reason``).
            A row that does not say it is comparable (an older record) is not.

    Returns:
        ``"yes"`` or ``"no"`` when the run is comparable with the paper (a dash when the
        paper or the run gives no number); ``"not comparable (phantoms)"`` (its reason)
        otherwise.
    """
    if row.get("comparable") is not True:
        reason = row.get("reason")
        return f"{NOT_COMPARABLE} ({reason})" if reason else NOT_COMPARABLE
    if row.get("paper") is None or row.get("this_run") is None or row.get("paper_inside_ci") is None:
        return MISSING
    return "yes" if row["paper_inside_ci"] else "no"


def paper_beside_run(rows: Sequence[Mapping], sizes: Mapping[str, str | None] | None = None) -> pd.DataFrame:
    """Display table of paper-vs-run rows: one row per model, each metric's paper value beside the run's.

    Args:
        rows: Paper-vs-run records (``model``, ``metric``, ``paper``, ``this_run``,
            ``ci95``, ``paper_inside_ci``, ``comparable``, ``reason``), as
            :func:`common.experiments.papers.paper_rows` writes them into
            ``metrics.json``; None (JSON null) marks a number not given.
        sizes: Model -> its :func:`sample_size`; when given, a first column ``n``.

    Returns:
        Models in the rows' order. When a row names a paper model other than its own
        (``paper_model``, the paper's name of the row), a first column :data:`PAPER_MODEL`
        gives it; when a row says what data its model was tested on (``data``, for a run
        that tests some models on other data), a column :data:`DATA` (a dash for the
        run's own data). Then columns ``"<metric> paper"`` and ``"<metric> run"``
        per metric in the rows' order, cells as :func:`format_estimate` writes them (a
        dash where the paper or the run gives no number). A comparable run adds
        ``"<metric> inside CI"`` after each metric's pair (``"yes"`` / ``"no"``); a run
        that is not comparable has one last column ``"inside CI"`` reading
        ``"not comparable (phantoms)"`` (its reason), as :func:`inside_ci_text` writes it.
    """
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    per_metric = any(row.get("comparable") is True for row in rows)
    parts = ("paper", "run", INSIDE_CI) if per_metric else ("paper", "run")
    cells: dict[str, dict[str, str]] = {}
    for row in rows:
        low, high = row.get("ci95") or (None, None)
        run = None if row.get("this_run") is None else {"value": row["this_run"], "ci95": [low, high]}
        model = cells.setdefault(row["model"], {})
        model[f"{row['metric']} paper"] = format_estimate(row.get("paper"))
        model[f"{row['metric']} run"] = format_estimate(run)
        if per_metric:
            model[f"{row['metric']} {INSIDE_CI}"] = inside_ci_text(row)
        else:
            model[INSIDE_CI] = inside_ci_text(row)
    columns = [f"{metric} {part}" for metric in metrics for part in parts]
    if not per_metric and rows:
        columns.append(INSIDE_CI)
    table = pd.DataFrame.from_dict(cells, orient="index", columns=columns).fillna(MISSING)
    if sizes is not None:
        table.insert(0, "n", [sizes.get(model) or MISSING for model in table.index])
    data = {row["model"]: row["data"] for row in rows if row.get("data")}
    if data:
        table.insert(0, DATA, [data.get(model, MISSING) for model in table.index])
    paper_names = {row["model"]: row.get("paper_model") or row["model"] for row in rows}
    if any(paper_name != model for model, paper_name in paper_names.items()):
        table.insert(0, PAPER_MODEL, [paper_names[model] for model in table.index])
    table.index.name = "model"
    return table
