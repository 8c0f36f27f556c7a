"""The comparison's tables: every model's metrics and costs, and the paper's Table 2 beside the run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
    records: Mapping[str, Mapping], names: Sequence[str] = TABLE_METRICS, digits: int = 3
) -> pd.DataFrame:
    """The comparison: per model each metric with its 95% CI, sizes and costs.

    The best model of each metric (ties all) carries :data:`BEST_MARK`.

    Args:
        records: Model name -> record (:func:`common.experiments.nine_models.runs.model_records`,
            or ``metrics.json``'s ``models``).
        names: Metric columns, in order.
        digits: Decimals of the metric cells.

    Returns:
        One row per model: metric cells ``"value [lo, hi]"``, then
        :data:`COST_COLUMNS` (those the records have).
    """
    records = {model: _undefined_as_nan(record, names) for model, record in records.items()}
    table = tables.metrics_table(records, names, digits)
    for metric, winners in best_models(records, names).items():
        for model in winners:
            table.loc[model, metric] += BEST_MARK
    for column in COST_COLUMNS:
        if all(column in record for record in records.values()):
            table[column] = [records[model][column] for model in table.index]
    return table


def paper_comparison_table(paper_vs_run: Sequence[Mapping], digits: int = 3) -> pd.DataFrame:
    """The paper's Table 2 beside this run: per model and metric paper, run, difference.

    Args:
        paper_vs_run: Rows as from :func:`common.experiments.papers.paper_rows` (``model``,
            ``metric``, ``paper``, ``this_run``, ``difference``).
        digits: Decimals shown.

    Returns:
        Rows per model; columns a (metric, ``paper`` / ``this run`` / ``difference``)
        MultiIndex in :data:`TABLE_METRICS` order.
    """
    if not paper_vs_run:
        return pd.DataFrame()
    long = pd.DataFrame(list(paper_vs_run)).rename(columns={"this_run": "this run"})
    wide = long.pivot(index="model", columns="metric", values=["paper", "this run", "difference"])
    wide = wide.swaplevel(0, 1, axis=1)
    order = [metric for metric in TABLE_METRICS if metric in wide.columns.get_level_values(0)]
    columns = [(metric, part) for metric in order for part in ("paper", "this run", "difference")]
    model_order = list(dict.fromkeys(row["model"] for row in paper_vs_run))
    return wide.loc[model_order, columns].astype(float).round(digits)
