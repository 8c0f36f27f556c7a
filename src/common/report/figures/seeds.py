"""The spread of a run's metrics over seeds: one point per seed, and the mean, per model and metric.

One panel per metric (three to a row), one row per model in each. Each seed's value is a dot (one
colour per seed, the same in every panel, each seed a little above or below
the row so equal values stay visible, drawn over the rest); the mean over the
seeds is a black bar across the row, and a grey line spans the mean ± one
standard deviation. Each
panel's axis spans its own values: the spread is small beside [0, 1], and a
shared [0, 1] axis would hide it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import MaxNLocator

from common.errors import DataError
from common.report.figures._shared import _finish, plt

MEAN_COLOUR = "black"
SD_COLOUR = "0.6"
# Seeds get a colour each up to this many; more seeds share one colour (a legend of 20 colours reads as noise).
MAX_SEED_COLOURS = 10
SHARED_SEED_COLOUR = "tab:blue"
# Rows are one unit apart; the seeds' dots spread over this height around their row.
SEED_BAND = 0.5
# Panels per row of the figure: six metrics as two rows of three stay legible at a page's width.
MAX_COLUMNS = 3
# Inches: per panel, per model row of a panel, a panel's title and axis, the model names, the title and legend.
PANEL_WIDTH = 3.2
ROW_HEIGHT = 0.45
PANEL_TITLE_HEIGHT = 0.7
LABEL_WIDTH = 1.2
# Space between panels, as a share of a panel's width.
PANEL_SPACE = 0.12
MARGIN_HEIGHT = 0.8
# Room on each side of a panel's values, as a share of their range; values that are all equal get FLAT_MARGIN.
AXIS_MARGIN = 0.15
FLAT_MARGIN = 0.01


def _seeds_of(models: Mapping[str, Mapping[str, Mapping]]) -> list[str]:
    """Every seed that has a value, in first-seen order (as the keys of the ``values`` mappings)."""
    seeds: dict[str, None] = {}
    for metrics in models.values():
        for entry in metrics.values():
            seeds.update(dict.fromkeys(str(seed) for seed in entry.get("values", {})))
    return list(seeds)


def _metrics_of(models: Mapping[str, Mapping[str, Mapping]]) -> list[str]:
    """Every metric of any model, in first-seen order."""
    metrics: dict[str, None] = {}
    for entries in models.values():
        metrics.update(dict.fromkeys(entries))
    return list(metrics)


def _colours(seeds: list[str]) -> dict[str, str]:
    """One colour per seed (a shared one past :data:`MAX_SEED_COLOURS`)."""
    if len(seeds) > MAX_SEED_COLOURS:
        return dict.fromkeys(seeds, SHARED_SEED_COLOUR)
    return {seed: f"C{index}" for index, seed in enumerate(seeds)}


def _offsets(seeds: list[str]) -> dict[str, float]:
    """Each seed's height above (+) or below (-) its row, evenly over :data:`SEED_BAND`."""
    if len(seeds) == 1:
        return {seeds[0]: 0.0}
    step = SEED_BAND / (len(seeds) - 1)
    return {seed: SEED_BAND / 2 - index * step for index, seed in enumerate(seeds)}


def _number(value) -> float:
    """A record's number as a float; None (JSON null) is NaN."""
    return math.nan if value is None else float(value)


def _draw_row(axis, y: float, entry: Mapping, colours: Mapping[str, str], offsets: Mapping[str, float]) -> list:
    """One model's seeds, mean and mean ± SD in one metric's panel, at height ``y``; the values drawn."""
    values = {str(seed): _number(value) for seed, value in entry.get("values", {}).items()}
    drawn = [value for value in values.values() if math.isfinite(value)]
    mean, sd = _number(entry.get("mean")), _number(entry.get("sd"))
    if math.isfinite(mean) and math.isfinite(sd):
        axis.hlines(y, mean - sd, mean + sd, colors=SD_COLOUR, linewidth=2.5, zorder=1)
        drawn += [mean - sd, mean + sd]
    for seed, value in values.items():
        if math.isfinite(value):
            axis.plot(value, y + offsets[seed], "o", color=colours[seed], markersize=5, alpha=0.9, zorder=3)
    if math.isfinite(mean):
        axis.plot(mean, y, "|", color=MEAN_COLOUR, markersize=18, mew=2.2, zorder=2)
    return drawn


def _legend(figure: plt.Figure, colours: Mapping[str, str]) -> None:
    """What the dots, the bar and the line mean, once above the panels."""
    if len(set(colours.values())) == len(colours):
        handles = [
            plt.Line2D([], [], color=colour, marker="o", linestyle="none", label=f"seed {seed}")
            for seed, colour in colours.items()
        ]
    else:
        handles = [plt.Line2D([], [], color=SHARED_SEED_COLOUR, marker="o", linestyle="none", label="one seed")]
    handles += [
        plt.Line2D([], [], color=MEAN_COLOUR, marker="|", markersize=12, mew=2, linestyle="none", label="mean"),
        plt.Line2D([], [], color=SD_COLOUR, linewidth=2.5, label="mean ± SD"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), frameon=False, fontsize=8)


def seed_spread(models: Mapping[str, Mapping[str, Mapping]], title: str | None = None, path=None) -> plt.Figure:
    """Each seed's value of every model and metric, with the mean and mean ± SD over the seeds.

    Args:
        models: Model name -> metric -> ``{"mean": m, "sd": s, "values": {seed: value}}``,
            as the ``models`` section of ``seeds.json`` (:mod:`common.seeds`); None marks
            a number not defined (an SD of one seed).
        title: The figure's title (experiment and profile), or None.
        path: Where to save the PNG, or None.

    Returns:
        The figure: one panel per metric, each on an axis of its own values, one row per model.

    Raises:
        DataError: If no model has a metric.
    """
    metrics = _metrics_of(models)
    if not metrics:
        raise DataError("Nothing to draw: no model has a metric over the seeds.")
    names = list(models)
    seeds = _seeds_of(models)
    colours, offsets = _colours(seeds), _offsets(seeds)
    columns = min(len(metrics), MAX_COLUMNS)
    grid_rows = math.ceil(len(metrics) / columns)
    panel_height = ROW_HEIGHT * len(names) + PANEL_TITLE_HEIGHT
    figure, axes = plt.subplots(
        grid_rows,
        columns,
        sharey=True,
        squeeze=False,
        figsize=(LABEL_WIDTH + PANEL_WIDTH * columns, MARGIN_HEIGHT + panel_height * grid_rows),
        # Room between one panel's last tick label and the next one's first.
        layout=ConstrainedLayoutEngine(wspace=PANEL_SPACE),
    )
    panels = axes.ravel()
    for axis, metric in zip(panels, metrics):
        drawn = []
        for row, model in enumerate(names):
            if metric in models[model]:
                drawn += _draw_row(axis, -row, models[model][metric], colours, offsets)
        if drawn:
            low, high = min(drawn), max(drawn)
            margin = (high - low) * AXIS_MARGIN if high > low else FLAT_MARGIN
            axis.set_xlim(low - margin, high + margin)
        axis.xaxis.set_major_locator(MaxNLocator(nbins=4))
        axis.tick_params(axis="x", labelsize=8)
        axis.set_title(metric, fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    for axis in panels[len(metrics) :]:
        axis.set_visible(False)
    first = axes[0][0]
    first.set_ylim(-len(names) + 0.5, 0.5)
    first.set_yticks([-row for row in range(len(names))], names, fontsize=9)
    _legend(figure, colours)
    if title:
        figure.suptitle(title, fontsize=10)
    return _finish(figure, path)
