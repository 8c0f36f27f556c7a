"""The comparison's tables: every model's metrics and costs, and the paper's Table 2 beside the run."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import pandas as pd

from common.evaluation import tables
from common.evaluation.estimate import Estimate

# Metric columns of the comparison, in the paper's Table 2 order.
TABLE_METRICS = ("accuracy", "precision", "recall", "f1", "auc", "specificity")
# Columns of the comparison table besides the metrics, in display order.
COST_COLUMNS = (
    "input_size",
    "params_total",
    "params_trainable",
    "epochs_trained",
    "train_seconds",
    "train_cpu_seconds",
    "inference_images_per_s",
)
# Appended to the table cell of the best model of a metric (ties all marked).
BEST_MARK = " ◆"


def best_models(records: Mapping[str, Mapping], names: Sequence[str]) -> dict[str, set[str]]:
    """Per metric, every model that reaches the best value (ties included).

    Args:
        records: Model name -> record with ``{"value", ...}`` metric entries.
        names: Metrics.

    Returns:
        Metric -> the names of its best models.
    """
    best = tables.best_per_metric(records, names)
    winners = {}
    for name, first in best.items():
        top = records[first][name]["value"]
        winners[name] = {model for model, entry in records.items() if name in entry and entry[name]["value"] == top}
    return winners


def _undefined_as_nan(record: Mapping, names: Sequence[str]) -> dict:
    """A record read back from JSON, its undefined (None) metric numbers as NaN again."""
    fixed = dict(record)
    for name in names:
        if isinstance(record.get(name), Mapping):
            estimate = Estimate.from_record(record[name])
            fixed[name] = {**record[name], "value": estimate.value, "ci95": list(estimate.interval)}
    return fixed


def comparison_table(
    records: Mapping[str, Mapping],
    names: Sequence[str] = TABLE_METRICS,
    digits: int = 3,
    best: Mapping[str, Collection[str]] | None = None,
) -> pd.DataFrame:
    """The comparison: per model each metric with its 95% CI, sizes and costs.

    The models marked best in a metric carry :data:`BEST_MARK`: with ``best`` (the paired tests'
    verdict, :meth:`common.experiments.evidence.Evidence.best_per_metric`), the best model and every
    model the test cannot tell from it; without, the models that reach the highest value.

    Args:
        records: Model name -> record (:func:`common.experiments.nine_models.runs.model_records`,
            or ``metrics.json``'s ``models``).
        names: Metric columns, in order.
        digits: Decimals of the metric cells.
        best: Metric -> the models to mark; None: by value alone.

    Returns:
        One row per model: metric cells ``"value [lo, hi]"``, then
        :data:`COST_COLUMNS` (those the records have).
    """
    records = {model: _undefined_as_nan(record, names) for model, record in records.items()}
    table = tables.metrics_table(records, names, digits)
    marked = (
        best_models(records, names) if best is None else {metric: best[metric] for metric in names if metric in best}
    )
    for metric, winners in marked.items():
        for model in winners:
            table.loc[model, metric] += BEST_MARK
    for column in COST_COLUMNS:
        if all(column in record for record in records.values()):
            table[column] = [records[model][column] for model in table.index]
    return table


def paper_comparison_table(paper_vs_run: Sequence[Mapping], digits: int = 3) -> pd.DataFrame:
    """The paper's Table 2 beside this run: per model and metric paper, run, difference, and inside CI.

    Args:
        paper_vs_run: Rows as from :func:`common.experiments.papers.paper_rows` (``model``,
            ``metric``, ``paper``, ``this_run``, ``difference``, ``paper_inside_ci``,
            ``comparable``, ``reason``).
        digits: Decimals shown.

    Returns:
        Rows per model; columns a (metric, ``paper`` / ``this run`` / ``difference``)
        MultiIndex in :data:`TABLE_METRICS` order. A run comparable with the paper adds
        (metric, ``inside CI``) after each metric's difference, ``"yes"`` / ``"no"``; any
        other run one last column (``inside CI``, ``""``) reading ``"not comparable
        (phantoms)"`` (its reason), as :func:`common.evaluation.tables.inside_ci_text` writes it.
    """
    if not paper_vs_run:
        return pd.DataFrame()
    numbers = ("paper", "this run", "difference")
    long = pd.DataFrame(list(paper_vs_run)).rename(columns={"this_run": "this run"})
    wide = long.pivot(index="model", columns="metric", values=list(numbers))
    wide = wide.swaplevel(0, 1, axis=1)
    order = [metric for metric in TABLE_METRICS if metric in wide.columns.get_level_values(0)]
    model_order = list(dict.fromkeys(row["model"] for row in paper_vs_run))
    columns = [(metric, part) for metric in order for part in numbers]
    table = wide.loc[model_order, columns].astype(float).round(digits)
    inside = {(row["model"], row["metric"]): tables.inside_ci_text(row) for row in paper_vs_run}
    if any(row.get("comparable") is True for row in paper_vs_run):
        for metric in order:
            cells = [inside.get((model, metric), tables.MISSING) for model in model_order]
            table.insert(table.columns.get_loc((metric, "difference")) + 1, (metric, tables.INSIDE_CI), cells)
    else:
        # A run is comparable or not as a whole: every row of a model says the same.
        per_model = {model: text for (model, _), text in inside.items()}
        table[(tables.INSIDE_CI, "")] = [per_model[model] for model in model_order]
    return table
