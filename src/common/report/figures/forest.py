"""The papers' claims against this study's runs: a forest plot, one row per experiment and model.

One panel per metric, one row per model, grouped under its experiment. Each row
shows this run's value as a dot with its 95% confidence interval as a bar, and
the paper's claim as a diamond; the bar is coloured by whether the claim lies
inside the interval, so a reader sees at a glance where the run agrees with the
paper. A claim without a run value shows the diamond alone, a run value without
a claim the dot and bar alone, and a value without an interval the dot alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from common.errors import DataError
from common.report.figures._shared import _finish, plt

AGREES = "tab:blue"
DIFFERS = "tab:orange"
PAPER_COLOUR = "crimson"
# Inches: per panel, per row of the plot, and the room of the row labels, title and legend.
PANEL_WIDTH = 1.45
ROW_HEIGHT = 0.22
LABEL_WIDTH = 1.9
MARGIN_HEIGHT = 1.0


def _number(value) -> float:
    """A row's number as a float; None (JSON null) is NaN."""
    return math.nan if value is None else float(value)


def _layout(experiments: Mapping[str, Sequence[Mapping]]) -> tuple[list[str], list[tuple[str, str | None]]]:
    """The metrics (panels, in first-seen order) and the rows: ``(experiment, None)`` heads each group."""
    metrics: dict[str, None] = {}
    rows: list[tuple[str, str | None]] = []
    for experiment, claims in experiments.items():
        if not claims:
            continue
        rows.append((experiment, None))
        for claim in claims:
            metrics.setdefault(claim["metric"])
        rows += [(experiment, model) for model in dict.fromkeys(claim["model"] for claim in claims)]
    return list(metrics), rows


def _draw_row(axis, y: float, claim: Mapping) -> None:
    """One model's claim and run value in one metric's panel, at height ``y``."""
    paper, value = _number(claim.get("paper")), _number(claim.get("this_run"))
    low, high = (_number(end) for end in (claim.get("ci95") or (None, None)))
    has_interval = math.isfinite(low) and math.isfinite(high)
    colour = AGREES if has_interval and low <= paper <= high else DIFFERS
    if math.isfinite(value):
        if has_interval:
            axis.hlines(y, low, high, colors=colour, linewidth=2.2, alpha=0.8)
        axis.plot(value, y, "o", color=colour, markersize=4.5)
    if math.isfinite(paper):
        axis.plot(paper, y, "D", markerfacecolor="none", markeredgecolor=PAPER_COLOUR, markersize=5.5, mew=1.3)


def _legend(figure: plt.Figure) -> None:
    """The markers' meaning, once, above the panels."""
    handles = [
        plt.Line2D([], [], color=AGREES, marker="o", linewidth=2.2, label="this run, 95% CI holds the claim"),
        plt.Line2D([], [], color=DIFFERS, marker="o", linewidth=2.2, label="this run, claim outside (or no CI)"),
        plt.Line2D(
            [], [], color=PAPER_COLOUR, marker="D", markerfacecolor="none", linestyle="none", label="paper's claim"
        ),
    ]
    figure.legend(handles=handles, loc="upper center", ncol=3, frameon=False, fontsize=8)


def paper_vs_run_forest(experiments: Mapping[str, Sequence[Mapping]], path=None) -> plt.Figure:
    """Forest plot of every experiment's paper claims against this run's values with their intervals.

    Args:
        experiments: Experiment id -> its paper-vs-run rows (``model``, ``metric``,
            ``paper``, ``this_run``, ``ci95``, as ``metrics.json``'s ``paper_vs_run``;
            None marks a number not given). Experiments without rows are left out.
        path: Where to save the PNG, or None.

    Returns:
        The figure: one panel per metric on a shared [0, 1] axis, one row per
        experiment and model (a bold row names each experiment).

    Raises:
        DataError: If no experiment has a row.
    """
    metrics, rows = _layout(experiments)
    if not rows:
        raise DataError("Nothing to draw: no experiment has a paper-vs-run row.")
    figure, axes = plt.subplots(
        1,
        len(metrics),
        sharey=True,
        squeeze=False,
        figsize=(LABEL_WIDTH + PANEL_WIDTH * len(metrics), MARGIN_HEIGHT + ROW_HEIGHT * len(rows)),
    )
    position = {row: -index for index, row in enumerate(rows)}
    for axis, metric in zip(axes[0], metrics):
        for experiment, claims in experiments.items():
            for claim in claims:
                if claim["metric"] == metric:
                    _draw_row(axis, position[(experiment, claim["model"])], claim)
        axis.set_title(metric, fontsize=9)
        axis.set_xlim(-0.05, 1.05)
        axis.set_xticks([0, 0.5, 1], ["0", "0.5", "1"], fontsize=8)
        axis.grid(axis="x", alpha=0.3)
        for y in (position[row] for row in rows if row[1] is None):
            axis.axhline(y, color="0.85", linewidth=0.6)
    first = axes[0][0]
    first.set_ylim(-len(rows) + 0.5, 0.5)
    first.set_yticks(list(position.values()), [model or experiment for experiment, model in rows], fontsize=8)
    for label, (_, model) in zip(first.get_yticklabels(), rows):
        label.set_fontweight("normal" if model else "bold")
    _legend(figure)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.3 / figure.get_figheight()))
    return _finish(figure, path)
