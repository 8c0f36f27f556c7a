"""The papers' claims against this study's runs: a forest plot, one row per experiment and model.

One panel per metric, one row per model, grouped under its experiment. Each row
shows this run's value as a dot with its 95% confidence interval as a bar, and
the paper's claim as a diamond. Only a run comparable with the paper (the
``paper`` profile on the experiment's real data, a row's ``comparable``) is
judged against the claim: its bar is blue where the interval holds the claim and
orange where it does not. Any other run, a phantom run above all, measures a
different quantity than the paper's, so its dot and bar are grey, whatever the
numbers. A claim without a run value shows the diamond alone, a run value
without a claim the dot and bar alone, and a value without an interval the dot alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from common.errors import DataError
from common.report.figures._shared import _finish, plt

AGREES = "tab:blue"
DIFFERS = "tab:orange"
# A run not comparable with the paper (phantoms, or not the paper's settings): no verdict on the claim.
NOT_COMPARABLE = "tab:gray"
LEGEND_TEXT = {
    AGREES: "comparable run, 95% CI holds the claim",
    DIFFERS: "comparable run, claim outside (or no CI)",
    NOT_COMPARABLE: "run not comparable with the paper (phantoms or not its settings)",
}
PAPER_COLOUR = "crimson"
# Inches: per panel, per row of the plot, and the room of the row labels, title and legend.
PANEL_WIDTH = 1.45
ROW_HEIGHT = 0.22
LABEL_WIDTH = 1.9
MARGIN_HEIGHT = 1.0
# The legend above the panels: entries per line, and the height of a line in inches.
LEGEND_COLUMNS = 2
LEGEND_LINE_HEIGHT = 0.3


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


def _colour(claim: Mapping) -> str:
    """A row's colour: grey unless the run is comparable, then blue where its interval holds the claim."""
    if claim.get("comparable") is not True:
        return NOT_COMPARABLE
    paper = _number(claim.get("paper"))
    low, high = (_number(end) for end in (claim.get("ci95") or (None, None)))
    return AGREES if math.isfinite(low) and math.isfinite(high) and low <= paper <= high else DIFFERS


def _draw_row(axis, y: float, claim: Mapping) -> str | None:
    """One model's claim and run value in one metric's panel, at height ``y``; the colour drawn (None: no run value)."""
    paper, value = _number(claim.get("paper")), _number(claim.get("this_run"))
    low, high = (_number(end) for end in (claim.get("ci95") or (None, None)))
    has_interval = math.isfinite(low) and math.isfinite(high)
    colour = _colour(claim)
    if math.isfinite(value):
        if has_interval:
            axis.hlines(y, low, high, colors=colour, linewidth=2.2, alpha=0.8)
        axis.plot(value, y, "o", color=colour, markersize=4.5)
    if math.isfinite(paper):
        axis.plot(paper, y, "D", markerfacecolor="none", markeredgecolor=PAPER_COLOUR, markersize=5.5, mew=1.3)
    return colour if math.isfinite(value) else None


def _legend(figure: plt.Figure, colours: set[str]) -> int:
    """The meaning of the markers and of the colours drawn, once, above the panels; its number of lines."""
    handles = [
        plt.Line2D([], [], color=colour, marker="o", linewidth=2.2, label=LEGEND_TEXT[colour])
        for colour in LEGEND_TEXT
        if colour in colours
    ]
    handles.append(
        plt.Line2D(
            [], [], color=PAPER_COLOUR, marker="D", markerfacecolor="none", linestyle="none", label="paper's claim"
        )
    )
    # Up to three entries fit on one line above the narrowest plot; more take lines of LEGEND_COLUMNS.
    columns = len(handles) if len(handles) <= 3 else LEGEND_COLUMNS
    figure.legend(handles=handles, loc="upper center", ncol=columns, frameon=False, fontsize=8)
    return math.ceil(len(handles) / columns)


def paper_vs_run_forest(experiments: Mapping[str, Sequence[Mapping]], path=None) -> plt.Figure:
    """Forest plot of every experiment's paper claims against this run's values with their intervals.

    Args:
        experiments: Experiment id -> its paper-vs-run rows (``model``, ``metric``,
            ``paper``, ``this_run``, ``ci95``, ``comparable``, as ``metrics.json``'s
            ``paper_vs_run``; None marks a number not given). Experiments without rows
            are left out. A row whose ``comparable`` is not True is drawn grey
            (:data:`NOT_COMPARABLE`), never as agreeing or differing with the claim.
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
    drawn: set[str | None] = set()
    for axis, metric in zip(axes[0], metrics):
        for experiment, claims in experiments.items():
            for claim in claims:
                if claim["metric"] == metric:
                    drawn.add(_draw_row(axis, position[(experiment, claim["model"])], claim))
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
    lines = _legend(figure, {colour for colour in drawn if colour})
    figure.set_figheight(figure.get_figheight() + LEGEND_LINE_HEIGHT * (lines - 1))
    figure.tight_layout(rect=(0, 0, 1, 1 - LEGEND_LINE_HEIGHT * lines / figure.get_figheight()))
    return _finish(figure, path)
