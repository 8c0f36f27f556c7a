"""Bar charts: metrics per model, this run beside a paper, and the benchmark ratios against their targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from common.errors import DataError
from common.report.figures._shared import _finish, plt

# ----------------------------------------------------------------------------- bar charts


def _entry_value_and_error(entry) -> tuple[float, tuple[float, float]]:
    """Bar height and (below, above) error of a number or a {"value", "ci95"} entry.

    Entries without an interval get NaN errors, which draw no error bar.
    """
    if isinstance(entry, Mapping) and "ci95" in entry:
        value = float(entry["value"])
        low, high = entry["ci95"]
        return value, (max(value - float(low), 0.0), max(float(high) - value, 0.0))
    value = np.nan if entry is None else float(entry["value"] if isinstance(entry, Mapping) else entry)
    return value, (np.nan, np.nan)


def _grouped_bars(axis, categories: Sequence[str], series: Mapping[str, Mapping]) -> None:
    """Bars per category, one bar per series, with CI error bars where entries carry a ci95."""
    width = 0.8 / max(len(series), 1)
    positions = np.arange(len(categories))
    colours = plt.get_cmap("tab10")
    for index, (label, entries) in enumerate(series.items()):
        heights, errors = zip(*(_entry_value_and_error(entries.get(category)) for category in categories))
        offsets = positions - 0.4 + width * (index + 0.5)
        axis.bar(
            offsets,
            heights,
            width,
            yerr=np.array(errors).T,
            capsize=2,
            label=label,
            color=colours(index % 10),
            error_kw={"elinewidth": 0.8},
        )
    axis.set_xticks(positions, categories)
    axis.grid(axis="y", alpha=0.3)
    axis.set_axisbelow(True)


def metric_bars(
    models: Mapping[str, Mapping],
    metrics: Sequence[str] = ("accuracy", "precision", "recall", "specificity", "f1", "auc"),
    path=None,
    title: str | None = None,
) -> plt.Figure:
    """Grouped bars of metrics per model with confidence-interval error bars.

    Args:
        models: Model name -> metrics dict (entries {"value", "ci95"}).
        metrics: Metrics on the x axis, in order.
        path: Where to save the PNG, or None.
        title: Axes title.
    """
    fig, axis = plt.subplots(figsize=(max(7.0, 0.35 * len(metrics) * len(models) + 2), 4.2), layout="constrained")
    _grouped_bars(axis, list(metrics), models)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("value (95% CI)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    if title:
        axis.set_title(title)
    return _finish(fig, path)


def bar_with_reference(
    values: Mapping,
    reference: Mapping,
    ylabel: str,
    path=None,
    title: str | None = None,
    labels: tuple[str, str] = ("this run", "paper"),
) -> plt.Figure:
    """Bars of this run's values beside a reference (e.g. a paper's claims) per category.

    Args:
        values: Category -> number or {"value", "ci95"} entry (CI drawn as error bar).
        reference: Category -> number on the same scale as ``values``.
        ylabel: Y-axis label.
        path: Where to save the PNG, or None.
        title: Axes title.
        labels: Legend labels of the two bar series.
    """
    categories = list(values) + [category for category in reference if category not in values]
    fig, axis = plt.subplots(figsize=(max(6.0, 0.9 * len(categories) + 2), 4.0), layout="constrained")
    _grouped_bars(axis, categories, {labels[0]: values, labels[1]: reference})
    axis.set_ylabel(ylabel)
    axis.tick_params(axis="x", labelrotation=30)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        axis.set_title(title)
    return _finish(fig, path)


# ----------------------------------------------------------------------------- benchmark


def bench_ratios(record: Mapping, path=None, title: str | None = None) -> plt.Figure:
    """Each performance ratio of a ``camstudy bench`` record as a bar against its target.

    One panel per ratio, each on its own scale (the targets differ by an order
    of magnitude); the target is a dashed line, and a bar is green when the
    ratio meets its target, red when it does not; the x label gives both numbers.

    Args:
        record: A ``bench.json`` record (see :mod:`common.bench`); every entry
            holding ``value``, ``target`` and ``meets_target`` is drawn, in order.
        path: Where to save the PNG, or None.
        title: Figure title.
    """
    ratios = {
        key: entry
        for key, entry in record.items()
        if isinstance(entry, Mapping) and {"value", "target", "meets_target"} <= entry.keys()
    }
    if not ratios:
        raise DataError("Nothing to draw: the benchmark record holds no ratio with a value and a target.")
    fig, axes = plt.subplots(
        1, len(ratios), figsize=(3.0 * len(ratios) + 0.6, 3.4), layout="constrained", squeeze=False
    )
    for axis, (key, entry) in zip(axes[0], ratios.items()):
        value, target = float(entry["value"]), float(entry["target"])
        colour = "tab:green" if entry["meets_target"] else "tab:red"
        axis.bar([0], [value], width=0.5, color=colour)
        axis.axhline(target, color="black", linestyle="--", linewidth=1.2)
        top = np.nanmax([value, target])
        axis.set_xlabel(f"measured {value:.2f}, target ≥ {target:g}")
        axis.set_ylim(0, 1.25 * top if np.isfinite(top) and top > 0 else 1)
        axis.text(0.3, target, "target", ha="left", va="bottom", fontsize="small")
        axis.set_xlim(-0.45, 0.95)
        axis.set_xticks([])
        axis.set_title(key.replace("_", " "), fontsize="medium")
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    axes[0][0].set_ylabel("ratio (higher is better)")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)
